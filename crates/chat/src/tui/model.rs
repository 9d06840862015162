//! What the terminal UI shows and what each key does, without a terminal or
//! a network: keys go in ([`App::on_key`]), [`Action`]s for the runner come
//! out, and the runner feeds results back ([`App::received`], [`App::sent`],
//! [`App::reported`], [`App::failed`]). Drawing is in `view.rs`.

use std::path::PathBuf;

use crate::client::{Received, Sent};

/// A key, as the model understands it (the runner maps terminal events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// A printable character.
    Char(char),
    /// Control + a letter.
    Ctrl(char),
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Tab.
    Tab,
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Arrow left.
    Left,
    /// Arrow right.
    Right,
    /// Backspace.
    Backspace,
}

/// What the runner should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send `text` and the files at `attachments` to `group`.
    Send {
        /// The conversation.
        group: String,
        /// The text.
        text: String,
        /// Files to attach (images and videos get vouchers).
        attachments: Vec<PathBuf>,
    },
    /// Check that a file can be attached (read it, guess its media type).
    Attach(PathBuf),
    /// Report a received message.
    Report {
        /// The message id.
        message_id: String,
        /// The reason given, if any.
        reason: Option<String>,
    },
    /// Open (creating) the 1:1 with a user.
    Direct(String),
    /// Fetch the queue now.
    Refresh,
    /// Leave the UI.
    Quit,
}

/// Which pane the arrow keys move in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The conversation list.
    Conversations,
    /// The messages of the selected conversation.
    Messages,
}

/// What typed characters go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keys are commands.
    Normal,
    /// Typing a message.
    Compose,
    /// Typing the path of a file to attach.
    Attach,
    /// Typing the reason of a report of the selected message.
    Report,
    /// Typing the user of a new 1:1.
    NewChat,
}

/// An attachment shown with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Media type.
    pub media_type: String,
    /// Plaintext size.
    pub size: u64,
    /// Where it is (received: the decrypted file; sent: the original).
    pub path: PathBuf,
}

/// One line item of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A message that decrypted and whose stamp verified (the client drops
    /// every other one, so everything received is verified).
    Received {
        /// Message id.
        id: String,
        /// Sending user.
        sender: String,
        /// Sending device.
        device: String,
        /// Text.
        text: String,
        /// Attachments (opened: digest and key commitment checked).
        attachments: Vec<Shown>,
        /// The service's acceptance time (seconds).
        accepted_at: u64,
        /// The report filed from this UI: "#id status".
        reported: Option<String>,
    },
    /// A message this device sent in this session.
    Sent {
        /// Message id.
        id: String,
        /// Text.
        text: String,
        /// Attachments.
        attachments: Vec<Shown>,
        /// Safety vouchers sent with it.
        vouchers: usize,
        /// The acceptance time the service stamped.
        accepted_at: u64,
    },
    /// A queue item that failed verification and was not shown.
    Dropped {
        /// welcome, commit or message.
        kind: String,
        /// The message id, when it had one.
        message_id: Option<String>,
        /// Why.
        reason: String,
    },
}

/// A conversation (an MLS group; a 1:1 is a two-user group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// The group id.
    pub id: String,
    /// What the list shows: `@user` for a 1:1, else the group id.
    pub title: String,
    /// Its messages, oldest first.
    pub entries: Vec<Entry>,
    /// Messages arrived while another conversation was selected.
    pub unread: usize,
    /// This device was removed from it.
    pub left: bool,
}

/// The UI's whole state.
#[derive(Debug, Clone)]
pub struct App {
    /// This device's user.
    pub me: String,
    /// Conversations, in the order they were first seen.
    pub conversations: Vec<Conversation>,
    /// The selected conversation.
    pub selected: usize,
    /// The selected entry of the selected conversation (message pane).
    pub cursor: Option<usize>,
    /// Where arrows move.
    pub focus: Focus,
    /// Where typing goes.
    pub mode: Mode,
    /// The message being written.
    pub draft: String,
    /// The prompt line (attach path, report reason, 1:1 user).
    pub input: String,
    /// Files checked and waiting to go with the next message.
    pub attachments: Vec<Shown>,
    /// The last outcome: (is an error, text).
    pub status: Option<(bool, String)>,
    /// Set by quit keys.
    pub quit: bool,
}

