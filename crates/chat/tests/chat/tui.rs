//! The terminal UI end to end: bob's UI, driven by scripted keys on
//! ratatui's `TestBackend`, against a real matcher service and delivery
//! service (as `e2e.rs` starts them). It shows alice's verified message and
//! a message whose stamp the delivery service altered as dropped, reports
//! the verified one (the report verifies at the matcher and shows verified
//! in the reviewer console), sends a text with
//! an image attached by path (alice gets it intact, with a voucher sent),
//! and fetches on a clock tick.
#![allow(clippy::unwrap_used, missing_docs)]

use crate::support;

use std::path::PathBuf;

use bulwark_chat::http::Http;
use bulwark_chat::tui::{self, Input, Key};
use bulwark_chat::{Attachment, PdataPolicy};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn screen(t: &Terminal<TestBackend>) -> String {
    let buf = t.backend().buffer();
    let w = buf.area.width as usize;
    buf.content
        .chunks(w)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

fn keys(k: &[Key]) -> Vec<Input> {
    k.iter().map(|k| Input::Key(*k)).collect()
}

#[test]
fn bob_reads_verified_and_dropped_messages_reports_and_sends_an_image_from_the_ui() {
    let env = support::start();
    let imgs = support::images();
    let pick = |needle: &str| -> Vec<PathBuf> {
        imgs.iter()
            .filter(|p| p.to_string_lossy().contains(needle))
            .cloned()
            .collect()
    };
    let banked = pick("reg-test-input");
    let unbanked: Vec<PathBuf> = pick("misc-images")
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("modes"))
        .collect();
    assert!(!banked.is_empty() && unbanked.len() >= 2);
    support::banks(&env);
    support::bank_file(&env, &banked[0]);
    let policy = PdataPolicy {
        providers: support::release(&env, 3),
        allow_threshold: Some(3),
    };
    let dev = |user: &str| support::phone(&env, &policy, user);
    let mut alice = dev("alice");
    let mut bob = dev("bob");
    alice.create_group("friends", &["bob"]).unwrap();
    let photo = Attachment::from_file(&unbanked[0]).unwrap();
    let hello = alice
        .send("friends", "hello bob", std::slice::from_ref(&photo))
        .unwrap();
    let altered = alice.send("friends", "this one is altered", &[]).unwrap();
    // The delivery service alters the stamp it queued for the second message.
    support::sqlite_exec(
        &env.ds_db,
        &format!(
            "UPDATE chat_queue SET stamp = json_set(stamp, '$.accepted_at', \
             json_extract(stamp, '$.accepted_at') + 1) WHERE message_id = '{}'",
            altered.message_id
        ),
    );

    // Bob opens the UI: it fetches, joins "friends", shows the verified
    // message with its attachment and the altered one as dropped.
    let mut term = Terminal::new(TestBackend::new(110, 30)).unwrap();
    let mut app = tui::start(&mut bob);
    tui::drive(&mut term, &mut bob, &mut app, []).unwrap();
    let s = screen(&term);
    assert!(s.contains("> friends"), "{s}");
    assert!(s.contains("alice/phone"), "{s}");
    assert!(s.contains("✓ stamp verified"), "{s}");
    assert!(s.contains("hello bob"), "{s}");
    assert!(s.contains(&format!("[{} ", photo.media_type)), "{s}");
    assert!(
        s.contains(&format!(
            "✗ DROPPED message {}: failed verification",
            altered.message_id
        )),
        "{s}"
    );
    assert!(s.contains("signature"), "{s}");
    assert!(!s.contains("this one is altered"), "{s}");
    assert!(
        s.contains("1 item(s) failed verification and were dropped"),
        "{s}"
    );

    // Report the verified message: Tab to the messages (the cursor starts on
    // the newest, the dropped one, which cannot be reported), up, R, reason.
    let mut script = keys(&[Key::Tab, Key::Char('R')]);
    tui::drive(&mut term, &mut bob, &mut app, script.drain(..)).unwrap();
    assert!(screen(&term).contains("cannot be reported"));
    let mut script = keys(&[Key::Up, Key::Char('R')]);
    script.extend(tui::typed("spam"));
    script.push(Input::Key(Key::Enter));
    tui::drive(&mut term, &mut bob, &mut app, script).unwrap();
    let s = screen(&term);
    let marker = s
        .lines()
        .find_map(|l| l.split("⚑ reported #").nth(1))
        .unwrap_or_else(|| panic!("no report marker:\n{s}"));
    let report_id: i64 = marker
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{marker:?}: {e}"));
    let got = Http::new(&env.matcher)
        .call(
            "GET",
            &format!("/v1/reports/{report_id}"),
            Some(&env.admin),
            None,
        )
        .unwrap()
        .json("report", &[200])
        .unwrap();
    let m = &got["messages"][0];
    assert_eq!(m["verified"], true, "{got}");
    assert_eq!(m["message_id"], hello.message_id.as_str(), "{got}");
    assert_eq!(m["sender"], "alice", "{got}");
    assert_eq!(m["content_text"], "hello bob", "{got}");
    assert_eq!(m["attachments"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["reporters"][0]["account"], "bob", "{got}");
    assert_eq!(got["reporters"][0]["reason"], "spam", "{got}");
    // The reviewer console shows it verified.
    let page = support::console_page(&env, &format!("/console/item/report/{report_id}"));
    assert!(
        page.contains("verified: stamp MAC and commitment check"),
        "{page}"
    );
    assert!(!page.contains("NOT verified"), "{page}");
    assert!(page.contains("friends"), "{page}");

    // Attach a missing file: refused with the reason, nothing pending.
    let mut script = keys(&[Key::Tab, Key::Char('a')]);
    script.extend(tui::typed("/no/such/file.jpg"));
    script.extend(keys(&[Key::Enter, Key::Esc]));
    tui::drive(&mut term, &mut bob, &mut app, script).unwrap();
    assert!(screen(&term).contains("attaching: /no/such/file.jpg"));
    assert!(app.attachments.is_empty());

    // Write a reply with an image attached by path, send it.
    let reply = &unbanked[1];
    let mut script = keys(&[Key::Char('i')]);
    script.extend(tui::typed("hi alice"));
    script.push(Input::Key(Key::Ctrl('a')));
    script.extend(tui::typed(&reply.display().to_string()));
    script.push(Input::Key(Key::Enter));
    tui::drive(&mut term, &mut bob, &mut app, script).unwrap();
    let name = reply.file_name().unwrap().to_string_lossy().into_owned();
    let s = screen(&term);
    assert!(s.contains(&format!("+ {name} (image/")), "{s}");
    assert!(s.contains("hi alice█"), "{s}");
    tui::drive(&mut term, &mut bob, &mut app, keys(&[Key::Enter, Key::Esc])).unwrap();
    let s = screen(&term);
    assert!(s.contains("bob (me)"), "{s}");
    assert!(s.contains("✓ sent, stamped, 1 voucher(s)"), "{s}");
    assert!(!s.contains("hi alice█"), "the draft is cleared:\n{s}");
    let r = alice.receive().unwrap();
    assert!(r.dropped.is_empty(), "{:?}", r.dropped);
    let got = &r.messages[0];
    assert_eq!(
        (got.sender.as_str(), got.text.as_str()),
        ("bob", "hi alice")
    );
    assert_eq!(
        std::fs::read(&got.attachments[0].path).unwrap(),
        std::fs::read(reply).unwrap()
    );

    // A new message shows after a clock tick; q quits.
    alice.send("friends", "see you", &[]).unwrap();
    tui::drive(
        &mut term,
        &mut bob,
        &mut app,
        [Input::Tick, Input::Key(Key::Char('q')), Input::Tick],
    )
    .unwrap();
    assert!(app.quit);
    let s = screen(&term);
    assert!(s.contains("see you"), "{s}");
    // The UI keeps what it showed: the earlier dropped item is still there.
    assert!(s.contains("✗ DROPPED"), "{s}");
}
