//! Drawing the [`App`] with ratatui: the conversation list on the left, the
//! selected conversation's messages (with each one's stamp state, dropped
//! items in red) on the right, the compose box, a status and a help line.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, List, ListItem, ListState, Paragraph};

use super::model::{App, Entry, Focus, Mode, Shown};

/// `HH:MM:SS` (UTC) of a time in seconds.
pub fn clock(secs: u64) -> String {
    let s = secs % 86_400;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A size in B, KB or MB.
pub fn size(n: u64) -> String {
    if n < 1_000 {
        format!("{n} B")
    } else if n < 1_000_000 {
        format!("{} KB", n / 1_000)
    } else {
        format!("{:.1} MB", n as f64 / 1e6)
    }
}

fn attachment_line(a: &Shown) -> String {
    format!(
        "    [{} {}] {}",
        a.media_type,
        size(a.size),
        a.path.display()
    )
}

/// Splits `text` into lines of at most `width` characters.
fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    let width = width.saturating_sub(indent.chars().count()).max(1);
    let mut out = Vec::new();
    for para in text.split('\n') {
        let chars: Vec<char> = para.chars().collect();
        if chars.is_empty() {
            out.push(indent.to_string());
        }
        for chunk in chars.chunks(width) {
            out.push(format!("{indent}{}", chunk.iter().collect::<String>()));
        }
    }
    out
}

/// The lines of one entry; `selected` marks it.
fn entry_lines(app: &App, e: &Entry, selected: bool, width: usize) -> Vec<Line<'static>> {
    let mark = if selected { "▶ " } else { "  " };
    let head = |spans: Vec<Span<'static>>| {
        let mut v = vec![Span::raw(mark)];
        v.extend(spans);
        let line = Line::from(v);
        if selected {
            line.style(Style::default().add_modifier(Modifier::REVERSED))
        } else {
            line
        }
    };
    let ok = Style::default().fg(Color::Green);
    let bad = Style::default().fg(Color::Red).add_modifier(Modifier::BOLD);
    let mut out = Vec::new();
    match e {
        Entry::Received {
            sender,
            device,
            text,
            attachments,
            accepted_at,
            reported,
            ..
        } => {
            let mut spans = vec![
                Span::styled(
                    format!("{sender}/{device}"),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(" {} ", clock(*accepted_at))),
                Span::styled("✓ stamp verified", ok),
            ];
            if let Some(r) = reported {
                spans.push(Span::styled(
                    format!("  ⚑ reported {r}"),
                    Style::default().fg(Color::Yellow),
                ));
            }
            out.push(head(spans));
            out.extend(wrap(text, width, "    ").into_iter().map(Line::from));
            out.extend(attachments.iter().map(|a| Line::from(attachment_line(a))));
        }
        Entry::Sent {
            text,
            attachments,
            vouchers,
            accepted_at,
            ..
        } => {
            out.push(head(vec![
                Span::styled(
                    format!("{} (me)", app.me),
                    Style::default().add_modifier(Modifier::BOLD),
                ),
                Span::raw(format!(" {} ", clock(*accepted_at))),
                Span::styled(format!("✓ sent, stamped, {vouchers} voucher(s)"), ok),
            ]));
            out.extend(wrap(text, width, "    ").into_iter().map(Line::from));
            out.extend(attachments.iter().map(|a| Line::from(attachment_line(a))));
        }
        Entry::Dropped {
            kind,
            message_id,
            reason,
        } => {
            let id = message_id.as_deref().unwrap_or("-");
            out.push(head(vec![Span::styled(
                format!("✗ DROPPED {kind} {id}: failed verification"),
                bad,
            )]));
            out.extend(
                wrap(reason, width, "    ")
                    .into_iter()
                    .map(|l| Line::from(Span::styled(l, Style::default().fg(Color::Red)))),
            );
        }
    }
    out
}

fn help(app: &App) -> &'static str {
    match (app.mode, app.focus) {
        (Mode::Normal, Focus::Conversations) => {
            "↑↓ chat · Tab messages · i write · a attach · n new 1:1 · r refresh · q quit"
        }
        (Mode::Normal, Focus::Messages) => {
            "↑↓ message · R report · Tab chats · i write · a attach · r refresh · q quit"
        }
        (Mode::Compose, _) => "Enter send · Ctrl-a attach a file · Esc stop writing",
        _ => "Enter confirm · Esc cancel",
    }
}