/// The title of a conversation: the other user of a `dm.A.B` 1:1.
pub fn title_of(me: &str, group: &str) -> String {
    if let Some(rest) = group.strip_prefix("dm.") {
        let users: Vec<&str> = rest.split('.').collect();
        if users.len() == 2 && users.contains(&me) {
            let other = if users[0] == me { users[1] } else { users[0] };
            return format!("@{other}");
        }
    }
    group.to_string()
}

impl App {
    /// An empty UI for user `me`.
    pub fn new(me: &str) -> App {
        App {
            me: me.to_string(),
            conversations: Vec::new(),
            selected: 0,
            cursor: None,
            focus: Focus::Conversations,
            mode: Mode::Normal,
            draft: String::new(),
            input: String::new(),
            attachments: Vec::new(),
            status: None,
            quit: false,
        }
    }

    /// The conversation `group`, added if new.
    pub fn conversation(&mut self, group: &str) -> &mut Conversation {
        let i = match self.conversations.iter().position(|c| c.id == group) {
            Some(i) => i,
            None => {
                self.conversations.push(Conversation {
                    id: group.to_string(),
                    title: title_of(&self.me, group),
                    entries: Vec::new(),
                    unread: 0,
                    left: false,
                });
                self.conversations.len() - 1
            }
        };
        &mut self.conversations[i]
    }

    /// The selected conversation.
    pub fn current(&self) -> Option<&Conversation> {
        self.conversations.get(self.selected)
    }

    /// Selects conversation `group` (added if new).
    pub fn select(&mut self, group: &str) {
        self.conversation(group);
        if let Some(i) = self.conversations.iter().position(|c| c.id == group) {
            self.selected = i;
            self.conversations[i].unread = 0;
            self.cursor = None;
        }
    }

    fn set_status(&mut self, error: bool, text: impl Into<String>) {
        self.status = Some((error, text.into()));
    }

    /// Shows an informational status.
    pub fn set_info(&mut self, text: &str) {
        self.set_status(false, text);
    }

    /// What one fetch of the queue brought: joins, removals, verified
    /// messages, and dropped items (shown in their conversation, in red).
    pub fn received(&mut self, r: &Received) {
        let selected = self.current().map(|c| c.id.clone());
        for g in &r.joined {
            self.conversation(g).left = false;
        }
        for m in &r.messages {
            let e = Entry::Received {
                id: m.id.clone(),
                sender: m.sender.clone(),
                device: m.sender_device.clone(),
                text: m.text.clone(),
                attachments: m
                    .attachments
                    .iter()
                    .map(|a| Shown {
                        media_type: a.media_type.clone(),
                        size: a.size,
                        path: a.path.clone(),
                    })
                    .collect(),
                accepted_at: m.accepted_at,
                reported: None,
            };
            let c = self.conversation(&m.group);
            c.entries.push(e);
            if selected.as_deref() != Some(m.group.as_str()) {
                c.unread += 1;
            }
        }
        for d in &r.dropped {
            self.conversation(&d.group).entries.push(Entry::Dropped {
                kind: d.kind.clone(),
                message_id: d.message_id.clone(),
                reason: d.reason.clone(),
            });
        }
        for g in &r.left {
            self.conversation(g).left = true;
        }
        // The conversation on screen has nothing unread.
        if let Some(c) = self.conversations.get_mut(self.selected) {
            c.unread = 0;
        }
        if !r.dropped.is_empty() {
            self.set_status(
                true,
                format!(
                    "{} item(s) failed verification and were dropped",
                    r.dropped.len()
                ),
            );
        } else if !r.messages.is_empty() {
            self.set_status(false, format!("{} new message(s)", r.messages.len()));
        }
    }

