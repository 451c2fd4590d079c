//! WIT types as JSON: the JSON Schema of a function's parameters and result, and conversion of
//! JSON arguments to component values and of component values back to JSON.
//!
//! This module knows nothing about policy, MCP or the gateway. It is pure and total: every
//! function returns an error rather than panicking, recursion is bounded by the *type* (at most
//! [`MAX_TYPE_DEPTH`] levels, enforced when a signature is built and again in every walk), and
//! memory is only allocated for copies of the input.
//!
//! # JSON shapes
//!
//! One encoding, used by [`json_to_val`], [`val_to_json`] and [`schema`] alike:
//!
//! | WIT | JSON | schema |
//! | --- | --- | --- |
//! | `bool` | `true` / `false` | `boolean` |
//! | `s8` … `u32` | integer | `integer` with exact `minimum` / `maximum` |
//! | `s64`, `u64` | integer when \|v\| ≤ 2^53−1, else a decimal string (`"18446744073709551615"`); input accepts either form for any value | `anyOf` integer (exact bounds) / string with a decimal `pattern`; the bounds of the string form are in `description` |
//! | `f32`, `f64` | number; `"NaN"`, `"Infinity"`, `"-Infinity"` for the non-finite values; `-0.0` is kept. finite `f32` input that does not round to a finite `f32` (beyond ±`f32::MAX`) is an error, not ±∞ | `anyOf` number (`f32`: with `exclusiveMinimum`/`exclusiveMaximum` at the rounding limit) / `enum` of the three strings |
//! | `char` | a string of exactly one Unicode scalar value | `string`, `minLength` = `maxLength` = 1 |
//! | `string` | string | `string` |
//! | `list<T>` | array | `array` with `items` |
//! | `list<T, N>` | array of exactly N items | `array`, `minItems` = `maxItems` = N |
//! | `tuple<…>` | array of exactly n items | `prefixItems`, `minItems` = `maxItems` = n, `items: false` |
//! | `record` | object with every field (kebab-case names as in WIT), no others; an `option` field must be present, possibly `null` | `object`, all `required`, `additionalProperties: false` |
//! | `variant` | one-key object `{"case": payload}`, `{"case": null}` for a case without payload | `oneOf` of one-property objects |
//! | `enum` | the case name as a string | `string` with `enum` |
//! | `option<T>` | `null` for none, the value of T for some. When T is itself an option, the inner levels are written `{"some": v}`, so `some(none)` = `{"some": null}` stays distinct from `none` = `null` | `anyOf` null / T |
//! | `result<T, E>` | `{"ok": v}` / `{"err": e}`, with `null` for an absent payload | `oneOf` of the two objects |
//! | `flags` | array of the set flag names, each at most once; output in declaration order | `array` of `enum` strings, `uniqueItems` |
//! | `map<string, V>` | object | `object` with `additionalProperties` |
//! | `map<K, V>` (other K) | array of `[k, v]` pairs | `array` of two-item tuples |
//!
//! Further rules: integer types also accept integral floats such as `5.0` up to ±2^53−1 (JSON
//! Schema calls them integers); nothing else is coerced (no numbers in strings except the
//! 64-bit form, no strings for booleans). Named types (records, variants, enums, flags) get
//! their WIT name as `title` and their docs as `description`; field and case docs become the
//! property's or branch's `description`.
//!
//! Where schema and converter differ, the converter is stricter: the decimal-string form of
//! `s64`/`u64` is range-checked only by the converter, and duplicate keys of a map given as
//! pairs are passed on (the component model lets the last one win).
//!
//! A function's whole argument object is described by [`input_schema`] and converted by
//! [`args_to_vals`]; its result is wrapped as `{"result": value}` (MCP wants an object) by
//! [`output_schema`] and [`result_to_json`].
//!
//! WAVE text (`gatehouse call`) is parsed by wasm-wave; when its arguments do not fit,
//! [`wave::explain_params`] names the path, the expectation and what was written, with the paths
//! written as here.

mod convert;
mod schema;
mod types;
pub mod wave;

#[cfg(test)]
mod tests;

pub use convert::{ConvertError, Problem, args_to_vals, json_to_val, result_to_json, val_to_json};
pub use schema::{input_schema, output_schema, schema};
pub use types::{
    Case, Enum, Field, Flags, FuncSignature, MAX_TYPE_DEPTH, MAX_TYPE_NODES, Named, Param, Record,
    Unsupported, Variant, WitType, signature,
};

/// The JSON strings for NaN, +∞ and −∞, in that order.
const FLOAT_SPECIALS: [&str; 3] = ["NaN", "Infinity", "-Infinity"];
/// The smallest magnitude that no longer rounds to a finite `f32`: `f32::MAX` plus half of its
/// ULP (2^103). Finite inputs at or beyond it are errors for `f32`, not ±∞. (It is not
/// `f32::MAX` itself: the shortest decimal of `f32::MAX`, `3.4028235e38`, is slightly larger.)
const F32_LIMIT: f64 = f32::MAX as f64 + (1u128 << 103) as f64;
/// Decimal strings for `s64`: no sign but `-`, no leading zeros, at most 19 digits.
const S64_PATTERN: &str = "^(0|-?[1-9][0-9]{0,18})$";
/// Decimal strings for `u64`: no sign, no leading zeros, at most 20 digits.
const U64_PATTERN: &str = "^(0|[1-9][0-9]{0,19})$";
