#![no_main]
// Placeholder until the owning crate exposes its fuzzing module.
libfuzzer_sys::fuzz_target!(|_d: &[u8]| {});
