#![no_main]
//! See `gatehouse::fuzzing::policy_input` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::policy_input(data));
