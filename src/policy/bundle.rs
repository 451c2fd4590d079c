//! Reading a policy bundle from disk, its revision, and compiling it into a regorus engine.
//!
//! A bundle is a directory of `.rego` files (searched recursively; `*_test.rego` are tests),
//! optional `data.json` / `data.yaml` at its root, plus the operator's extra data files merged
//! over the bundle's data in the order given. Entries whose name starts with `.` are skipped
//! (editor swap files, `.git`). Other files (a README) are not part of the bundle.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regorus::Engine;
use sha2::{Digest, Sha256};

use super::error::{PolicyError, one_line};
use super::phase::{PACKAGE_ROOT, Phase};

/// Directory nesting deeper than this is refused (it also stops symlink loops).
const MAX_DEPTH: usize = 32;

/// One policy file of a bundle.
#[derive(Debug, Clone)]
pub struct RegoFile {
    /// Path relative to the bundle directory with `/` separators: the name regorus reports in
    /// errors and the key of the revision.
    pub path: String,
    pub contents: String,
}

impl RegoFile {
    /// Whether this file holds tests (loaded by `policy test` and reload, never served).
    pub fn is_test(&self) -> bool {
        self.path.ends_with("_test.rego")
    }
}

/// The files of a bundle as read from disk, before compiling.
#[derive(Debug, Clone)]
pub struct BundleSource {
    pub dir: PathBuf,
    /// Every `.rego` file, sorted by path.
    pub files: Vec<RegoFile>,
    /// The bundle's data with the extra data files merged over it: what is served.
    pub data: serde_json::Value,
    /// The bundle's own data (`data.json`/`data.yaml`), without the extra data files.
    pub bundle_data: serde_json::Value,
    /// `sha256:<hex>` over every file that went in.
    pub revision: String,
}

