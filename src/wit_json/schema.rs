//! JSON Schema (draft 2020-12) for the JSON shapes documented in the module doc.
//!
//! The schema describes exactly what `convert` produces and (up to the limits written in the
//! module doc) what it accepts; the tests validate every value they convert against it.

use serde_json::{Map, Value, json};

use super::types::{Case, Field, FuncSignature, MAX_TYPE_DEPTH, Named, WitType};
use super::{F32_LIMIT, FLOAT_SPECIALS, S64_PATTERN, U64_PATTERN};

/// `{"type":"object","properties":{param: schema…},"required":[all],"additionalProperties":false}`:
/// the MCP `inputSchema` of a function.
pub fn input_schema(sig: &FuncSignature) -> Map<String, Value> {
    let fields = sig.params.iter().map(|p| (p.name.as_str(), &p.ty, None));
    object_schema(fields, 0)
}

/// The MCP `outputSchema` of a function: MCP requires an object, so the result sits under the
/// key `"result"` (see [`super::result_to_json`]). `None` for a function without a result.
pub fn output_schema(sig: &FuncSignature) -> Option<Map<String, Value>> {
    let ty = sig.result.as_ref()?;
    Some(object_schema([("result", ty, None)].into_iter(), 0))
}

/// The schema of one WIT type. Named types carry their WIT name as `title` and their docs as
/// `description`.
pub fn schema(ty: &WitType) -> Value {
    schema_at(ty, 0)
}

/// A closed object with every property required, used for records, parameter lists and the
/// output wrapper. `field_depth` is the nesting depth of the property types: 0 for parameters,
/// as in `args_to_vals`.
fn object_schema<'a>(
    fields: impl Iterator<Item = (&'a str, &'a WitType, Option<&'a str>)>,
    field_depth: usize,
) -> Map<String, Value> {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, ty, docs) in fields {
        let mut field_schema = schema_at(ty, field_depth);
        if let Some(docs) = docs {
            prepend_description(&mut field_schema, docs);
        }
        properties.insert(name.to_string(), field_schema);
        required.push(Value::String(name.to_string()));
    }
    let mut out = Map::new();
    out.insert("type".into(), "object".into());
    out.insert("properties".into(), Value::Object(properties));
    out.insert("required".into(), Value::Array(required));
    out.insert("additionalProperties".into(), false.into());
    out
}

fn schema_at(ty: &WitType, depth: usize) -> Value {
    if depth > MAX_TYPE_DEPTH {
        // Fail closed: a type too deep to convert gets a schema nothing satisfies.
        return Value::Bool(false);
    }
    let next = depth + 1;
    match ty {
        WitType::Bool => json!({"type": "boolean"}),
        WitType::S8 => int_schema(i8::MIN.into(), i8::MAX.into()),
        WitType::U8 => int_schema(u8::MIN.into(), u8::MAX.into()),
        WitType::S16 => int_schema(i16::MIN.into(), i16::MAX.into()),
        WitType::U16 => int_schema(u16::MIN.into(), u16::MAX.into()),
        WitType::S32 => int_schema(i32::MIN.into(), i32::MAX.into()),
        WitType::U32 => int_schema(u32::MIN.into(), u32::MAX.into()),
        WitType::S64 => wide_int_schema(
            i64::MIN.into(),
            i64::MAX.into(),
            S64_PATTERN,
            "64-bit signed integer (-9223372036854775808..=9223372036854775807); integers beyond ±2^53−1 as decimal strings",
        ),
        WitType::U64 => wide_int_schema(
            u64::MIN.into(),
            u64::MAX.into(),
            U64_PATTERN,
            "64-bit unsigned integer (0..=18446744073709551615); integers beyond 2^53−1 as decimal strings",
        ),
        WitType::F32 => float_schema(
            Some(F32_LIMIT),
            "32-bit float; \"NaN\", \"Infinity\", \"-Infinity\" as strings",
        ),
        WitType::F64 => float_schema(
            None,
            "64-bit float; \"NaN\", \"Infinity\", \"-Infinity\" as strings",
        ),
        WitType::Char => json!({
            "type": "string", "minLength": 1, "maxLength": 1,
            "description": "a single Unicode scalar value",
        }),
        WitType::String => json!({"type": "string"}),
        WitType::List(item) => object([("type", "array".into()), ("items", schema_at(item, next))]),
        WitType::FixedList(item, n) => object([
            ("type", "array".into()),
            ("items", schema_at(item, next)),
            ("minItems", (*n).into()),
            ("maxItems", (*n).into()),
        ]),
        WitType::Map(key, value) if **key == WitType::String => object([
            ("type", "object".into()),
            ("additionalProperties", schema_at(value, next)),
        ]),
        WitType::Map(key, value) => object([
            ("type", "array".into()),
            (
                "items",
                tuple_schema([key.as_ref(), value.as_ref()].into_iter(), next),
            ),
            ("description", "a map, as [key, value] pairs".into()),
        ]),
        WitType::Tuple(items) => tuple_schema(items.iter(), next),
        WitType::Record(record) => {
            let fields = record
                .fields
                .iter()
                .map(|Field { name, docs, ty }| (name.as_str(), ty, docs.as_deref()));
            named(
                Value::Object(object_schema(fields, next)),
                &record.name,
                &record.docs,
            )
        }
        WitType::Variant(variant) => {
            let branches = variant
                .cases
                .iter()
                .map(|Case { name, docs, ty }| one_key_object(name, ty.as_ref(), docs, next));
            named(one_of(branches.collect()), &variant.name, &variant.docs)
        }
        WitType::Enum(e) => {
            let mut out = json!({"type": "string", "enum": names(&e.cases)});
            let docs = with_name_docs(&e.docs, &e.cases);
            named_in_place(&mut out, &e.name, &docs);
            out
        }
        WitType::Option(inner) => {
            let some = if matches!(**inner, WitType::Option(_)) {
                one_key_object("some", Some(inner), &None, next)
            } else {
                schema_at(inner, next)
            };
            object([("anyOf", Value::Array(vec![json!({"type": "null"}), some]))])
        }
        WitType::Result { ok, err } => one_of(vec![
            one_key_object("ok", ok.as_deref(), &None, next),
            one_key_object("err", err.as_deref(), &None, next),
        ]),
        WitType::Flags(flags) => {
            let mut out = if flags.names.is_empty() {
                json!({"type": "array", "maxItems": 0})
            } else {
                json!({
                    "type": "array", "uniqueItems": true,
                    "items": {"type": "string", "enum": names(&flags.names)},
                })
            };
            let docs = with_name_docs(&flags.docs, &flags.names);
            named_in_place(&mut out, &flags.name, &docs);
            out
        }
    }
}