    /// A message was sent: show it, clear the draft and attachments.
    pub fn sent(&mut self, s: &Sent, text: &str) {
        let attachments = std::mem::take(&mut self.attachments);
        let vouchers = s.voucher_bytes.len();
        self.conversation(&s.group).entries.push(Entry::Sent {
            id: s.message_id.clone(),
            text: text.to_string(),
            attachments,
            vouchers,
            accepted_at: s.stamp.accepted_at,
        });
        self.draft.clear();
        self.set_status(
            false,
            format!("sent, stamped; {vouchers} safety voucher(s) with it"),
        );
    }

    /// A file was read and will go with the next message.
    pub fn attached(&mut self, path: PathBuf, media_type: &str, size: u64) {
        self.set_status(false, format!("attached {} ({media_type})", path.display()));
        self.attachments.push(Shown {
            media_type: media_type.to_string(),
            size,
            path,
        });
    }

    /// A report was filed: mark the message.
    pub fn reported(&mut self, message_id: &str, report_id: &str, status: &str) {
        for c in &mut self.conversations {
            for e in &mut c.entries {
                if let Entry::Received { id, reported, .. } = e
                    && id == message_id
                {
                    *reported = Some(format!("#{report_id} {status}"));
                }
            }
        }
        self.set_status(false, format!("report #{report_id} {status}"));
    }

    /// An action failed.
    pub fn failed(&mut self, what: &str, error: &str) {
        self.set_status(true, format!("{what}: {error}"));
    }

    fn entries_len(&self) -> usize {
        self.current().map(|c| c.entries.len()).unwrap_or(0)
    }

    /// The entry under the cursor.
    pub fn cursor_entry(&self) -> Option<&Entry> {
        self.current()?.entries.get(self.cursor?)
    }

    fn move_conversation(&mut self, down: bool) {
        let n = self.conversations.len();
        if n == 0 {
            return;
        }
        self.selected = if down {
            (self.selected + 1).min(n - 1)
        } else {
            self.selected.saturating_sub(1)
        };
        self.conversations[self.selected].unread = 0;
        self.cursor = None;
    }

    fn move_cursor(&mut self, down: bool) {
        let n = self.entries_len();
        if n == 0 {
            self.cursor = None;
            return;
        }
        self.cursor = Some(match (self.cursor, down) {
            (None, _) => n - 1,
            (Some(i), true) => (i + 1).min(n - 1),
            (Some(i), false) => i.saturating_sub(1),
        });
    }

    /// Handles one key; returns what the runner should do.
    pub fn on_key(&mut self, key: Key) -> Option<Action> {
        if key == Key::Ctrl('c') {
            self.quit = true;
            return Some(Action::Quit);
        }
        match self.mode {
            Mode::Normal => self.normal_key(key),
            Mode::Compose => self.compose_key(key),
            Mode::Attach | Mode::Report | Mode::NewChat => self.prompt_key(key),
        }
    }

