//! The call pipeline, in one place: every tool call — from MCP or from `gatehouse call` — goes
//! through [`Gateway::call`]:
//!
//! 1. build the policy input (caller, tool, component digest, arguments);
//! 2. policy phase `call` → allow or deny, with reasons and limits;
//! 3. commit the verdict to the audit log — no audit row, no call;
//! 4. run the function in a fresh instance inside the limits, every outgoing request, socket
//!    and file operation decided and recorded as it happens (`inflight`);
//! 5. policy phase `result` on what the tool returned (it may withhold it);
//! 6. commit the outcome once every in-flight record is committed, then answer the agent.
//!
//! Every failure on this path denies: a policy error is a deny (the policy store guarantees
//! it), an audit write failure refuses the call or withholds the result.

mod admission;
mod inflight;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use wasmtime::component::Val;

use crate::audit::{AuditLog, AuditSink, NewEntry};
use crate::config::{ComponentConfig, Config, DriftAction, LimitsConfig, SupplyChainConfig};
use crate::host::http::{HttpSettings, RequestMasking};
use crate::host::{CallHost, HostConfig};
use crate::identity::Caller;
use crate::policy::{Decision, Phase, PolicyStore};
use crate::policy_input::{self, ToolDoc};
use crate::runtime::component::default_component_name;
use crate::runtime::{
    CallError, CallLimits, ComponentSpec, ExportedFunction, LoadError, LoadedComponent, Runtime,
    RuntimeError, RuntimeOptions,
};
use crate::supply::pins::{PinCheck, PinStore, definition_hash};
use crate::supply::{Fetcher, SupplyError};
use crate::wit_json::{self, FuncSignature, WitType};
pub use admission::{Admission, MAX_CALLS_PER_MINUTE, RATE_WINDOW, Ticket};
pub use inflight::{InFlight, Tally};

/// A tool: one exported function of one loaded component.
#[derive(Clone)]
pub struct Tool {
    pub component: Arc<LoadedComponent>,
    index: usize,
    /// Its definition differs from the pinned one and `on_drift = "allow"` offered it anyway
    /// (`input.tool.definition_changed`).
    pub definition_changed: bool,
}

impl Tool {
    /// Every tool of a component.
    pub fn all(component: &Arc<LoadedComponent>) -> impl Iterator<Item = Tool> + '_ {
        (0..component.functions.len()).map(|index| Tool {
            component: component.clone(),
            index,
            definition_changed: false,
        })
    }

    /// What an agent is shown for this tool, as JSON: what a definition pin covers.
    pub fn definition(&self) -> Value {
        serde_json::to_value(crate::mcp::describe_tool(self)).unwrap_or_default()
    }

    pub fn function(&self) -> &ExportedFunction {
        &self.component.functions[self.index]
    }

    pub fn name(&self) -> &str {
        &self.function().tool_name
    }
}

