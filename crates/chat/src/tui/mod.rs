//! The terminal UI (`bulwark chat`, `bulwark chat tui`): conversations,
//! messages with their stamp state and the items dropped for failing
//! verification, compose, attach an image or video by path, report a
//! message.
//!
//! - [`model`]: what is shown and what each key does, pure and unit-tested;
//! - [`view`]: drawing the model with ratatui (tested on `TestBackend`);
//! - [`run`] ([`start`], [`drive`]): the loop that feeds keys and clock ticks to the model and
//!   carries out its [`Action`]s on a [`Client`]. It takes any ratatui
//!   backend and any source of [`Input`]s, so a test drives it with scripted
//!   keys against real services (`tests/chat/tui.rs`); [`run_terminal`] is the
//!   same loop on the real terminal.

pub mod model;
pub mod view;

use std::time::Duration;

use ratatui::Terminal;
use ratatui::backend::Backend;

pub use model::{Action, App, Key};

use crate::client::{Attachment, Client, Received};

/// One input to the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// A key.
    Key(Key),
    /// Time passed: fetch the queue.
    Tick,
    /// Only redraw (the terminal was resized).
    Redraw,
}

/// Keys typed as text, one [`Input::Key`] per character (scripts and tests).
pub fn typed(text: &str) -> impl Iterator<Item = Input> + '_ {
    text.chars().map(|c| Input::Key(Key::Char(c)))
}

fn fetch(client: &mut Client, app: &mut App) {
    match client.receive() {
        Ok(r) => app.received(&r),
        Err(e) => app.failed("fetching", &format!("{e:#}")),
    }
}

fn attachment(path: &std::path::Path) -> anyhow::Result<Attachment> {
    Attachment::from_file(path)
}

fn perform(client: &mut Client, app: &mut App, action: Action) {
    match action {
        Action::Quit => {}
        Action::Refresh => fetch(client, app),
        Action::Attach(path) => match attachment(&path) {
            Ok(a) => app.attached(path, &a.media_type, a.bytes.len() as u64),
            Err(e) => app.failed("attaching", &format!("{e:#}")),
        },
        Action::Send {
            group,
            text,
            attachments,
        } => {
            let files: anyhow::Result<Vec<Attachment>> =
                attachments.iter().map(|p| attachment(p)).collect();
            match files.and_then(|files| client.send(&group, &text, &files)) {
                Ok(sent) => app.sent(&sent, &text),
                Err(e) => app.failed("sending", &format!("{e:#}")),
            }
        }
        Action::Report { message_id, reason } => {
            match client.report(&message_id, reason.as_deref()) {
                Ok(v) => app.reported(
                    &message_id,
                    &v["id"].to_string(),
                    v["status"].as_str().unwrap_or("filed"),
                ),
                Err(e) => app.failed("reporting", &format!("{e:#}")),
            }
        }
        Action::Direct(user) => match client.direct(&user) {
            Ok(group) => {
                app.select(&group);
                app.set_info(&format!("1:1 with {user}: {group}"));
            }
            Err(e) => app.failed("starting the 1:1", &format!("{e:#}")),
        },
    }
}

/// The UI's state for `client`: the groups and received messages the device
/// has, then one fetch of the queue.
pub fn start(client: &mut Client) -> App {
    let mut app = App::new(client.user());
    for g in client.groups() {
        app.conversation(&g);
    }
    app.received(&Received {
        messages: client.inbox().to_vec(),
        ..Received::default()
    });
    for c in &mut app.conversations {
        c.unread = 0;
    }
    app.status = None;
    fetch(client, &mut app);
    app
}

/// Draws `app`, then for each input updates it, carries out the action and
/// draws again, until a quit key or the end of `inputs`.
pub fn drive<B: Backend>(
    terminal: &mut Terminal<B>,
    client: &mut Client,
    app: &mut App,
    inputs: impl IntoIterator<Item = Input>,
) -> anyhow::Result<()>
where
    B::Error: std::error::Error + Send + Sync + 'static,
{
    terminal.draw(|f| view::draw(f, app))?;
    for input in inputs {
        match input {
            Input::Tick => fetch(client, app),
            Input::Redraw => {}
            Input::Key(k) => {
                if let Some(a) = app.on_key(k) {
                    perform(client, app, a);
                }
            }
        }
        if app.quit {
            break;
        }
        terminal.draw(|f| view::draw(f, app))?;
    }
    Ok(())
}

/// [`start`] then [`drive`]: the UI on `terminal` for `client` until a quit
/// key or the end of `inputs`; returns the final state.
pub fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    client: &mut Client,
    inputs: impl IntoIterator<Item = Input>,
) -> anyhow::Result<App>
where
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut app = start(client);
    drive(terminal, client, &mut app, inputs)?;
    Ok(app)
}

fn key_of(k: ratatui::crossterm::event::KeyEvent) -> Option<Key> {
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    Some(match k.code {
        KeyCode::Char(c) if k.modifiers.contains(KeyModifiers::CONTROL) => Key::Ctrl(c),
        KeyCode::Char(c) => Key::Char(c),
        KeyCode::Enter => Key::Enter,
        KeyCode::Esc => Key::Esc,
        KeyCode::Tab | KeyCode::BackTab => Key::Tab,
        KeyCode::Up => Key::Up,
        KeyCode::Down => Key::Down,
        KeyCode::Left => Key::Left,
        KeyCode::Right => Key::Right,
        KeyCode::Backspace => Key::Backspace,
        _ => return None,
    })
}

/// [`run`] on the real terminal: keys from it, a [`Input::Tick`] (fetch)
/// after every `poll` without a key.
pub fn run_terminal(client: &mut Client, poll: Duration) -> anyhow::Result<()> {
    use ratatui::crossterm::event::{self, Event, KeyEventKind};
    let mut terminal = ratatui::try_init()
        .map_err(|e| anyhow::anyhow!("the terminal UI needs a terminal: {e}"))?;
    let inputs = std::iter::from_fn(|| {
        loop {
            match event::poll(poll) {
                Ok(false) => return Some(Input::Tick),
                Ok(true) => match event::read() {
                    Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                        if let Some(k) = key_of(k) {
                            return Some(Input::Key(k));
                        }
                    }
                    Ok(Event::Resize(..)) => return Some(Input::Redraw),
                    Ok(_) => {}
                    Err(_) => return None,
                },
                Err(_) => return None,
            }
        }
    });
    let r = run(&mut terminal, client, inputs);
    ratatui::restore();
    r.map(|_| ())
}
