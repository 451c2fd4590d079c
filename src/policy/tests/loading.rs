//! Loading a bundle: what is refused at load and how, the revision, the operator's data, and the
//! bundle's own tests; the default bundle loads and denies by default.

use std::path::PathBuf;

use super::*;
use crate::policy::test_runner::{self, TestOptions};

#[test]
fn bundles_that_would_deny_or_confuse_are_rejected_at_load() {
    let dir = bundle(&[(
        "list.rego",
        "package gatehouse.list\n\ndefault allow := true\n",
    )]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert!(matches!(error, PolicyError::MissingCallPackage));
    assert_eq!(
        error.to_string(),
        "bundle defines no gatehouse.call package: every call would be denied"
    );

    let dir = bundle(&[(
        "call.rego",
        "package gatehouse.call\n\ndeny contains \"x\" if true\n",
    )]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert!(matches!(error, PolicyError::MissingCallAllow), "{error}");

    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "extra/exec.rego",
            "package gatehouse.exec\n\nallow := true\n",
        ),
    ]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "extra/exec.rego: package gatehouse.exec is not a phase package: packages under \
         gatehouse. must be gatehouse.<phase> with phase one of list, call, http, fs, socket, result"
    );

    let dir = bundle(&[(
        "call.rego",
        "package gatehouse.call\n\nallow := true\n\ninject := {\"headers\": {\"a\": \"b\"}}\n",
    )]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert!(
        matches!(error, PolicyError::InjectOutsideHttp { .. }),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("move the rule to package gatehouse.http"),
        "{error}"
    );

    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "result.rego",
            "package gatehouse.result\n\nallow := true\n\nask contains \"look\"\n",
        ),
    ]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert!(
        matches!(error, PolicyError::AskOutsideActions { .. }),
        "{error}"
    );

    let dir = bundle(&[("call.rego", ALLOW_ALL), ("data.json", "[1, 2]")]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "bad data file data.json: the top level must be an object"
    );
}

#[test]
fn parse_errors_name_file_and_line() {
    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "sub/broken.rego",
            "package lib\n\nx if {\n    input.a ==\n}\n",
        ),
    ]);
    let error = PolicyStore::load(dir.path(), &[], PolicyOptions::default()).unwrap_err();
    let PolicyError::Parse { file, message } = &error else {
        panic!("expected a parse error, got {error}");
    };
    assert_eq!(file, "sub/broken.rego");
    assert!(message.starts_with("sub/broken.rego:5:1: "), "{message}");
    assert!(
        error
            .to_string()
            .starts_with("invalid Rego: sub/broken.rego:5:1: ")
    );
}

#[test]
fn revision_covers_every_file_that_goes_in_and_nothing_else() {
    let dir = bundle(&[
        ("call.rego", ALLOW_ALL),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\ntest_t if true\n",
        ),
        ("data.json", "{\"a\": 1}"),
    ]);
    let extra = dir.path().join("extra.json");
    std::fs::write(&extra, "{\"b\": 2}").unwrap();
    let read =
        |extra_data: &[PathBuf]| BundleSource::read(dir.path(), extra_data).unwrap().revision;

    let base = read(std::slice::from_ref(&extra));
    assert_eq!(
        read(std::slice::from_ref(&extra)),
        base,
        "stable across reads"
    );
    assert_ne!(read(&[]), base, "extra data counts");

    // Files that are not part of the bundle do not count.
    write(
        dir.path(),
        &[
            ("README.md", "docs"),
            (".call.rego.swp", "junk"),
            ("sub/data.json", "{}"),
        ],
    );
    assert_eq!(read(std::slice::from_ref(&extra)), base);

    for (file, contents) in [
        ("call.rego", format!("{ALLOW_ALL}\n# comment\n")),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\ntest_u if true\n".into(),
        ),
        ("data.json", "{\"a\": 2}".into()),
        ("extra.json", "{\"b\": 3}".into()),
        ("more/lib.rego", "package lib\n".into()),
    ] {
        let path = dir.path().join(file);
        let before = std::fs::read(&path).ok();
        write(dir.path(), &[(file, &contents)]);
        assert_ne!(read(std::slice::from_ref(&extra)), base, "{file} changed");
        match before {
            Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            None => std::fs::remove_file(&path).unwrap(),
        }
        assert_eq!(read(std::slice::from_ref(&extra)), base, "{file} restored");
    }
}

#[test]
fn extra_data_is_merged_over_the_bundle_data_in_order() {
    let dir = bundle(&[
        (
            "call.rego",
            "package gatehouse.call\n\ndefault allow := false\n\nallow if data.settings.mode == \"dev\"\n\nlimits := {\"fuel\": data.fuel}\n",
        ),
        (
            "data.json",
            "{\"settings\": {\"mode\": \"enforce\"}, \"fuel\": 1}",
        ),
    ]);
    let first = dir.path().join("dev.yaml");
    let second = dir.path().join("fuel.json");
    std::fs::write(&first, "settings:\n  mode: dev\nfuel: 2\n").unwrap();
    std::fs::write(&second, "{\"fuel\": 3}").unwrap();

    let enforce = load(dir.path()).decide(Phase::Call, &json!({}));
    assert!(!enforce.is_allowed());
    let store = PolicyStore::load(dir.path(), &[first, second], PolicyOptions::default()).unwrap();
    let dev = store.decide(Phase::Call, &json!({}));
    assert!(dev.is_allowed(), "{dev:?}");
    assert_eq!(dev.limits.fuel, Some(3), "later files win");
}

#[test]
fn bundle_tests_run_against_the_bundle_data_not_the_operator_data() {
    let dir = bundle(&[
        (
            "call.rego",
            "package gatehouse.call\n\ndefault allow := false\n\nallow if data.settings.mode == \"dev\"\n",
        ),
        ("data.json", "{\"settings\": {\"mode\": \"enforce\"}}"),
        (
            "call_test.rego",
            "package gatehouse.call_test\n\nimport data.gatehouse.call\n\ntest_shipped_data_denies if not call.allow\n",
        ),
    ]);
    let dev = dir.path().join("dev.json");
    std::fs::write(&dev, "{\"settings\": {\"mode\": \"dev\"}}").unwrap();
    let store = PolicyStore::load(
        dir.path(),
        std::slice::from_ref(&dev),
        PolicyOptions::default(),
    )
    .unwrap();
    assert!(store.decide(Phase::Call, &json!({})).is_allowed());

    // Asked for explicitly, the tests see the operator's data (and this one fails).
    let source = BundleSource::read(dir.path(), &[dev]).unwrap();
    let report = test_runner::run(&source, &TestOptions::default()).unwrap();
    assert_eq!(report.summary(), "0 passed, 1 failed");
}

#[test]
fn the_default_bundle_loads_passes_its_tests_and_denies_by_default() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    let store = load(&dir);
    for phase in Phase::ALL {
        assert!(store.defines(phase), "{phase}");
        let decision = store.decide(phase, &json!({"phase": phase.as_str()}));
        assert!(!decision.is_allowed(), "{phase}: {decision:?}");
    }
}
