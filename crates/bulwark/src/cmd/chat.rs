//! `bulwark chat`: the reference messenger's terminal UI (no subcommand, or
//! `tui`) and scriptable client (the `chat` feature). Its delivery service is
//! `bulwark delivery serve` (cmd/delivery.rs).

use std::path::PathBuf;
use std::process::ExitCode;

use bulwark_chat::{Attachment, Client, PdataPolicy};

/// Where a device keeps its state.
#[derive(clap::Args)]
pub struct Args {
    /// The device's state directory (keys, MLS state, received messages).
    #[arg(long, env = "BULWARK_CHAT_DIR", default_value = ".bulwark-chat")]
    dir: PathBuf,
    /// Without a subcommand: the terminal UI.
    #[command(subcommand)]
    command: Option<Command>,
}

/// Chat commands.
#[derive(clap::Subcommand)]
enum Command {
    /// The terminal UI: conversations, messages with their stamp state and
    /// dropped items, compose, attach, report (the default).
    Tui {
        /// Seconds between fetches of the queue.
        #[arg(long, default_value_t = 2.0)]
        poll: f64,
    },
    /// Register this device (a new user, or with --link-token a further
    /// device of an existing user).
    Register {
        /// Delivery service URL.
        #[arg(long, default_value = "http://127.0.0.1:8090")]
        ds: String,
        /// Matcher service (`bulwark serve`) URL.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        matcher: String,
        /// The user name.
        #[arg(long)]
        user: String,
        /// This device's name.
        #[arg(long, default_value = "phone")]
        device: String,
        /// Token of one of the user's devices (`bulwark chat token` there).
        #[arg(long = "link-token", env = "BULWARK_CHAT_LINK_TOKEN")]
        link_token: Option<String>,
        /// A pinned list provider's public key (64 hex); with two or more,
        /// every image sent carries a safety voucher.
        #[arg(long = "provider")]
        providers: Vec<String>,
        /// Accept pdata with this lower threshold (tests and demos).
        #[arg(long = "allow-threshold")]
        allow_threshold: Option<u16>,
    },
    /// Print this device's delivery token (to link another device).
    Token,
    /// Send a message to a user (1:1) or a group.
    Send {
        /// The other user of a 1:1.
        #[arg(long, required_unless_present = "group")]
        to: Option<String>,
        /// A group this device is in.
        #[arg(long)]
        group: Option<String>,
        /// Attach an image (a safety voucher goes with it).
        #[arg(long)]
        image: Vec<PathBuf>,
        /// Attach a video.
        #[arg(long)]
        video: Vec<PathBuf>,
        /// The text.
        #[arg(default_value = "")]
        text: String,
    },
    /// Fetch, verify and print new messages.
    Read {
        /// One JSON object (messages, joined, left, dropped).
        #[arg(long)]
        json: bool,
    },
    /// Report a received message (with its attachments), signed by this device.
    Report {
        /// The message id (from `read`).
        message_id: String,
        /// Reason code.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Groups: create, add, remove, list.
    #[command(subcommand)]
    Group(GroupCommand),
}

/// Group commands.
#[derive(clap::Subcommand)]
enum GroupCommand {
    /// Create a group with these users (all their devices).
    Create {
        /// The group's name (its id).
        name: String,
        /// Users to add.
        users: Vec<String>,
    },
    /// Add users to a group.
    Add {
        /// The group.
        name: String,
        /// Users to add.
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Remove a user (all their devices) from a group.
    Remove {
        /// The group.
        name: String,
        /// The user.
        user: String,
    },
    /// List this device's groups and their members.
    List,
}

/// Runs `bulwark chat ...`.
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let dir = a.dir;
    match a.command.unwrap_or(Command::Tui { poll: 2.0 }) {
        Command::Tui { poll } => {
            anyhow::ensure!(
                poll.is_finite() && poll > 0.0,
                "--poll must be a positive number of seconds"
            );
            let mut c = Client::open(&dir)?;
            bulwark_chat::tui::run_terminal(&mut c, std::time::Duration::from_secs_f64(poll))?;
        }
        Command::Register {
            ds,
            matcher,
            user,
            device,
            link_token,
            providers,
            allow_threshold,
        } => {
            let mut c =
                Client::register(&dir, &ds, &matcher, &user, &device, link_token.as_deref())?;
            c.set_pdata_policy(PdataPolicy {
                providers,
                allow_threshold,
            })?;
            eprintln!(
                "bulwark: {user}/{device} registered; state in {}",
                dir.display()
            );
        }
        Command::Token => println!("{}", Client::open(&dir)?.token()),
        Command::Send {
            to,
            group,
            image,
            video,
            text,
        } => {
            let mut c = Client::open(&dir)?;
            let group = match (group, to) {
                (Some(g), _) => g,
                (None, Some(u)) => c.direct(&u)?,
                (None, None) => anyhow::bail!("give --to USER or --group GROUP"),
            };
            let mut atts = Vec::new();
            for p in &image {
                atts.push(Attachment::from_file(p)?);
            }
            for p in &video {
                let mut a = Attachment::from_file(p)?;
                if !a.media_type.starts_with("video/") {
                    a.media_type = "video/mp4".into();
                }
                atts.push(a);
            }
            let sent = c.send(&group, &text, &atts)?;
            println!("{}", serde_json::to_string(&sent)?);
        }
        Command::Read { json } => {
            let mut c = Client::open(&dir)?;
            let r = c.receive()?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                for g in &r.joined {
                    println!("joined {g}");
                }
                for g in &r.left {
                    println!("removed from {g}");
                }
                for m in &r.messages {
                    println!("[{}] {} <{}>: {}", m.group, m.id, m.sender, m.text);
                    for a in &m.attachments {
                        println!(
                            "    {} {} bytes: {}",
                            a.media_type,
                            a.size,
                            a.path.display()
                        );
                    }
                }
                for d in &r.dropped {
                    println!("DROPPED [{}] {}: {}", d.group, d.kind, d.reason);
                }
            }
            if !r.dropped.is_empty() {
                return Ok(ExitCode::from(1));
            }
        }
        Command::Report { message_id, reason } => {
            let c = Client::open(&dir)?;
            let v = c.report(&message_id, reason.as_deref())?;
            println!("{v}");
        }
        Command::Group(g) => {
            let mut c = Client::open(&dir)?;
            match g {
                GroupCommand::Create { name, users } => {
                    let users: Vec<&str> = users.iter().map(String::as_str).collect();
                    c.create_group(&name, &users)?;
                }
                GroupCommand::Add { name, users } => {
                    let users: Vec<&str> = users.iter().map(String::as_str).collect();
                    c.add(&name, &users)?;
                }
                GroupCommand::Remove { name, user } => c.remove(&name, &user)?,
                GroupCommand::List => {
                    for g in c.groups() {
                        let m: Vec<String> = c
                            .members(&g)?
                            .into_iter()
                            .map(|m| format!("{}/{}", m.user, m.device))
                            .collect();
                        println!("{g}: {}", m.join(" "));
                    }
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
