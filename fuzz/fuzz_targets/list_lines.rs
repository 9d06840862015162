#![no_main]
// Hash-list lines in every import format: never panic; what parses writes back and re-parses.
libfuzzer_sys::fuzz_target!(|d: &[u8]| bulwark_banks::fuzzing::list_lines(d));
