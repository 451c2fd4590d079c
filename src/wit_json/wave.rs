//! Why WAVE arguments do not fit a function's parameters, said as the JSON path says it.
//!
//! wasm-wave checks a call's arguments against the parameter types and reports the first
//! problem as a kind and a byte range (`invalid value type at 43..46`). Its error is raised at
//! the innermost value that failed, so the range is enough to find that value again in the
//! untyped syntax tree: [`explain_params`] walks from the argument list down through the
//! values whose range contains the error's, alongside our model of the types, and reports the
//! path (`s.circle.radius`, as [`super::ConvertError`] writes paths), what the type expects in
//! WAVE syntax and what was written there. The byte range stays as a supplement.
//!
//! The walk is bounded by the type (each step descends one type level, at most
//! [`MAX_TYPE_DEPTH`]), never by the input.

use std::ops::Range;

use wasm_wave::ast::{Node, NodeType};
use wasm_wave::parser::ParserError;
use wasm_wave::untyped::UntypedFuncCall;

use super::types::{FuncSignature, MAX_TYPE_DEPTH, WitType};

/// How much of the call's text an error message quotes.
const MAX_QUOTED_CHARS: usize = 60;
/// How many names an expectation lists before it abbreviates.
const MAX_LISTED_NAMES: usize = 12;

/// WAVE arguments that do not fit, with where: displays as
/// `s.circle.radius: expected f64, got string "x" (at bytes 43..46 of the call)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{problem} (at bytes {}..{} of the call)", prefix(path), span.start, span.end)]
pub struct WaveArgsError {
    /// The parameter name, then `.field`, `[index]`, `.case`, `.ok` / `.err`; empty when the
    /// problem is the argument list itself.
    pub path: String,
    pub problem: String,
    /// The bytes of the call wasm-wave reported.
    pub span: Range<usize>,
}

fn prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Explains `error`, which wasm-wave raised converting `call`'s arguments to the parameter
/// types of `signature` (the same function, in our model).
pub fn explain_params(
    signature: &FuncSignature,
    call: &UntypedFuncCall<'_>,
    error: &ParserError,
) -> WaveArgsError {
    let source = call.source();
    let span = error.span();
    let explained = |path: String, problem: String| WaveArgsError {
        path,
        problem,
        span: span.clone(),
    };
    let arguments: Vec<&Node> = match call.params_node().map(Node::as_tuple) {
        Some(Ok(arguments)) => arguments.collect(),
        _ => Vec::new(),
    };
    let Some(index) = arguments.iter().position(|a| contains(&a.span(), &span)) else {
        // Nothing written is at fault: arguments are missing.
        let missing = signature.params.iter().skip(arguments.len());
        return match missing.map(|p| p.name.as_str()).next() {
            Some(name) => explained(
                String::new(),
                format!("missing required argument {}", quote(name)),
            ),
            None => explained(String::new(), wave_message(error)),
        };
    };
    let Some(param) = signature.params.get(index) else {
        return explained(
            String::new(),
            format!(
                "unexpected argument {}: `{}` takes {}",
                index + 1,
                signature.name,
                count(signature.params.len(), "argument")
            ),
        );
    };
    let mut path = param.name.clone();
    let (ty, node) = descend(&param.ty, arguments[index], source, &span, &mut path, 0);
    let problem =
        if is_number_bool_or_char(ty) || !fits(ty, node.ty()) || unknown_name(ty, node, source) {
            format!(
                "expected {}, got {}",
                expectation(ty),
                describe(node, source)
            )
        } else {
            // The value has the right shape; wasm-wave says what is wrong inside it (a missing
            // field, an unknown case, a wrong number of tuple elements).
            wave_message(error)
        };
    explained(path, problem)
}

