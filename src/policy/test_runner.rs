//! The bundle's own tests, `opa test` style: every rule named `test_*` in any package is a test
//! that passes iff it evaluates to `true`; `todo_*` rules are listed as skipped.
//!
//! regorus gives no list of rule names, so candidates are found by scanning each file's
//! identifiers (outside comments and strings) and kept only if regorus confirms the file
//! declares a rule of that name (`Engine::has_declared_rule_rooted_at`).
//!
//! What a failure report can and cannot say: regorus reports *errors* with file, line and the
//! offending expression; for a test that is merely `false` or undefined it has no API naming
//! the failing expression. We run each test with coverage on and report the last line of the
//! test's body that was evaluated, which is where evaluation stopped (the failing expression,
//! unless the body loops).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use regex::Regex;
use regorus::Value;
use regorus::utils::limits::ExecutionTimerConfig;

use super::bundle::{BundleSource, RegoFile};
use super::error::{PolicyError, one_line};

/// How to run the tests.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Only run tests whose full name (`data.pkg.test_x`) matches.
    pub run: Option<Regex>,
    /// Gather line coverage of the policy files.
    pub coverage: bool,
    /// Gather `print()` output and failure locations (costs a coverage pass per test).
    pub verbose: bool,
    /// Wall-clock budget of each test.
    pub time_budget: Duration,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            run: None,
            coverage: false,
            verbose: false,
            time_budget: Duration::from_secs(5),
        }
    }
}

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Evaluated to something other than `true` (`false`, undefined, another value).
    Fail {
        value: String,
    },
    /// Evaluation raised an error (regorus's message, with location).
    Error {
        message: String,
    },
    /// A `todo_*` rule: not run.
    Skip,
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// Full rule path, e.g. `data.gatehouse.call_test.test_allows_alice`.
    pub name: String,
    pub file: String,
    /// Line of the rule's head.
    pub line: u32,
    pub outcome: Outcome,
    pub duration: Duration,
    /// `print()` output (gathered when verbose).
    pub prints: Vec<String>,
    /// For a failed test when verbose: the last evaluated line of its body and its text.
    pub stopped_at: Option<(u32, String)>,
}

/// Line coverage of one policy file.
#[derive(Debug, Clone, Default)]
pub struct FileCoverage {
    pub file: String,
    pub covered: BTreeSet<u32>,
    pub not_covered: BTreeSet<u32>,
}

/// Everything a test run found.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    /// Why the gateway would refuse to serve this directory (e.g. no `gatehouse.call`
    /// package): the tests ran anyway, as `opa test` runs any Rego directory's tests.
    pub warnings: Vec<String>,
    pub results: Vec<TestResult>,
    /// Policy (non-test) files, when coverage was asked for.
    pub coverage: Option<Vec<FileCoverage>>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Pass))
    }

    /// Failed and errored tests.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail { .. } | Outcome::Error { .. }))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Skip))
    }

    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(&r.outcome)).count()
    }

    /// `N passed, N failed` (and `, N skipped` when any were).
    pub fn summary(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed(), self.failed());
        if self.skipped() > 0 {
            let _ = write!(line, ", {} skipped", self.skipped());
        }
        line
    }

    /// One line per failing test naming it, its file and line, and why.
    pub fn failure_summaries(&self) -> Vec<String> {
        self.results
            .iter()
            .filter_map(|r| {
                let why = match &r.outcome {
                    Outcome::Fail { value } => format!("evaluated to {value}"),
                    Outcome::Error { message } => message.clone(),
                    Outcome::Pass | Outcome::Skip => return None,
                };
                Some(format!("{} ({}:{}) {why}", r.name, r.file, r.line))
            })
            .collect()
    }

    /// The report as `policy test` prints it: a line per test, details of failures, the
    /// coverage table if gathered, and the summary line last.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        for result in &self.results {
            let status = match result.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail { .. } => "FAIL",
                Outcome::Error { .. } => "ERROR",
                Outcome::Skip => "SKIP",
            };
            let _ = writeln!(
                out,
                "{}: {status} ({:.1}ms)",
                result.name,
                result.duration.as_secs_f64() * 1000.0
            );
            match &result.outcome {
                Outcome::Fail { value } => {
                    let _ = writeln!(
                        out,
                        "  {}:{}: evaluated to {value}, expected true",
                        result.file, result.line
                    );
                }
                Outcome::Error { message } => {
                    for line in message.lines() {
                        let _ = writeln!(out, "  {line}");
                    }
                }
                Outcome::Pass | Outcome::Skip => {}
            }
            if verbose {
                if let Some((line, code)) = &result.stopped_at {
                    let _ = writeln!(
                        out,
                        "  last expression evaluated: {}:{line}: {}",
                        result.file,
                        code.trim()
                    );
                }
                for print in &result.prints {
                    let _ = writeln!(out, "  print: {print}");
                }
            }
        }
        if let Some(coverage) = &self.coverage {
            let _ = writeln!(out, "coverage:");
            for file in coverage {
                let total = file.covered.len() + file.not_covered.len();
                let percent = if total == 0 {
                    100.0
                } else {
                    file.covered.len() as f64 * 100.0 / total as f64
                };
                let _ = write!(
                    out,
                    "  {}: {percent:.1}% ({}/{total} lines)",
                    file.file,
                    file.covered.len()
                );
                if !file.not_covered.is_empty() {
                    let lines: Vec<String> =
                        file.not_covered.iter().map(|l| l.to_string()).collect();
                    let _ = write!(out, " not covered: {}", lines.join(", "));
                }
                out.push('\n');
            }
        }
        let _ = writeln!(out, "{}", self.summary());
        out
    }
}

