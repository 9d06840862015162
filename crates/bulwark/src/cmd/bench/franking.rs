//! `bulwark bench franking`: frank + stamp + verify for a message, the
//! stamp's Ed25519 signature and the receiver's check of it, and the
//! verification of a 10-message report, against the sender's tag alone (one
//! HMAC-SHA256 over the message and its info) timed in the same run: the
//! floor any franking scheme pays.

use std::process::ExitCode;
use std::time::Instant;

use bulwark_franking::{
    Context, Keyring, MessageInfo, ReportedMessage, frank, tag_of, verify_signature, verify_tag,
};
use rand::SeedableRng;

/// Arguments of `bulwark bench franking`.
#[derive(clap::Args)]
pub struct Args {
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Repetitions.
    #[arg(long, default_value_t = 200_000)]
    iterations: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn per_op_us(n: usize, mut f: impl FnMut()) -> f64 {
    // Warm up, then time.
    for _ in 0..n / 10 {
        f();
    }
    let s = Instant::now();
    for _ in 0..n {
        f();
    }
    s.elapsed().as_secs_f64() * 1e6 / n as f64
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let msg: Vec<u8> = (0..a.size).map(|i| (i * 31 % 251) as u8).collect();
    let ring = Keyring::generate(&mut rng)
        .with_signing_key(ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]));
    let info = MessageInfo::new("alice@example.org", "group-0123456789", "m-0000000001");
    let ctx = Context {
        info: info.clone(),
        epoch: 42,
        recipients: (0..8).map(|i| format!("member-{i}@example.org")).collect(),
        accepted_at: 1_700_000_000,
        stamper: "0123456789ab".into(),
    };
    let (salt, tag0) = frank(&info, &msg, &mut rng);
    let hmac_us = per_op_us(a.iterations, || {
        std::hint::black_box(tag_of(&salt, &info, std::hint::black_box(&msg)));
    });
    let full_us = per_op_us(a.iterations, || {
        let (salt, tag) = frank(&info, std::hint::black_box(&msg), &mut rng);
        let stamp = ring.stamp(&tag, &ctx);
        let _ = std::hint::black_box(verify_tag(&info, &msg, &salt, &tag));
        std::hint::black_box(stamp);
    });
    let vk = ring.verifying_key().expect("signing key set");
    let sig = ring.sign(&tag0, &ctx).expect("signs");
    let sign_check_us = per_op_us(a.iterations / 20, || {
        let s = ring.sign(&tag0, &ctx).expect("signs");
        let _ = std::hint::black_box(verify_signature(&vk, &tag0, &ctx, &s));
    });
    std::hint::black_box(sig);
    let report: Vec<_> = (0..10)
        .map(|_| {
            let (salt, tag) = frank(&info, &msg, &mut rng);
            (salt, ring.stamp(&tag, &ctx))
        })
        .collect();
    let report_us = per_op_us(a.iterations / 10, || {
        for (salt, stamp) in &report {
            let r = ring.verify_report(&ReportedMessage {
                content: &msg,
                salt: salt.clone(),
                context: &ctx,
                stamp: *stamp,
            });
            let _ = std::hint::black_box(r);
        }
    });
    let out = serde_json::json!({
        "bench": "franking", "message_bytes": a.size,
        "hmac_sha256_us": hmac_us, "frank_stamp_verify_us": full_us,
        "ratio_to_one_hmac": full_us / hmac_us,
        "sign_and_check_stamp_us": sign_check_us,
        "verify_10_message_report_us": report_us,
    });
    if a.json {
        println!("{out}");
    } else {
        println!("franking, {}-byte message, one thread", a.size);
        println!("  the sender's tag alone (reference floor)           {hmac_us:8.2} µs");
        println!(
            "  frank + stamp + verify                             {full_us:8.2} µs ({:.1}× one HMAC)",
            full_us / hmac_us
        );
        println!("  sign the stamp + the receiver's check (Ed25519)    {sign_check_us:8.2} µs");
        println!("  verify a 10-message report (no attachments)        {report_us:8.2} µs");
    }
    Ok(ExitCode::SUCCESS)
}