impl BundleSource {
    /// Reads the bundle in `dir` and the operator's `extra_data` files.
    pub fn read(dir: &Path, extra_data: &[PathBuf]) -> Result<BundleSource, PolicyError> {
        let meta = std::fs::metadata(dir).map_err(|source| PolicyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(PolicyError::NotADirectory(dir.to_path_buf()));
        }

        let raw = BundleSource::files(dir)?;
        let mut hasher = Sha256::new();
        let mut files = Vec::new();
        let mut data = serde_json::Value::Object(Default::default());
        for (path, bytes) in &raw {
            hash_entry(&mut hasher, "file", path, bytes);
            if path.ends_with(".rego") {
                let contents = String::from_utf8(bytes.clone())
                    .map_err(|_| PolicyError::NotUtf8 { file: path.clone() })?;
                files.push(RegoFile {
                    path: path.clone(),
                    contents,
                });
            } else {
                merge(&mut data, parse_data(path, bytes)?);
            }
        }
        let bundle_data = data.clone();
        // Extra data is hashed in the order given, because the order decides what wins.
        for (index, path) in extra_data.iter().enumerate() {
            let bytes = std::fs::read(path).map_err(|source| PolicyError::Io {
                path: path.clone(),
                source,
            })?;
            let label = path.display().to_string();
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| label.clone());
            hash_entry(&mut hasher, "extra", &format!("{index}:{name}"), &bytes);
            merge(&mut data, parse_data(&label, &bytes)?);
        }
        Ok(BundleSource {
            dir: dir.to_path_buf(),
            files,
            data,
            bundle_data,
            revision: format!("sha256:{}", hex::encode(hasher.finalize())),
        })
    }

    /// The same bundle without the operator's extra data: what the bundle's own tests were
    /// written against.
    /// The files that make up the bundle in `dir` (`.rego` anywhere, `data.json`/`.yaml` at
    /// the top; hidden entries skipped), as (relative path, bytes), sorted by path: what its
    /// revision hashes and what `gatehouse policy build` archives.
    pub fn files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, PolicyError> {
        let mut raw = Vec::new();
        collect(dir, "", 0, &mut raw)?;
        raw.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(raw)
    }

    pub fn without_extra_data(&self) -> BundleSource {
        BundleSource {
            data: self.bundle_data.clone(),
            ..self.clone()
        }
    }

    /// Parses the policy files (with or without the tests) into a fresh engine, adds the data,
    /// checks the phase packages and prepares the engine for evaluation.
    ///
    /// Without the tests (to serve), a bundle that would deny every call is an error. With them
    /// (for `policy test`), that is returned in [`Compiled::serving_problems`] instead, so the
    /// tests of any Rego directory run, as `opa test` runs them.
    pub fn compile(&self, include_tests: bool) -> Result<Compiled, PolicyError> {
        let mut engine = Engine::new();
        // A builtin that fails (bad CIDR, bad regex, type error) raises an error, which denies,
        // instead of OPA's default of quietly becoming undefined (which `not` turns into true).
        engine.set_strict_builtin_errors(true);
        disable_clock(&mut engine);
        for file in self.files.iter().filter(|f| include_tests || !f.is_test()) {
            engine
                .add_policy(file.path.clone(), file.contents.clone())
                .map_err(|e| PolicyError::Parse {
                    file: file.path.clone(),
                    message: located(&file.path, &e),
                })?;
        }
        engine
            .add_data(regorus::Value::from(self.data.clone()))
            .map_err(|e| PolicyError::Data {
                file: "data".to_string(),
                message: one_line(&e),
            })?;

        let (phases, serving_problem) = self.check_packages(&engine)?;
        let serving_problems = match serving_problem {
            Some(problem) if !include_tests => return Err(problem),
            Some(problem) => vec![problem.to_string()],
            None => Vec::new(),
        };
        if !include_tests {
            engine
                .add_policy(DECISION_FILE.to_string(), decision_module(&phases))
                .map_err(|e| PolicyError::Compile {
                    message: one_line(&e),
                })?;
        }
        // Analysis (scheduling, unsafe variables, recursion) runs on first evaluation; do it now
        // so a broken bundle is rejected at load and every clone starts prepared.
        engine
            .eval_query("true".to_string(), false)
            .map_err(|e| PolicyError::Compile {
                message: one_line(&e),
            })?;
        Ok(Compiled {
            engine,
            phases,
            serving_problems,
        })
    }

    /// Rejects packages under `gatehouse.` that are not phases; returns which decision rules each
    /// phase package declares, and why the bundle would deny every call if it would (which only
    /// serving refuses).
    fn check_packages(
        &self,
        engine: &Engine,
    ) -> Result<(BTreeMap<Phase, DeclaredRules>, Option<PolicyError>), PolicyError> {
        let packages =
            engine
                .get_policy_package_components()
                .map_err(|e| PolicyError::Compile {
                    message: one_line(&e),
                })?;
        let mut phases: BTreeMap<Phase, DeclaredRules> = BTreeMap::new();
        for package in packages {
            let file = package.source_file;
            if self.files.iter().any(|f| f.path == file && f.is_test()) {
                continue; // tests may live in any package, e.g. gatehouse.call_test
            }
            let components = package.components;
            if components.first().map(String::as_str) != Some(PACKAGE_ROOT) {
                continue; // helper libraries outside gatehouse are fine
            }
            let phase = components
                .get(1)
                .and_then(|name| name.parse::<Phase>().ok())
                .ok_or_else(|| PolicyError::UnknownPhasePackage {
                    file: file.clone(),
                    package: components.join("."),
                })?;
            let declared = phases.entry(phase).or_default();
            if components.len() == 2 {
                let has = |rule: &str| {
                    engine
                        .has_declared_rule_rooted_at(&file, rule)
                        .unwrap_or(false)
                };
                declared.allow |= has("allow");
                declared.deny |= has("deny");
                declared.limits |= has("limits");
                declared.redact |= has("redact");
                declared.env |= has("env");
                declared.inject |= has("inject");
                declared.labels |= has("labels");
                declared.ask |= has("ask");
                if declared.ask && !phase.may_ask() {
                    return Err(PolicyError::AskOutsideActions {
                        file: file.clone(),
                        package: components.join("."),
                    });
                }
                if declared.inject && phase != Phase::Http {
                    return Err(PolicyError::InjectOutsideHttp {
                        file: file.clone(),
                        package: components.join("."),
                    });
                }
            }
        }
        let denies_every_call = match phases.get(&Phase::Call) {
            None => Some(PolicyError::MissingCallPackage),
            Some(rules) if !rules.allow => Some(PolicyError::MissingCallAllow),
            Some(_) => None,
        };
        Ok((phases, denies_every_call))
    }
}

/// Source label of the generated decision module (never a file on disk).
pub const DECISION_FILE: &str = "<gatehouse-decision>.rego";

/// Package of the generated decision module; deliberately not under `gatehouse.`.
pub const DECISION_PACKAGE: &str = "gatehouse_decision__";

/// A module with one rule per phase collecting that phase's decision rules as
/// `[name, value]` pairs, so a decision is one evaluation in which helper rules shared by
/// `allow`, `deny` and the obligations are computed once (an undefined rule is just absent).
fn decision_module(phases: &BTreeMap<Phase, DeclaredRules>) -> String {
    let mut module = format!("package {DECISION_PACKAGE}\n");
    for (phase, declared) in phases {
        for (rule, present) in [
            ("allow", declared.allow),
            ("deny", declared.deny),
            ("limits", declared.limits),
            ("redact", declared.redact),
            ("env", declared.env),
            ("inject", declared.inject),
            ("labels", declared.labels),
            ("ask", declared.ask),
        ] {
            if present {
                module.push_str(&format!(
                    "\n{phase} contains [\"{rule}\", x] if {{ x := {} }}\n",
                    phase.rule_path(rule)
                ));
            }
        }
    }
    module
}

