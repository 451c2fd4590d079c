//! The checks behind the fuzz targets in `fuzz/`, shared with `tests/fuzz_regressions.rs` so a
//! corpus or crash input replays through exactly the same code on stable.
//!
//! Each check takes the raw fuzz input, drives one handler of untrusted input and panics (the
//! fuzzer's signal) when an invariant breaks. An error returned for bad input is the expected
//! outcome; a panic, a hang, an unbounded allocation or a wrong answer is a finding. Inputs the
//! structured generators cannot use are skipped.
//!
//! The JSON Schema validator is passed in ([`SchemaValidator`]) so that the library does not
//! depend on one; `fuzz/validator.rs` is the implementation both callers use.

mod generate;

use arbitrary::Unstructured;
use serde_json::{Map, Value, json};
use wasmtime::component::Val;

use crate::audit::{Entry, NewEntry, RedactionKey};
use crate::auth::{AuthMethod, Caller, ClientInfo, Transport};
use crate::mcp::jsonrpc;
use crate::policy;
use crate::policy::input::ToolDoc;
use crate::wit_json::{
    self, Case, Enum, Field, Flags, FuncSignature, Named, Param, Record, Variant, WitType,
};

pub use generate::{
    TypeShape, arbitrary_type, arbitrary_val, same_val, seeded_bytes, val_has_type,
};

/// A JSON Schema (draft 2020-12) validator.
pub trait SchemaValidator {
    /// `Err` with the reasons when `schema` is not a valid schema or `instance` does not
    /// satisfy it; with no instance, only the schema is checked.
    fn validate(&self, schema: &Value, instance: Option<&Value>) -> Result<(), String>;
}

/// The fuzz targets, by name (the directory names under `fuzz/corpus/` and
/// `fuzz/regressions/`).
pub const TARGETS: &[&str] = &[
    "json_to_value",
    "value_roundtrip",
    "wave",
    "schema",
    "mcp_request",
    "policy_input",
    "audit_entry",
];

/// Runs the check of `target` on `data`. Panics on a finding and on an unknown target.
pub fn run(target: &str, data: &[u8], validator: &dyn SchemaValidator) {
    match target {
        "json_to_value" => json_to_value(data),
        "value_roundtrip" => value_roundtrip(data, validator),
        "wave" => wave(data),
        "schema" => schema(data, validator),
        "mcp_request" => mcp_request(data),
        "policy_input" => policy_input(data),
        "audit_entry" => audit_entry(data),
        other => panic!("no fuzz target `{other}`"),
    }
}

/// Error messages quote bounded excerpts of the input, never all of it.
const MAX_ERROR_CHARS: usize = 16 << 10;

/// `data[0]` bytes of type description, then JSON bytes: an arbitrary type and arbitrary JSON.
/// Conversion either fails with a bounded message or yields a value of the type that converts
/// back to JSON and from there to the same value. A record type also goes through
/// `args_to_vals` as a parameter list, which must agree with `json_to_val`.
pub fn json_to_value(data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let (type_bytes, json_bytes) = rest.split_at((n as usize).min(rest.len()));
    let Ok(ty) = arbitrary_type(&mut Unstructured::new(type_bytes), &TypeShape::JSON) else {
        return;
    };
    let Ok(json) = serde_json::from_slice::<Value>(json_bytes) else {
        return;
    };
    let converted = wit_json::json_to_val(&ty, &json);
    match &converted {
        Ok(val) => {
            assert!(
                val_has_type(&ty, val),
                "accepted value {val:?} is not a {ty:?}"
            );
            let back = wit_json::val_to_json(&ty, val).expect("an accepted value converts back");
            let again = wit_json::json_to_val(&ty, &back).expect("converted JSON is accepted");
            assert!(same_val(val, &again), "{val:?} came back as {again:?}");
        }
        Err(error) => assert_clear(&error.to_string()),
    }
    if let (WitType::Record(record), Value::Object(object)) = (&ty, &json) {
        let sig = signature(
            record
                .fields
                .iter()
                .map(|f| (f.name.clone(), f.ty.clone()))
                .collect(),
            None,
        );
        match (wit_json::args_to_vals(&sig, object), converted) {
            (Ok(params), Ok(Val::Record(fields))) => {
                assert_eq!(params.len(), fields.len());
                for (param, (_, field)) in params.iter().zip(&fields) {
                    assert!(same_val(param, field), "{param:?} ≠ {field:?}");
                }
            }
            (Err(error), Err(_)) => assert_clear(&error.to_string()),
            (params, record) => {
                panic!("args_to_vals gave {params:?} but json_to_val gave {record:?}")
            }
        }
    }
}