    fn normal_key(&mut self, key: Key) -> Option<Action> {
        match (self.focus, key) {
            (_, Key::Char('q')) => {
                self.quit = true;
                return Some(Action::Quit);
            }
            (_, Key::Char('r')) | (_, Key::Ctrl('r')) => return Some(Action::Refresh),
            (_, Key::Char('i')) | (_, Key::Enter) => {
                if self.current().is_some_and(|c| !c.left) {
                    self.mode = Mode::Compose;
                } else {
                    self.set_status(true, "no conversation to write to (n: new 1:1)");
                }
            }
            (_, Key::Char('a')) => {
                self.input.clear();
                self.mode = Mode::Attach;
            }
            (_, Key::Char('n')) => {
                self.input.clear();
                self.mode = Mode::NewChat;
            }
            (_, Key::Char('x')) => {
                self.attachments.clear();
                self.set_status(false, "attachments removed");
            }
            (Focus::Conversations, Key::Up | Key::Char('k')) => self.move_conversation(false),
            (Focus::Conversations, Key::Down | Key::Char('j')) => self.move_conversation(true),
            (Focus::Conversations, Key::Tab | Key::Right | Key::Char('l')) => {
                self.focus = Focus::Messages;
                if self.cursor.is_none() {
                    self.move_cursor(true);
                }
            }
            (Focus::Messages, Key::Up | Key::Char('k')) => self.move_cursor(false),
            (Focus::Messages, Key::Down | Key::Char('j')) => self.move_cursor(true),
            (Focus::Messages, Key::Tab | Key::Left | Key::Char('h') | Key::Esc) => {
                self.focus = Focus::Conversations;
            }
            (Focus::Messages, Key::Char('R') | Key::Char('!')) => match self.cursor_entry() {
                Some(Entry::Received { .. }) => {
                    self.input.clear();
                    self.mode = Mode::Report;
                }
                Some(Entry::Dropped { .. }) => self.set_status(
                    true,
                    "a dropped message has no verified stamp and cannot be reported",
                ),
                Some(Entry::Sent { .. }) => {
                    self.set_status(true, "only received messages can be reported")
                }
                None => self.set_status(true, "select a message first (arrows)"),
            },
            _ => {}
        }
        None
    }

    fn compose_key(&mut self, key: Key) -> Option<Action> {
        match key {
            Key::Esc => self.mode = Mode::Normal,
            Key::Ctrl('a') => {
                self.input.clear();
                self.mode = Mode::Attach;
            }
            Key::Backspace => {
                self.draft.pop();
            }
            Key::Char(c) => self.draft.push(c),
            Key::Enter => {
                if self.draft.trim().is_empty() && self.attachments.is_empty() {
                    self.set_status(true, "nothing to send");
                    return None;
                }
                let group = self.current()?.id.clone();
                return Some(Action::Send {
                    group,
                    text: self.draft.clone(),
                    attachments: self.attachments.iter().map(|a| a.path.clone()).collect(),
                });
            }
            _ => {}
        }
        None
    }

