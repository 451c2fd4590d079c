//! The modules of `src/` depend only downwards: each may import only the modules its row of
//! [`LAYERS`] names, and the rows are ordered so that no import can close a cycle. A new
//! module must be given a row. The table is the one `src/lib.rs` describes.
//!
//! Imports are read from the source text (`crate::module` paths, including grouped
//! `use crate::{a, b::c}`), comments excluded, so the check needs no build of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each module and the modules it may import, highest first. A module may only name modules
/// listed after its own row.
const LAYERS: &[(&str, &[&str])] = &[
    // The command line: every subcommand wires the parts together.
    (
        "cli",
        &[
            "mcp",
            "gateway",
            "config",
            "approval",
            "ui",
            "runtime",
            "host",
            "supply",
            "policy",
            "fleet",
            "audit",
            "wit_json",
            "auth",
            "secrets",
            "support",
            "telemetry",
        ],
    ),
    // Builds the inputs of the pure parts for `fuzz/`, as the gateway would.
    ("fuzzing", &["mcp", "policy", "audit", "wit_json", "auth"]),
    (
        "mcp",
        &[
            "gateway",
            "config",
            "approval",
            "ui",
            "auth",
            "support",
            "telemetry",
        ],
    ),
    (
        "gateway",
        &[
            "config",
            "approval",
            "runtime",
            "host",
            "supply",
            "policy",
            "fleet",
            "audit",
            "wit_json",
            "auth",
            "secrets",
            "support",
            "telemetry",
        ],
    ),
    // Only combines the settings types the modules below own.
    (
        "config",
        &[
            "approval",
            "ui",
            "runtime",
            "host",
            "supply",
            "policy",
            "fleet",
            "audit",
            "auth",
            "secrets",
            "support",
            "telemetry",
        ],
    ),
    // The auditor's web view: reads the audit log, checks credentials with the auth layer.
    ("ui", &["approval", "audit", "auth", "support"]),
    // A person in the loop: questions, answers, grants, and their file.
    ("approval", &["support"]),
    ("runtime", &["host", "supply", "wit_json", "support"]),
    (
        "host",
        &["policy", "audit", "wit_json", "secrets", "support"],
    ),
    ("supply", &["audit", "wit_json", "support"]),
    (
        "policy",
        &["auth", "wit_json", "secrets", "support", "telemetry"],
    ),
    // The fleet's shared audit store: ships and verifies the local logs.
    ("fleet", &["audit", "secrets", "support", "telemetry"]),
    ("audit", &["support", "telemetry"]),
    ("wit_json", &[]),
    ("auth", &["support"]),
    // Brokered credentials: loading, header templates, masking.
    ("secrets", &["support"]),
    ("support", &[]),
    // Metrics: a leaf every measuring layer records into.
    ("telemetry", &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn the_table_has_no_cycle_and_names_only_modules_below() {
    let rank: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (*name, i))
        .collect();
    assert_eq!(rank.len(), LAYERS.len(), "a module has two rows");
    for (i, (module, allowed)) in LAYERS.iter().enumerate() {
        for dependency in *allowed {
            let below = rank.get(dependency).is_some_and(|&r| r > i);
            assert!(
                below,
                "`{module}` may import `{dependency}`, which is not below it"
            );
        }
    }
}

#[test]
fn every_module_has_a_row() {
    let rows: BTreeSet<&str> = LAYERS.iter().map(|(name, _)| *name).collect();
    let modules: BTreeSet<String> = std::fs::read_dir(src())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| top_module_of(&src(), &path))
        .collect();
    let missing: Vec<&String> = modules
        .iter()
        .filter(|m| !rows.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a row in LAYERS: {missing:?}"
    );
    let gone: Vec<&&str> = rows.iter().filter(|r| !modules.contains(**r)).collect();
    assert!(
        gone.is_empty(),
        "rows for modules that do not exist: {gone:?}"
    );
}

#[test]
fn no_module_imports_one_above_it() {
    let allowed: BTreeMap<&str, BTreeSet<&str>> = LAYERS
        .iter()
        .map(|(name, deps)| (*name, deps.iter().copied().collect()))
        .collect();
    let mut violations = Vec::new();
    for file in rust_files(&src()) {
        let Some(module) = top_module_of(&src(), &file) else {
            continue;
        };
        let Some(allowed) = allowed.get(module.as_str()) else {
            continue; // reported by every_module_has_a_row
        };
        let code = strip_comments(&std::fs::read_to_string(&file).unwrap());
        // A module's unit tests may draw random cases from `fuzzing`, which sits above it.
        let relative = file.strip_prefix(src()).unwrap();
        let unit_tests = relative.components().any(|c| c.as_os_str() == "tests");
        for target in crate_references(&code) {
            let test_input = unit_tests && target == "fuzzing";
            if target != module && !test_input && !allowed.contains(target.as_str()) {
                let file = relative.display();
                violations.push(format!("{file}: `{module}` imports `crate::{target}`"));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "imports against the layering in tests/layering.rs:\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn the_reader_sees_grouped_and_nested_imports() {
    let code = "use crate::{audit::{A, B}, policy::C};\nuse crate::host::D;\nfn f() { crate::support::g(); }\n";
    let found: BTreeSet<String> = crate_references(code).into_iter().collect();
    assert_eq!(
        found,
        ["audit", "host", "policy", "support"]
            .map(String::from)
            .into()
    );
    let commented = strip_comments(
        "// crate::gateway\n/* crate::mcp */ let s = \"//\"; let q = '\"'; crate::audit::x();\n",
    );
    assert_eq!(crate_references(&commented), ["audit"]);
}

/// The top-level module a file belongs to; `None` for the crate root files.
fn top_module_of(src: &Path, path: &Path) -> Option<String> {
    let first = path.strip_prefix(src).ok()?.components().next()?;
    let name = first.as_os_str().to_str()?;
    let module = name.strip_suffix(".rs").unwrap_or(name);
    (!matches!(module, "lib" | "main")).then(|| module.to_owned())
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The code without `//` and `/* */` comments. String and character literals are kept
/// whole, so a `//` or a quote inside one does not cut the line.
fn strip_comments(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let at = |i: usize| chars.get(i).copied();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' {
            let start = i;
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            out.extend(&chars[start..(i + 1).min(chars.len())]);
            i += 1;
        } else if c == '\'' && at(i + 1) == Some('\\') && at(i + 3) == Some('\'') {
            out.extend(&chars[i..i + 4]);
            i += 4;
        } else if c == '\'' && at(i + 2) == Some('\'') {
            out.extend(&chars[i..i + 3]);
            i += 3;
        } else if c == '/' && at(i + 1) == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && at(i + 1) == Some('/')) {
                i += 1;
            }
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every top-level module named after `crate::`, alone or in a `crate::{…}` group.
fn crate_references(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // The first path segment of each member at the group's top level.
            let mut depth = 1;
            let mut expecting_name = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => expecting_name = true,
                    c if depth == 1 && expecting_name && (c.is_alphanumeric() || c == '_') => {
                        name.push(c);
                        continue;
                    }
                    _ => {}
                }
                if !name.is_empty() {
                    found.push(std::mem::take(&mut name));
                    expecting_name = false;
                }
                if depth == 0 {
                    break;
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
    }
    found
}