fn assert_clear(message: &str) {
    assert!(!message.is_empty(), "empty error message");
    assert!(
        message.chars().count() <= MAX_ERROR_CHARS,
        "error message of {} chars",
        message.chars().count()
    );
}

/// An arbitrary type and an arbitrary value of it: value → JSON → text → JSON → value is the
/// identity (floats by [`same_val`]), and the JSON satisfies the schema we advertise, also as a
/// function's parameter and result.
pub fn value_roundtrip(data: &[u8], validator: &dyn SchemaValidator) {
    let mut u = Unstructured::new(data);
    let shape = TypeShape {
        inhabited: true,
        ..TypeShape::JSON
    };
    let Ok(ty) = arbitrary_type(&mut u, &shape) else {
        return;
    };
    let Ok(val) = arbitrary_val(&mut u, &ty) else {
        return;
    };
    let json = wit_json::val_to_json(&ty, &val)
        .unwrap_or_else(|e| panic!("a value of the type converts: {e}\n{val:?}"));
    let text = serde_json::to_string(&json).expect("JSON values serialize");
    let parsed: Value = serde_json::from_str(&text).expect("serialized JSON parses");
    let back = wit_json::json_to_val(&ty, &parsed)
        .unwrap_or_else(|e| panic!("produced JSON converts back: {e}\n{text}"));
    assert!(
        same_val(&val, &back),
        "{val:?}\nbecame {text}\nthen {back:?}"
    );
    let type_schema = wit_json::schema(&ty);
    validator
        .validate(&type_schema, Some(&parsed))
        .unwrap_or_else(|e| panic!("{text} fails its schema: {e}"));

    // As a parameter and as a result: the object around the value satisfies the wrapper, and
    // the value in it the type's schema (see `wrapper_shell`).
    let sig = signature(vec![("value".into(), ty.clone())], Some(ty));
    let input_shell = wrapper_shell(wit_json::input_schema(&sig), "value", &type_schema);
    let args = Value::Object(Map::from_iter([("value".to_string(), parsed)]));
    validator
        .validate(&input_shell, Some(&args))
        .unwrap_or_else(|e| panic!("{args} fails the input schema: {e}"));
    let result = wit_json::result_to_json(&sig, std::slice::from_ref(&val))
        .expect("a value of the result type converts")
        .expect("a function with a result has structured content");
    let output_schema = wit_json::output_schema(&sig).expect("a function with a result");
    let output_shell = wrapper_shell(output_schema, "result", &type_schema);
    let result = Value::Object(result);
    validator
        .validate(&output_shell, Some(&result))
        .unwrap_or_else(|e| panic!("the result fails the output schema: {e}"));
    validator
        .validate(&type_schema, Some(&result["result"]))
        .unwrap_or_else(|e| panic!("the result fails the output schema: {e}"));
}

/// The input or output schema of a one-parameter (one-result) function, `wrapper`, with the
/// type's schema at `properties.<key>` replaced by `true`; panics unless that property's schema
/// is exactly `type_schema`. Checking against the wrapper is then checking against this shell
/// plus checking the property against `type_schema`: JSON Schema validates a subschema under
/// `properties` as it validates a root schema. The shell is the same for every type, so the
/// validator compiles (and meta-checks) it once; compiling each type's schema three times per
/// input had made the schema checks the bulk of `value_roundtrip` and `schema`.
fn wrapper_shell(mut wrapper: Map<String, Value>, key: &str, type_schema: &Value) -> Value {
    let property = wrapper
        .get_mut("properties")
        .and_then(|properties| properties.get_mut(key))
        .unwrap_or_else(|| panic!("the wrapper schema has no property `{key}`"));
    assert_eq!(
        property, type_schema,
        "the wrapper's `{key}` is not the type's schema"
    );
    *property = Value::Bool(true);
    Value::Object(wrapper)
}