    fn prompt_key(&mut self, key: Key) -> Option<Action> {
        match key {
            Key::Esc => {
                self.input.clear();
                self.mode = Mode::Normal;
            }
            Key::Backspace => {
                self.input.pop();
            }
            Key::Char(c) => self.input.push(c),
            Key::Enter => {
                let text = std::mem::take(&mut self.input).trim().to_string();
                let mode = self.mode;
                self.mode = Mode::Normal;
                match mode {
                    Mode::Attach if !text.is_empty() => {
                        // Back to writing the message the file goes with.
                        if self.current().is_some_and(|c| !c.left) {
                            self.mode = Mode::Compose;
                        }
                        return Some(Action::Attach(PathBuf::from(text)));
                    }
                    Mode::NewChat if !text.is_empty() => return Some(Action::Direct(text)),
                    Mode::Report => {
                        if let Some(Entry::Received { id, .. }) = self.cursor_entry() {
                            return Some(Action::Report {
                                message_id: id.clone(),
                                reason: (!text.is_empty()).then_some(text),
                            });
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Dropped, Message};
    use crate::wire::StampJson;

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

    fn msg(group: &str, id: &str, text: &str) -> Message {
        Message::for_test(group, id, "alice", "phone", text, stamp(100))
    }

    fn typed(app: &mut App, s: &str) {
        for c in s.chars() {
            assert_eq!(app.on_key(Key::Char(c)), None);
        }
    }

    fn with_two() -> App {
        let mut app = App::new("bob");
        app.received(&Received {
            joined: vec!["friends".into(), "dm.alice.bob".into()],
            messages: vec![msg("friends", "m1", "hello"), msg("friends", "m2", "again")],
            ..Received::default()
        });
        app
    }

    #[test]
    fn a_dm_is_titled_by_the_other_user_a_group_by_its_id() {
        assert_eq!(title_of("bob", "dm.alice.bob"), "@alice");
        assert_eq!(title_of("alice", "dm.alice.bob"), "@bob");
        assert_eq!(title_of("carol", "dm.alice.bob"), "dm.alice.bob");
        assert_eq!(title_of("bob", "friends"), "friends");
        let app = with_two();
        let titles: Vec<&str> = app.conversations.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["friends", "@alice"]);
    }

    #[test]
    fn messages_land_in_their_conversation_unread_counts_only_elsewhere() {
        let mut app = with_two();
        // "friends" is selected (index 0): its messages are not unread.
        assert_eq!(app.conversations[0].entries.len(), 2);
        assert_eq!(app.conversations[0].unread, 0);
        app.received(&Received {
            messages: vec![msg("dm.alice.bob", "m3", "psst")],
            ..Received::default()
        });
        assert_eq!(app.conversations[1].unread, 1);
        assert_eq!(app.on_key(Key::Down), None);
        assert_eq!(app.selected, 1);
        assert_eq!(app.conversations[1].unread, 0);
        // Down at the end stays; up at the top stays.
        app.on_key(Key::Down);
        assert_eq!(app.selected, 1);
        app.on_key(Key::Up);
        app.on_key(Key::Char('k'));
        assert_eq!(app.selected, 0);
    }

    #[test]
    fn dropped_items_are_shown_in_their_conversation_and_flagged_in_the_status() {
        let mut app = with_two();
        app.received(&Received {
            dropped: vec![Dropped {
                group: "friends".into(),
                kind: "message".into(),
                message_id: Some("m9".into()),
                reason: "franking: bad signature".into(),
            }],
            ..Received::default()
        });
        let c = &app.conversations[0];
        assert!(matches!(
            c.entries.last(),
            Some(Entry::Dropped { reason, .. }) if reason.contains("signature")
        ));
        assert_eq!(app.status.as_ref().map(|s| s.0), Some(true));
    }

    #[test]
    fn compose_sends_the_draft_with_attachments_to_the_selected_conversation() {
        let mut app = with_two();
        assert_eq!(app.on_key(Key::Char('i')), None);
        assert_eq!(app.mode, Mode::Compose);
        // In compose mode, command letters are text.
        typed(&mut app, "hi qr");
        app.on_key(Key::Backspace);
        assert_eq!(app.draft, "hi q");
        // Ctrl-a: a path prompt; Enter asks the runner to check the file
        // and returns to the draft.
        app.on_key(Key::Ctrl('a'));
        assert_eq!(app.mode, Mode::Attach);
        typed(&mut app, "/tmp/x.jpg");
        assert_eq!(
            app.on_key(Key::Enter),
            Some(Action::Attach("/tmp/x.jpg".into()))
        );
        assert_eq!(app.mode, Mode::Compose);
        app.attached("/tmp/x.jpg".into(), "image/jpeg", 10);
        assert_eq!(
            app.on_key(Key::Enter),
            Some(Action::Send {
                group: "friends".into(),
                text: "hi q".into(),
                attachments: vec!["/tmp/x.jpg".into()],
            })
        );
        // Until the runner confirms, the draft stays (a failed send keeps it).
        assert_eq!(app.draft, "hi q");
        app.sent(
            &Sent {
                message_id: "s1".into(),
                group: "friends".into(),
                mls_bytes: 1,
                voucher_bytes: vec![2182],
                voucher_micros: vec![1],
                video_micros: vec![],
                attachment_bytes: vec![26],
                stamp: stamp(200),
            },
            "hi q",
        );
        assert!(app.draft.is_empty() && app.attachments.is_empty());
        assert!(matches!(
            app.conversations[0].entries.last(),
            Some(Entry::Sent { vouchers: 1, attachments, .. }) if attachments.len() == 1
        ));
        // One's own message cannot be reported.
        app.on_key(Key::Esc);
        app.on_key(Key::Tab);
        assert!(matches!(app.cursor_entry(), Some(Entry::Sent { .. })));
        assert_eq!(app.on_key(Key::Char('R')), None);
        assert_eq!(app.mode, Mode::Normal);
        assert!(app.status.as_ref().unwrap().1.contains("only received"));
        app.on_key(Key::Char('i'));
        // Esc leaves compose; an empty draft sends nothing.
        app.on_key(Key::Enter);
        assert_eq!(app.status.as_ref().map(|s| s.0), Some(true));
        app.on_key(Key::Esc);
        assert_eq!(app.mode, Mode::Normal);
    }

    #[test]
    fn report_only_a_received_message_with_an_optional_reason() {
        let mut app = with_two();
        app.received(&Received {
            dropped: vec![Dropped {
                group: "friends".into(),
                kind: "message".into(),
                message_id: None,
                reason: "x".into(),
            }],
            ..Received::default()
        });
        // R in the conversation list does nothing.
        assert_eq!(app.on_key(Key::Char('R')), None);
        assert_eq!(app.mode, Mode::Normal);
        // Tab: the cursor starts on the newest entry, the dropped one.
        app.on_key(Key::Tab);
        assert_eq!(app.focus, Focus::Messages);
        assert_eq!(app.cursor, Some(2));
        app.on_key(Key::Char('R'));
        assert_eq!(app.mode, Mode::Normal);
        assert!(
            app.status
                .as_ref()
                .unwrap()
                .1
                .contains("cannot be reported")
        );
        // Up to "again", report it with a reason.
        app.on_key(Key::Up);
        app.on_key(Key::Char('R'));
        assert_eq!(app.mode, Mode::Report);
        typed(&mut app, "spam");
        assert_eq!(
            app.on_key(Key::Enter),
            Some(Action::Report {
                message_id: "m2".into(),
                reason: Some("spam".into())
            })
        );
        app.reported("m2", "7", "queued");
        assert!(matches!(
            &app.conversations[0].entries[1],
            Entry::Received { reported: Some(r), .. } if r == "#7 queued"
        ));
        // Without a reason; Esc cancels a prompt.
        app.on_key(Key::Up);
        app.on_key(Key::Char('!'));
        app.on_key(Key::Esc);
        assert_eq!(app.mode, Mode::Normal);
        app.on_key(Key::Char('!'));
        assert_eq!(
            app.on_key(Key::Enter),
            Some(Action::Report {
                message_id: "m1".into(),
                reason: None
            })
        );
    }

    #[test]
    fn new_chat_refresh_and_quit_keys() {
        let mut app = App::new("bob");
        // Nothing to write to yet.
        app.on_key(Key::Char('i'));
        assert_eq!(app.mode, Mode::Normal);
        app.on_key(Key::Char('n'));
        typed(&mut app, "alice");
        assert_eq!(app.on_key(Key::Enter), Some(Action::Direct("alice".into())));
        app.select("dm.alice.bob");
        assert_eq!(app.current().unwrap().title, "@alice");
        assert_eq!(app.on_key(Key::Char('r')), Some(Action::Refresh));
        app.on_key(Key::Char('i'));
        typed(&mut app, "q");
        assert!(!app.quit, "q is text while composing");
        assert_eq!(app.on_key(Key::Ctrl('c')), Some(Action::Quit));
        assert!(app.quit);
        let mut app = App::new("bob");
        assert_eq!(app.on_key(Key::Char('q')), Some(Action::Quit));
    }

    #[test]
    fn a_removed_device_cannot_write_to_the_group() {
        let mut app = with_two();
        app.received(&Received {
            left: vec!["friends".into()],
            ..Received::default()
        });
        assert!(app.conversations[0].left);
        app.on_key(Key::Enter);
        assert_eq!(app.mode, Mode::Normal);
    }
}
