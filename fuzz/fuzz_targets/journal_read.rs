#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| bulwark_index::journal::fuzzing::read(d));
