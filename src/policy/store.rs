//! The serving side: the current compiled bundle behind an atomic swap, and `decide`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use regorus::Engine;
use regorus::utils::limits::LimitError;
use serde::{Deserialize, Serialize};

use super::budget;
use super::bundle::{BundleSource, DECISION_FILE, DECISION_PACKAGE, DeclaredRules};
use super::compiled::CompiledPhase;
use super::decision::{Decision, RuleValues, type_name};
use super::error::PolicyError;
use super::nodes;
use super::phase::Phase;
use super::pool::Pool;
use super::test_runner::{self, TestOptions};
use crate::telemetry::PolicyMetrics;

/// How a store evaluates and what it accepts.
#[derive(Debug, Clone)]
pub struct PolicyOptions {
    /// Wall-clock budget of one decision; past it the decision is a deny.
    pub time_budget: Duration,
    /// Largest input accepted, measured as compact JSON; bigger inputs are denied unevaluated.
    pub max_input_bytes: usize,
    /// Run the bundle's `*_test.rego` before serving it (on load and every reload), against
    /// the bundle's own data (extra data files are not applied to its tests).
    pub run_tests: bool,
    /// Budget of each bundle test when `run_tests` is on.
    pub test_time_budget: Duration,
    /// Which regorus evaluator serves decisions.
    pub evaluator: Evaluator,
    /// Where the serving revision and reloads are reported (default: nowhere exposed).
    pub metrics: PolicyMetrics,
}

/// How decisions are evaluated.
///
/// The two differ in one point of semantics, which is why the interpreter is the default: the
/// interpreter turns **any** error (a builtin given the wrong type, a division by zero) into a
/// policy error, so the decision denies. regorus's compiled form treats an error inside a rule
/// body as that body failing (OPA's non-strict semantics): a `deny` body that errors adds no
/// message, and a `not` over an erroring expression succeeds. Choose `Compiled` for bundles
/// whose rules check types before using values (the default bundle does, and the tests compare
/// both evaluators on hostile inputs); it decides several times faster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Evaluator {
    /// regorus's tree-walking interpreter: every evaluation error denies.
    #[default]
    Interpreter,
    /// regorus's compiled form (RVM) for every phase it can compile, the interpreter for the
    /// others (the load log names them and why). Errors inside rule bodies fail the body.
    Compiled,
}

impl Default for PolicyOptions {
    fn default() -> Self {
        PolicyOptions {
            time_budget: Duration::from_millis(50),
            max_input_bytes: 1 << 20,
            run_tests: true,
            test_time_budget: Duration::from_secs(5),
            evaluator: Evaluator::default(),
            metrics: PolicyMetrics::default(),
        }
    }
}

/// The policy bundle being served. Cheap to clone; every clone sees reloads.
///
/// Reloads build the new bundle completely (parse, compile, test) before swapping it in, so a
/// decision is made either by the old bundle or by the new one, never by a mix.
#[derive(Clone)]
pub struct PolicyStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    extra_data: Vec<PathBuf>,
    options: PolicyOptions,
    current: RwLock<Arc<ServingBundle>>,
    /// Serializes reloads so two of them cannot race to swap.
    reload_lock: Mutex<()>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStore")
            .field("dir", &self.inner.dir)
            .field("revision", &self.revision())
            .finish()
    }
}

impl PolicyStore {
    /// Loads, compiles and (if `options.run_tests`) tests the bundle in `dir`.
    pub fn load(
        dir: impl AsRef<Path>,
        extra_data: &[PathBuf],
        options: PolicyOptions,
    ) -> Result<PolicyStore, PolicyError> {
        let dir = dir.as_ref().to_path_buf();
        let bundle = ServingBundle::build(&dir, extra_data, &options)?;
        tracing::info!(dir = %dir.display(), revision = %bundle.revision, "policy bundle loaded");
        options.metrics.serving(&bundle.revision);
        Ok(PolicyStore {
            inner: Arc::new(Inner {
                dir,
                extra_data: extra_data.to_vec(),
                options,
                current: RwLock::new(Arc::new(bundle)),
                reload_lock: Mutex::new(()),
            }),
        })
    }

    /// The directory the bundle is read from.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The extra data files merged over the bundle's data.
    pub fn extra_data(&self) -> &[PathBuf] {
        &self.inner.extra_data
    }

    /// The revision of the bundle now serving.
    pub fn revision(&self) -> String {
        self.current().revision.clone()
    }