/// The first byte picks the mode. Mode 0: an arbitrary WIT type (without maps, which WAVE lacks,
/// and fixed-length lists, which wasm-wave 0.254's own value type cannot hold)
/// and arbitrary text parsed as a WAVE value and as a WAVE call (the `gatehouse call` path):
/// no panic, and whatever parses prints and parses back to the same text. Otherwise: an
/// arbitrary value printed the way `gatehouse call` prints results parses back to the same text.
pub fn wave(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let shape = TypeShape {
        labels_only: true,
        inhabited: true,
        maps: false,
        fixed_lists: false,
        ..TypeShape::JSON
    };
    let Ok(ty) = arbitrary_type(&mut u, &shape) else {
        return;
    };
    let wave_ty =
        wave_type(&ty).expect("inhabited types without maps and fixed lists have a WAVE type");
    if mode % 2 == 0 {
        let Ok(text) = std::str::from_utf8(u.take_rest()) else {
            return;
        };
        if let Ok(value) = wasm_wave::from_str::<wasm_wave::value::Value>(&wave_ty, text) {
            let printed = wasm_wave::to_string(&value).expect("a parsed value prints");
            assert_wave_reparses(&wave_ty, &printed);
        }
        if let Ok(call) = wasm_wave::untyped::UntypedFuncCall::parse(text) {
            let _ = call.to_wasm_params::<wasm_wave::value::Value>([&wave_ty]);
        }
    } else {
        let Ok(val) = arbitrary_val(&mut u, &ty) else {
            return;
        };
        let printed = wasm_wave::to_string(&val).expect("a value without maps prints as WAVE");
        assert_wave_reparses(&wave_ty, &printed);
    }
}

fn assert_wave_reparses(ty: &wasm_wave::value::Type, printed: &str) {
    let reparsed = wasm_wave::from_str::<wasm_wave::value::Value>(ty, printed)
        .unwrap_or_else(|e| panic!("printed WAVE `{printed}` does not parse: {e}"));
    let reprinted = wasm_wave::to_string(&reparsed).expect("a parsed value prints");
    assert_eq!(
        printed, reprinted,
        "WAVE print → parse → print changed the text"
    );
}

/// The WAVE type of `ty`; `None` for maps and for types WAVE refuses (empty records, tuples,
/// variants, enums and flags). Fixed-length lists have a WAVE type, but wasm-wave 0.254 cannot
/// convert them into its own values.
pub fn wave_type(ty: &WitType) -> Option<wasm_wave::value::Type> {
    use wasm_wave::value::Type;
    Some(match ty {
        WitType::Bool => Type::BOOL,
        WitType::S8 => Type::S8,
        WitType::U8 => Type::U8,
        WitType::S16 => Type::S16,
        WitType::U16 => Type::U16,
        WitType::S32 => Type::S32,
        WitType::U32 => Type::U32,
        WitType::S64 => Type::S64,
        WitType::U64 => Type::U64,
        WitType::F32 => Type::F32,
        WitType::F64 => Type::F64,
        WitType::Char => Type::CHAR,
        WitType::String => Type::STRING,
        WitType::List(item) => Type::list(wave_type(item)?),
        WitType::FixedList(item, n) => Type::fixed_length_list(wave_type(item)?, *n),
        WitType::Map(..) => return None,
        WitType::Tuple(items) => {
            Type::tuple(items.iter().map(wave_type).collect::<Option<Vec<_>>>()?)?
        }
        WitType::Record(r) => Type::record(
            r.fields
                .iter()
                .map(|f| Some((f.name.as_str(), wave_type(&f.ty)?)))
                .collect::<Option<Vec<_>>>()?,
        )?,
        WitType::Variant(v) => Type::variant(
            v.cases
                .iter()
                .map(|c| {
                    Some((
                        c.name.as_str(),
                        match &c.ty {
                            Some(t) => Some(wave_type(t)?),
                            None => None,
                        },
                    ))
                })
                .collect::<Option<Vec<_>>>()?,
        )?,
        WitType::Enum(e) => Type::enum_ty(e.cases.iter().map(|c| c.name.as_str()))?,
        WitType::Option(inner) => Type::option(wave_type(inner)?),
        WitType::Result { ok, err } => Type::result(
            match ok {
                Some(t) => Some(wave_type(t)?),
                None => None,
            },
            match err {
                Some(t) => Some(wave_type(t)?),
                None => None,
            },
        ),
        WitType::Flags(f) => Type::flags(f.names.iter().map(|n| n.name.as_str()))?,
    })
}