/// A test rule found in a file.
#[derive(Debug, Clone)]
struct Discovered {
    name: String,
    file: usize,
    line: u32,
    todo: bool,
}

/// Compiles the bundle with its tests and runs every `test_*` rule.
pub fn run(source: &BundleSource, options: &TestOptions) -> Result<TestReport, PolicyError> {
    let compiled = source.compile(true)?;
    let warnings = compiled.serving_problems;
    let mut engine = compiled.engine;
    let packages = engine
        .get_policy_package_components()
        .map_err(|e| PolicyError::Compile {
            message: one_line(&e),
        })?;
    let mut tests = Vec::new();
    let mut seen = BTreeSet::new();
    for (index, file) in source.files.iter().enumerate() {
        let Some(package) = packages.iter().find(|p| p.source_file == file.path) else {
            continue;
        };
        for (ident, line) in candidate_rules(&file.contents) {
            let todo = ident.starts_with("todo_");
            if !engine
                .has_declared_rule_rooted_at(&file.path, &ident)
                .unwrap_or(false)
            {
                continue;
            }
            let name = format!("{}.{ident}", data_path(&package.components));
            if seen.insert(name.clone()) {
                tests.push(Discovered {
                    name,
                    file: index,
                    line,
                    todo,
                });
            }
        }
    }
    if let Some(run) = &options.run {
        tests.retain(|t| run.is_match(&t.name));
    }

    let trace = options.coverage || options.verbose;
    engine.set_gather_prints(true);
    engine.set_enable_coverage(trace);
    engine.set_execution_timer_config(ExecutionTimerConfig {
        limit: options.time_budget,
        check_interval: std::num::NonZeroU32::new(32).unwrap_or(std::num::NonZeroU32::MIN),
    });
    let mut covered: BTreeMap<String, (BTreeSet<u32>, BTreeSet<u32>)> = BTreeMap::new();
    let mut results = Vec::new();
    for test in tests {
        let file = &source.files[test.file];
        let mut result = TestResult {
            name: test.name.clone(),
            file: file.path.clone(),
            line: test.line,
            outcome: Outcome::Skip,
            duration: Duration::ZERO,
            prints: Vec::new(),
            stopped_at: None,
        };
        if test.todo {
            results.push(result);
            continue;
        }
        engine.clear_coverage_data();
        let _ = engine.take_prints();
        let start = Instant::now();
        let value = engine.eval_rule(test.name.clone());
        result.duration = start.elapsed();
        result.outcome = match value {
            Ok(Value::Bool(true)) => Outcome::Pass,
            Ok(Value::Undefined) => Outcome::Fail {
                value: "undefined".to_string(),
            },
            Ok(other) => Outcome::Fail {
                value: other.to_json_str().unwrap_or_else(|_| "?".to_string()),
            },
            Err(e) => Outcome::Error {
                message: one_line(&e),
            },
        };
        result.prints = engine.take_prints().unwrap_or_default();
        if trace && let Ok(report) = engine.get_coverage_report() {
            for f in report.files {
                if !matches!(result.outcome, Outcome::Pass) && f.path == file.path {
                    result.stopped_at = last_line_in_body(file, test.line, &f.covered);
                }
                let entry = covered.entry(f.path).or_default();
                entry.0.extend(f.covered);
                entry.1.extend(f.not_covered);
            }
        }
        results.push(result);
    }

    let coverage = options.coverage.then(|| {
        source
            .files
            .iter()
            .filter(|f| !f.is_test())
            .map(|f| {
                let (hit, missed) = covered.remove(&f.path).unwrap_or_default();
                FileCoverage {
                    file: f.path.clone(),
                    not_covered: missed.difference(&hit).copied().collect(),
                    covered: hit,
                }
            })
            .collect()
    });
    Ok(TestReport {
        warnings,
        results,
        coverage,
    })
}

