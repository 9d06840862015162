//! Language identification on the synthetic corpus (fictitious ads).
//!
//! `cargo run --release -p bulwark-signals --example language_eval -- [SEED] [ADS]`
//!
//! Prints, per language, how its texts (originals and their re-posts under
//! every edit) were identified, and which rule banks of the corpus's five
//! languages run on them by script alone and with identification.
fn main() {
    let mut args = std::env::args().skip(1);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    let rows = bulwark_signals::eval::language_report(seed, n);
    print!("{}", bulwark_signals::eval::language_markdown(&rows));
}