/// How deep the schema target nests types: past [`wit_json::MAX_TYPE_DEPTH`], so the cut-off is
/// exercised too.
const SCHEMA_DEPTH: usize = wit_json::MAX_TYPE_DEPTH + 20;
/// Schema bytes allowed per type node and per byte of names and docs (each is written a few
/// times, JSON-escaped: up to 6 bytes for one).
const SCHEMA_BYTES_PER_NODE: usize = 512;
const SCHEMA_BYTES_PER_TEXT_BYTE: usize = 24;

/// An arbitrary, possibly very deep type: schema generation does not panic, its size is linear
/// in the type, and the result is a valid JSON Schema (alone and as a function's input and
/// output schema).
pub fn schema(data: &[u8], validator: &dyn SchemaValidator) {
    let shape = TypeShape {
        max_depth: SCHEMA_DEPTH,
        // Enough for a chain past the depth limit and some breadth around it; more only made
        // each input slower (a node past the limit adds nothing to the schema).
        max_nodes: 160,
        max_fixed_len: u32::MAX,
        ..TypeShape::JSON
    };
    let Ok(ty) = arbitrary_type(&mut Unstructured::new(data), &shape) else {
        return;
    };
    let (nodes, text) = type_size(&ty);
    let bound = SCHEMA_BYTES_PER_NODE * nodes + SCHEMA_BYTES_PER_TEXT_BYTE * text + 1024;
    let sig = signature(vec![("value".into(), ty.clone())], Some(ty.clone()));
    let type_schema = wit_json::schema(&ty);
    let input_schema = wit_json::input_schema(&sig);
    let output_schema = wit_json::output_schema(&sig).expect("a function with a result");
    for schema in [&input_schema, &output_schema] {
        let size = serde_json::to_string(schema)
            .expect("schemas serialize")
            .len();
        assert!(
            size <= bound,
            "schema of {size} bytes for {nodes} nodes and {text} bytes of text"
        );
    }
    // The wrappers' shells and the type's schema valid make the wrappers valid (see
    // `wrapper_shell`); the type's schema is within the bound as part of them.
    let schemas = [
        wrapper_shell(input_schema, "value", &type_schema),
        wrapper_shell(output_schema, "result", &type_schema),
        type_schema,
    ];
    for schema in &schemas {
        validator
            .validate(schema, None)
            .unwrap_or_else(|e| panic!("invalid schema: {e}"));
    }
}

/// Type nodes and bytes of names and docs in `ty`.
fn type_size(ty: &WitType) -> (usize, usize) {
    let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    let mut nodes = 1;
    let mut bytes = 0;
    let mut add = |(n, b): (usize, usize)| {
        nodes += n;
        bytes += b;
    };
    match ty {
        WitType::List(t) | WitType::FixedList(t, _) | WitType::Option(t) => add(type_size(t)),
        WitType::Map(k, v) => {
            add(type_size(k));
            add(type_size(v));
        }
        WitType::Tuple(items) => items.iter().for_each(|t| add(type_size(t))),
        WitType::Record(Record { name, docs, fields }) => {
            add((0, text(name) + text(docs)));
            for Field { name, docs, ty } in fields {
                add((0, name.len() + text(docs)));
                add(type_size(ty));
            }
        }
        WitType::Variant(Variant { name, docs, cases }) => {
            add((0, text(name) + text(docs)));
            for Case { name, docs, ty } in cases {
                add((1, name.len() + text(docs)));
                if let Some(t) = ty {
                    add(type_size(t));
                }
            }
        }
        WitType::Enum(Enum { name, docs, cases })
        | WitType::Flags(Flags {
            name,
            docs,
            names: cases,
        }) => {
            add((0, text(name) + text(docs)));
            for Named { name, docs } in cases {
                add((0, name.len() + text(docs)));
            }
        }
        WitType::Result { ok, err } => {
            for t in [ok, err].into_iter().flatten() {
                add(type_size(t));
            }
        }
        _ => {}
    }
    (nodes, bytes)
}

fn signature(params: Vec<(String, WitType)>, result: Option<WitType>) -> FuncSignature {
    FuncSignature {
        name: "fuzz".into(),
        docs: None,
        params: params
            .into_iter()
            .map(|(name, ty)| Param { name, ty })
            .collect(),
        result,
    }
}

