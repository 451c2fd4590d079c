//! JSON ↔ `wasmtime::component::Val`, following the shapes in the module doc.
//!
//! Both directions walk the *type*, never the value, so recursion depth is bounded by the type
//! (at most [`MAX_TYPE_DEPTH`]) whatever the input; every allocation is a copy of input data.

use std::collections::HashMap;

use serde_json::{Map, Value};
use wasmtime::component::Val;

use super::types::{Flags, FuncSignature, MAX_TYPE_DEPTH, Named, WitType};
use super::{F32_LIMIT, FLOAT_SPECIALS};

/// How long quoted strings and names from the input may get in an error message.
const MAX_QUOTED_CHARS: usize = 60;
/// How many names an error message lists before it abbreviates.
const MAX_LISTED_NAMES: usize = 12;
/// The largest integer a JavaScript number represents exactly.
const MAX_SAFE_INTEGER: i128 = (1 << 53) - 1;

/// A value that does not fit its type, with the place it was found.
///
/// Displays as `path: problem`, e.g. `shape.radius: expected f64, got string "x"`. The path
/// starts with the parameter name and continues with `.field`, `[index]`, `.case` (variant and
/// result payloads, `.some` for nested options) and `["key"]` (map keys).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem}", display_prefix(path))]
pub struct ConvertError {
    path: String,
    problem: Problem,
}

/// What was wrong. Strings in here are ready for display: names and values that come from the
/// input are quoted, escaped and abbreviated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A JSON value of the wrong shape or out of range.
    #[error("expected {expected}, got {got}")]
    Mismatch { expected: String, got: String },
    #[error("missing required field {0}")]
    MissingField(String),
    #[error("unexpected field {0}")]
    UnexpectedField(String),
    #[error("missing required argument {0}")]
    MissingArgument(String),
    #[error("unexpected argument {0}")]
    UnexpectedArgument(String),
    #[error("duplicate flag {0}")]
    DuplicateFlag(String),
    /// A component value that does not match the type it is supposed to have.
    #[error("component value does not match its type: expected {expected}, got {got}")]
    ValMismatch { expected: String, got: String },
    #[error("type nesting deeper than {MAX_TYPE_DEPTH} levels")]
    TooDeep,
}

fn display_prefix(path: &str) -> String {
    let path = path.strip_prefix('.').unwrap_or(path);
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl ConvertError {
    fn new(problem: Problem) -> Self {
        ConvertError {
            path: String::new(),
            problem,
        }
    }

    fn mismatch(expected: impl Into<String>, got: &Value) -> Self {
        Self::new(Problem::Mismatch {
            expected: expected.into(),
            got: describe(got),
        })
    }

    /// A name that is not one of `names` (enum cases, variant cases, flags).
    fn unknown_name<'a>(names: impl Iterator<Item = &'a str>, got: &str) -> Self {
        Self::new(Problem::Mismatch {
            expected: format!("one of {}", list_quoted(names)),
            got: quote(got),
        })
    }

    fn val_mismatch(expected: impl Into<String>, got: impl Into<String>) -> Self {
        Self::new(Problem::ValMismatch {
            expected: expected.into(),
            got: got.into(),
        })
    }

    /// The path to the offending value, e.g. `shape.radius` or `list[3]`; empty for the root.
    pub fn path(&self) -> &str {
        self.path.strip_prefix('.').unwrap_or(&self.path)
    }

    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    fn at_field(mut self, name: &str) -> Self {
        self.path.insert_str(0, &format!(".{name}"));
        self
    }

    fn at_index(mut self, index: usize) -> Self {
        self.path.insert_str(0, &format!("[{index}]"));
        self
    }

    fn at_key(mut self, key: &str) -> Self {
        self.path.insert_str(0, &format!("[{}]", quote(key)));
        self
    }
}

/// Converts JSON to a component value of type `ty`.
pub fn json_to_val(ty: &WitType, json: &Value) -> Result<Val, ConvertError> {
    to_val(ty, json, 0)
}