/// Draws the whole UI.
pub fn draw(f: &mut Frame, app: &App) {
    let [main, compose, status, helpline] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(4),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let [list, messages] =
        Layout::horizontal([Constraint::Length(24), Constraint::Min(10)]).areas(main);
    draw_list(f, app, list);
    draw_messages(f, app, messages);
    draw_compose(f, app, compose);
    if let Some((error, text)) = &app.status {
        let style = if *error {
            Style::default().fg(Color::Red)
        } else {
            Style::default().fg(Color::Green)
        };
        f.render_widget(Paragraph::new(Span::styled(text.clone(), style)), status);
    }
    f.render_widget(
        Paragraph::new(Span::styled(
            help(app),
            Style::default().add_modifier(Modifier::DIM),
        )),
        helpline,
    );
}

fn focused(app: &App, pane: Focus) -> Style {
    if app.mode == Mode::Normal && app.focus == pane {
        Style::default().fg(Color::Cyan)
    } else {
        Style::default()
    }
}

fn draw_list(f: &mut Frame, app: &App, area: Rect) {
    let items: Vec<ListItem> = app
        .conversations
        .iter()
        .map(|c| {
            let mut t = c.title.clone();
            if c.unread > 0 {
                t.push_str(&format!(" ({})", c.unread));
            }
            if c.left {
                t.push_str(" [left]");
            }
            ListItem::new(t)
        })
        .collect();
    let list = List::new(items)
        .block(
            Block::bordered()
                .title(format!(" {} · chats ", app.me))
                .border_style(focused(app, Focus::Conversations)),
        )
        .highlight_symbol("> ")
        .highlight_style(Style::default().add_modifier(Modifier::REVERSED));
    let mut state = ListState::default().with_selected(
        (!app.conversations.is_empty()).then_some(app.selected.min(app.conversations.len() - 1)),
    );
    f.render_stateful_widget(list, area, &mut state);
}

fn draw_messages(f: &mut Frame, app: &App, area: Rect) {
    let block = Block::bordered()
        .title(match app.current() {
            Some(c) => format!(" {} ", c.title),
            None => " no conversation yet (n: new 1:1) ".to_string(),
        })
        .border_style(focused(app, Focus::Messages));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let Some(c) = app.current() else {
        return;
    };
    let width = inner.width as usize;
    let mut lines = Vec::new();
    let mut cursor_span = None;
    for (i, e) in c.entries.iter().enumerate() {
        let selected = app.focus == Focus::Messages && app.cursor == Some(i);
        let start = lines.len();
        lines.extend(entry_lines(app, e, selected, width.saturating_sub(2)));
        if selected {
            cursor_span = Some((start, lines.len()));
        }
    }
    let height = inner.height as usize;
    let mut offset = lines.len().saturating_sub(height);
    if let Some((s, e)) = cursor_span {
        offset = offset.min(s).max(e.saturating_sub(height));
    }
    let shown: Vec<Line> = lines.into_iter().skip(offset).take(height).collect();
    f.render_widget(Paragraph::new(shown), inner);
}