/// A tool's signature with one parameter of each common kind, for the request targets.
pub fn sample_signature() -> FuncSignature {
    let named = |name: &str| Named {
        name: name.into(),
        docs: None,
    };
    let shape = WitType::Variant(Variant {
        name: Some("shape".into()),
        docs: None,
        cases: vec![
            Case {
                name: "circle".into(),
                docs: None,
                ty: Some(WitType::Record(Record {
                    name: Some("circle".into()),
                    docs: None,
                    fields: vec![Field {
                        name: "radius".into(),
                        docs: None,
                        ty: WitType::F64,
                    }],
                })),
            },
            Case {
                name: "square".into(),
                docs: None,
                ty: Some(WitType::F32),
            },
            Case {
                name: "point".into(),
                docs: None,
                ty: None,
            },
        ],
    });
    signature(
        vec![
            ("name".into(), WitType::String),
            ("count".into(), WitType::U64),
            ("offset".into(), WitType::S64),
            ("scale".into(), WitType::Option(Box::new(WitType::F32))),
            ("shape".into(), shape),
            ("tags".into(), WitType::List(Box::new(WitType::String))),
            (
                "mode".into(),
                WitType::Enum(Enum {
                    name: Some("mode".into()),
                    docs: None,
                    cases: vec![named("fast"), named("safe")],
                }),
            ),
            (
                "perms".into(),
                WitType::Flags(Flags {
                    name: Some("perms".into()),
                    docs: None,
                    names: vec![named("read"), named("write")],
                }),
            ),
            (
                "pair".into(),
                WitType::Tuple(vec![WitType::S8, WitType::Char]),
            ),
            (
                "env".into(),
                WitType::Map(Box::new(WitType::String), Box::new(WitType::U32)),
            ),
            (
                "last".into(),
                WitType::Result {
                    ok: Some(Box::new(WitType::U32)),
                    err: Some(Box::new(WitType::String)),
                },
            ),
        ],
        Some(WitType::String),
    )
}

/// Arbitrary bytes as a JSON-RPC message (the HTTP transport's first check, and the stdio
/// transport's syntax check, which must agree with it): a refusal carries the right code and
/// a message; an accepted `tools/call` continues down the gateway's path up to the policy
/// input, which is built and recorded as an audit entry would be.
pub fn mcp_request(data: &[u8]) {
    let text = std::str::from_utf8(data).ok();
    let message = match jsonrpc::parse_client_message(data) {
        Ok(message) => message,
        Err(refusal) => {
            assert!(
                refusal.code == jsonrpc::PARSE_ERROR || refusal.code == jsonrpc::INVALID_REQUEST,
                "unexpected code {}",
                refusal.code
            );
            assert!(!refusal.message.is_empty());
            let response = refusal.response();
            assert_eq!(response["error"]["code"], json!(refusal.code));
            if let Some(text) = text {
                // A line that is JSON but not a message passes stdio's syntax check (rmcp
                // answers it); one that is not JSON is refused there as well.
                let syntax = jsonrpc::check_syntax(text);
                if refusal.code == jsonrpc::INVALID_REQUEST {
                    assert_eq!(syntax, Ok(()), "valid JSON refused by the syntax check");
                } else {
                    let syntax = syntax.expect_err("invalid JSON passed the syntax check");
                    assert_eq!(syntax.code, jsonrpc::PARSE_ERROR);
                }
            }
            return;
        }
    };
    if let Some(text) = text {
        assert_eq!(jsonrpc::check_syntax(text), Ok(()));
    }
    use rmcp::model::{ClientRequest, JsonRpcMessage};
    let JsonRpcMessage::Request(request) = message else {
        return;
    };
    let ClientRequest::CallToolRequest(call) = request.request else {
        return;
    };
    let caller = Caller {
        principal: "agent".into(),
        authenticated: true,
        transport: Transport::Http,
        client: None,
        auth: AuthMethod::ApiKey,
        claims: Map::new(),
    };
    let tool = sample_tool(&call.params.name);
    check_call(&caller, &tool, call.params.arguments);
}

