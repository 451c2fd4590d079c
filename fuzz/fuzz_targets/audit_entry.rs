#![no_main]
//! See `gatehouse::fuzzing::audit_entry` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::audit_entry(data));