fn draw_compose(f: &mut Frame, app: &App, area: Rect) {
    let (title, text) = match app.mode {
        Mode::Attach => (" attach: path of an image or video ", &app.input),
        Mode::Report => (
            " report the selected message: reason (optional) ",
            &app.input,
        ),
        Mode::NewChat => (" new 1:1 with user ", &app.input),
        Mode::Compose => (" message (writing) ", &app.draft),
        Mode::Normal => (" message ", &app.draft),
    };
    let typing = app.mode != Mode::Normal;
    let mut lines = vec![Line::from(format!(
        "{text}{}",
        if typing { "█" } else { "" }
    ))];
    if !app.attachments.is_empty() {
        let names: Vec<String> = app
            .attachments
            .iter()
            .map(|a| {
                let name = a
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{name} ({}, {})", a.media_type, size(a.size))
            })
            .collect();
        lines.push(Line::from(Span::styled(
            format!("+ {}", names.join(", ")),
            Style::default().fg(Color::Yellow),
        )));
    }
    let style = if typing {
        Style::default().fg(Color::Cyan)
    } else {
        Style::default()
    };
    f.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title).border_style(style)),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Dropped, Message, Received};
    use crate::tui::model::Key;
    use crate::wire::StampJson;
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    /// The screen as text rows.
    pub(crate) fn screen(t: &Terminal<TestBackend>) -> Vec<String> {
        let buf = t.backend().buffer();
        let w = buf.area.width as usize;
        buf.content
            .chunks(w)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
            .collect()
    }

    fn render(app: &App, w: u16, h: u16) -> Vec<String> {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| draw(f, app)).unwrap();
        screen(&t)
    }

    fn has(rows: &[String], s: &str) -> bool {
        rows.iter().any(|r| r.contains(s))
    }

    fn row_of(rows: &[String], s: &str) -> usize {
        rows.iter()
            .position(|r| r.contains(s))
            .unwrap_or_else(|| panic!("{s:?} not on screen:\n{}", rows.join("\n")))
    }

    fn stamp(at: u64) -> StampJson {
        StampJson {
            key_id: 1,
            mac: "00".into(),
            signature: "00".into(),
            accepted_at: at,
            stamper: "s".into(),
            recipients: vec!["alice".into(), "bob".into()],
            sender: "alice".into(),
            epoch: 1,
        }
    }

    fn app() -> App {
        let mut app = App::new("bob");
        app.received(&Received {
            joined: vec!["friends".into(), "dm.alice.bob".into()],
            messages: vec![Message::for_test(
                "friends",
                "m1",
                "alice",
                "phone",
                "hello friends",
                stamp(3_723),
            )],
            dropped: vec![Dropped {
                group: "friends".into(),
                kind: "message".into(),
                message_id: Some("m2".into()),
                reason: "franking: the service's signature does not verify".into(),
            }],
            ..Received::default()
        });
        app
    }

    #[test]
    fn clock_and_size_format() {
        assert_eq!(clock(3_723), "01:02:03");
        assert_eq!(clock(86_400 + 59), "00:00:59");
        assert_eq!(size(999), "999 B");
        assert_eq!(size(360_123), "360 KB");
        assert_eq!(size(2_117_802), "2.1 MB");
        assert_eq!(wrap("abcdef", 5, "  "), ["  abc", "  def"]);
        assert_eq!(wrap("a\n\nb", 10, ""), ["a", "", "b"]);
    }

    #[test]
    fn shows_conversations_verified_messages_and_dropped_ones() {
        let rows = render(&app(), 90, 20);
        assert!(has(&rows, "bob · chats"), "{}", rows.join("\n"));
        // The list: the group selected, the 1:1 titled by the other user.
        assert!(has(&rows, "> friends"));
        assert!(has(&rows, "@alice"));
        // The verified message: sender, time, stamp state, text below.
        let head = row_of(&rows, "alice/phone 01:02:03 ✓ stamp verified");
        assert!(rows[head + 1].contains("hello friends"));
        // The dropped one, with its reason, and the status says so.
        let d = row_of(&rows, "✗ DROPPED message m2: failed verification");
        assert!(d > head);
        assert!(rows[d + 1].contains("signature does not verify"));
        assert!(has(&rows, "1 item(s) failed verification and were dropped"));
        assert!(has(&rows, "i write"));
    }

    #[test]
    fn report_flow_and_attachments_are_drawn() {
        let mut app = app();
        app.on_key(Key::Tab);
        app.on_key(Key::Up);
        let rows = render(&app, 90, 20);
        // The cursor marks the received message; help offers reporting.
        assert!(has(&rows, "▶ alice/phone"), "{}", rows.join("\n"));
        assert!(has(&rows, "R report"));
        app.on_key(Key::Char('R'));
        "spam".chars().for_each(|c| {
            app.on_key(Key::Char(c));
        });
        let rows = render(&app, 90, 20);
        assert!(has(&rows, "report the selected message"));
        assert!(has(&rows, "spam█"));
        app.on_key(Key::Enter);
        app.reported("m1", "12", "queued");
        let rows = render(&app, 90, 20);
        assert!(has(&rows, "✓ stamp verified  ⚑ reported #12 queued"));
        assert!(has(&rows, "report #12 queued"));
        // A pending attachment under the draft.
        app.on_key(Key::Char('i'));
        app.attached("/x/beach.jpg".into(), "image/jpeg", 360_000);
        app.on_key(Key::Char('l'));
        let rows = render(&app, 90, 20);
        assert!(has(&rows, "message (writing)"));
        assert!(has(&rows, "l█"));
        assert!(has(&rows, "+ beach.jpg (image/jpeg, 360 KB)"));
    }

    #[test]
    fn the_newest_messages_stay_in_view_and_the_cursor_scrolls_back() {
        let mut app = App::new("bob");
        let msgs: Vec<Message> = (0..30)
            .map(|i| {
                Message::for_test(
                    "friends",
                    &format!("m{i}"),
                    "alice",
                    "phone",
                    &format!("text number {i}"),
                    stamp(i),
                )
            })
            .collect();
        app.received(&Received {
            messages: msgs,
            ..Received::default()
        });
        let rows = render(&app, 80, 16);
        assert!(has(&rows, "text number 29"));
        assert!(!has(&rows, "text number 0 "));
        app.on_key(Key::Tab);
        for _ in 0..29 {
            app.on_key(Key::Up);
        }
        let rows = render(&app, 80, 16);
        assert!(has(&rows, "text number 0"));
        assert!(!has(&rows, "text number 29"));
    }
}
