#![no_main]
//! See `gatehouse::fuzzing::mcp_request` for what this target checks.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::mcp_request(data));