    /// Whether the serving bundle has a package for `phase` (a phase without one denies all).
    pub fn defines(&self, phase: Phase) -> bool {
        self.current().phases.contains_key(&phase)
    }

    /// Decides `phase` for `input`. Never fails: every problem is a deny with its cause.
    pub fn decide(&self, phase: Phase, input: &serde_json::Value) -> Decision {
        self.current().decide(phase, input, &self.inner.options)
    }

    /// Decides like [`PolicyStore::decide`] and also reports how: every rule value of the
    /// phase package, `print()` output, and the lines evaluated.
    pub fn explain(&self, phase: Phase, input: &serde_json::Value) -> (Decision, Explanation) {
        self.current().explain(phase, input, &self.inner.options)
    }

    /// Re-reads the bundle and swaps it in if it parses, compiles and passes its tests.
    /// On failure the previous bundle keeps serving and the error is logged and returned.
    pub fn reload(&self) -> Result<String, PolicyError> {
        let _guard = self
            .inner
            .reload_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let old = self.revision();
        match ServingBundle::build(&self.inner.dir, &self.inner.extra_data, &self.inner.options) {
            Ok(bundle) => {
                let revision = bundle.revision.clone();
                if revision == old {
                    tracing::debug!(%revision, "policy bundle unchanged");
                } else {
                    *self
                        .inner
                        .current
                        .write()
                        .unwrap_or_else(PoisonError::into_inner) = Arc::new(bundle);
                    tracing::info!(old_revision = %old, %revision, "policy bundle reloaded");
                }
                self.inner.options.metrics.serving(&revision);
                self.inner.options.metrics.reloaded(true);
                Ok(revision)
            }
            Err(error) => {
                tracing::error!(
                    dir = %self.inner.dir.display(),
                    serving_revision = %old,
                    %error,
                    "policy bundle rejected; the previous bundle keeps serving"
                );
                self.inner.options.metrics.reloaded(false);
                Err(error)
            }
        }
    }

    /// Records a bundle refused before it reached [`PolicyStore::reload`] (it could not be
    /// fetched, or its signature did not verify): logged and counted as a failed reload; the
    /// current bundle keeps serving.
    pub fn refused(&self, reason: &dyn std::fmt::Display) {
        tracing::error!(
            serving_revision = %self.revision(),
            error = %reason,
            "policy bundle rejected; the previous bundle keeps serving"
        );
        self.inner.options.metrics.reloaded(false);
    }