/// Converts a tool call's arguments to the function's parameter values, in parameter order.
/// Missing, extra and mistyped arguments are errors; nothing is defaulted.
pub fn args_to_vals(
    sig: &FuncSignature,
    args: &Map<String, Value>,
) -> Result<Vec<Val>, ConvertError> {
    if let Some(extra) = args
        .keys()
        .find(|key| !sig.params.iter().any(|p| &p.name == *key))
    {
        return Err(ConvertError::new(Problem::UnexpectedArgument(quote(extra))));
    }
    sig.params
        .iter()
        .map(|param| match args.get(&param.name) {
            Some(json) => to_val(&param.ty, json, 0).map_err(|e| e.at_field(&param.name)),
            None => Err(ConvertError::new(Problem::MissingArgument(quote(
                &param.name,
            )))),
        })
        .collect()
}

/// Converts a component value of type `ty` to JSON. A value that does not match the type is an
/// error, not a panic.
pub fn val_to_json(ty: &WitType, val: &Val) -> Result<Value, ConvertError> {
    to_json(ty, val, 0)
}

/// The MCP `structuredContent` for a call's results: `{"result": value}` matching
/// [`super::output_schema`], or `None` for a function without a result.
pub fn result_to_json(
    sig: &FuncSignature,
    results: &[Val],
) -> Result<Option<Map<String, Value>>, ConvertError> {
    match (&sig.result, results) {
        (None, []) => Ok(None),
        (Some(ty), [val]) => {
            let json = to_json(ty, val, 0).map_err(|e| e.at_field("result"))?;
            Ok(Some(Map::from_iter([("result".to_string(), json)])))
        }
        (expected, got) => Err(ConvertError::val_mismatch(
            if expected.is_some() {
                "1 result"
            } else {
                "no result"
            },
            format!("{} results", got.len()),
        )),
    }
}