fn int_schema(min: i64, max: i64) -> Value {
    json!({"type": "integer", "minimum": min, "maximum": max})
}

fn wide_int_schema(min: Value, max: Value, pattern: &str, description: &str) -> Value {
    json!({
        "anyOf": [
            {"type": "integer", "minimum": min, "maximum": max},
            {"type": "string", "pattern": pattern},
        ],
        "description": description,
    })
}

fn float_schema(bound: Option<f64>, description: &str) -> Value {
    let mut number = json!({"type": "number"});
    if let Some(bound) = bound {
        number["exclusiveMinimum"] = json!(-bound);
        number["exclusiveMaximum"] = json!(bound);
    }
    json!({
        "anyOf": [number, {"enum": FLOAT_SPECIALS}],
        "description": description,
    })
}

/// An array of exactly the given item types, JSON Schema 2020-12 style.
fn tuple_schema<'a>(items: impl ExactSizeIterator<Item = &'a WitType>, depth: usize) -> Value {
    let n = items.len();
    if n == 0 {
        // `prefixItems` must not be empty.
        return json!({"type": "array", "maxItems": 0});
    }
    let prefix: Vec<Value> = items.map(|ty| schema_at(ty, depth)).collect();
    object([
        ("type", "array".into()),
        ("prefixItems", Value::Array(prefix)),
        ("minItems", n.into()),
        ("maxItems", n.into()),
        ("items", false.into()),
    ])
}

/// `{"key": payload}` with the payload `null` when there is none.
fn one_key_object(
    key: &str,
    payload: Option<&WitType>,
    docs: &Option<String>,
    depth: usize,
) -> Value {
    let payload = match payload {
        Some(ty) => schema_at(ty, depth),
        None => json!({"type": "null"}),
    };
    let mut out = Map::new();
    out.insert("type".into(), "object".into());
    out.insert("properties".into(), object([(key, payload)]));
    out.insert("required".into(), json!([key]));
    out.insert("additionalProperties".into(), false.into());
    if let Some(docs) = docs {
        out.insert("description".into(), docs.as_str().into());
    }
    Value::Object(out)
}

fn one_of(branches: Vec<Value>) -> Value {
    if branches.is_empty() {
        // `oneOf` must not be empty; a variant without cases has no values.
        return Value::Bool(false);
    }
    object([("oneOf", Value::Array(branches))])
}

/// A JSON object of `entries`, moving the values in. (`json!` serializes an interpolated
/// `Value` again: nested schemas built with it are copied once per level above them, which is
/// quadratic in the depth of the type.)
fn object<const N: usize>(entries: [(&str, Value); N]) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

fn names(items: &[Named]) -> Vec<Value> {
    items
        .iter()
        .map(|n| Value::String(n.name.clone()))
        .collect()
}

/// The docs of an enum or flags type followed by the docs of its cases, since JSON Schema's
/// `enum` has no place for per-value descriptions.
fn with_name_docs(docs: &Option<String>, items: &[Named]) -> Option<String> {
    let mut lines: Vec<String> = docs.iter().cloned().collect();
    for item in items {
        if let Some(item_docs) = &item.docs {
            lines.push(format!("- {}: {}", item.name, item_docs));
        }
    }
    (!lines.is_empty()).then(|| lines.join("\n"))
}

fn named(mut schema: Value, name: &Option<String>, docs: &Option<String>) -> Value {
    named_in_place(&mut schema, name, docs);
    schema
}

fn named_in_place(schema: &mut Value, name: &Option<String>, docs: &Option<String>) {
    let Value::Object(map) = schema else { return };
    if let Some(name) = name {
        map.insert("title".into(), name.as_str().into());
    }
    if let Some(docs) = docs {
        map.insert("description".into(), docs.as_str().into());
    }
}

/// Puts a field's docs in front of whatever the field type's schema already says about itself.
fn prepend_description(schema: &mut Value, docs: &str) {
    // `false` (too deep, or no values) stays as it is: it admits nothing either way.
    if let Value::Object(map) = schema {
        let text = match map.get("description").and_then(Value::as_str) {
            Some(existing) => format!("{docs}\n\n{existing}"),
            None => docs.to_string(),
        };
        map.insert("description".into(), text.into());
    }
}
