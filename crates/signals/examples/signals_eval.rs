//! Prints the signals evaluation (same as `bulwark signals eval`).
fn main() {
    let mut args = std::env::args().skip(1);
    let seed = args.next().and_then(|s| s.parse().ok()).unwrap_or(1);
    let ads = args.next().and_then(|s| s.parse().ok()).unwrap_or(500);
    let r = bulwark_signals::eval::run(seed, ads, &bulwark_signals::eval::default_schemes());
    print!("{}", r.markdown());
}