fn to_val(ty: &WitType, json: &Value, depth: usize) -> Result<Val, ConvertError> {
    if depth > MAX_TYPE_DEPTH {
        return Err(ConvertError::new(Problem::TooDeep));
    }
    let next = depth + 1;
    let mismatch = || ConvertError::mismatch(expectation(ty), json);
    Ok(match ty {
        WitType::Bool => Val::Bool(json.as_bool().ok_or_else(mismatch)?),
        WitType::S8 => Val::S8(int(json, false).ok_or_else(mismatch)?),
        WitType::U8 => Val::U8(int(json, false).ok_or_else(mismatch)?),
        WitType::S16 => Val::S16(int(json, false).ok_or_else(mismatch)?),
        WitType::U16 => Val::U16(int(json, false).ok_or_else(mismatch)?),
        WitType::S32 => Val::S32(int(json, false).ok_or_else(mismatch)?),
        WitType::U32 => Val::U32(int(json, false).ok_or_else(mismatch)?),
        WitType::S64 => Val::S64(int(json, true).ok_or_else(mismatch)?),
        WitType::U64 => Val::U64(int(json, true).ok_or_else(mismatch)?),
        WitType::F32 => {
            let v = float(json).ok_or_else(mismatch)?;
            if v.is_finite() && v.abs() >= F32_LIMIT {
                return Err(mismatch());
            }
            Val::Float32(v as f32)
        }
        WitType::F64 => Val::Float64(float(json).ok_or_else(mismatch)?),
        WitType::Char => {
            let s = json.as_str().ok_or_else(mismatch)?;
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Val::Char(c),
                _ => return Err(mismatch()),
            }
        }
        WitType::String => Val::String(json.as_str().ok_or_else(mismatch)?.to_string()),
        WitType::List(item) => Val::List(array_items(
            item,
            json.as_array().ok_or_else(mismatch)?,
            next,
        )?),
        WitType::FixedList(item, n) => {
            let items = json.as_array().ok_or_else(mismatch)?;
            if usize::try_from(*n).ok() != Some(items.len()) {
                return Err(mismatch());
            }
            Val::FixedLengthList(array_items(item, items, next)?)
        }
        WitType::Map(key, value) if **key == WitType::String => {
            let object = json.as_object().ok_or_else(mismatch)?;
            let mut pairs = Vec::with_capacity(object.len());
            for (k, v) in object {
                let v = to_val(value, v, next).map_err(|e| e.at_key(k))?;
                pairs.push((Val::String(k.clone()), v));
            }
            Val::Map(pairs)
        }
        WitType::Map(key, value) => {
            let entries = json.as_array().ok_or_else(mismatch)?;
            let mut pairs = Vec::with_capacity(entries.len());
            for (i, entry) in entries.iter().enumerate() {
                let pair = match entry.as_array().map(Vec::as_slice) {
                    Some([k, v]) => (
                        to_val(key, k, next).map_err(|e| e.at_index(0).at_index(i))?,
                        to_val(value, v, next).map_err(|e| e.at_index(1).at_index(i))?,
                    ),
                    _ => {
                        return Err(
                            ConvertError::mismatch("a [key, value] pair", entry).at_index(i)
                        );
                    }
                };
                pairs.push(pair);
            }
            Val::Map(pairs)
        }
        WitType::Tuple(types) => {
            let items = json.as_array().ok_or_else(mismatch)?;
            if items.len() != types.len() {
                return Err(mismatch());
            }
            let mut vals = Vec::with_capacity(items.len());
            for (i, (ty, item)) in types.iter().zip(items).enumerate() {
                vals.push(to_val(ty, item, next).map_err(|e| e.at_index(i))?);
            }
            Val::Tuple(vals)
        }
        WitType::Record(record) => {
            let object = json.as_object().ok_or_else(mismatch)?;
            let mut fields = Vec::with_capacity(record.fields.len());
            for field in &record.fields {
                let Some(value) = object.get(&field.name) else {
                    return Err(ConvertError::new(Problem::MissingField(quote(&field.name))));
                };
                let val = to_val(&field.ty, value, next).map_err(|e| e.at_field(&field.name))?;
                fields.push((field.name.clone(), val));
            }
            if object.len() > fields.len() {
                // Every declared field was found, so some key is not one of them.
                if let Some(extra) = object
                    .keys()
                    .find(|k| !record.fields.iter().any(|f| &f.name == *k))
                {
                    return Err(ConvertError::new(Problem::UnexpectedField(quote(extra))));
                }
            }
            Val::Record(fields)
        }
        WitType::Variant(variant) => {
            let names = || variant.cases.iter().map(|c| c.name.as_str());
            let (key, payload) = single_entry(json, names)?;
            let Some(case) = variant.cases.iter().find(|c| c.name == *key) else {
                return Err(ConvertError::unknown_name(names(), key));
            };
            let payload =
                optional_payload(case.ty.as_ref(), payload, next).map_err(|e| e.at_field(key))?;
            Val::Variant(case.name.clone(), payload)
        }
        WitType::Enum(e) => {
            let name = json.as_str().ok_or_else(mismatch)?;
            known_name(&e.cases, name)?;
            Val::Enum(name.to_string())
        }
        WitType::Option(inner) => {
            if json.is_null() {
                Val::Option(None)
            } else if matches!(**inner, WitType::Option(_)) {
                let (_, payload) = single_entry(json, || ["some"].into_iter())?;
                let val = to_val(inner, payload, next).map_err(|e| e.at_field("some"))?;
                Val::Option(Some(Box::new(val)))
            } else {
                Val::Option(Some(Box::new(to_val(inner, json, next)?)))
            }
        }
        WitType::Result { ok, err } => {
            let (key, payload) = single_entry(json, || ["ok", "err"].into_iter())?;
            match key.as_str() {
                "ok" => {
                    Val::Result(Ok(optional_payload(ok.as_deref(), payload, next)
                        .map_err(|e| e.at_field("ok"))?))
                }
                _ => Val::Result(Err(optional_payload(err.as_deref(), payload, next)
                    .map_err(|e| e.at_field("err"))?)),
            }
        }
        WitType::Flags(flags) => {
            let items = json.as_array().ok_or_else(mismatch)?;
            let index = flag_positions(flags);
            let mut set = vec![false; flags.names.len()];
            for (i, item) in items.iter().enumerate() {
                let name = item.as_str().ok_or_else(|| {
                    ConvertError::mismatch(
                        format!(
                            "a flag name, one of {}",
                            list_quoted(flags.names.iter().map(|n| n.name.as_str()))
                        ),
                        item,
                    )
                    .at_index(i)
                })?;
                let Some(&position) = index.get(name) else {
                    return Err(ConvertError::unknown_name(
                        flags.names.iter().map(|n| n.name.as_str()),
                        name,
                    )
                    .at_index(i));
                };
                if std::mem::replace(&mut set[position], true) {
                    return Err(ConvertError::new(Problem::DuplicateFlag(quote(name))).at_index(i));
                }
            }
            Val::Flags(
                flags
                    .names
                    .iter()
                    .zip(&set)
                    .filter(|(_, on)| **on)
                    .map(|(n, _)| n.name.clone())
                    .collect(),
            )
        }
    })
}

