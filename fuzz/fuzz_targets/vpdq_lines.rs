#![no_main]
libfuzzer_sys::fuzz_target!(|d: &[u8]| bulwark_vpdq::fuzzing::parse(d));
