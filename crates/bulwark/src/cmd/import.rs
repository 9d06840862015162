//! `bulwark import FILE --bank B`: uploads a hash list to a running service
//! as an import job (`POST /v1/banks/{bank}/imports`) and follows it to the
//! end with progress bars; `--no-wait` prints the job and returns.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use bulwark_chat::http::Http;
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

/// Import a hash list into a bank of a running service.
#[derive(Parser, Debug)]
pub struct Args {
    /// The list (`-` for stdin): `TYPE HASH` lines, CSV or JSON lines.
    pub file: PathBuf,
    /// The bank to import into (it must exist).
    #[arg(long)]
    pub bank: String,
    /// The service's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "BULWARK_SERVER")]
    pub server: String,
    /// An API key with the curator or admin role.
    #[arg(long, env = "BULWARK_KEY", hide_env_values = true)]
    pub key: String,
    /// `lines` (python-threatexchange `TYPE HASH` lines), `csv` or `jsonl`.
    #[arg(long, default_value = "lines")]
    pub format: String,
    /// Where the list came from (kept with each item, up to 200 characters).
    #[arg(long)]
    pub source: Option<String>,
    /// Retrying with the same key returns the first job instead of a second.
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// Print the queued job and return without waiting.
    #[arg(long)]
    pub no_wait: bool,
    /// Print the finished job as JSON on stdout (no progress bars).
    #[arg(long)]
    pub json: bool,
}

/// Counts bytes as they are read, for the upload bar.
struct Counting<R> {
    inner: R,
    bar: ProgressBar,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }
}

fn bar(len: Option<u64>, hidden: bool, what: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let b = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(
        "{msg:>9} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    b.set_style(style);
    b.set_message(what.to_string());
    b
}

fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs the command: 0 when the job finished (rejected lines are listed on
/// stderr), 1 when it failed or was cancelled.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let http = Http::with_timeout(&a.server, None);
    let quiet = a.json || !std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (reader, len): (Box<dyn Read>, Option<u64>) = if a.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f = std::fs::File::open(&a.file)
            .with_context(|| format!("opening {}", a.file.display()))?;
        let len = f.metadata().ok().map(|m| m.len());
        (Box::new(std::io::BufReader::with_capacity(1 << 20, f)), len)
    };
    let up = bar(len, quiet, "upload");
    let mut body = Counting {
        inner: reader,
        bar: up.clone(),
    };
    let mut path = format!(
        "/v1/banks/{}/imports?format={}",
        query_escape(&a.bank),
        query_escape(&a.format)
    );
    if let Some(s) = &a.source {
        path.push_str(&format!("&source={}", query_escape(s)));
    }
    let mut headers = Vec::new();
    if let Some(k) = &a.idempotency_key {
        headers.push(("Idempotency-Key", k.as_str()));
    }
    let reply = http.post_reader(&path, Some(&a.key), &headers, "text/plain", &mut body)?;
    up.finish_and_clear();
    let mut job = reply.json("starting the import", &[200, 202])?;
    let id = job["id"]
        .as_str()
        .context("the service answered a job without an id")?
        .to_string();
    if a.no_wait {
        println!("{}", serde_json::to_string_pretty(&job)?);
        return Ok(ExitCode::SUCCESS);
    }
    let total = job["bytes_total"].as_u64();
    let work = bar(total, quiet, "import");
    loop {
        let status = job["status"].as_str().unwrap_or("").to_string();
        work.set_position(job["bytes_done"].as_u64().unwrap_or(0));
        work.set_message(format!(
            "import  {} lines, {} added, {} duplicates, {} rejected",
            job["lines"], job["added"], job["duplicates"], job["rejected_count"]
        ));
        if status != "queued" && status != "running" {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        job = http
            .call("GET", &format!("/v1/imports/{id}"), Some(&a.key), None)?
            .json("following the import", &[200])?;
    }
    work.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&job)?);
    } else {
        summary(&job);
    }
    Ok(if job["status"] == "done" {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn summary(job: &Value) {
    eprintln!(
        "import {} into {}: {} — {} lines, {} added, {} duplicates, {} rejected",
        job["id"].as_str().unwrap_or("?"),
        job["bank"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?"),
        job["lines"],
        job["added"],
        job["duplicates"],
        job["rejected_count"],
    );
    if let Some(e) = job["error"].as_str() {
        eprintln!("error: {e}");
    }
    for r in job["rejected"].as_array().into_iter().flatten() {
        eprintln!(
            "line {}: {}",
            r["line"],
            r["error"].as_str().unwrap_or("rejected")
        );
    }
    let listed = job["rejected"].as_array().map_or(0, Vec::len) as u64;
    let count = job["rejected_count"].as_u64().unwrap_or(0);
    if count > listed {
        eprintln!("… and {} more rejected lines", count - listed);
    }
}