fn array_items(item: &WitType, items: &[Value], depth: usize) -> Result<Vec<Val>, ConvertError> {
    let mut vals = Vec::with_capacity(items.len());
    for (i, json) in items.iter().enumerate() {
        vals.push(to_val(item, json, depth).map_err(|e| e.at_index(i))?);
    }
    Ok(vals)
}

/// The key and value of a one-key object such as `{"case": payload}`; `names` lists the keys
/// the caller accepts, for the error message.
fn single_entry<'a, 'n, I>(
    json: &'a Value,
    names: impl Fn() -> I,
) -> Result<(&'a String, &'a Value), ConvertError>
where
    I: Iterator<Item = &'n str>,
{
    let mut entries = json.as_object().into_iter().flatten();
    match (entries.next(), entries.next()) {
        (Some((key, value)), None) => {
            if names().any(|name| name == key) {
                Ok((key, value))
            } else {
                Err(ConvertError::unknown_name(names(), key))
            }
        }
        _ => Err(ConvertError::mismatch(
            format!("an object with one key, one of {}", list_quoted(names())),
            json,
        )),
    }
}

/// A variant or result payload: the value when the case has a type, `null` when it has none.
fn optional_payload(
    ty: Option<&WitType>,
    json: &Value,
    depth: usize,
) -> Result<Option<Box<Val>>, ConvertError> {
    match ty {
        Some(ty) => Ok(Some(Box::new(to_val(ty, json, depth)?))),
        None if json.is_null() => Ok(None),
        None => Err(ConvertError::mismatch(
            "null (this case has no payload)",
            json,
        )),
    }
}

fn known_name(names: &[Named], name: &str) -> Result<(), ConvertError> {
    if names.iter().any(|n| n.name == name) {
        Ok(())
    } else {
        Err(ConvertError::unknown_name(
            names.iter().map(|n| n.name.as_str()),
            name,
        ))
    }
}

/// Any JSON integer (or, for 64-bit types, a canonical decimal string) that fits `T`.
/// Integral floats are accepted up to ±2^53−1, where they are exact (JSON Schema counts `5.0`
/// as an integer, and some clients write numbers that way).
fn int<T: TryFrom<i128>>(json: &Value, wide: bool) -> Option<T> {
    let value: i128 = match json {
        Value::Number(n) => {
            if let Some(v) = n.as_i64() {
                v.into()
            } else if let Some(v) = n.as_u64() {
                v.into()
            } else {
                let v = n.as_f64()?;
                if v.fract() != 0.0 || v.abs() > MAX_SAFE_INTEGER as f64 {
                    return None;
                }
                v as i128
            }
        }
        Value::String(s) if wide && is_canonical_decimal(s) => s.parse().ok()?,
        _ => return None,
    };
    T::try_from(value).ok()
}

/// `0`, or an optional `-` and 1 to 20 digits without a leading zero (what [`super::S64_PATTERN`]
/// and [`super::U64_PATTERN`] admit, before the range check).
fn is_canonical_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    s == "0"
        || (!digits.is_empty()
            && digits.len() <= 20
            && !digits.starts_with('0')
            && digits.bytes().all(|b| b.is_ascii_digit()))
}

