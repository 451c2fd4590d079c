//! Every checked-in fuzz input, replayed on stable through the same checks the fuzz targets
//! run (`gatehouse::fuzzing`): the seed corpora (`fuzz/seeds/<target>/`) and every input that
//! once crashed or hung a target (`fuzz/regressions/<target>/`). Findings that were fixed also
//! have a named test below, saying what was wrong.

use std::path::{Path, PathBuf};

use gatehouse::fuzzing::{self, TARGETS};

#[path = "../fuzz/validator.rs"]
mod validator;

fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz")
        .join(kind)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut count = 0;
    for target in TARGETS {
        for path in inputs(kind, target) {
            let data = std::fs::read(&path).expect("readable input");
            let outcome =
                std::panic::catch_unwind(|| fuzzing::run(target, &data, &validator::JsonSchema));
            assert!(outcome.is_ok(), "{target}: {} fails", path.display());
            count += 1;
        }
    }
    count
}

#[test]
fn every_seed_input_passes_its_target() {
    for target in TARGETS {
        assert!(
            !inputs("seeds", target).is_empty(),
            "fuzz/seeds/{target}/ has no seed inputs"
        );
    }
    assert!(replay("seeds") > 0);
}

#[test]
fn every_regression_input_passes_its_target() {
    replay("regressions");
}

/// Found by `mcp_request`: the body `4\x08` was answered -32600 "invalid request" instead of
/// -32700 "parse error", because serde stops at the wrong type of `4` before it reaches the
/// stray byte. (stdio's syntax check refused it correctly, so the transports disagreed.)
#[test]
fn a_body_that_starts_with_a_json_value_but_is_not_json_is_a_parse_error() {
    use gatehouse::mcp::jsonrpc::{INVALID_REQUEST, PARSE_ERROR, parse_client_message};
    assert_eq!(
        parse_client_message(b"4\x08").unwrap_err().code,
        PARSE_ERROR
    );
    assert_eq!(parse_client_message(b"{} x").unwrap_err().code, PARSE_ERROR);
    assert_eq!(
        parse_client_message(b"4").unwrap_err().code,
        INVALID_REQUEST
    );
    assert_eq!(
        parse_client_message(b"{}").unwrap_err().code,
        INVALID_REQUEST
    );
}

/// Found by `mcp_request`: `1e888888888888` is JSON by the grammar but beyond f64. The message
/// parser refuses it (-32700), but stdio's syntax check skipped numbers without reading them,
/// so such a line passed on to rmcp, which drops a line it cannot read without answering.
#[test]
fn a_number_beyond_f64_fails_the_stdio_syntax_check_as_it_fails_the_parser() {
    use gatehouse::mcp::jsonrpc::{PARSE_ERROR, check_syntax, parse_client_message};
    assert_eq!(
        check_syntax("1e888888888888").unwrap_err().code,
        PARSE_ERROR
    );
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"x":-1e400}}}"#;
    assert_eq!(check_syntax(call).unwrap_err().code, PARSE_ERROR);
    assert_eq!(
        parse_client_message(call.as_bytes()).unwrap_err().code,
        PARSE_ERROR
    );
    let fine = r#"[1e308, 18446744073709551615, -9223372036854775808, "\ud83d\ude00", {"a": [null, true]}]"#;
    assert_eq!(check_syntax(fine), Ok(()));
}
