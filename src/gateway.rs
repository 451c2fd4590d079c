//! The call pipeline, in one place: every tool call — from MCP or from `gatehouse call` — goes
//! through [`Gateway::call`], which checks the arguments, runs the function in a fresh limited
//! instance and shapes the answer for the agent.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Semaphore;
use wasmtime::component::Val;

use crate::config::{ComponentConfig, Config, LimitsConfig};
use crate::host::HostConfig;
use crate::host::http::HostAllowlist;
use crate::identity::Caller;
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
    /// The call was not run: no tool has this name.
    UnknownTool(String),
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
}

impl Gateway {
    /// Builds the runtime and loads every component the configuration names.
    pub fn from_config(config: &Config) -> Result<Gateway, GatewayError> {
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
        Gateway::new(runtime, &config.components, config.limits.clone())
    }

    /// Loads every configured component; any failure refuses to start, naming the component.
    pub fn new(
        runtime: Runtime,
        components: &[ComponentConfig],
        limits: LimitsConfig,
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
            .flat_map(|component| {
                (0..component.functions.len()).map(|index| Tool {
                    component: component.clone(),
                    index,
                })
            })
            .map(|tool| (tool.name().to_owned(), tool))
            .collect();
        Ok(Gateway {
            runtime,
            components: loaded,
            tools,
            slots: Semaphore::new(limits.max_concurrent_calls as usize),
            limits,
        })
    }

    pub fn components(&self) -> &[Arc<LoadedComponent>] {
        &self.components
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The tools a caller may see, in name order.
    pub fn tools(&self, _caller: &Caller) -> impl Iterator<Item = &Tool> {
        self.tools.values()
    }

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
        let arguments = arguments.unwrap_or_default();
        let size = serde_json::to_vec(&arguments).map_or(0, |bytes| bytes.len() as u64);
        if size > self.limits.max_argument_bytes {
            return CallResult::InvalidArguments(format!(
                "arguments are {size} bytes of JSON, over the limit of {} bytes",
                self.limits.max_argument_bytes
            ));
        }
        let params = match wit_json::args_to_vals(&tool.function().signature, &arguments) {
            Ok(params) => params,
            Err(error) => return CallResult::InvalidArguments(error.to_string()),
        };
        self.run(caller, tool, &params).await
    }

    /// Calls a tool with component values already typed against its signature (`gatehouse
    /// call` with WAVE arguments).
    pub async fn call_values(&self, caller: &Caller, tool: &Tool, params: &[Val]) -> CallResult {
        self.run(caller, tool, params).await
    }

    async fn run(&self, caller: &Caller, tool: &Tool, params: &[Val]) -> CallResult {
        let call_id = uuid::Uuid::now_v7();
        let function = tool.function();
        let limits = CallLimits {
            timeout: self.limits.timeout(),
            memory_bytes: self.limits.memory_bytes,
            max_result_bytes: self.limits.max_result_bytes,
        };
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the call semaphore is never closed");
        let outcome = self
            .runtime
            .call(&tool.component, function, params, &limits)
            .await
            .and_then(|output| shape_result(&function.signature, output.result, &limits));
        match &outcome {
            Ok(CallResult::Completed { is_error, .. }) => tracing::info!(
                %call_id, tool = tool.name(), principal = %caller.principal,
                outcome = if *is_error { "tool_error" } else { "ok" }, "tool call finished"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                %call_id, tool = tool.name(), principal = %caller.principal,
                outcome = error.kind(), %error, "tool call failed"
            ),
        }
        outcome.unwrap_or_else(CallResult::Failed)
    }
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
