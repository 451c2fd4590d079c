//! The call pipeline, in one place: every tool call — from MCP or from `gatehouse call` — goes
//! through [`Gateway::call`]:
//!
//! 1. build the policy input (caller, tool, component digest, arguments);
//! 2. policy phase `call` → allow or deny, with reasons and limits;
//! 3. commit the verdict to the audit log — no audit row, no call;
//! 4. run the function in a fresh instance inside the limits;
//! 5. commit the outcome, then answer the agent.
//!
//! Every failure on this path denies: a policy error is a deny (the policy store guarantees
//! it), an audit write failure refuses the call or withholds the result.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use wasmtime::component::Val;

use crate::audit::{AuditLog, NewEntry};
use crate::config::{ComponentConfig, Config, LimitsConfig};
use crate::host::HostConfig;
use crate::host::http::HostAllowlist;
use crate::identity::Caller;
use crate::policy::{Decision, Phase, PolicyStore};
use crate::policy_input::{self, ToolDoc};
use crate::runtime::component::default_component_name;
use crate::runtime::{
    CallError, CallLimits, ComponentSpec, ExportedFunction, LoadError, LoadedComponent, Runtime,
    RuntimeError, RuntimeOptions,
};
use crate::wit_json::{self, FuncSignature, WitType};

/// A tool: one exported function of one loaded component.
#[derive(Clone)]
pub struct Tool {
    pub component: Arc<LoadedComponent>,
    index: usize,
}

impl Tool {
    /// Every tool of a component.
    pub fn all(component: &Arc<LoadedComponent>) -> impl Iterator<Item = Tool> + '_ {
        (0..component.functions.len()).map(|index| Tool {
            component: component.clone(),
            index,
        })
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
    /// The call was not run: the policy denied it, or it could not be recorded.
    Denied { reasons: Vec<String> },
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
}

/// The loaded tools and the runtime that runs them.
pub struct Gateway {
    runtime: Runtime,
    components: Vec<Arc<LoadedComponent>>,
    tools: BTreeMap<String, Tool>,
    limits: LimitsConfig,
    slots: Semaphore,
    policy: PolicyStore,
    audit: AuditLog,
}

impl Gateway {
    /// Loads the policy bundle, opens the audit log, builds the runtime and loads every
    /// component the configuration names. Any failure refuses to start.
    pub fn from_config(config: &Config) -> Result<Gateway, GatewayError> {
        let policy = PolicyStore::load(
            config.policy.dir(),
            &config.policy.data,
            crate::policy::PolicyOptions::default(),
        )?;
        let audit = AuditLog::open(
            &config.audit.path(),
            crate::audit::AuditConfig {
                signing_key: config.audit.signing_key.clone(),
                checkpoint_file: config.audit.checkpoint_file.clone(),
                checkpoint_every: config.audit.checkpoint_every,
                checkpoint_interval: std::time::Duration::from_secs(
                    config.audit.checkpoint_interval_secs,
                ),
                ..Default::default()
            },
        )?;
        let runtime = Self::runtime_for(config)?;
        Gateway::new(
            runtime,
            &config.components,
            config.limits.clone(),
            policy,
            audit,
        )
    }

    /// The runtime a configuration describes (also used by `gatehouse tools`, which runs
    /// nothing and so needs no policy or audit log).
    pub fn runtime_for(config: &Config) -> Result<Runtime, GatewayError> {
        let http_allow =
            HostAllowlist::new(&config.http.allow_hosts).map_err(GatewayError::Config)?;
        let runtime = Runtime::new(RuntimeOptions {
            cache_dir: config.cache.resolved_dir(),
            host: HostConfig {
                mounts: config.mounts.clone(),
                http_allow: Arc::new(http_allow),
            },
            max_memory_bytes: config.limits.memory_bytes,
            max_concurrent_calls: config.limits.max_concurrent_calls,
        })?;
        Ok(runtime)
    }