/// Walks from `node` (of type `ty`) to the innermost value whose bytes contain `target`,
/// extending `path`; returns that value and its type.
fn descend<'t, 'n>(
    ty: &'t WitType,
    node: &'n Node,
    source: &str,
    target: &Range<usize>,
    path: &mut String,
    depth: usize,
) -> (&'t WitType, &'n Node) {
    if depth > MAX_TYPE_DEPTH {
        return (ty, node);
    }
    let next = depth + 1;
    let inside = |child: &Node| contains(&child.span(), target);
    match (ty, node.ty()) {
        (WitType::Record(record), NodeType::Record) => {
            if let Ok(fields) = node.as_record(source) {
                for (label, child) in fields {
                    let field = record.fields.iter().find(|f| f.name == label);
                    if let Some(field) = field.filter(|_| inside(child)) {
                        path.push_str(&format!(".{label}"));
                        return descend(&field.ty, child, source, target, path, next);
                    }
                }
            }
        }
        (WitType::List(item) | WitType::FixedList(item, _), NodeType::List) => {
            if let Ok(items) = node.as_list() {
                for (index, child) in items.enumerate() {
                    if inside(child) {
                        path.push_str(&format!("[{index}]"));
                        return descend(item, child, source, target, path, next);
                    }
                }
            }
        }
        (WitType::Tuple(types), NodeType::Tuple) => {
            if let Ok(items) = node.as_tuple() {
                for (index, (ty, child)) in types.iter().zip(items).enumerate() {
                    if inside(child) {
                        path.push_str(&format!("[{index}]"));
                        return descend(ty, child, source, target, path, next);
                    }
                }
            }
        }
        (WitType::Variant(variant), NodeType::VariantWithPayload) => {
            if let Ok((label, Some(payload))) = node.as_variant(source) {
                let case = variant.cases.iter().find(|c| c.name == label);
                if let Some(ty) = case.and_then(|c| c.ty.as_ref()).filter(|_| inside(payload)) {
                    path.push_str(&format!(".{label}"));
                    return descend(ty, payload, source, target, path, next);
                }
            }
        }
        (WitType::Option(some), NodeType::OptionSome) => {
            if let Ok(Some(payload)) = node.as_option()
                && inside(payload)
            {
                return descend(some, payload, source, target, path, next);
            }
        }
        // `some` may be left out: the value itself stands for `some(value)`.
        (WitType::Option(some), _)
            if flattenable(some) && !matches!(node.ty(), NodeType::OptionNone) =>
        {
            return descend(some, node, source, target, path, next);
        }
        (WitType::Result { ok, err }, NodeType::ResultOk | NodeType::ResultErr) => {
            let (case, ty) = match node.ty() {
                NodeType::ResultOk => ("ok", ok),
                _ => ("err", err),
            };
            let payload = match node.as_result() {
                Ok(Ok(payload) | Err(payload)) => payload,
                Err(_) => None,
            };
            if let (Some(ty), Some(payload)) = (ty, payload)
                && inside(payload)
            {
                path.push_str(&format!(".{case}"));
                return descend(ty, payload, source, target, path, next);
            }
        }
        // `ok` may be left out too.
        (WitType::Result { ok: Some(ok), .. }, _) if flattenable(ok) => {
            return descend(ok, node, source, target, path, next);
        }
        _ => {}
    }
    (ty, node)
}

/// Types whose only problems are shape and range: "expected X, got Y" says it all.
fn is_number_bool_or_char(ty: &WitType) -> bool {
    WitType::SCALARS.contains(ty) && *ty != WitType::String
}

