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
