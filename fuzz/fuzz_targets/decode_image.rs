#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| bulwark_pdq::fuzzing::decode_and_hash(d));