/// What an agent gets back from a call.
#[derive(Debug)]
pub enum CallResult {
    /// The function ran. `is_error` is set when it returned the `err` case of a top-level
    /// `result`, which is the tool reporting failure in its own words.
    Completed {
        structured: Option<Value>,
        text: String,
        is_error: bool,
    },
    /// The call was not run: the arguments do not fit the function's signature.
    InvalidArguments(String),
    /// The call was not run: no tool has this name (or the caller may not see it).
    UnknownTool(String),
    /// The call was not run, or its result is withheld: the policy denied it.
    Denied { reasons: Vec<String> },
    /// The call was not run, or its result is withheld: the audit log could not record a step
    /// of it (fail closed). The text names the step and the log's error.
    Unrecorded(String),
    /// The function was started but stopped: a trap or a limit.
    Failed(CallError),
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Config(String),
    #[error("policy bundle: {0}")]
    Policy(#[from] crate::policy::PolicyError),
    #[error("audit log: {0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("two components are named `{0}`; give one of them another `name`")]
    DuplicateComponent(String),
    #[error(transparent)]
    Supply(#[from] SupplyError),
    #[error(transparent)]
    Pins(#[from] crate::supply::pins::PinError),
}

/// The components and tools being served. Replaced as a whole on reload; a call holds the
/// `Arc` it started with, so it finishes on the version it began on.
#[derive(Default)]
pub struct Catalog {
    pub components: Vec<Arc<LoadedComponent>>,
    pub tools: BTreeMap<String, Tool>,
    /// Tools whose definition drifted from their pin, held back until accepted.
    pub withheld: BTreeMap<String, Withheld>,
}

/// A tool held back because its definition changed.
#[derive(Clone)]
pub struct Withheld {
    pub tool: Tool,
    pub definition: String,
    pub pinned: String,
}

/// The loaded tools and the runtime that runs them.
pub struct Gateway {
    runtime: Runtime,
    catalog: RwLock<Arc<Catalog>>,
    /// One reload at a time.
    reloading: Mutex<()>,
    supply: SupplyChainConfig,
    fetcher: Fetcher,
    pins: PinStore,
    limits: LimitsConfig,
    slots: Semaphore,
    /// Per-principal rate and concurrency, per-component concurrency.
    admission: Admission,
    /// Environment variables each component always gets (from `[env]`).
    component_env: RwLock<HashMap<String, Vec<(String, String)>>>,
    /// The `[env]` pool the policy's `env` obligation may grant from.
    env_pool: RwLock<BTreeMap<String, String>>,
    policy: PolicyStore,
    /// The log itself: supply records, closing, rotation.
    audit: AuditLog,
    /// Where the call pipeline records (the same log, unless a test substitutes a sink).
    sink: Arc<dyn AuditSink>,
}

impl Gateway {
    /// Loads the policy bundle, opens the audit log, builds the runtime and loads every
    /// component the configuration names. Any failure refuses to start.
    pub fn from_config(config: &Config) -> Result<Gateway, GatewayError> {
        Admission::validate(&config.limits).map_err(GatewayError::Config)?;
        let policy = PolicyStore::load(
            config.policy.dir(),
            &config.policy.data,
            crate::policy::PolicyOptions {
                evaluator: config.policy.evaluator,
                ..Default::default()
            },
        )?;
        let audit = AuditLog::open(
            &config.audit.path(),
            crate::audit::AuditConfig {
                signing_key: config.audit.signing_key.clone(),
                key_dir: config.audit.key_dir.clone(),
                checkpoint_file: config.audit.checkpoint_file.clone(),
                checkpoint_every: config.audit.checkpoint_every,
                checkpoint_interval: std::time::Duration::from_secs(
                    config.audit.checkpoint_interval_secs,
                ),
                synchronous: config.audit.synchronous,
                ..Default::default()
            },
        )?;
        let runtime = Self::runtime_for(config)?;
        let gateway = Gateway::new(runtime, config, policy, audit)?;
        gateway.grant_env(&config.env, &config.components)?;
        Ok(gateway)
    }

    /// Sets the environment each component may be given: its `env` keys from the `[env]`
    /// table always, and any key of the table per call when the policy's `env` obligation
    /// names it. A component naming a key the table lacks refuses to start.
    pub fn grant_env(
        &self,
        pool: &BTreeMap<String, String>,
        components: &[ComponentConfig],
    ) -> Result<(), GatewayError> {
        let mut granted = HashMap::new();
        for config in components {
            let name = component_name(config);
            let vars = config
                .env
                .iter()
                .map(|key| match pool.get(key) {
                    Some(value) => Ok((key.clone(), value.clone())),
                    None => Err(GatewayError::Config(format!(
                        "component `{name}` asks for environment variable `{key}`, which the [env] table does not define"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?;
            granted.insert(name, vars);
        }
        *self
            .component_env
            .write()
            .unwrap_or_else(|e| e.into_inner()) = granted;
        *self.env_pool.write().unwrap_or_else(|e| e.into_inner()) = pool.clone();
        Ok(())
    }

    /// The runtime a configuration describes (also used by `gatehouse tools`, which runs
    /// nothing and so needs no policy or audit log).
    pub fn runtime_for(config: &Config) -> Result<Runtime, GatewayError> {
        let millis = std::time::Duration::from_millis;
        let http = HttpSettings::new(
            millis(config.http.connect_timeout_ms),
            millis(config.http.first_byte_timeout_ms),
            millis(config.http.between_bytes_timeout_ms),
            config.http.max_response_bytes,
        )
        .with_masking(RequestMasking {
            masked_headers: config.http.masked_headers.clone(),
            unmasked_query_parameters: config.http.unmasked_query_parameters.clone(),
        });
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: config.cache.resolved_dir(),
            host: HostConfig {
                mounts: config.mounts.clone(),
                http: Arc::new(http),
            },
            max_memory_bytes: config.limits.memory_bytes,
            max_concurrent_calls: config.limits.max_concurrent_calls,
            fuel: config.limits.fuel > 0,
        })?;
        Ok(runtime)
    }

    /// Loads every configured component through the supply-chain checks; any failure refuses
    /// to start, naming the component (and is recorded in the audit log first).
    pub fn new(
        runtime: Runtime,
        config: &Config,
        policy: PolicyStore,
        audit: AuditLog,
    ) -> Result<Gateway, GatewayError> {
        let gateway = Gateway {
            fetcher: Fetcher::new(&config.supply_chain, config.cache.resolved_dir()),
            pins: PinStore::new(config.pins_path()),
            supply: config.supply_chain.clone(),
            runtime,
            catalog: RwLock::new(Arc::new(Catalog::default())),
            reloading: Mutex::new(()),
            slots: Semaphore::new(config.limits.max_concurrent_calls as usize),
            admission: Admission::new(&config.limits),
            component_env: RwLock::new(HashMap::new()),
            env_pool: RwLock::new(BTreeMap::new()),
            limits: config.limits.clone(),
            policy,
            sink: Arc::new(audit.clone()),
            audit,
        };
        let catalog = (|| {
            let mut loaded: Vec<Arc<LoadedComponent>> = Vec::new();
            for component in &config.components {
                let loaded_one = gateway.load_checked(component, &loaded)?;
                loaded.push(Arc::new(loaded_one));
            }
            gateway.build_catalog(loaded)
        })();
        match catalog {
            Ok(catalog) => {
                *gateway.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
                Ok(gateway)
            }
            Err(error) => {
                // Seal what was recorded (the refusal included) and release the log's lock
                // before reporting, so that a corrected start can open it at once.
                if let Err(close) = gateway.audit.close() {
                    tracing::error!(error = %close, "closing the audit log failed");
                }
                Err(error)
            }
        }
    }

    /// Loads one component: supply-chain checks, then compile and link. Records the load or
    /// its refusal in the audit log (phase `supply`).
    fn load_checked(
        &self,
        config: &ComponentConfig,
        others: &[Arc<LoadedComponent>],
    ) -> Result<LoadedComponent, GatewayError> {
        let location = config.location();
        let name = component_name(config);
        let result = (|| {
            if others.iter().any(|c| c.name == name) {
                return Err(GatewayError::DuplicateComponent(name.clone()));
            }
            let prepared = crate::supply::prepare(config, &self.supply, &self.fetcher)?;
            if let Some(reason) = &prepared.unsigned_reason {
                tracing::warn!(component = %name, %reason, "component loaded unsigned");
            }
            let component = self.runtime.load(&ComponentSpec {
                name: &name,
                path: &prepared.local_path,
                expected_digest: config.sha256.as_deref(),
                exclude: &config.exclude,
                prepared: Some(&prepared),
            })?;
            Ok(component)
        })();
        let (verdict, digest, reasons, detail) = match &result {
            Ok(component) => (
                "loaded",
                Some(component.digest.clone()),
                Vec::new(),
                serde_json::to_value(&component.provenance).unwrap_or_default(),
            ),
            Err(error) => {
                tracing::error!(component = %name, %error, "component refused");
                (
                    "refused",
                    None,
                    vec![error.to_string()],
                    serde_json::json!({"source": location}),
                )
            }
        };
        let input = serde_json::json!({"event": "load", "component": name, "provenance": detail});
        self.record_supply(verdict, None, digest, input, reasons)?;
        result
    }

    /// Builds the tool map of a set of components, checking every tool's definition against
    /// its pin; drifted tools are withheld (or flagged, with `on_drift = "allow"`).
    fn build_catalog(
        &self,
        components: Vec<Arc<LoadedComponent>>,
    ) -> Result<Catalog, GatewayError> {
        // Tool names are `<component>_…` and component names are unique and contain no `_`,
        // so names from different components cannot collide.
        let tools: Vec<Tool> = components.iter().flat_map(Tool::all).collect();
        let definitions: Vec<(String, String, String)> = tools
            .iter()
            .map(|tool| {
                (
                    tool.name().to_owned(),
                    definition_hash(&tool.definition()),
                    tool.component.digest.clone(),
                )
            })
            .collect();
        let checks = self.pins.check(&definitions)?;
        let mut catalog = Catalog {
            components,
            ..Catalog::default()
        };
        for ((mut tool, (name, definition, digest)), check) in
            tools.into_iter().zip(definitions).zip(checks)
        {
            match check {
                PinCheck::Same => {}
                PinCheck::New => {
                    let input = serde_json::json!({"event": "pin", "definition": definition});
                    self.record_supply("pinned", Some(&name), Some(digest), input, Vec::new())?;
                }
                PinCheck::Drift { pinned } => {
                    let withhold = self.supply.on_drift == DriftAction::Withhold;
                    let reason = format!(
                        "tool definition changed: pinned {pinned}, now {definition}; {}",
                        if withhold {
                            format!(
                                "withheld until `gatehouse component accept {name}` (pins: {})",
                                self.pins.path().display()
                            )
                        } else {
                            "offered anyway (on_drift = \"allow\")".to_owned()
                        }
                    );
                    tracing::warn!(tool = %name, %reason, "tool definition drift");
                    let input = serde_json::json!({
                        "event": "drift", "pinned": pinned, "definition": definition,
                        "withheld": withhold, "new": tool.definition(),
                    });
                    self.record_supply("drift", Some(&name), Some(digest), input, vec![reason])?;
                    if withhold {
                        catalog.withheld.insert(
                            name,
                            Withheld {
                                tool,
                                definition,
                                pinned,
                            },
                        );
                        continue;
                    }
                    tool.definition_changed = true;
                }
            }
            catalog.tools.insert(name, tool);
        }
        Ok(catalog)
    }

    /// Appends a `supply` entry; a supply event that cannot be recorded stops the load.
    fn record_supply(
        &self,
        verdict: &str,
        tool: Option<&str>,
        digest: Option<String>,
        input: Value,
        reasons: Vec<String>,
    ) -> Result<(), GatewayError> {
        let mut entry = NewEntry::new(
            "supply",
            verdict,
            serde_json::json!({"principal": "gatehouse", "transport": "internal", "client": "gatehouse", "authenticated": true}),
            input,
        );
        entry.tool = tool.map(str::to_owned);
        entry.component_digest = digest;
        entry.reasons = reasons;
        self.audit.append_blocking(entry)?;
        Ok(())
    }

    /// Replaces the served components with `components`, as a whole: each new or changed
    /// component goes through the digest, signature and drift checks first. A component that
    /// fails keeps its previous version (if any) and the failure is logged and audited. Calls
    /// already running finish on the version they started with. Blocking (compiles, may
    /// download): run it off the async executor.
    pub fn reload_components(
        &self,
        components: &[ComponentConfig],
    ) -> Result<ReloadReport, GatewayError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.catalog();
        let mut report = ReloadReport::default();
        let mut loaded: Vec<Arc<LoadedComponent>> = Vec::new();
        for config in components {
            match self.load_checked(config, &loaded) {
                Ok(component) => {
                    let previous = current.components.iter().find(|c| c.name == component.name);
                    match previous {
                        Some(previous) if previous.digest == component.digest => {
                            loaded.push(previous.clone());
                        }
                        Some(_) => {
                            report.replaced.push(component.name.clone());
                            loaded.push(Arc::new(component));
                        }
                        None => {
                            report.added.push(component.name.clone());
                            loaded.push(Arc::new(component));
                        }
                    }
                }
                Err(GatewayError::Audit(error)) => return Err(GatewayError::Audit(error)),
                Err(error) => {
                    report.refused.push(error.to_string());
                    // Keep the version already served under the name this entry would have.
                    let name = component_name(config);
                    if let Some(previous) = current.components.iter().find(|c| c.name == name)
                        && !loaded.iter().any(|c| c.name == name)
                    {
                        loaded.push(previous.clone());
                    }
                }
            }
        }
        report.removed = current
            .components
            .iter()
            .filter(|c| !loaded.iter().any(|l| l.name == c.name))
            .map(|c| c.name.clone())
            .collect();
        let catalog = self.build_catalog(loaded)?;
        report.withheld = catalog.withheld.keys().cloned().collect();
        let pool = self
            .env_pool
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Err(error) = self.grant_env(&pool, components) {
            report.refused.push(error.to_string());
        }
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
        tracing::info!(?report, "components reloaded");
        Ok(report)
    }

    /// Re-reads the pin file: withheld tools whose definition an operator accepted are offered
    /// from now on (and the acceptance is recorded). Returns the tools released.
    pub fn refresh_pins(&self) -> Result<Vec<String>, GatewayError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.catalog();
        if current.withheld.is_empty() {
            return Ok(Vec::new());
        }
        let pins = self.pins.read()?;
        let released: Vec<String> = current
            .withheld
            .iter()
            .filter(|(name, w)| {
                pins.tools
                    .get(*name)
                    .is_some_and(|p| p.definition == w.definition)
            })
            .map(|(name, _)| name.clone())
            .collect();
        if released.is_empty() {
            return Ok(released);
        }
        let mut catalog = Catalog {
            components: current.components.clone(),
            tools: current.tools.clone(),
            withheld: current.withheld.clone(),
        };
        for name in &released {
            if let Some(withheld) = catalog.withheld.remove(name) {
                let input = serde_json::json!({"event": "accept", "previous": withheld.pinned, "definition": withheld.definition});
                self.record_supply(
                    "accepted",
                    Some(name),
                    Some(withheld.tool.component.digest.clone()),
                    input,
                    Vec::new(),
                )?;
                tracing::info!(tool = %name, "changed tool definition accepted; tool offered again");
                catalog.tools.insert(name.clone(), withheld.tool);
            }
        }
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(catalog);
        Ok(released)
    }

    /// The pin file the gateway reads (and `gatehouse component accept` writes).
    pub fn pins(&self) -> &PinStore {
        &self.pins
    }

    /// What decides whether an allowed call may start now (rates and concurrency).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The catalog being served now.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn policy(&self) -> &PolicyStore {
        &self.policy
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// Records calls and listings through `sink` from now on instead of the audit log itself,
    /// so that a test can make recording fail and watch the pipeline fail closed. `sink` must
    /// record into this gateway's log (wrap [`Gateway::audit`]) — see [`AuditSink`].
    pub fn with_audit_sink(mut self, sink: Arc<dyn AuditSink>) -> Gateway {
        self.sink = sink;
        self
    }

    pub fn components(&self) -> Vec<Arc<LoadedComponent>> {
        self.catalog().components.clone()
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The tools a caller may see (phase `list`), in name order. The listing is recorded as
    /// one audit entry; if it cannot be, the caller sees nothing.
    pub async fn tools(&self, caller: &Caller) -> Vec<Tool> {
        let time = now();
        let catalog = self.catalog();
        let mut visible = Vec::new();
        let mut hidden = Vec::new();
        let mut revision = None;
        for tool in catalog.tools.values() {
            let input = policy_input::list_input(&time, caller, &tool_doc(tool));
            let decision = self.policy.decide(Phase::List, &input);
            revision.get_or_insert_with(|| decision.revision.clone());
            if decision.is_allowed() {
                visible.push(tool.clone());
            } else {
                hidden.push(serde_json::json!({"tool": tool.name(), "reasons": decision.reasons}));
            }
        }
        let mut entry = NewEntry::new(
            "list",
            "allow",
            serde_json::to_value(caller).unwrap_or_default(),
            serde_json::json!({"phase": "list", "time": time, "caller": caller}),
        );
        entry.policy_revision = revision;
        entry.obligations = serde_json::json!({
            "visible": visible.iter().map(|t| t.name()).collect::<Vec<_>>(),
            "hidden": hidden,
        });
        match self.sink.append(entry).await {
            Ok(_) => visible,
            Err(error) => {
                tracing::error!(%error, "cannot record a tool listing; listing nothing");
                Vec::new()
            }
        }
    }

    /// Looks a tool up by name, without any policy check (for the local CLI).
    pub fn tool(&self, name: &str) -> Option<Tool> {
        self.catalog().tools.get(name).cloned()
    }

    /// Calls a tool with JSON arguments, as an agent does.
    pub async fn call(
        &self,
        caller: &Caller,
        tool_name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> CallResult {
        // The tool holds its component's `Arc`: a reload during the call does not affect it.
        let Some(tool) = self.tool(tool_name) else {
            return CallResult::UnknownTool(tool_name.to_owned());
        };
        let tool = &tool;
        // The transports bound the request size (`limits.max_argument_bytes`), and the policy
        // store bounds its input, so the arguments are not measured again here.
        let (arguments, params) =
            policy_input::call_arguments(&tool.function().signature, arguments);
        self.run(caller, tool, arguments, params).await
    }

    /// Calls a tool with component values already typed against its signature (`gatehouse
    /// call` with WAVE arguments); the policy sees them as JSON.
    pub async fn call_values(&self, caller: &Caller, tool: &Tool, params: Vec<Val>) -> CallResult {
        let signature = &tool.function().signature;
        let arguments = signature
            .params
            .iter()
            .zip(&params)
            .map(|(param, val)| {
                wit_json::val_to_json(&param.ty, val).map(|json| (param.name.clone(), json))
            })
            .collect::<Result<Map<String, Value>, _>>();
        match arguments {
            Ok(arguments) => {
                self.run(caller, tool, Value::Object(arguments), Ok(params))
                    .await
            }
            Err(error) => CallResult::InvalidArguments(error.to_string()),
        }
    }

    /// Steps 1–6 of the pipeline. `params` is the converted arguments, or why they did not
    /// convert: the call is decided and recorded either way, so auditors see bad attempts too.
    async fn run(
        &self,
        caller: &Caller,
        tool: &Tool,
        arguments: Value,
        params: Result<Vec<Val>, String>,
    ) -> CallResult {
        let record = CallRecord::new(caller, tool);
        let call_id = record.call_id.clone();
        let function = tool.function();
        let input = policy_input::call_input(&call_id, &now(), caller, &tool_doc(tool), arguments);
        let decision = self.policy.decide(Phase::Call, &input);
        // An allowed call over a rate or concurrency limit is recorded as denied, with the limit.
        let admission = decision.is_allowed().then(|| {
            let rate = decision.limits.calls_per_minute;
            self.admission
                .admit(&caller.principal, &tool.component.name, rate)
        });
        let refusal = admission.as_ref().and_then(|a| a.as_ref().err());
        // Taken once: every decision made later in the call (http, fs, socket, result) carries
        // these fields; the full input then moves into the verdict's record.
        let shared_input = Arc::new(policy_input::shared_call_fields(&input));
        let label = refusal.map_or(decision.verdict.as_str(), |_| "deny");
        let mut verdict = record.entry("call", label, input, decision.revision.clone());
        verdict.reasons = refusal.map_or_else(|| decision.reasons.clone(), |r| vec![r.to_string()]);
        verdict.redact = decision.redact.clone();
        verdict.obligations = serde_json::json!({
            "limits": decision.limits, "redact": decision.redact, "env": decision.env,
        });
        verdict.metrics = serde_json::json!({"eval_us": decision.eval_micros});
        if let Err(error) = self.sink.append(verdict).await {
            tracing::error!(%call_id, %error, "cannot record the call verdict; refusing the call");
            return CallResult::Unrecorded(format!(
                "the audit log cannot record this call ({error}); calls are refused until it can"
            ));
        }
        let finish = |result, duration, tally, earlier| {
            self.finish(&record, &decision, result, duration, tally, earlier)
        };
        if !decision.is_allowed() {
            tracing::info!(%call_id, tool = tool.name(), principal = %caller.principal, reasons = ?decision.reasons, "call denied by policy");
            let result = CallResult::Denied {
                reasons: decision.reasons.clone(),
            };
            return finish(result, None, None, Vec::new()).await;
        }
        let _admitted = match admission.expect("an allowed call went through admission") {
            Ok(ticket) => ticket,
            Err(refusal) => {
                tracing::info!(%call_id, tool = tool.name(), principal = %caller.principal, %refusal, "call refused by a limit");
                return finish(CallResult::Failed(refusal), None, None, Vec::new()).await;
            }
        };
        let params = match params {
            Ok(params) => params,
            Err(message) => {
                return finish(
                    CallResult::InvalidArguments(message),
                    None,
                    None,
                    Vec::new(),
                )
                .await;
            }
        };
        let limits = match self.limits_for(&decision) {
            Ok(limits) => limits,
            Err(reason) => {
                let result = CallResult::Denied {
                    reasons: vec![reason],
                };
                return finish(result, None, None, Vec::new()).await;
            }
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the call semaphore is never closed");

        let inflight = self.in_flight(&record, shared_input.clone(), &decision.redact);
        let host = CallHost {
            guard: inflight.clone(),
            max_requests: limits.max_requests,
            env: self.env_for(tool, &decision),
        };
        let started = std::time::Instant::now();
        let result = match self
            .runtime
            .call(&tool.component, function, &params, &limits, host)
            .await
            .and_then(|result| shape_result(&function.signature, result, &limits))
        {
            Ok(result) => {
                self.check_result(&record, &shared_input, &decision.redact, result)
                    .await
            }
            Err(error) => CallResult::Failed(error),
        };
        let elapsed = started.elapsed();
        // Every decision made while the tool ran must be in the log before the agent hears:
        // the records are awaited together with the outcome, so they share its commit.
        let closed = inflight.close();
        match closed.unrecorded {
            None => {
                let tally = Some(closed.tally);
                finish(result, Some(elapsed), tally, closed.pending).await
            }
            Some(error) => {
                tracing::error!(%call_id, %error, "cannot record the call's in-flight decisions; withholding the result");
                let result = CallResult::Unrecorded(format!(
                    "the audit log cannot record what this call did ({error}); the result is withheld"
                ));
                finish(result, Some(elapsed), None, closed.pending).await
            }
        }
    }

    fn in_flight(
        &self,
        record: &CallRecord,
        shared_input: Arc<Map<String, Value>>,
        redact: &[String],
    ) -> Arc<InFlight> {
        Arc::new(InFlight::new(
            self.policy.clone(),
            self.sink.clone(),
            record.clone(),
            shared_input,
            redact.to_vec(),
        ))
    }

    /// The guard a call of `tool` by `caller` with `arguments` runs under once allowed: its
    /// host requests decided by this gateway's policy and recorded in its audit log. For
    /// measuring and testing the host layer on its own (`benches/interception.rs`).
    pub fn guard_for(&self, caller: &Caller, tool: &Tool, arguments: Value) -> Arc<InFlight> {
        let record = CallRecord::new(caller, tool);
        let input =
            policy_input::call_input(&record.call_id, &now(), caller, &tool_doc(tool), arguments);
        self.in_flight(
            &record,
            Arc::new(policy_input::shared_call_fields(&input)),
            &[],
        )
    }

    /// Step 5: the `result` phase, if the bundle defines it, decides whether the agent may see
    /// what the tool returned; its verdict is recorded like every other. `call_redact` are the
    /// call decision's pointers: the record carries the arguments too.
    async fn check_result(
        &self,
        record: &CallRecord,
        shared_input: &Map<String, Value>,
        call_redact: &[String],
        result: CallResult,
    ) -> CallResult {
        let CallResult::Completed {
            structured,
            text,
            is_error,
        } = &result
        else {
            return result;
        };
        if !self.policy.defines(Phase::Result) {
            return result;
        }
        let value = structured
            .as_ref()
            .and_then(|s| s.get("result"))
            .cloned()
            .unwrap_or(Value::Null);
        let input = policy_input::phase_input(
            shared_input,
            "result",
            &now(),
            "result",
            serde_json::json!({"ok": !is_error, "size": text.len(), "value": value}),
        );
        let decision = self.policy.decide(Phase::Result, &input);
        let label = decision.verdict.as_str();
        let (result, masked) = if decision.is_allowed() {
            mask_answer(result, &decision.redact)
        } else {
            (result, Vec::new())
        };
        // The log keeps what was decided about the result, not the result: a tool's output
        // can be large and can echo secrets no pointer names. Its keyed digest (the writer
        // masks the whole value) proves what it was without letting a guess be checked.
        let mut entry = record.entry("result", label, input, decision.revision.clone());
        entry.reasons = decision.reasons.clone();
        entry.redact = call_redact
            .iter()
            .chain(
                decision
                    .redact
                    .iter()
                    .filter(|p| !p.starts_with("/result/")),
            )
            .cloned()
            .chain(std::iter::once(RESULT_VALUE.to_owned()))
            .collect();
        entry.obligations = serde_json::json!({"masked_in_answer": masked});
        entry.metrics = serde_json::json!({"eval_us": decision.eval_micros});
        if let Err(error) = self.sink.append(entry).await {
            return CallResult::Unrecorded(format!(
                "the audit log cannot record the result decision ({error}); the result is withheld"
            ));
        }
        if decision.is_allowed() {
            result
        } else {
            tracing::info!(call_id = %record.call_id, reasons = ?decision.reasons, "result withheld by policy");
            CallResult::Denied {
                reasons: decision
                    .reasons
                    .iter()
                    .map(|r| format!("result withheld: {r}"))
                    .collect(),
            }
        }
    }

    /// The environment of one call: the component's configured variables plus those the
    /// decision's `env` obligation grants from the `[env]` table.
    fn env_for(&self, tool: &Tool, decision: &Decision) -> Vec<(String, String)> {
        let mut env = self
            .component_env
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tool.component.name)
            .cloned()
            .unwrap_or_default();
        for key in &decision.env {
            match self
                .env_pool
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)
            {
                Some(value) if !env.iter().any(|(k, _)| k == key) => {
                    env.push((key.clone(), value.clone()));
                }
                Some(_) => {}
                None => tracing::warn!(
                    key,
                    "the policy grants an environment variable the [env] table does not define; not granted"
                ),
            }
        }
        env
    }

    /// The call's limits: the configured defaults, tightened (never loosened) by the policy.
    /// A fuel limit the engine cannot meter (fuel is off) refuses the call.
    fn limits_for(&self, decision: &Decision) -> Result<CallLimits, String> {
        let tighten =
            |default: u64, policy: Option<u64>| policy.map_or(default, |p| p.min(default));
        let fuel = match (self.limits.fuel, decision.limits.fuel) {
            (0, None) => None,
            (0, Some(_)) => {
                return Err("the policy sets a fuel limit, but fuel metering is off (limits.fuel = 0 in the configuration); refusing to run the call unmetered".into());
            }
            (configured, asked) => Some(tighten(configured, asked)),
        };
        Ok(CallLimits {
            timeout: std::time::Duration::from_millis(tighten(
                self.limits.timeout_ms,
                decision.limits.timeout_ms,
            )),
            memory_bytes: tighten(self.limits.memory_bytes, decision.limits.memory_bytes),
            max_result_bytes: tighten(
                self.limits.max_result_bytes,
                decision.limits.max_result_bytes,
            ),
            fuel,
            max_requests: tighten(self.limits.max_requests, decision.limits.max_requests),
        })
    }

    /// Step 6: records the outcome behind the call's in-flight records (`earlier`); the agent
    /// gets the result only if all of them were committed.
    async fn finish(
        &self,
        record: &CallRecord,
        decision: &Decision,
        result: CallResult,
        duration: Option<std::time::Duration>,
        tally: Option<inflight::Tally>,
        earlier: Vec<crate::audit::PendingAppend>,
    ) -> CallResult {
        let call_id = &record.call_id;
        let (verdict, detail) = match &result {
            CallResult::Completed {
                is_error: false, ..
            } => ("ok", None),
            CallResult::Completed {
                is_error: true,
                text,
                ..
            } => ("tool_error", Some(text.clone())),
            CallResult::Failed(error) => (error.outcome(), Some(error.to_string())),
            CallResult::InvalidArguments(message) => {
                ("error", Some(format!("invalid arguments: {message}")))
            }
            CallResult::Denied { reasons } => ("denied", Some(reasons.join("; "))),
            // Refused like a denial, for the same queries; the reason names the audit log.
            CallResult::Unrecorded(reason) => ("denied", Some(reason.clone())),
            CallResult::UnknownTool(name) => ("error", Some(format!("unknown tool `{name}`"))),
        };
        let kind = match &result {
            CallResult::Failed(error) => Some(error.kind()),
            _ => None,
        };
        let input = serde_json::json!({"phase": "outcome", "time": now(), "call": {"id": call_id}, "outcome": verdict, "kind": kind});
        let mut entry = record.entry("outcome", verdict, input, decision.revision.clone());
        entry.reasons = detail.into_iter().collect();
        entry.metrics = serde_json::json!({
            "duration_us": duration.map(|d| d.as_micros() as u64),
            "in_flight": tally,
        });
        // The outcome is queued behind the call's in-flight records; all of them must commit.
        let failure = match self.sink.submit(entry) {
            Ok(outcome) => {
                inflight::commit_all(earlier.into_iter().chain(std::iter::once(outcome)))
                    .await
                    .err()
            }
            Err(error) => Some(error.to_string()),
        };
        match failure {
            None => {
                tracing::info!(%call_id, tool = %record.tool, outcome = verdict, "tool call finished");
                result
            }
            Some(error) => {
                tracing::error!(%call_id, %error, "cannot record the call; withholding the result");
                CallResult::Unrecorded(format!(
                    "the audit log cannot record this call ({error}); the result is withheld"
                ))
            }
        }
    }
}

/// Who called which tool, under which call id: what every audit entry of a call shares.
#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    call_id: String,
    caller: Value,
    tool: String,
    component_digest: String,
}

impl CallRecord {
    fn new(caller: &Caller, tool: &Tool) -> CallRecord {
        CallRecord {
            call_id: uuid::Uuid::now_v7().to_string(),
            caller: serde_json::to_value(caller).unwrap_or_default(),
            tool: tool.name().to_owned(),
            component_digest: tool.component.digest.clone(),
        }
    }

    /// An audit entry of this call.
    fn entry(&self, phase: &str, verdict: &str, input: Value, revision: String) -> NewEntry {
        let mut entry = NewEntry::new(phase, verdict, self.caller.clone(), input);
        entry.call_id = Some(self.call_id.clone());
        entry.tool = Some(self.tool.clone());
        entry.component_digest = Some(self.component_digest.clone());
        entry.policy_revision = Some(revision);
        entry
    }
}

/// A configured component's name: as given, else from its file (or URL) name.
fn component_name(config: &ComponentConfig) -> String {
    config.name.clone().unwrap_or_else(|| {
        let location = config.location();
        default_component_name(std::path::Path::new(
            location.rsplit('/').next().unwrap_or(&location),
        ))
    })
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub replaced: Vec<String>,
    pub removed: Vec<String>,
    /// Why components were refused (their previous version, if any, is still served).
    pub refused: Vec<String>,
    /// Tools withheld after the reload because their definition drifted.
    pub withheld: Vec<String>,
}

/// The `input.tool` document of the policy contract (policies/README.md).
fn tool_doc(tool: &Tool) -> ToolDoc<'_> {
    let function = tool.function();
    ToolDoc {
        name: tool.name(),
        function: &function.function,
        interface: function.interface.as_deref(),
        component_name: &tool.component.name,
        component_digest: &tool.component.digest,
        component_source: tool.component.provenance.source.as_str().into(),
        component_signed: tool.component.provenance.signed,
        component_signer: serde_json::to_value(&tool.component.provenance.signer)
            .unwrap_or(Value::Null),
        definition_changed: tool.definition_changed,
    }
}

/// The decision time every policy input carries: RFC 3339, UTC, milliseconds.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Converts the returned value to the JSON the agent sees, enforcing the result size limit.
/// The text rendering of a tool's result value, beside its structured form.
fn result_text(is_error: bool, value: &Value) -> String {
    match (is_error, value) {
        (true, Value::Object(err)) => match &err["err"] {
            Value::Null => "the tool reported an error".to_owned(),
            Value::String(message) => format!("the tool reported an error: {message}"),
            other => format!("the tool reported an error: {other}"),
        },
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// Where the `result` phase's input holds the value the tool returned.
const RESULT_VALUE: &str = "/result/value";

/// What replaces a value the `result` phase's `redact` masks in the agent's answer.
pub const REDACTED: &str = "[redacted]";

/// Applies the `result` phase's `redact` pointers that point into the returned value
/// (`/result/value/...`) to what the agent receives: the structured value and its text
/// rendering. Returns the pointers that selected something, for the record.
fn mask_answer(result: CallResult, pointers: &[String]) -> (CallResult, Vec<String>) {
    let CallResult::Completed {
        structured: Some(mut structured),
        text,
        is_error,
    } = result
    else {
        return (result, Vec::new());
    };
    let mut masked = Vec::new();
    for pointer in pointers {
        let Some(inner) = pointer.strip_prefix(RESULT_VALUE) else {
            continue;
        };
        if !(inner.is_empty() || inner.starts_with('/')) {
            continue;
        }
        if let Some(slot) = structured.pointer_mut(&format!("/result{inner}")) {
            *slot = Value::String(REDACTED.to_owned());
            masked.push(pointer.clone());
        }
    }
    let text = if masked.is_empty() {
        text
    } else {
        result_text(is_error, &structured["result"])
    };
    let result = CallResult::Completed {
        structured: Some(structured),
        text,
        is_error,
    };
    (result, masked)
}

fn shape_result(
    signature: &FuncSignature,
    result: Option<Val>,
    limits: &CallLimits,
) -> Result<CallResult, CallError> {
    let structured =
        wit_json::result_to_json(signature, result.as_slice()).map_err(|e| CallError::Trap {
            message: format!("the tool returned a value that does not match its signature: {e}"),
        })?;
    let Some(structured) = structured else {
        return Ok(CallResult::Completed {
            structured: None,
            text: "done (the function returns nothing)".to_owned(),
            is_error: false,
        });
    };
    let value = &structured["result"];
    let is_error =
        matches!(signature.result, Some(WitType::Result { .. })) && value.get("err").is_some();
    let text = result_text(is_error, value);
    let size = text.len() as u64;
    if size > limits.max_result_bytes {
        return Err(CallError::ResultTooLarge {
            limit: limits.max_result_bytes,
            size,
        });
    }
    Ok(CallResult::Completed {
        structured: Some(Value::Object(structured)),
        text,
        is_error,
    })
}