    fn current(&self) -> Arc<ServingBundle> {
        self.inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What `explain` adds to a decision.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Explanation {
    /// The value of every rule in the phase package for this input (helper rules included).
    pub rules: serde_json::Value,
    /// Output of `print()` calls made while deciding.
    pub prints: Vec<String>,
    /// Lines of each policy file that were evaluated while deciding (by the interpreter, which
    /// tracks coverage; the decision itself comes from the evaluator that serves).
    pub evaluated_lines: BTreeMap<String, Vec<u32>>,
    /// Which evaluator serves this phase: `compiled`, or `interpreter` and why.
    pub evaluator: String,
}

/// A compiled bundle ready to serve, with a pool of engines so concurrent decisions do not
/// wait for one another (an engine evaluates one decision at a time).
struct ServingBundle {
    revision: String,
    /// Prepared prototype; clones of it skip parsing and analysis.
    engine: Engine,
    phases: BTreeMap<Phase, DeclaredRules>,
    /// Per phase: its RVM program, or why the interpreter engines of `engines` serve it.
    compiled: BTreeMap<Phase, Result<CompiledPhase, String>>,
    engines: Pool<Engine>,
    source: BundleSource,
}

impl ServingBundle {
    fn build(
        dir: &Path,
        extra_data: &[PathBuf],
        options: &PolicyOptions,
    ) -> Result<ServingBundle, PolicyError> {
        let source = BundleSource::read(dir, extra_data)?;
        let compiled = source.compile(false)?;
        if options.run_tests {
            // The tests describe the bundle, so they run against its own data; the operator's
            // extra data configures one deployment and may rightly change what they observe.
            let report = test_runner::run(
                &source.without_extra_data(),
                &TestOptions {
                    time_budget: options.test_time_budget,
                    ..TestOptions::default()
                },
            )?;
            let failures = report.failure_summaries();
            if !failures.is_empty() {
                return Err(PolicyError::TestsFailed { failures });
            }
        }
        let compiled_phases = compiled
            .phases
            .keys()
            .map(|&phase| {
                let program = match options.evaluator {
                    Evaluator::Interpreter => Err("policy.evaluator = \"interpreter\"".to_string()),
                    Evaluator::Compiled => {
                        CompiledPhase::compile(&compiled.engine, &decision_rule(phase))
                    }
                };
                if let (Evaluator::Compiled, Err(reason)) = (options.evaluator, &program) {
                    tracing::info!(
                        phase = phase.as_str(),
                        %reason,
                        "policy phase served by the interpreter: regorus cannot compile it"
                    );
                }
                (phase, program)
            })
            .collect();
        Ok(ServingBundle {
            revision: source.revision.clone(),
            engines: Pool::new(vec![compiled.engine.clone()]),
            engine: compiled.engine,
            phases: compiled.phases,
            compiled: compiled_phases,
            source,
        })
    }

    /// `compiled` or `interpreter (<why>)`: how `phase` is served.
    fn evaluator_of(&self, phase: Phase) -> String {
        match self.compiled.get(&phase) {
            Some(Ok(_)) => "compiled".to_string(),
            Some(Err(reason)) => format!("interpreter ({reason})"),
            None => "none (no package for this phase)".to_string(),
        }
    }

    fn decide(&self, phase: Phase, input: &serde_json::Value, options: &PolicyOptions) -> Decision {
        let start = Instant::now();
        let outcome = match self.compiled.get(&phase) {
            Some(Ok(program)) => self.evaluate(phase, input, options, start, |input| {
                program.evaluate(input, options.time_budget)
            }),
            Some(Err(_)) | None => {
                let mut engine = self.take_engine();
                let outcome = self.evaluate(phase, input, options, start, |input| {
                    interpret(&mut engine, phase, input, options.time_budget)
                });
                // An engine that saw an error or a timeout is dropped rather than reused.
                if outcome.is_ok() {
                    self.engines.give_back(engine);
                }
                outcome
            }
        };
        outcome.unwrap_or_else(|cause| self.failed(phase, cause, start))
    }

    /// An idle engine from the pool, or a new one. New engines are compiled from source rather
    /// than cloned, so engines on different threads share no reference-counted AST or data
    /// nodes (whose atomic counts every evaluation touches). A design choice, not a measured
    /// win: this machine could not measure multi-core scaling cleanly.
    fn take_engine(&self) -> Engine {
        self.engines.take().unwrap_or_else(|| {
            self.source
                .compile(false)
                .map(|c| c.engine)
                .unwrap_or_else(|_| self.engine.clone())
        })
    }

    fn failed(&self, phase: Phase, cause: String, start: Instant) -> Decision {
        Decision::policy_error(phase, &self.revision, cause, micros(start.elapsed()))
    }

    fn explain(
        &self,
        phase: Phase,
        input: &serde_json::Value,
        options: &PolicyOptions,
    ) -> (Decision, Explanation) {
        let decision = self.decide(phase, input, options);
        let mut engine = self.engine.clone();
        engine.set_gather_prints(true);
        engine.set_enable_coverage(true);
        // The interpreter runs the same evaluation again to collect what it can report.
        let interpreted = self.evaluate(phase, input, options, Instant::now(), |input| {
            interpret(&mut engine, phase, input, options.time_budget)
        });
        let mut explanation = Explanation {
            evaluator: self.evaluator_of(phase),
            ..Explanation::default()
        };
        if interpreted.is_ok() && self.phases.contains_key(&phase) {
            // The same input is still set; evaluating the whole package shows helper rules too.
            let query = format!("data.{}", phase.package());
            if let Ok(results) = engine.eval_query(query, false)
                && let Some(value) = results
                    .result
                    .first()
                    .and_then(|r| r.expressions.first())
                    .map(|e| e.value.clone())
            {
                explanation.rules = serde_json::to_value(&value).unwrap_or_default();
            }
        }
        explanation.prints = engine.take_prints().unwrap_or_default();
        if let Ok(report) = engine.get_coverage_report() {
            for file in report.files {
                if !file.covered.is_empty() && file.path != DECISION_FILE {
                    explanation
                        .evaluated_lines
                        .insert(file.path, file.covered.into_iter().collect());
                }
            }
        }
        (decision, explanation)
    }

    /// Checks the input, derives `input.nodes`, runs `evaluate_rule` on it for the phase's
    /// decision rule (a set of `[name, value]` pairs) and reads the decision out of it.
    /// `Err` is the cause of a policy error (the decision is then a deny).
    fn evaluate(
        &self,
        phase: Phase,
        input: &serde_json::Value,
        options: &PolicyOptions,
        start: Instant,
        evaluate_rule: impl FnOnce(regorus::Value) -> Result<regorus::Value, String>,
    ) -> Result<Decision, String> {
        let Some(declared) = self.phases.get(&phase) else {
            return Err(format!(
                "bundle defines no {} package, so every {phase} decision is a deny",
                phase.package()
            ));
        };
        check_input(phase, input, options.max_input_bytes)?;
        let mut input = <regorus::Value as Deserialize>::deserialize(input)
            .map_err(|e| format!("input cannot be converted: {e}"))?;
        nodes::derive(&mut input)?;
        let pairs = evaluate_rule(input)?;
        let value_of = |name: &str, declared: bool| {
            declared.then(|| {
                let found = match &pairs {
                    regorus::Value::Set(pairs) => pairs.iter().find_map(|pair| {
                        (pair[0] == regorus::Value::from(name)).then(|| pair[1].clone())
                    }),
                    _ => None,
                };
                found.unwrap_or(regorus::Value::Undefined)
            })
        };
        let values = RuleValues {
            allow: value_of("allow", declared.allow),
            deny: value_of("deny", declared.deny),
            limits: value_of("limits", declared.limits),
            redact: value_of("redact", declared.redact),
            env: value_of("env", declared.env),
            inject: value_of("inject", declared.inject),
            labels: value_of("labels", declared.labels),
            ask: value_of("ask", declared.ask),
        };
        Ok(values.into_decision(phase, &self.revision, micros(start.elapsed())))
    }
}

/// The rule a phase's decision is read from (generated by `bundle::decision_module`).
fn decision_rule(phase: Phase) -> String {
    format!("data.{DECISION_PACKAGE}.{phase}")
}

/// Evaluates the phase's decision rule with the interpreter.
fn interpret(
    engine: &mut Engine,
    phase: Phase,
    input: regorus::Value,
    budget: Duration,
) -> Result<regorus::Value, String> {
    engine.set_input(input);
    engine.set_execution_timer_config(budget::timer(budget));
    engine
        .eval_rule(decision_rule(phase))
        .map_err(|e| describe_error(&e, budget))
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX)
}

/// Turns an evaluation error into a deny reason: a timeout says so plainly, anything else keeps
/// regorus's message (which carries the file and line of the failing expression).
fn describe_error(error: &anyhow::Error, budget: Duration) -> String {
    let timed_out = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<LimitError>(),
            Some(LimitError::TimeLimitExceeded { .. })
        )
    });
    if timed_out {
        budget::exceeded(budget)
    } else {
        format!("evaluation failed: {}", super::error::one_line(error))
    }
}