    /// Loads every configured component; any failure refuses to start, naming the component.
    pub fn new(
        runtime: Runtime,
        components: &[ComponentConfig],
        limits: LimitsConfig,
        policy: PolicyStore,
        audit: AuditLog,
    ) -> Result<Gateway, GatewayError> {
        let mut loaded: Vec<Arc<LoadedComponent>> = Vec::new();
        for config in components {
            let name = config
                .name
                .clone()
                .unwrap_or_else(|| default_component_name(&config.path));
            if loaded.iter().any(|c| c.name == name) {
                return Err(GatewayError::DuplicateComponent(name));
            }
            let component = runtime.load(&ComponentSpec {
                name: &name,
                path: &config.path,
                expected_digest: config.sha256.as_deref(),
                exclude: &config.exclude,
            })?;
            loaded.push(Arc::new(component));
        }
        // Tool names are `<component>_…` and component names are unique and contain no `_`,
        // so names from different components cannot collide.
        let tools = loaded
            .iter()
            .flat_map(Tool::all)
            .map(|tool| (tool.name().to_owned(), tool))
            .collect();
        Ok(Gateway {
            runtime,
            components: loaded,
            tools,
            slots: Semaphore::new(limits.max_concurrent_calls as usize),
            limits,
            policy,
            audit,
        })
    }

