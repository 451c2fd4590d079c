#![no_main]
//! See `gatehouse::fuzzing::json_to_value` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::json_to_value(data));