/// Which of the decision rules a phase package declares, so evaluation asks only for those.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeclaredRules {
    pub allow: bool,
    pub deny: bool,
    pub limits: bool,
    pub redact: bool,
    pub env: bool,
    pub inject: bool,
    pub labels: bool,
    pub ask: bool,
}

/// A prepared engine and what its phase packages declare.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub engine: Engine,
    pub phases: BTreeMap<Phase, DeclaredRules>,
    /// Why the bundle could not be served (it would deny every call). Only ever non-empty when
    /// compiled with its tests: without them, these are errors.
    pub serving_problems: Vec<String>,
}

/// Policies never read clocks: the gateway puts the time into `input.time`, so a decision can
/// be replayed from its audit record. `time.now_ns` is shadowed by an extension that fails
/// (extensions take precedence over builtins in regorus); tests may still use
/// `with time.now_ns as …`. Network builtins (`http.send`) are not compiled in at all.
fn disable_clock(engine: &mut Engine) {
    // Adding an extension to a fresh engine can only fail if the name is taken, which it is not.
    let _ = engine.add_extension(
        "time.now_ns".to_string(),
        0,
        Box::new(|_: Vec<regorus::Value>| -> anyhow::Result<regorus::Value> {
            anyhow::bail!("time.now_ns is disabled in Gatehouse policies: use input.time")
        }),
    );
}

/// regorus's message in one line, starting with the file name even if regorus left it out.
fn located(file: &str, error: &anyhow::Error) -> String {
    let message = one_line(error);
    if message.starts_with(file) {
        message
    } else {
        format!("{file}: {message}")
    }
}

fn hash_entry(hasher: &mut Sha256, kind: &str, name: &str, bytes: &[u8]) {
    // Length-prefixed so no two different bundles can produce the same byte stream.
    for part in [kind.as_bytes(), name.as_bytes(), bytes] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
}

/// Collects the bundle's files: every `.rego` anywhere, `data.json`/`data.yaml`/`data.yml` at
/// the root.
fn collect(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), PolicyError> {
    if depth > MAX_DEPTH {
        return Err(PolicyError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(format!("directories nest deeper than {MAX_DEPTH}")),
        });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PolicyError::Io { path, source }
    };
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let relative = format!("{prefix}{name}");
        let meta = std::fs::metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            collect(&path, &format!("{relative}/"), depth + 1, out)?;
        } else if name.ends_with(".rego")
            || (depth == 0 && matches!(name.as_str(), "data.json" | "data.yaml" | "data.yml"))
        {
            out.push((relative, std::fs::read(&path).map_err(io(&path))?));
        }
    }
    Ok(())
}

/// Parses a data file by its extension (`.yaml`/`.yml` as YAML, anything else as JSON); the
/// document must be an object, since it is merged into `data`.
fn parse_data(file: &str, bytes: &[u8]) -> Result<serde_json::Value, PolicyError> {
    let error = |message: String| PolicyError::Data {
        file: file.to_string(),
        message,
    };
    let value = if file.ends_with(".yaml") || file.ends_with(".yml") {
        let text = std::str::from_utf8(bytes).map_err(|_| error("not UTF-8 text".into()))?;
        let value = regorus::Value::from_yaml_str(text).map_err(|e| error(format!("{e:#}")))?;
        serde_json::to_value(&value).map_err(|e| error(e.to_string()))?
    } else {
        serde_json::from_slice(bytes).map_err(|e| error(e.to_string()))?
    };
    if !value.is_object() {
        return Err(error("the top level must be an object".into()));
    }
    Ok(value)
}

/// Merges `over` into `base`: objects merge key by key, anything else in `over` replaces.
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(base), serde_json::Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) => merge(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_overrides_leaves_and_keeps_siblings() {
        let mut base = json!({"settings": {"mode": "enforce", "x": 1}, "principals": {}});
        merge(
            &mut base,
            json!({"settings": {"mode": "dev"}, "principals": {"alice": {"tools": ["*"]}}}),
        );
        assert_eq!(
            base,
            json!({"settings": {"mode": "dev", "x": 1}, "principals": {"alice": {"tools": ["*"]}}})
        );
        merge(&mut base, json!({"principals": []}));
        assert_eq!(base["principals"], json!([]));
    }
}
