#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| bulwark_psi::fuzzing::account_state(d));
