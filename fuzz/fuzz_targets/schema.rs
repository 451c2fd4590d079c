#![no_main]
//! See `gatehouse::fuzzing::schema` for what this target checks.

#[path = "../validator.rs"]
mod validator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::schema(data, &validator::JsonSchema));