    pub fn policy(&self) -> &PolicyStore {
        &self.policy
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub fn components(&self) -> &[Arc<LoadedComponent>] {
        &self.components
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The tools a caller may see (phase `list`), in name order. The listing is recorded as
    /// one audit entry; if it cannot be, the caller sees nothing.
    pub async fn tools(&self, caller: &Caller) -> Vec<&Tool> {
        let time = now();
        let mut visible = Vec::new();
        let mut hidden = Vec::new();
        let mut revision = None;
        for tool in self.tools.values() {
            let input = policy_input::list_input(&time, caller, &tool_doc(tool));
            let decision = self.policy.decide(Phase::List, &input);
            revision.get_or_insert_with(|| decision.revision.clone());
            if decision.is_allowed() {
                visible.push(tool);
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
        match self.audit.append(entry).await {
            Ok(_) => visible,
            Err(error) => {
                tracing::error!(%error, "cannot record a tool listing; listing nothing");
                Vec::new()
            }
        }
    }

    /// Looks a tool up by name, without any policy check (for the local CLI).
    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.get(name)
    }

    /// Calls a tool with JSON arguments, as an agent does.
    pub async fn call(
        &self,
        caller: &Caller,
        tool_name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> CallResult {
        let Some(tool) = self.tools.get(tool_name) else {
            return CallResult::UnknownTool(tool_name.to_owned());
        };
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

    /// Steps 1–5 of the pipeline. `params` is the converted arguments, or why they did not
    /// convert: the call is decided and recorded either way, so auditors see bad attempts too.
    async fn run(
        &self,
        caller: &Caller,
        tool: &Tool,
        arguments: Value,
        params: Result<Vec<Val>, String>,
    ) -> CallResult {
        let call_id = uuid::Uuid::now_v7().to_string();
        let function = tool.function();
        let input = policy_input::call_input(&call_id, &now(), caller, &tool_doc(tool), arguments);
        let decision = self.policy.decide(Phase::Call, &input);
        let label = if decision.is_allowed() {
            "allow"
        } else {
            "deny"
        };
        let mut verdict = self.entry(&call_id, caller, tool, &decision, "call", label, input);
        verdict.reasons = decision.reasons.clone();
        verdict.redact = decision.redact.clone();
        verdict.obligations =
            serde_json::json!({"limits": decision.limits, "redact": decision.redact});
        verdict.metrics = serde_json::json!({"eval_us": decision.eval_micros});
        if let Err(error) = self.audit.append(verdict).await {
            tracing::error!(%call_id, %error, "cannot record the call verdict; refusing the call");
            return CallResult::Denied {
                reasons: vec![format!(
                    "the audit log cannot record this call ({error}); calls are refused until it can"
                )],
            };
        }
        if !decision.is_allowed() {
            tracing::info!(%call_id, tool = tool.name(), principal = %caller.principal, reasons = ?decision.reasons, "call denied by policy");
            let result = CallResult::Denied {
                reasons: decision.reasons.clone(),
            };
            return self
                .finish(&call_id, caller, tool, &decision, result, None)
                .await;
        }
        let params = match params {
            Ok(params) => params,
            Err(message) => {
                let result = CallResult::InvalidArguments(message);
                return self
                    .finish(&call_id, caller, tool, &decision, result, None)
                    .await;
            }
        };
        let limits = self.limits_for(&decision);
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the call semaphore is never closed");
        let started = std::time::Instant::now();
        let result = match self
            .runtime
            .call(&tool.component, function, &params, &limits)
            .await
            .and_then(|result| shape_result(&function.signature, result, &limits))
        {
            Ok(result) => result,
            Err(error) => CallResult::Failed(error),
        };
        self.finish(
            &call_id,
            caller,
            tool,
            &decision,
            result,
            Some(started.elapsed()),
        )
        .await
    }

    /// The call's limits: the configured defaults, tightened (never loosened) by the policy.
    fn limits_for(&self, decision: &Decision) -> CallLimits {
        let tighten =
            |default: u64, policy: Option<u64>| policy.map_or(default, |p| p.min(default));
        CallLimits {
            timeout: std::time::Duration::from_millis(tighten(
                self.limits.timeout_ms,
                decision.limits.timeout_ms,
            )),
            memory_bytes: tighten(self.limits.memory_bytes, decision.limits.memory_bytes),
            max_result_bytes: tighten(
                self.limits.max_result_bytes,
                decision.limits.max_result_bytes,
            ),
        }
    }

    /// Step 5: records the outcome; the agent gets the result only if it was recorded.
    async fn finish(
        &self,
        call_id: &str,
        caller: &Caller,
        tool: &Tool,
        decision: &Decision,
        result: CallResult,
        duration: Option<std::time::Duration>,
    ) -> CallResult {
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
            CallResult::UnknownTool(name) => ("error", Some(format!("unknown tool `{name}`"))),
        };
        let kind = match &result {
            CallResult::Failed(error) => Some(error.kind()),
            _ => None,
        };
        let input = serde_json::json!({"phase": "outcome", "time": now(), "call": {"id": call_id}, "outcome": verdict, "kind": kind});
        let mut entry = self.entry(call_id, caller, tool, decision, "outcome", verdict, input);
        entry.reasons = detail.into_iter().collect();
        entry.metrics = serde_json::json!({"duration_us": duration.map(|d| d.as_micros() as u64)});
        match self.audit.append(entry).await {
            Ok(_) => {
                tracing::info!(%call_id, tool = tool.name(), principal = %caller.principal, outcome = verdict, "tool call finished");
                result
            }
            Err(error) => {
                tracing::error!(%call_id, %error, "cannot record the call outcome; withholding the result");
                CallResult::Denied {
                    reasons: vec![format!(
                        "the audit log cannot record this call's outcome ({error}); the result is withheld"
                    )],
                }
            }
        }
    }

    /// An audit entry with the fields every entry of a call shares.
    #[allow(clippy::too_many_arguments)]
    fn entry(
        &self,
        call_id: &str,
        caller: &Caller,
        tool: &Tool,
        decision: &Decision,
        phase: &str,
        verdict: &str,
        input: Value,
    ) -> NewEntry {
        let mut entry = NewEntry::new(
            phase,
            verdict,
            serde_json::to_value(caller).unwrap_or_default(),
            input,
        );
        entry.call_id = Some(call_id.to_owned());
        entry.tool = Some(tool.name().to_owned());
        entry.component_digest = Some(tool.component.digest.clone());
        entry.policy_revision = Some(decision.revision.clone());
        entry
    }
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
        component_source: tool.component.source.to_string_lossy(),
    }
}

/// The decision time every policy input carries: RFC 3339, UTC, milliseconds.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Converts the returned value to the JSON the agent sees, enforcing the result size limit.
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
    let text = match (is_error, value) {
        (true, Value::Object(err)) => match &err["err"] {
            Value::Null => "the tool reported an error".to_owned(),
            Value::String(message) => format!("the tool reported an error: {message}"),
            other => format!("the tool reported an error: {other}"),
        },
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    };
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