fn float(json: &Value) -> Option<f64> {
    match json {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// What a type's JSON looks like, for "expected …" messages.
fn expectation(ty: &WitType) -> String {
    if let Some(range) = ty.integer_range() {
        return match ty {
            WitType::S64 | WitType::U64 => range + " as integer or decimal string",
            _ => range,
        };
    }
    match ty {
        WitType::Bool => "bool".into(),
        WitType::F32 => format!(
            "f32 (finite values within ±{:e}, or {})",
            f32::MAX,
            specials()
        ),
        WitType::F64 => format!("f64 (a number, or {})", specials()),
        WitType::Char => "char (a string of exactly one Unicode scalar value)".into(),
        WitType::String => "string".into(),
        WitType::List(_) => "array".into(),
        WitType::FixedList(_, n) => format!("array of exactly {n} items"),
        WitType::Map(key, _) if **key == WitType::String => "object (map)".into(),
        WitType::Map(..) => "array of [key, value] pairs (map)".into(),
        WitType::Tuple(items) => format!("array of exactly {} items (tuple)", items.len()),
        WitType::Record(_) => format!("object ({})", ty.wit_name()),
        WitType::Enum(e) => format!(
            "one of {}",
            list_quoted(e.cases.iter().map(|c| c.name.as_str()))
        ),
        WitType::Flags(_) => format!("array of flag names ({})", ty.wit_name()),
        // Variants, options and results are checked by `single_entry` and the option case,
        // which say more; integers were answered above.
        _ => ty.wit_name(),
    }
}

fn specials() -> String {
    list_quoted(FLOAT_SPECIALS.iter().copied())
}

fn to_json(ty: &WitType, val: &Val, depth: usize) -> Result<Value, ConvertError> {
    if depth > MAX_TYPE_DEPTH {
        return Err(ConvertError::new(Problem::TooDeep));
    }
    let next = depth + 1;
    Ok(match (ty, val) {
        (WitType::Bool, Val::Bool(v)) => Value::Bool(*v),
        (WitType::S8, Val::S8(v)) => (*v).into(),
        (WitType::U8, Val::U8(v)) => (*v).into(),
        (WitType::S16, Val::S16(v)) => (*v).into(),
        (WitType::U16, Val::U16(v)) => (*v).into(),
        (WitType::S32, Val::S32(v)) => (*v).into(),
        (WitType::U32, Val::U32(v)) => (*v).into(),
        (WitType::S64, Val::S64(v)) => wide_int(*v),
        (WitType::U64, Val::U64(v)) => wide_int(*v),
        (WitType::F32, Val::Float32(v)) => float_json(shortest_f64(*v)),
        (WitType::F64, Val::Float64(v)) => float_json(*v),
        (WitType::Char, Val::Char(c)) => Value::String(c.to_string()),
        (WitType::String, Val::String(s)) => Value::String(s.clone()),
        (WitType::List(item), Val::List(items)) => Value::Array(vals_to_json(item, items, next)?),
        (WitType::FixedList(item, n), Val::FixedLengthList(items)) => {
            if usize::try_from(*n).ok() != Some(items.len()) {
                return Err(ConvertError::val_mismatch(
                    format!("{n} items"),
                    format!("{} items", items.len()),
                ));
            }
            Value::Array(vals_to_json(item, items, next)?)
        }
        (WitType::Map(key, value), Val::Map(pairs)) if **key == WitType::String => {
            let mut object = Map::new();
            for (i, (k, v)) in pairs.iter().enumerate() {
                let Val::String(k) = k else {
                    return Err(ConvertError::val_mismatch("string", val_kind(k)).at_index(i));
                };
                // Later pairs win, as in the component model's map semantics.
                object.insert(k.clone(), to_json(value, v, next).map_err(|e| e.at_key(k))?);
            }
            Value::Object(object)
        }
        (WitType::Map(key, value), Val::Map(pairs)) => {
            let mut entries = Vec::with_capacity(pairs.len());
            for (i, (k, v)) in pairs.iter().enumerate() {
                let k = to_json(key, k, next).map_err(|e| e.at_index(0).at_index(i))?;
                let v = to_json(value, v, next).map_err(|e| e.at_index(1).at_index(i))?;
                entries.push(Value::Array(vec![k, v]));
            }
            Value::Array(entries)
        }
        (WitType::Tuple(types), Val::Tuple(items)) => {
            if types.len() != items.len() {
                return Err(ConvertError::val_mismatch(
                    format!("{} items", types.len()),
                    format!("{} items", items.len()),
                ));
            }
            let mut out = Vec::with_capacity(items.len());
            for (i, (ty, item)) in types.iter().zip(items).enumerate() {
                out.push(to_json(ty, item, next).map_err(|e| e.at_index(i))?);
            }
            Value::Array(out)
        }
        (WitType::Record(record), Val::Record(fields)) => {
            if record.fields.len() != fields.len() {
                return Err(ConvertError::val_mismatch(
                    format!("{} fields", record.fields.len()),
                    format!("{} fields", fields.len()),
                ));
            }
            let mut object = Map::new();
            for (field, (name, v)) in record.fields.iter().zip(fields) {
                if field.name != *name {
                    return Err(ConvertError::val_mismatch(
                        format!("field {}", quote(&field.name)),
                        format!("field {}", quote(name)),
                    ));
                }
                object.insert(
                    name.clone(),
                    to_json(&field.ty, v, next).map_err(|e| e.at_field(name))?,
                );
            }
            Value::Object(object)
        }
        (WitType::Variant(variant), Val::Variant(name, payload)) => {
            let Some(case) = variant.cases.iter().find(|c| c.name == *name) else {
                return Err(ConvertError::val_mismatch(
                    format!(
                        "one of {}",
                        list_quoted(variant.cases.iter().map(|c| c.name.as_str()))
                    ),
                    format!("case {}", quote(name)),
                ));
            };
            one_key(
                name,
                payload_json(case.ty.as_ref(), payload.as_deref(), next)
                    .map_err(|e| e.at_field(name))?,
            )
        }
        (WitType::Enum(e), Val::Enum(name)) => {
            if !e.cases.iter().any(|c| c.name == *name) {
                return Err(ConvertError::val_mismatch(
                    format!(
                        "one of {}",
                        list_quoted(e.cases.iter().map(|c| c.name.as_str()))
                    ),
                    format!("case {}", quote(name)),
                ));
            }
            Value::String(name.clone())
        }
        (WitType::Option(_), Val::Option(None)) => Value::Null,
        (WitType::Option(inner), Val::Option(Some(v))) => {
            if matches!(**inner, WitType::Option(_)) {
                one_key(
                    "some",
                    to_json(inner, v, next).map_err(|e| e.at_field("some"))?,
                )
            } else {
                to_json(inner, v, next)?
            }
        }
        (WitType::Result { ok, .. }, Val::Result(Ok(v))) => one_key(
            "ok",
            payload_json(ok.as_deref(), v.as_deref(), next).map_err(|e| e.at_field("ok"))?,
        ),
        (WitType::Result { err, .. }, Val::Result(Err(v))) => one_key(
            "err",
            payload_json(err.as_deref(), v.as_deref(), next).map_err(|e| e.at_field("err"))?,
        ),
        (WitType::Flags(flags), Val::Flags(names)) => {
            let index = flag_positions(flags);
            let mut set = vec![false; flags.names.len()];
            for name in names {
                let Some(&position) = index.get(name.as_str()) else {
                    return Err(ConvertError::val_mismatch(
                        format!(
                            "one of {}",
                            list_quoted(flags.names.iter().map(|n| n.name.as_str()))
                        ),
                        format!("flag {}", quote(name)),
                    ));
                };
                if std::mem::replace(&mut set[position], true) {
                    return Err(ConvertError::new(Problem::DuplicateFlag(quote(name))));
                }
            }
            // Declaration order, whatever order the value listed them in.
            Value::Array(
                flags
                    .names
                    .iter()
                    .zip(&set)
                    .filter(|(_, on)| **on)
                    .map(|(n, _)| Value::String(n.name.clone()))
                    .collect(),
            )
        }
        (ty, val) => return Err(ConvertError::val_mismatch(ty.wit_name(), val_kind(val))),
    })
}

fn vals_to_json(item: &WitType, items: &[Val], depth: usize) -> Result<Vec<Value>, ConvertError> {
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        out.push(to_json(item, v, depth).map_err(|e| e.at_index(i))?);
    }
    Ok(out)
}

fn payload_json(
    ty: Option<&WitType>,
    val: Option<&Val>,
    depth: usize,
) -> Result<Value, ConvertError> {
    match (ty, val) {
        (Some(ty), Some(val)) => to_json(ty, val, depth),
        (None, None) => Ok(Value::Null),
        (Some(ty), None) => Err(ConvertError::val_mismatch(ty.wit_name(), "no payload")),
        (None, Some(val)) => Err(ConvertError::val_mismatch("no payload", val_kind(val))),
    }
}

fn one_key(key: &str, value: Value) -> Value {
    Value::Object(Map::from_iter([(key.to_string(), value)]))
}

/// 64-bit integers leave JSON's exact range (for JavaScript) at ±2^53−1: beyond it they are
/// written as decimal strings.
fn wide_int(v: impl Into<i128>) -> Value {
    let v: i128 = v.into();
    match i64::try_from(v) {
        Ok(small) if v.abs() <= MAX_SAFE_INTEGER => small.into(),
        _ => Value::String(v.to_string()),
    }
}

/// The f64 closest to the shortest decimal that reads back as `v`, so `0.1f32` is written as
/// `0.1` rather than `0.10000000149011612`.
fn shortest_f64(v: f32) -> f64 {
    if !v.is_finite() {
        return v.into();
    }
    format!("{v:e}").parse().unwrap_or(v.into())
}

fn float_json(v: f64) -> Value {
    match serde_json::Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => Value::String(FLOAT_SPECIALS[0].into()),
        None if v > 0.0 => Value::String(FLOAT_SPECIALS[1].into()),
        None => Value::String(FLOAT_SPECIALS[2].into()),
    }
}