fn sample_tool(name: &str) -> ToolDoc<'_> {
    ToolDoc {
        name,
        function: "fuzz",
        interface: Some("gatehouse:fuzz/tools"),
        component_name: "fuzz",
        component_digest: "sha256:00",
        component_source: "fuzz.wasm".into(),
        component_signed: false,
        component_signer: Value::Null,
        definition_changed: false,
    }
}

/// The gateway's steps 1 and 3 for one call: arguments converted (or refused with a clear
/// message), the policy input built, and the input recorded as a canonical audit entry.
fn check_call(caller: &Caller, tool: &ToolDoc, arguments: Option<Map<String, Value>>) {
    let sig = sample_signature();
    let expected_arguments = Value::Object(arguments.clone().unwrap_or_default());
    let (arguments, params) = policy::input::call_arguments(&sig, arguments);
    match &params {
        Ok(params) => {
            assert_eq!(params.len(), sig.params.len());
            for (param, val) in sig.params.iter().zip(params) {
                assert!(
                    val_has_type(&param.ty, val),
                    "{val:?} is not a {:?}",
                    param.ty
                );
            }
        }
        Err(message) => assert_clear(message),
    }
    assert_eq!(arguments, expected_arguments);
    let time = "2026-11-22T06:00:00.000Z";
    let session =
        json!({"id": "s-1", "started": time, "labels": [], "history": [], "decisions": 0});
    let input = policy::input::call_input(
        "call-1",
        time,
        caller,
        session.clone(),
        tool,
        arguments.clone(),
    );
    assert_eq!(input["arguments"], arguments);
    assert_eq!(input["caller"]["principal"], json!(caller.principal));
    assert_eq!(input["tool"]["name"], json!(tool.name));
    let again = policy::input::call_input("call-1", time, caller, session.clone(), tool, arguments);
    assert_eq!(input, again, "the same call built two different inputs");
    let list = policy::input::list_input(time, caller, session, tool);
    assert_eq!(list["tool"], input["tool"]);

    let mut entry = NewEntry::new(
        "call",
        "allow",
        serde_json::to_value(caller).expect("callers serialize"),
        input,
    );
    entry.call_id = Some("call-1".into());
    entry.tool = Some(tool.name.to_owned());
    entry.redact = vec!["/arguments/name".into()];
    check_entry(entry, 1, time).expect("a policy input is a valid audit input");
}

/// Arbitrary JSON as the parts of a call (caller, tool, arguments): the policy input is built,
/// deterministic, carries the parts unchanged, and its audit entry is canonical and stable.
pub fn policy_input(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let str_at = |key: &str, default: &'static str| -> String {
        doc.get(key)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    let client = doc
        .get("client")
        .and_then(Value::as_object)
        .map(|c| ClientInfo {
            name: c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            version: c
                .get("version")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
        });
    let caller = Caller {
        principal: str_at("principal", Caller::ANONYMOUS),
        authenticated: doc
            .get("authenticated")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        transport: match doc.get("transport").and_then(Value::as_str) {
            Some("stdio") => Transport::Stdio,
            Some("cli") => Transport::Cli,
            _ => Transport::Http,
        },
        client,
        auth: AuthMethod::Jwt,
        claims: doc
            .get("claims")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default(),
    };
    let tool_name = str_at("tool", "fuzz_tool");
    let source = str_at("source", "fuzz.wasm");
    let tool = ToolDoc {
        component_source: source.as_str().into(),
        ..sample_tool(&tool_name)
    };
    let arguments = doc.get("arguments").and_then(Value::as_object).cloned();
    check_call(&caller, &tool, arguments);
}