/// Rejects inputs that are not objects, claim another phase, or are too large to evaluate.
fn check_input(phase: Phase, input: &serde_json::Value, max_bytes: usize) -> Result<(), String> {
    let Some(object) = input.as_object() else {
        return Err(format!(
            "input must be a JSON object, got {}",
            json_type_name(input)
        ));
    };
    if let Some(claimed) = object.get("phase")
        && claimed.as_str() != Some(phase.as_str())
    {
        return Err(format!(
            "input.phase is {claimed} but the decision is for phase {phase:?}",
            phase = phase.as_str()
        ));
    }
    let mut counter = ByteCounter {
        written: 0,
        limit: max_bytes,
    };
    if serde_json::to_writer(&mut counter, input).is_err() {
        return Err(format!(
            "input too large: more than {max_bytes} bytes of JSON"
        ));
    }
    Ok(())
}

fn json_type_name(value: &serde_json::Value) -> &'static str {
    type_name(&match value {
        serde_json::Value::Null => regorus::Value::Null,
        serde_json::Value::Bool(b) => regorus::Value::Bool(*b),
        serde_json::Value::Number(_) => regorus::Value::from(0u64),
        serde_json::Value::String(_) => regorus::Value::from(""),
        serde_json::Value::Array(_) => regorus::Value::new_array(),
        serde_json::Value::Object(_) => regorus::Value::new_object(),
    })
}

/// Counts serialized bytes and stops serialization once past the limit, so measuring a huge
/// input costs at most `limit` bytes of work and no allocation.
struct ByteCounter {
    written: usize,
    limit: usize,
}

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.written = self.written.saturating_add(buf.len());
        if self.written > self.limit {
            return Err(std::io::Error::other("input too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
