#![no_main]
//! See `gatehouse::fuzzing::value_roundtrip` for what this target checks.

#[path = "../validator.rs"]
mod validator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::value_roundtrip(
    data,
    &validator::JsonSchema
));