/// Arbitrary JSON as an audit entry's parts: the entry is refused with a clear error, or its
/// canonical bytes equal RFC 8785 of the whole entry object, are a fixed point of
/// canonicalization, and mean the same to a verifier reading numbers as doubles.
pub fn audit_entry(data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let get = |key: &str| doc.get(key).cloned();
    let string = |key: &str| doc.get(key).and_then(Value::as_str).map(str::to_owned);
    let strings = |key: &str| -> Vec<String> {
        doc.get(key)
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut entry = NewEntry::new(
        &string("phase").unwrap_or_else(|| "call".into()),
        &string("verdict").unwrap_or_else(|| "allow".into()),
        get("caller").unwrap_or_else(|| json!({})),
        get("input").unwrap_or(Value::Null),
    );
    entry.call_id = string("call_id");
    entry.tool = string("tool");
    entry.component_digest = string("component_digest");
    entry.policy_revision = string("policy_revision");
    entry.redact = strings("redact");
    entry.reasons = strings("reasons");
    if let Some(v) = get("obligations") {
        entry.obligations = v;
    }
    if let Some(v) = get("metrics") {
        entry.metrics = v;
    }
    // The writer's sequence numbers are row ids: far below 2^53.
    let seq = doc.get("seq").and_then(Value::as_u64).unwrap_or(0) & ((1 << 53) - 1);
    let time = string("time").unwrap_or_else(|| "2026-11-22T06:00:00.000Z".into());
    if let Err(error) = check_entry(entry, seq, &time) {
        assert_clear(&error.to_string());
    }
}

/// Prepares `entry` as the writer does and checks its canonical bytes.
fn check_entry(entry: NewEntry, seq: u64, time: &str) -> Result<(), crate::audit::AuditError> {
    let key = RedactionKey::from_bytes([7; 32]);
    let prepared = crate::audit::PreparedEntry::new(entry, &key)?;
    let c = &prepared.columns;
    let mut spliced = Vec::new();
    c.fields().write_canonical(seq, time, &mut spliced);
    // What the writer hashes (the callers' half-fed hash, finished) is the hash of those bytes.
    assert_eq!(
        prepared.leaf_hash(seq, time),
        crate::audit::merkle::hash_leaf(&spliced),
        "the writer's leaf hash is not the hash of the canonical bytes"
    );
    let column = |text: &str| -> Value {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("column {text} is not JSON: {e}"))
    };
    let whole = Entry {
        seq,
        time: time.into(),
        decision_id: c.decision_id.clone(),
        call_id: c.call_id.clone(),
        phase: c.phase.clone(),
        caller: column(&c.caller),
        tool: c.tool.clone(),
        component_digest: c.component_digest.clone(),
        policy_revision: c.policy_revision.clone(),
        input: column(&c.input),
        verdict: c.verdict.clone(),
        reasons: serde_json::from_str(&c.reasons).expect("reasons are a JSON list of strings"),
        obligations: column(&c.obligations),
        metrics: column(&c.metrics),
        entry_hash: [0; 32],
    }
    .canonical_object();
    let jcs = serde_json_canonicalizer::to_vec(&whole).expect("an entry object canonicalizes");
    assert_eq!(
        String::from_utf8_lossy(&spliced),
        String::from_utf8_lossy(&jcs),
        "spliced canonical bytes differ from RFC 8785 of the whole entry"
    );
    let reparsed: Value = serde_json::from_slice(&spliced).expect("canonical bytes are JSON");
    let again = serde_json_canonicalizer::to_vec(&reparsed).expect("canonical JSON canonicalizes");
    assert_eq!(
        String::from_utf8_lossy(&spliced),
        String::from_utf8_lossy(&again),
        "canonical form is not stable"
    );
    assert_i_json(&reparsed);
    // The writer files the entry under the principal it was given; `verify` derives it again
    // from the stored caller column. They must agree, or an intact log would fail `verify`.
    assert_eq!(
        prepared.principal.as_deref(),
        crate::audit::principal_of(&c.caller).as_deref(),
        "the writer's and verify's principal differ for caller {}",
        c.caller
    );
    Ok(())
}

/// Every number in canonical bytes means the same to a verifier that reads JSON numbers as
/// doubles (I-JSON, as RFC 8785 assumes): read as a double and canonicalized again, it is the
/// same text. A 64-bit integer beyond ±(2^53 − 1) written out exactly would fail this; the text
/// of a large double (`1844674407370955300`) passes.
fn assert_i_json(v: &Value) {
    match v {
        Value::Number(n) => {
            let double = n.as_f64().expect("every JSON number reads as a double");
            let as_read = serde_json_canonicalizer::to_string(n).expect("numbers canonicalize");
            let as_double =
                serde_json_canonicalizer::to_string(&double).expect("finite doubles canonicalize");
            assert_eq!(
                as_read, as_double,
                "number {n} is not read the same as a double"
            );
        }
        Value::Array(items) => items.iter().for_each(assert_i_json),
        Value::Object(map) => map.values().for_each(assert_i_json),
        _ => {}
    }
}
