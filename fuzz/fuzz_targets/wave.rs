#![no_main]
//! See `gatehouse::fuzzing::wave` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::wave(data));