/// `data.` path of a package, quoting components that are not plain identifiers.
fn data_path(components: &[String]) -> String {
    let mut path = String::from("data");
    for component in components {
        if is_identifier(component) {
            path.push('.');
            path.push_str(component);
        } else {
            let _ = write!(path, "[{component:?}]");
        }
    }
    path
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Identifiers starting with `test_` or `todo_` outside comments and strings, each with the
/// line where it first stands in column 0 (a rule head), else where it first occurs.
fn candidate_rules(source: &str) -> Vec<(String, u32)> {
    let mut found: Vec<(String, u32, bool)> = Vec::new();
    let mut line = 1u32;
    let mut line_start = true;
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                line += 1;
                line_start = true;
                continue;
            }
            '#' => {
                while chars.peek().is_some_and(|&c| c != '\n') {
                    chars.next();
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '`' => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        line += 1;
                    }
                    if c == '`' {
                        break;
                    }
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut ident = String::from(c);
                while let Some(&c) = chars
                    .peek()
                    .filter(|c| c.is_ascii_alphanumeric() || **c == '_')
                {
                    ident.push(c);
                    chars.next();
                }
                if ident.starts_with("test_") || ident.starts_with("todo_") {
                    match found.iter_mut().find(|(name, ..)| *name == ident) {
                        Some(entry) if !entry.2 && line_start => {
                            entry.1 = line;
                            entry.2 = true;
                        }
                        Some(_) => {}
                        None => found.push((ident, line, line_start)),
                    }
                }
            }
            _ => {}
        }
        // Rule heads start in column 0; anything before an identifier, even indentation,
        // makes it a use rather than a head.
        line_start = false;
    }
    found
        .into_iter()
        .map(|(name, line, _)| (name, line))
        .collect()
}

/// The last evaluated line of a test's body: from its head to the next line that starts a new
/// top-level statement (Rego bodies are indented by convention).
fn last_line_in_body(file: &RegoFile, head: u32, covered: &BTreeSet<u32>) -> Option<(u32, String)> {
    let lines: Vec<&str> = file.contents.lines().collect();
    let start = usize::try_from(head).ok()?;
    let end = lines
        .iter()
        .enumerate()
        .skip(start)
        .find(|(_, text)| {
            text.chars()
                .next()
                .is_some_and(|c| !c.is_whitespace() && c != '}' && c != '#')
        })
        .map(|(index, _)| index)
        .unwrap_or(lines.len());
    let last = covered
        .range(head..=u32::try_from(end).ok()?)
        .next_back()
        .copied()?;
    let text = lines.get(usize::try_from(last).ok()?.checked_sub(1)?)?;
    Some((last, text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_skip_comments_and_strings_and_prefer_rule_heads() {
        let source = r#"package x_test
# test_in_comment
test_a if {
    msg := "test_in_string"
    test_b
}

test_b if true
todo_c if false
x := `test_raw
test_raw_2`
"#;
        let found = candidate_rules(source);
        assert_eq!(
            found,
            vec![
                ("test_a".to_string(), 3),
                ("test_b".to_string(), 8),
                ("todo_c".to_string(), 9),
            ]
        );
    }

    #[test]
    fn data_paths_quote_odd_components() {
        assert_eq!(
            data_path(&["gatehouse".into(), "call_test".into()]),
            "data.gatehouse.call_test"
        );
        assert_eq!(data_path(&["a".into(), "1.0".into()]), "data.a[\"1.0\"]");
    }
}
