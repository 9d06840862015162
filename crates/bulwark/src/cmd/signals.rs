//! `bulwark signals`: text and entity signals of ad text (trafficking signals).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use bulwark_signals::{ExtractOptions, RuleBank, RuleBankSpec, TEXT_HASH_RADIUS, TextHash};

/// Subcommands of `bulwark signals`.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Print the entities (phones E.164, handles, invite links, wallets, URLs,
    /// domains) of a text, one JSON object per line. Exit 0 if any, 1 if none.
    Extract(TextArgs),
    /// Print the text near-duplicate hash (64 hex digits) of a text, or with
    /// `--compare HASH` the distance to it (exit 0 within --radius, 1 beyond).
    Hash(HashArgs),
    /// Print the folded (normalised) text the hash and rules see.
    Fold(TextArgs),
    /// Match a text against keyword/regex rule banks (JSON files) and explain
    /// which rule matched which span. Exit 0 on a match, 1 on none.
    Rules(RulesArgs),
    /// Evaluate the signals on the synthetic benign corpus; print Markdown.
    Eval(EvalArgs),
}

/// Where the text comes from.
#[derive(clap::Args)]
pub struct TextArgs {
    /// A file with the text, or `-` (the default) for stdin.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Region for phone numbers written without `+` (CLDR id: US, GB, IT, IQ).
    #[arg(long)]
    region: Option<String>,
}

/// Arguments of `bulwark signals hash`.
#[derive(clap::Args)]
pub struct HashArgs {
    #[command(flatten)]
    text: TextArgs,
    /// A hash to compare with.
    #[arg(long)]
    compare: Option<String>,
    /// Match radius in bits.
    #[arg(long, default_value_t = TEXT_HASH_RADIUS)]
    radius: u32,
}

/// Arguments of `bulwark signals rules`.
#[derive(clap::Args)]
pub struct RulesArgs {
    #[command(flatten)]
    text: TextArgs,
    /// Rule bank JSON files: `{"name":..,"language":..,"rules":[{"id":..,"pattern":..}]}`.
    #[arg(long = "bank", required = true)]
    banks: Vec<PathBuf>,
}

/// Arguments of `bulwark signals eval`.
#[derive(clap::Args)]
pub struct EvalArgs {
    /// Seed of the corpus.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Number of original ads.
    #[arg(long, default_value_t = 500)]
    ads: usize,
}

fn read_text(a: &TextArgs) -> anyhow::Result<String> {
    let mut s = String::new();
    if a.input.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the text from stdin")?;
    } else {
        s = std::fs::read_to_string(&a.input)
            .with_context(|| format!("reading {}", a.input.display()))?;
    }
    Ok(s)
}

fn options(a: &TextArgs) -> anyhow::Result<ExtractOptions> {
    Ok(match &a.region {
        Some(r) => ExtractOptions::with_region(r)?,
        None => ExtractOptions::default(),
    })
}

pub fn run(c: Command) -> anyhow::Result<ExitCode> {
    match c {
        Command::Extract(a) => {
            let text = read_text(&a)?;
            let found = bulwark_signals::extract(&text, &options(&a)?);
            for e in &found {
                println!("{}", serde_json::to_string(e)?);
            }
            Ok(if found.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Fold(a) => {
            println!("{}", bulwark_signals::fold(&read_text(&a)?).text);
            Ok(ExitCode::SUCCESS)
        }
        Command::Hash(a) => {
            let text = read_text(&a.text)?;
            let h = TextHash::of_text(&text)
                .context("the text has no words to hash (only numbers, emoji or punctuation)")?;
            match a.compare {
                None => {
                    println!("{h}");
                    Ok(ExitCode::SUCCESS)
                }
                Some(other) => {
                    let o: TextHash = other.parse()?;
                    let d = h.distance(&o);
                    println!("{d}");
                    Ok(if d <= a.radius {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    })
                }
            }
        }
        Command::Rules(a) => {
            let text = read_text(&a.text)?;
            let folded = bulwark_signals::fold(&text);
            let mut any = false;
            for path in &a.banks {
                let spec: RuleBankSpec = serde_json::from_str(
                    &std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("{}: not a rule bank", path.display()))?;
                let bank = RuleBank::new(spec).with_context(|| path.display().to_string())?;
                for m in bank.explain_folded(&text, &folded) {
                    any = true;
                    println!("{}", serde_json::to_string(&m)?);
                }
            }
            Ok(if any {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Eval(a) => {
            anyhow::ensure!(a.ads >= 2, "--ads must be at least 2");
            let r = bulwark_signals::eval::run(
                a.seed,
                a.ads,
                &bulwark_signals::eval::default_schemes(),
            );
            print!("{}", r.markdown());
            Ok(ExitCode::SUCCESS)
        }
    }
}
