//! Structural generation of WIT types and of values of a type from fuzz input, plus the two
//! oracles the checks need: whether a value has a type, and value equality with the documented
//! float rules. The oracles are written independently of `wit_json`, which they judge.

use arbitrary::{Result, Unstructured};
use wasmtime::component::Val;

use crate::wit_json::{Case, Enum, Field, Flags, Named, Record, Variant, WitType};

/// How large and how odd the generated types may be.
#[derive(Debug, Clone, Copy)]
pub struct TypeShape {
    /// Nesting levels (a scalar is level 0).
    pub max_depth: usize,
    /// Type nodes in total.
    pub max_nodes: usize,
    /// Items in a tuple, fields in a record, cases in a variant or enum, names in flags.
    pub max_members: usize,
    /// Largest `N` of `list<T, N>`.
    pub max_fixed_len: u32,
    /// Only WIT labels (kebab-case) as names, and no docs; otherwise any string goes.
    pub labels_only: bool,
    /// Every record, variant, enum and tuple has at least one member, so the type has values.
    pub inhabited: bool,
    /// Whether `map<K, V>` may appear (WAVE has no maps).
    pub maps: bool,
    /// Whether a map's key may be any type, as the JSON converters allow (they write such maps
    /// as `[key, value]` pairs); otherwise it is `string`, `u32`, `s64` or `char`.
    pub any_map_keys: bool,
    /// Whether `list<T, N>` may appear (wasm-wave's own value type does not convert them).
    pub fixed_lists: bool,
}

impl TypeShape {
    /// Types for the JSON converters: moderately deep, any names.
    pub const JSON: TypeShape = TypeShape {
        max_depth: 8,
        max_nodes: 48,
        max_members: 5,
        max_fixed_len: 4,
        labels_only: false,
        inhabited: false,
        maps: true,
        any_map_keys: false,
        fixed_lists: true,
    };
}

/// The keyword-like labels WAVE and our JSON shapes have to keep apart from real names.
const TRICKY_LABELS: &[&str] = &[
    "some", "none", "ok", "err", "true", "false", "inf", "nan", "result", "value",
];

/// A WIT type built from `u` within `shape`.
pub fn arbitrary_type(u: &mut Unstructured, shape: &TypeShape) -> Result<WitType> {
    let mut nodes = shape.max_nodes;
    type_at(u, shape, 0, &mut nodes)
}

fn type_at(
    u: &mut Unstructured,
    shape: &TypeShape,
    depth: usize,
    nodes: &mut usize,
) -> Result<WitType> {
    *nodes = nodes.saturating_sub(1);
    let leaf = depth >= shape.max_depth || *nodes == 0 || u.is_empty();
    let kinds = if leaf { 13 } else { 23 };
    let next = depth + 1;
    Ok(match u.choose_index(kinds)? {
        scalar @ 0..=12 => WitType::SCALARS[scalar].clone(),
        13 => WitType::List(Box::new(type_at(u, shape, next, nodes)?)),
        14 if shape.fixed_lists => {
            let n = u.int_in_range(0..=shape.max_fixed_len)?;
            WitType::FixedList(Box::new(type_at(u, shape, next, nodes)?), n)
        }
        14 => WitType::List(Box::new(type_at(u, shape, next, nodes)?)),
        15 if shape.maps => {
            let key = if shape.any_map_keys && u.arbitrary()? {
                type_at(u, shape, next, nodes)?
            } else {
                match u.choose_index(4)? {
                    0 => WitType::String,
                    1 => WitType::U32,
                    2 => WitType::S64,
                    _ => WitType::Char,
                }
            };
            WitType::Map(Box::new(key), Box::new(type_at(u, shape, next, nodes)?))
        }
        15 | 16 => {
            let n = members(u, shape)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(type_at(u, shape, next, nodes)?);
            }
            WitType::Tuple(items)
        }
        17 => {
            let mut fields = Vec::new();
            for name in names(u, shape)? {
                let docs = docs(u, shape)?;
                let ty = type_at(u, shape, next, nodes)?;
                fields.push(Field { name, docs, ty });
            }
            WitType::Record(Record {
                name: type_name(u, shape)?,
                docs: docs(u, shape)?,
                fields,
            })
        }
        18 => {
            let mut cases = Vec::new();
            for name in names(u, shape)? {
                let docs = docs(u, shape)?;
                let ty = if u.arbitrary()? {
                    Some(type_at(u, shape, next, nodes)?)
                } else {
                    None
                };
                cases.push(Case { name, docs, ty });
            }
            WitType::Variant(Variant {
                name: type_name(u, shape)?,
                docs: docs(u, shape)?,
                cases,
            })
        }
        19 => WitType::Enum(Enum {
            name: type_name(u, shape)?,
            docs: docs(u, shape)?,
            cases: named(u, shape)?,
        }),
        20 => WitType::Option(Box::new(type_at(u, shape, next, nodes)?)),
        21 => {
            let mut payload = |u: &mut Unstructured| -> Result<Option<Box<WitType>>> {
                Ok(if u.arbitrary()? {
                    Some(Box::new(type_at(u, shape, next, nodes)?))
                } else {
                    None
                })
            };
            let ok = payload(u)?;
            let err = payload(u)?;
            WitType::Result { ok, err }
        }
        _ => WitType::Flags(Flags {
            name: type_name(u, shape)?,
            docs: docs(u, shape)?,
            names: named(u, shape)?,
        }),
    })
}

