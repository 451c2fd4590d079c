//! `gatehouse call PATH 'func(args…)'`: invoke one function from the command line, with WAVE
//! arguments (as `wasmtime run --invoke` takes them) or a JSON object (`--json`). The call goes
//! through the same gateway pipeline as an agent's.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use wasm_wave::untyped::UntypedFuncCall;
use wasmtime::component::Val;

use super::{GovernanceArgs, HostArgs};
use crate::auth::Caller;
use crate::gateway::{CallResult, Gateway, Tool};
use crate::wit_json::wave;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Wave,
    Json,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The component file (.wasm).
    pub path: PathBuf,
    /// A WAVE call such as `area(circle({radius: 1.0}))`, or just the function name with --json.
    pub call: String,
    /// The arguments as a JSON object (then CALL is only the function name).
    #[arg(long, value_name = "OBJECT")]
    pub json: Option<String>,
    /// How to print the result.
    #[arg(long, value_enum, default_value = "wave")]
    pub output: OutputFormat,
    #[command(flatten)]
    pub host: HostArgs,
    #[command(flatten)]
    pub governance: GovernanceArgs,
}

pub fn run(args: CallArgs) -> anyhow::Result<ExitCode> {
    let mut config =
        super::serve::load_config(None, &[args.path.display().to_string()], &args.host)?;
    args.governance.apply(&mut config);
    let gateway = Gateway::from_config(&config)?;
    let caller = Caller::operator(config.server.stdio_principal.clone());
    let runtime = super::tokio_runtime()?;
    let (tool, result) = match &args.json {
        Some(json) => {
            let tool = find_tool(&gateway, &args.call)?;
            let arguments: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(json).context("--json must be a JSON object")?;
            let result = runtime.block_on(gateway.call(&caller, tool.name(), Some(arguments)));
            (tool, result)
        }
        None => {
            let call = UntypedFuncCall::parse(&args.call)
                .map_err(|e| anyhow::anyhow!("cannot parse the call `{}`: {e}", args.call))?;
            let tool = find_tool(&gateway, call.name())?;
            let func_type = tool
                .component
                .function_type(gateway.runtime().engine(), tool.function())
                .context("the function's type is missing from the component")?;
            let param_types: Vec<_> = func_type.params().map(|(_, ty)| ty).collect();
            let params: Vec<Val> = call.to_wasm_params(&param_types).map_err(|e| {
                let explained = wave::explain_params(&tool.function().signature, &call, &e);
                anyhow::anyhow!("invalid arguments: {explained}")
            })?;
            let result = runtime.block_on(gateway.call_values(&caller, &tool, params));
            (tool, result)
        }
    };
    let printed = print_result(&tool, result, args.output);
    if let Err(error) = gateway.audit().close() {
        eprintln!("warning: closing the audit log failed: {error}");
    }
    printed
}

/// Finds a tool by MCP tool name, by WIT function name (when unique in the component), or by
/// `interface#function`.
fn find_tool(gateway: &Gateway, name: &str) -> anyhow::Result<Tool> {
    if let Some(tool) = gateway.tool(name) {
        return Ok(tool);
    }
    let components = gateway.components();
    let component = &components[0];
    let matches: Vec<&str> = component
        .functions
        .iter()
        .filter(|f| {
            f.function == name
                || f.interface
                    .as_ref()
                    .is_some_and(|i| format!("{i}#{}", f.function) == name)
        })
        .map(|f| f.tool_name.as_str())
        .collect();
    match matches.as_slice() {
        [one] => Ok(gateway.tool(one).expect("listed tools exist")),
        [] => {
            let known: Vec<&str> = component
                .functions
                .iter()
                .map(|f| f.tool_name.as_str())
                .collect();
            bail!(
                "component `{}` has no function `{name}`; its tools are: {}",
                component.name,
                known.join(", ")
            )
        }
        many => bail!("`{name}` is ambiguous; use one of: {}", many.join(", ")),
    }
}

fn print_result(tool: &Tool, result: CallResult, format: OutputFormat) -> anyhow::Result<ExitCode> {
    match result {
        CallResult::Completed {
            structured,
            text,
            is_error,
        } => {
            let value = structured.as_ref().map(|s| &s["result"]);
            match (format, value) {
                (_, None) => println!("{text}"),
                (OutputFormat::Json, Some(value)) => {
                    println!("{}", serde_json::to_string_pretty(value)?)
                }
                (OutputFormat::Wave, Some(value)) => {
                    let ty = tool
                        .function()
                        .signature
                        .result
                        .as_ref()
                        .expect("a value implies a result type");
                    let val = crate::wit_json::json_to_val(ty, value)
                        .map_err(|e| anyhow::anyhow!("rendering the result as WAVE: {e}"))?;
                    println!(
                        "{}",
                        wasm_wave::to_string(&val)
                            .map_err(|e| anyhow::anyhow!("rendering the result as WAVE: {e}"))?
                    );
                }
            }
            Ok(if is_error {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        CallResult::InvalidArguments(message) => bail!("invalid arguments: {message}"),
        CallResult::UnknownTool(name) => bail!("unknown tool `{name}`"),
        CallResult::Denied { reasons } => {
            eprintln!("denied by policy: {}", reasons.join("; "));
            Ok(ExitCode::from(1))
        }
        CallResult::Failed(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
        CallResult::Unrecorded(reason) => {
            eprintln!("error: {reason}");
            Ok(ExitCode::from(1))
        }
        // Only an MCP client that answers by calling again is asked this way.
        CallResult::InputRequired { question, .. } => {
            eprintln!("approval required: question {question} waits for an answer");
            Ok(ExitCode::from(1))
        }
    }
}