/// A variant case or enum name the type does not have: listing the names says more than
/// wasm-wave's `unknown case`.
fn unknown_name(ty: &WitType, node: &Node, source: &str) -> bool {
    let Ok((name, _)) = node.as_variant(source) else {
        return false;
    };
    match ty {
        WitType::Variant(variant) => !variant.cases.iter().any(|c| c.name == name),
        WitType::Enum(e) => !e.cases.iter().any(|c| c.name == name),
        _ => false,
    }
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// wasm-wave lets `some(…)` / `ok(…)` be left out unless the payload is itself an option or a
/// result.
fn flattenable(ty: &WitType) -> bool {
    !matches!(ty, WitType::Option(_) | WitType::Result { .. })
}

/// Whether a value written as `node` could be of type `ty` at all (its shape, not its value).
fn fits(ty: &WitType, node: NodeType) -> bool {
    use NodeType as N;
    match ty {
        WitType::Bool => matches!(node, N::BoolTrue | N::BoolFalse),
        WitType::S8
        | WitType::U8
        | WitType::S16
        | WitType::U16
        | WitType::S32
        | WitType::U32
        | WitType::S64
        | WitType::U64
        | WitType::F32
        | WitType::F64 => node == N::Number,
        WitType::Char => node == N::Char,
        WitType::String => matches!(node, N::String | N::MultilineString),
        WitType::List(_) | WitType::FixedList(..) => node == N::List,
        WitType::Tuple(_) => node == N::Tuple,
        WitType::Record(_) => node == N::Record,
        WitType::Variant(_) => matches!(node, N::Label | N::VariantWithPayload),
        WitType::Enum(_) => node == N::Label,
        WitType::Flags(_) => node == N::Flags,
        WitType::Option(some) => {
            matches!(node, N::OptionSome | N::OptionNone) || (flattenable(some) && fits(some, node))
        }
        WitType::Result { ok, .. } => {
            matches!(node, N::ResultOk | N::ResultErr)
                || ok
                    .as_deref()
                    .is_some_and(|ok| flattenable(ok) && fits(ok, node))
        }
        // wasm-wave has no syntax for maps: whatever is written, it says so itself.
        WitType::Map(..) => true,
    }
}

/// What a value of `ty` looks like in WAVE.
fn expectation(ty: &WitType) -> String {
    if let Some(range) = ty.integer_range() {
        return range;
    }
    match ty {
        WitType::Bool => "bool (true or false)".into(),
        WitType::F32 | WitType::F64 => format!("{} (a number, nan, inf or -inf)", ty.wit_name()),
        WitType::Char => "char (one character in single quotes, e.g. 'a')".into(),
        WitType::String => "string (in double quotes)".into(),
        WitType::List(_) => "list ([…])".into(),
        WitType::FixedList(_, n) => format!("list of exactly {n} items ([…])"),
        WitType::Tuple(items) => format!("tuple of {} (…)", items.len()),
        WitType::Record(record) => format!(
            "{} {{{}}}",
            ty.wit_name(),
            list(record.fields.iter().map(|f| format!("{}: …", f.name)))
        ),
        WitType::Variant(variant) => format!(
            "{}: one of {}",
            ty.wit_name(),
            list(variant.cases.iter().map(|c| match c.ty {
                Some(_) => format!("{}(…)", c.name),
                None => c.name.clone(),
            }))
        ),
        WitType::Enum(e) => format!(
            "{}: one of {}",
            ty.wit_name(),
            list(e.cases.iter().map(|c| c.name.clone()))
        ),
        WitType::Flags(flags) => format!(
            "{} {{{}}}",
            ty.wit_name(),
            list(flags.names.iter().map(|n| n.name.clone()))
        ),
        WitType::Option(_) => "option (some(…), none, or the value itself)".into(),
        WitType::Result { .. } => "result (ok(…) or err(…))".into(),
        WitType::Map(..) => "map".into(),
        // Integers were answered above.
        _ => ty.wit_name(),
    }
}

/// What was written, e.g. `string "x"`, `number 1.5`, `record {center, radius}`.
fn describe(node: &Node, source: &str) -> String {
    let text = abbreviate(source.get(node.span()).unwrap_or("?"));
    match node.ty() {
        NodeType::BoolTrue | NodeType::BoolFalse => format!("bool {text}"),
        NodeType::Number => format!("number {text}"),
        NodeType::Char => format!("char {text}"),
        NodeType::String | NodeType::MultilineString => format!("string {text}"),
        NodeType::List => format!(
            "list of {}",
            count(node.as_list().map_or(0, |i| i.len()), "item")
        ),
        NodeType::Tuple => format!(
            "tuple of {}",
            count(node.as_tuple().map_or(0, |i| i.len()), "item")
        ),
        NodeType::Record => match node.as_record(source) {
            Ok(fields) => format!(
                "record {{{}}}",
                list(fields.map(|(name, _)| name.to_string()))
            ),
            Err(_) => "record".into(),
        },
        NodeType::Label => format!("name {text}"),
        NodeType::VariantWithPayload => format!("case {text}"),
        NodeType::OptionSome | NodeType::OptionNone | NodeType::ResultOk | NodeType::ResultErr => {
            text
        }
        NodeType::Flags => format!("flags {text}"),
    }
}

/// wasm-wave's own words for a problem: the value error it wraps, else its detail, else the
/// kind (without the byte range, which [`WaveArgsError`] shows itself).
fn wave_message(error: &ParserError) -> String {
    use std::error::Error as _;
    match (error.source(), error.detail()) {
        (Some(source), _) => source.to_string(),
        (None, Some(detail)) => format!("{}: {detail}", error.kind()),
        (None, None) => error.kind().to_string(),
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn quote(name: &str) -> String {
    serde_json::Value::String(abbreviate(name)).to_string()
}

fn abbreviate(s: &str) -> String {
    match s.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

/// `a, b, c`, abbreviated after [`MAX_LISTED_NAMES`] names.
fn list(names: impl Iterator<Item = String>) -> String {
    let names: Vec<String> = names.collect();
    let mut out = names
        .iter()
        .take(MAX_LISTED_NAMES)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > MAX_LISTED_NAMES {
        out.push_str(&format!(", … ({} more)", names.len() - MAX_LISTED_NAMES));
    }
    out
}