fn members(u: &mut Unstructured, shape: &TypeShape) -> Result<usize> {
    let min = usize::from(shape.inhabited);
    u.int_in_range(min..=shape.max_members.max(min))
}

/// Distinct member names (duplicates are dropped, as WIT does not allow them).
fn names(u: &mut Unstructured, shape: &TypeShape) -> Result<Vec<String>> {
    let n = members(u, shape)?;
    let mut out: Vec<String> = Vec::with_capacity(n);
    for _ in 0..n {
        let name = member_name(u, shape)?;
        if !out.contains(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

fn named(u: &mut Unstructured, shape: &TypeShape) -> Result<Vec<Named>> {
    let mut out = Vec::new();
    for name in names(u, shape)? {
        let docs = docs(u, shape)?;
        out.push(Named { name, docs });
    }
    Ok(out)
}

fn member_name(u: &mut Unstructured, shape: &TypeShape) -> Result<String> {
    if !shape.labels_only && u.ratio(1, 4)? {
        return u.arbitrary();
    }
    if u.ratio(1, 4)? {
        return Ok(TRICKY_LABELS[u.choose_index(TRICKY_LABELS.len())?].to_string());
    }
    label(u)
}

/// A WIT label: kebab-case words, each a letter followed by letters and digits.
fn label(u: &mut Unstructured) -> Result<String> {
    let words = u.int_in_range(1..=3)?;
    let mut out = String::new();
    for i in 0..words {
        if i > 0 {
            out.push('-');
        }
        out.push(char::from(b'a' + u.int_in_range(0..=25)?));
        for _ in 0..u.int_in_range(0..=5)? {
            let c = u.int_in_range(0..=35u8)?;
            out.push(char::from(if c < 26 { b'a' + c } else { b'0' + c - 26 }));
        }
    }
    Ok(out)
}

fn type_name(u: &mut Unstructured, shape: &TypeShape) -> Result<Option<String>> {
    if u.arbitrary()? {
        member_name(u, shape).map(Some)
    } else {
        Ok(None)
    }
}

fn docs(u: &mut Unstructured, shape: &TypeShape) -> Result<Option<String>> {
    if shape.labels_only || !u.ratio(1, 8)? {
        return Ok(None);
    }
    u.arbitrary()
}

/// `len` bytes determined by `seed` (SplitMix64): input for the generators outside a fuzzer, so
/// that a seeded test checks the same cases on every run and a failure names the seed that
/// replays it.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(len.next_multiple_of(8));
    while out.len() < len {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// How many items lists and maps get at most, per level.
const MAX_ITEMS: usize = 4;

/// A value of type `ty` built from `u`: integer and float extremes, any float bit pattern
/// (NaN payloads included), any Unicode scalar value. Maps with string keys get distinct keys
/// (JSON objects have no duplicate keys); flags are listed in declaration order, as lifted
/// values are. Fails on a type without values (an empty variant or enum).
pub fn arbitrary_val(u: &mut Unstructured, ty: &WitType) -> Result<Val> {
    Ok(match ty {
        WitType::Bool => Val::Bool(u.arbitrary()?),
        WitType::S8 => Val::S8(int(u, [i8::MIN, i8::MAX, 0, -1])?),
        WitType::U8 => Val::U8(int(u, [u8::MIN, u8::MAX, 1, 0x80])?),
        WitType::S16 => Val::S16(int(u, [i16::MIN, i16::MAX, 0, -1])?),
        WitType::U16 => Val::U16(int(u, [u16::MIN, u16::MAX, 1, 0x8000])?),
        WitType::S32 => Val::S32(int(u, [i32::MIN, i32::MAX, 0, -1])?),
        WitType::U32 => Val::U32(int(u, [u32::MIN, u32::MAX, 1, 1 << 31])?),
        WitType::S64 => Val::S64(int(u, [i64::MIN, i64::MAX, (1 << 53) - 1, -(1 << 53)])?),
        WitType::U64 => Val::U64(int(u, [u64::MIN, u64::MAX, (1 << 53) - 1, 1 << 53])?),
        WitType::F32 => Val::Float32(f32::from_bits(float_bits(
            u,
            [
                f32::NAN.to_bits(),
                f32::INFINITY.to_bits(),
                f32::NEG_INFINITY.to_bits(),
                (-0.0f32).to_bits(),
                f32::MAX.to_bits(),
                f32::MIN_POSITIVE.to_bits(),
                1, // the smallest subnormal
            ],
        )?)),
        WitType::F64 => Val::Float64(f64::from_bits(float_bits(
            u,
            [
                f64::NAN.to_bits(),
                f64::INFINITY.to_bits(),
                f64::NEG_INFINITY.to_bits(),
                (-0.0f64).to_bits(),
                f64::MAX.to_bits(),
                f64::MIN_POSITIVE.to_bits(),
                1,
            ],
        )?)),
        WitType::Char => Val::Char(u.arbitrary()?),
        WitType::String => Val::String(u.arbitrary()?),
        WitType::List(item) => {
            let n = u.int_in_range(0..=MAX_ITEMS)?;
            Val::List(vals(u, item, n)?)
        }
        WitType::FixedList(item, n) => Val::FixedLengthList(vals(u, item, *n as usize)?),
        WitType::Map(key, value) => {
            let n = u.int_in_range(0..=MAX_ITEMS)?;
            let mut pairs: Vec<(Val, Val)> = Vec::with_capacity(n);
            for _ in 0..n {
                let k = arbitrary_val(u, key)?;
                let v = arbitrary_val(u, value)?;
                let duplicate_string_key = **key == WitType::String
                    && pairs.iter().any(|(existing, _)| same_val(existing, &k));
                if !duplicate_string_key {
                    pairs.push((k, v));
                }
            }
            Val::Map(pairs)
        }
        WitType::Tuple(types) => Val::Tuple(
            types
                .iter()
                .map(|t| arbitrary_val(u, t))
                .collect::<Result<_>>()?,
        ),
        WitType::Record(record) => Val::Record(
            record
                .fields
                .iter()
                .map(|f| Ok((f.name.clone(), arbitrary_val(u, &f.ty)?)))
                .collect::<Result<_>>()?,
        ),
        WitType::Variant(variant) => {
            if variant.cases.is_empty() {
                return Err(arbitrary::Error::IncorrectFormat);
            }
            let case = &variant.cases[u.choose_index(variant.cases.len())?];
            let payload = match &case.ty {
                Some(t) => Some(Box::new(arbitrary_val(u, t)?)),
                None => None,
            };
            Val::Variant(case.name.clone(), payload)
        }
        WitType::Enum(e) => {
            if e.cases.is_empty() {
                return Err(arbitrary::Error::IncorrectFormat);
            }
            Val::Enum(e.cases[u.choose_index(e.cases.len())?].name.clone())
        }
        WitType::Option(inner) => Val::Option(if u.arbitrary()? {
            Some(Box::new(arbitrary_val(u, inner)?))
        } else {
            None
        }),
        WitType::Result { ok, err } => {
            let payload = |u: &mut Unstructured, t: &Option<Box<WitType>>| -> Result<_> {
                Ok(match t {
                    Some(t) => Some(Box::new(arbitrary_val(u, t)?)),
                    None => None,
                })
            };
            if u.arbitrary()? {
                Val::Result(Ok(payload(u, ok)?))
            } else {
                Val::Result(Err(payload(u, err)?))
            }
        }
        WitType::Flags(flags) => {
            let mut set = Vec::new();
            for name in &flags.names {
                if u.arbitrary()? {
                    set.push(name.name.clone());
                }
            }
            Val::Flags(set)
        }
    })
}

fn vals(u: &mut Unstructured, item: &WitType, n: usize) -> Result<Vec<Val>> {
    (0..n).map(|_| arbitrary_val(u, item)).collect()
}

/// An integer, one of `extremes` a quarter of the time.
fn int<'a, T: arbitrary::Arbitrary<'a> + Copy>(
    u: &mut Unstructured<'a>,
    extremes: [T; 4],
) -> Result<T> {
    if u.ratio(1, 4)? {
        Ok(extremes[u.choose_index(4)?])
    } else {
        u.arbitrary()
    }
}

fn float_bits<'a, T: arbitrary::Arbitrary<'a> + Copy>(
    u: &mut Unstructured<'a>,
    specials: [T; 7],
) -> Result<T> {
    if u.ratio(1, 3)? {
        Ok(specials[u.choose_index(specials.len())?])
    } else {
        u.arbitrary()
    }
}

/// Whether `val` is a value of `ty`: the oracle for "an accepted value type-checks".
pub fn val_has_type(ty: &WitType, val: &Val) -> bool {
    let payload = |t: Option<&WitType>, v: &Option<Box<Val>>| match (t, v) {
        (Some(t), Some(v)) => val_has_type(t, v),
        (None, None) => true,
        _ => false,
    };
    match (ty, val) {
        (WitType::Bool, Val::Bool(_))
        | (WitType::S8, Val::S8(_))
        | (WitType::U8, Val::U8(_))
        | (WitType::S16, Val::S16(_))
        | (WitType::U16, Val::U16(_))
        | (WitType::S32, Val::S32(_))
        | (WitType::U32, Val::U32(_))
        | (WitType::S64, Val::S64(_))
        | (WitType::U64, Val::U64(_))
        | (WitType::F32, Val::Float32(_))
        | (WitType::F64, Val::Float64(_))
        | (WitType::Char, Val::Char(_))
        | (WitType::String, Val::String(_)) => true,
        (WitType::List(t), Val::List(items)) => items.iter().all(|v| val_has_type(t, v)),
        (WitType::FixedList(t, n), Val::FixedLengthList(items)) => {
            items.len() == *n as usize && items.iter().all(|v| val_has_type(t, v))
        }
        (WitType::Map(k, v), Val::Map(pairs)) => pairs
            .iter()
            .all(|(pk, pv)| val_has_type(k, pk) && val_has_type(v, pv)),
        (WitType::Tuple(types), Val::Tuple(items)) => {
            types.len() == items.len() && types.iter().zip(items).all(|(t, v)| val_has_type(t, v))
        }
        (WitType::Record(r), Val::Record(fields)) => {
            r.fields.len() == fields.len()
                && r.fields
                    .iter()
                    .zip(fields)
                    .all(|(f, (name, v))| f.name == *name && val_has_type(&f.ty, v))
        }
        (WitType::Variant(variant), Val::Variant(name, v)) => variant
            .cases
            .iter()
            .find(|c| c.name == *name)
            .is_some_and(|c| payload(c.ty.as_ref(), v)),
        (WitType::Enum(e), Val::Enum(name)) => e.cases.iter().any(|c| c.name == *name),
        (WitType::Option(_), Val::Option(None)) => true,
        (WitType::Option(t), Val::Option(Some(v))) => val_has_type(t, v),
        (WitType::Result { ok, .. }, Val::Result(Ok(v))) => payload(ok.as_deref(), v),
        (WitType::Result { err, .. }, Val::Result(Err(v))) => payload(err.as_deref(), v),
        (WitType::Flags(f), Val::Flags(set)) => {
            // Each set flag is declared and appears once.
            set.iter().enumerate().all(|(i, name)| {
                f.names.iter().any(|n| n.name == *name) && !set[..i].contains(name)
            })
        }
        _ => false,
    }
}

/// Value equality as the JSON encoding documents it: floats compare bit for bit (so `-0.0` ≠
/// `0.0`), except that every NaN equals every NaN (JSON has one `"NaN"`).
pub fn same_val(a: &Val, b: &Val) -> bool {
    let all =
        |a: &[Val], b: &[Val]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_val(x, y));
    let boxed = |a: &Option<Box<Val>>, b: &Option<Box<Val>>| match (a, b) {
        (Some(a), Some(b)) => same_val(a, b),
        (None, None) => true,
        _ => false,
    };
    match (a, b) {
        (Val::Float32(x), Val::Float32(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Val::Float64(x), Val::Float64(y)) => {
            (x.is_nan() && y.is_nan()) || x.to_bits() == y.to_bits()
        }
        (Val::List(x), Val::List(y))
        | (Val::FixedLengthList(x), Val::FixedLengthList(y))
        | (Val::Tuple(x), Val::Tuple(y)) => all(x, y),
        (Val::Map(x), Val::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((xk, xv), (yk, yv))| same_val(xk, yk) && same_val(xv, yv))
        }
        (Val::Record(x), Val::Record(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((xn, xv), (yn, yv))| xn == yn && same_val(xv, yv))
        }
        (Val::Variant(xn, xv), Val::Variant(yn, yv)) => xn == yn && boxed(xv, yv),
        (Val::Option(x), Val::Option(y)) => boxed(x, y),
        (Val::Result(Ok(x)), Val::Result(Ok(y))) | (Val::Result(Err(x)), Val::Result(Err(y))) => {
            boxed(x, y)
        }
        _ => a == b,
    }
}
