//! The policy input documents of the contract in `policies/README.md`, built from the caller,
//! the tool and the (untrusted) arguments. Pure functions, so the gateway and the fuzz targets
//! build exactly the same documents.

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use wasmtime::component::Val;

use crate::auth::Caller;
use crate::wit_json::{self, FuncSignature};

/// The `input.tool` document: which function of which component.
#[derive(Debug, Clone)]
pub struct ToolDoc<'a> {
    pub name: &'a str,
    pub function: &'a str,
    pub interface: Option<&'a str>,
    pub component_name: &'a str,
    pub component_digest: &'a str,
    /// The component's path or URL, as the operator declared it.
    pub component_source: Cow<'a, str>,
    /// Whether a signature was checked and held.
    pub component_signed: bool,
    /// Who signed it (key id, or certificate identity and issuer), `null` when unsigned.
    pub component_signer: Value,
    /// Whether the tool's definition differs from the one pinned when it was first loaded.
    pub definition_changed: bool,
}

impl ToolDoc<'_> {
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "function": self.function,
            "interface": self.interface,
            "component": {
                "name": self.component_name,
                "digest": self.component_digest,
                "source": self.component_source,
                "signed": self.component_signed,
                "signer": self.component_signer,
            },
            "definition_changed": self.definition_changed,
        })
    }
}

/// A tool call's arguments as the policy sees them (the object, `{}` when absent), and the
/// parameter values they convert to, or why they do not: a call with bad arguments is still
/// decided and recorded, so auditors see bad attempts too.
pub fn call_arguments(
    signature: &FuncSignature,
    arguments: Option<Map<String, Value>>,
) -> (Value, Result<Vec<Val>, String>) {
    let arguments = arguments.unwrap_or_default();
    let params = wit_json::args_to_vals(signature, &arguments).map_err(|error| error.to_string());
    (Value::Object(arguments), params)
}

/// The input of phase `call`. `time` is RFC 3339 (UTC, milliseconds); `session` is the
/// caller's session as it stands before this decision (`input.session`).
pub fn call_input(
    call_id: &str,
    time: &str,
    caller: &Caller,
    session: Value,
    tool: &ToolDoc,
    arguments: Value,
) -> Value {
    json!({
        "phase": "call",
        "time": time,
        "call": {"id": call_id},
        "caller": caller,
        "session": session,
        "tool": tool.to_json(),
        "arguments": arguments,
    })
}

/// The input of phase `list`, one per tool.
pub fn list_input(time: &str, caller: &Caller, session: Value, tool: &ToolDoc) -> Value {
    json!({"phase": "list", "time": time, "caller": caller, "session": session, "tool": tool.to_json()})
}

/// The fields of a call's input that every later phase of the same call carries (`call`,
/// `caller`, `tool`, `arguments`), taken once per call. The session is not among them: it
/// changes while the call runs (a file read may label it before the next request is decided).
pub fn shared_call_fields(call_input: &Value) -> Map<String, Value> {
    ["call", "caller", "tool", "arguments"]
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), call_input.get(key)?.clone())))
        .collect()
}

/// The input of a phase decided during or after a call (`http`, `socket`, `fs`, `result`): the
/// call's shared fields plus the phase, the time, the session as it stands now and the phase's
/// own document under `field`.
pub fn phase_input(
    shared: &Map<String, Value>,
    phase: &str,
    time: &str,
    session: Value,
    field: &str,
    document: Value,
) -> Value {
    let mut input = shared.clone();
    input.insert("phase".into(), json!(phase));
    input.insert("time".into(), json!(time));
    input.insert("session".into(), session);
    input.insert(field.into(), document);
    Value::Object(input)
}