fn val_kind(val: &Val) -> &'static str {
    match val {
        Val::Bool(_) => "bool",
        Val::S8(_) => "s8",
        Val::U8(_) => "u8",
        Val::S16(_) => "s16",
        Val::U16(_) => "u16",
        Val::S32(_) => "s32",
        Val::U32(_) => "u32",
        Val::S64(_) => "s64",
        Val::U64(_) => "u64",
        Val::Float32(_) => "f32",
        Val::Float64(_) => "f64",
        Val::Char(_) => "char",
        Val::String(_) => "string",
        Val::List(_) => "list",
        Val::Map(_) => "map",
        Val::Record(_) => "record",
        Val::Tuple(_) => "tuple",
        Val::Variant(..) => "variant",
        Val::Enum(_) => "enum",
        Val::Option(_) => "option",
        Val::Result(_) => "result",
        Val::Flags(_) => "flags",
        Val::Resource(_) => "resource",
        Val::Future(_) => "future",
        Val::Stream(_) => "stream",
        Val::ErrorContext(_) => "error-context",
        Val::FixedLengthList(_) => "fixed-length list",
    }
}

/// A short description of a JSON value for "got …": scalars as written (strings quoted and
/// abbreviated), containers by size and keys.
fn describe(json: &Value) -> String {
    match json {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => abbreviate(&n.to_string()),
        Value::String(s) => format!("string {}", quote(s)),
        Value::Array(items) if items.len() == 1 => "array of 1 item".into(),
        Value::Array(items) => format!("array of {} items", items.len()),
        Value::Object(map) if map.is_empty() => "empty object".into(),
        Value::Object(map) => format!(
            "object with keys {}",
            list_quoted(map.keys().map(String::as_str))
        ),
    }
}

/// `s` as a JSON string literal, cut to [`MAX_QUOTED_CHARS`] characters.
fn quote(s: &str) -> String {
    Value::String(abbreviate(s)).to_string()
}

fn abbreviate(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// `"a", "b", "c"`, abbreviated after [`MAX_LISTED_NAMES`] names.
fn list_quoted<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::new();
    let mut count = 0usize;
    for name in names {
        count += 1;
        if count <= MAX_LISTED_NAMES {
            if count > 1 {
                out.push_str(", ");
            }
            out.push_str(&quote(name));
        }
    }
    if count > MAX_LISTED_NAMES {
        out.push_str(&format!(", … ({} more)", count - MAX_LISTED_NAMES));
    }
    if count == 0 {
        out.push_str("nothing (the type has no cases)");
    }
    out
}

/// Each flag name's declaration position: flags are written in declaration order both ways.
fn flag_positions(flags: &Flags) -> HashMap<&str, usize> {
    flags
        .names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect()
}
