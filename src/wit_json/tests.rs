//! Every JSON value these tests produce or accept is also validated against the generated
//! schema (and every schema against the 2020-12 meta-schema), so the schema and the converters
//! cannot drift apart unnoticed.

use serde_json::{Map, Value, json};
use wasmtime::component::Val;
use wit_parser::{Resolve, WorldId, WorldItem};

use super::*;

// ---------------------------------------------------------------- helpers

fn assert_schema_accepts(schema: &Value, json: &Value) {
    if let Err(e) = jsonschema::draft202012::meta::validate(schema) {
        panic!("schema is not valid JSON Schema 2020-12: {e}\n{schema:#}");
    }
    let validator = jsonschema::draft202012::new(schema).expect("schema compiles");
    if let Err(e) = validator.validate(json) {
        panic!("{json} does not validate against its schema: {e}\n{schema:#}");
    }
}

fn assert_schema_rejects(ty: &WitType, json: &Value) {
    let validator = jsonschema::draft202012::new(&schema(ty)).expect("schema compiles");
    assert!(!validator.is_valid(json), "schema of {ty:?} accepts {json}");
}

/// JSON → Val → JSON, checking the schema accepts both the input and the output; returns the
/// Val and the JSON written back.
fn round_trip(ty: &WitType, input: &Value) -> (Val, Value) {
    let sch = schema(ty);
    assert_schema_accepts(&sch, input);
    let val = json_to_val(ty, input).unwrap_or_else(|e| panic!("{input} rejected: {e}"));
    let output = val_to_json(ty, &val).unwrap_or_else(|e| panic!("{val:?} not written: {e}"));
    assert_schema_accepts(&sch, &output);
    // And the text form survives a serialize/parse cycle unchanged.
    let reparsed: Value = serde_json::from_str(&output.to_string()).unwrap();
    assert_eq!(
        json_to_val(ty, &reparsed).unwrap(),
        val,
        "via text {output}"
    );
    (val, output)
}

/// A round trip whose output is exactly the input.
fn same(ty: &WitType, json: Value) -> Val {
    let (val, output) = round_trip(ty, &json);
    assert_eq!(output, json);
    val
}

/// Val → JSON → Val.
fn from_val(ty: &WitType, val: &Val) -> Value {
    let json = val_to_json(ty, val).unwrap_or_else(|e| panic!("{val:?}: {e}"));
    assert_schema_accepts(&schema(ty), &json);
    assert_eq!(&json_to_val(ty, &json).unwrap(), val, "back from {json}");
    json
}

fn reject(ty: &WitType, json: Value) -> String {
    match json_to_val(ty, &json) {
        Ok(val) => panic!("{json} accepted as {val:?}"),
        Err(e) => e.to_string(),
    }
}

fn parse(wit: &str, world: &str) -> (Resolve, WorldId) {
    let mut resolve = Resolve::default();
    let pkg = resolve.push_str("test.wit", wit).expect("WIT parses");
    let world = resolve
        .select_world(&[pkg], Some(world))
        .expect("the world exists");
    (resolve, world)
}

/// The signature of a function exported by `world`, at top level or in an exported interface.
fn sig(resolve: &Resolve, world: WorldId, name: &str) -> Result<FuncSignature, Unsupported> {
    for item in resolve.worlds[world].exports.values() {
        match item {
            WorldItem::Function(f) if f.name == name => return signature(resolve, f),
            WorldItem::Interface { id, .. } => {
                if let Some(f) = resolve.interfaces[*id].functions.get(name) {
                    return signature(resolve, f);
                }
            }
            _ => {}
        }
    }
    panic!("no export {name}")
}

fn record(name: &str, fields: &[(&str, WitType)]) -> WitType {
    WitType::Record(Record {
        name: Some(name.into()),
        docs: None,
        fields: fields
            .iter()
            .map(|(n, ty)| Field {
                name: (*n).into(),
                docs: None,
                ty: ty.clone(),
            })
            .collect(),
    })
}

fn named(names: &[&str]) -> Vec<Named> {
    names
        .iter()
        .map(|n| Named {
            name: (*n).into(),
            docs: None,
        })
        .collect()
}

fn color() -> WitType {
    WitType::Enum(Enum {
        name: Some("color".into()),
        docs: None,
        cases: named(&["red", "green", "blue"]),
    })
}

fn perms() -> WitType {
    WitType::Flags(Flags {
        name: Some("perms".into()),
        docs: None,
        names: named(&["read", "write", "exec"]),
    })
}

fn shape() -> WitType {
    WitType::Variant(Variant {
        name: Some("shape".into()),
        docs: None,
        cases: vec![
            Case {
                name: "circle".into(),
                docs: None,
                ty: Some(WitType::F64),
            },
            Case {
                name: "point".into(),
                docs: None,
                ty: None,
            },
        ],
    })
}

fn option(ty: WitType) -> WitType {
    WitType::Option(Box::new(ty))
}

fn list(ty: WitType) -> WitType {
    WitType::List(Box::new(ty))
}

fn one_param(name: &str, ty: WitType) -> FuncSignature {
    FuncSignature {
        name: "f".into(),
        docs: None,
        params: vec![Param {
            name: name.into(),
            ty,
        }],
        result: None,
    }
}

fn args(json: Value) -> Map<String, Value> {
    match json {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

// ---------------------------------------------------------------- scalars

#[test]
fn bool_values() {
    assert_eq!(schema(&WitType::Bool), json!({"type": "boolean"}));
    assert_eq!(same(&WitType::Bool, json!(true)), Val::Bool(true));
    assert_eq!(same(&WitType::Bool, json!(false)), Val::Bool(false));
    for bad in [json!(1), json!("true"), json!(null)] {
        assert_schema_rejects(&WitType::Bool, &bad);
        reject(&WitType::Bool, bad);
    }
    assert_eq!(reject(&WitType::Bool, json!(0)), "expected bool, got 0");
}

#[test]
fn small_integers_have_exact_bounds() {
    let cases: [(WitType, i64, i64); 6] = [
        (WitType::S8, i8::MIN.into(), i8::MAX.into()),
        (WitType::U8, 0, u8::MAX.into()),
        (WitType::S16, i16::MIN.into(), i16::MAX.into()),
        (WitType::U16, 0, u16::MAX.into()),
        (WitType::S32, i32::MIN.into(), i32::MAX.into()),
        (WitType::U32, 0, u32::MAX.into()),
    ];
    for (ty, min, max) in cases {
        assert_eq!(
            schema(&ty),
            json!({"type": "integer", "minimum": min, "maximum": max})
        );
        for v in [min, max, 0, 1] {
            same(&ty, json!(v));
        }
        for out_of_range in [min - 1, max + 1] {
            assert_schema_rejects(&ty, &json!(out_of_range));
            let message = reject(&ty, json!(out_of_range));
            assert!(
                message.contains(&format!("({min}..={max}), got {out_of_range}")),
                "{message}"
            );
        }
        for bad in [json!(1.5), json!("1"), json!(null), json!([1])] {
            assert_schema_rejects(&ty, &bad);
            reject(&ty, bad);
        }
    }
    assert_eq!(
        reject(&WitType::U8, json!(300)),
        "expected u8 (0..=255), got 300"
    );
    // Integral floats are integers in JSON Schema, and accepted (and written back plainly).
    let (val, out) = round_trip(&WitType::U8, &json!(5.0));
    assert_eq!((val, out), (Val::U8(5), json!(5)));
    assert_eq!(
        json_to_val(&WitType::S32, &json!(-0.0)).unwrap(),
        Val::S32(0)
    );
}

#[test]
fn s64_and_u64_switch_to_strings_beyond_2_pow_53() {
    const SAFE: i64 = (1 << 53) - 1;
    let s64 = WitType::S64;
    let u64 = WitType::U64;
    // Inside the safe range: plain integers both ways.
    assert_eq!(same(&s64, json!(SAFE)), Val::S64(SAFE));
    assert_eq!(same(&s64, json!(-SAFE)), Val::S64(-SAFE));
    assert_eq!(same(&u64, json!(SAFE as u64)), Val::U64(SAFE as u64));
    assert_eq!(same(&u64, json!(0)), Val::U64(0));
    // Just outside: strings on output, either form on input.
    for v in [SAFE + 1, -SAFE - 1, i64::MIN, i64::MAX] {
        assert_eq!(same(&s64, json!(v.to_string())), Val::S64(v));
        let (val, out) = round_trip(&s64, &json!(v));
        assert_eq!((val, out), (Val::S64(v), json!(v.to_string())));
    }
    for v in [SAFE as u64 + 1, u64::MAX] {
        assert_eq!(same(&u64, json!(v.to_string())), Val::U64(v));
        let (val, out) = round_trip(&u64, &json!(v));
        assert_eq!((val, out), (Val::U64(v), json!(v.to_string())));
    }
    assert_eq!(
        from_val(&u64, &Val::U64(u64::MAX)),
        json!("18446744073709551615")
    );
    assert_eq!(
        from_val(&s64, &Val::S64(i64::MIN)),
        json!("-9223372036854775808")
    );
    // Small values as strings are accepted and written back as integers.
    let (val, out) = round_trip(&u64, &json!("42"));
    assert_eq!((val, out), (Val::U64(42), json!(42)));
    // Out of range, non-canonical and inexact forms are rejected.
    for bad in [
        json!("18446744073709551616"),
        json!("-1"),
        json!(-1),
        json!("007"),
        json!("+1"),
        json!(" 1"),
        json!(""),
        json!("1e3"),
        json!(1e19),
        json!(9007199254740992.0),
    ] {
        reject(&u64, bad);
    }
    for bad in [
        json!("9223372036854775808"),
        json!("-9223372036854775809"),
        json!("-0"),
        json!("0x10"),
    ] {
        reject(&s64, bad);
    }
    assert_eq!(
        reject(&u64, json!("-1")),
        "expected u64 (0..=18446744073709551615) as integer or decimal string, got string \"-1\""
    );
    for bad in [json!("007"), json!("-0"), json!("+1"), json!(1.5)] {
        assert_schema_rejects(&s64, &bad);
    }
    assert_schema_rejects(&u64, &json!(-1));
    let description = schema(&u64)["description"].as_str().unwrap().to_string();
    assert!(
        description.contains("18446744073709551615"),
        "{description}"
    );
    assert!(description.contains("2^53"), "{description}");
}

#[test]
fn floats_keep_specials_and_negative_zero() {
    for ty in [WitType::F32, WitType::F64] {
        let nan = json_to_val(&ty, &json!("NaN")).unwrap();
        assert!(
            matches!(nan, Val::Float32(v) if v.is_nan())
                || matches!(nan, Val::Float64(v) if v.is_nan())
        );
        assert_eq!(from_val(&ty, &nan), json!("NaN"));
        same(&ty, json!("Infinity"));
        same(&ty, json!("-Infinity"));
        same(&ty, json!(1.5));
        same(&ty, json!(0.0));
        // -0.0 keeps its sign, in the Val and in the JSON text.
        let (val, out) = round_trip(&ty, &json!(-0.0));
        match val {
            Val::Float32(v) => assert!(v == 0.0 && v.is_sign_negative()),
            Val::Float64(v) => assert!(v == 0.0 && v.is_sign_negative()),
            other => panic!("{other:?}"),
        }
        assert_eq!(out.to_string(), "-0.0");
        // Integers are numbers too.
        let (_, out) = round_trip(&ty, &json!(3));
        assert_eq!(out.as_f64(), Some(3.0));
        for bad in [
            json!("nan"),
            json!("inf"),
            json!("1.5"),
            json!(null),
            json!(true),
        ] {
            assert_schema_rejects(&ty, &bad);
            reject(&ty, bad);
        }
    }
    assert_eq!(
        reject(&WitType::F64, json!("x")),
        "expected f64 (a number, or \"NaN\", \"Infinity\", \"-Infinity\"), got string \"x\""
    );
    // f32: the largest finite value passes, anything beyond is an error, not infinity.
    for (input, expected) in [
        (f64::from(f32::MAX), f32::MAX),
        (f64::from(f32::MIN), f32::MIN),
        // The largest f64 below the limit still rounds to f32::MAX.
        (f64::from_bits(super::F32_LIMIT.to_bits() - 1), f32::MAX),
    ] {
        let (val, out) = round_trip(&WitType::F32, &json!(input));
        assert_eq!(val, Val::Float32(expected));
        assert_eq!(out.to_string(), format!("{expected:e}").replace("e", "e+"));
    }
    assert!((super::F32_LIMIT as f32).is_infinite());
    reject(&WitType::F32, json!(super::F32_LIMIT));
    for too_big in [json!(1e39), json!(-1e39), json!(f64::MAX)] {
        assert_schema_rejects(&WitType::F32, &too_big);
        let message = reject(&WitType::F32, too_big);
        assert!(
            message.starts_with("expected f32 (finite values within ±3.4028235e38"),
            "{message}"
        );
    }
    // f32 values are written as their shortest decimal form.
    let (val, out) = round_trip(&WitType::F32, &json!(0.1));
    assert_eq!(val, Val::Float32(0.1));
    assert_eq!(out.to_string(), "0.1");
    assert_eq!(same(&WitType::F64, json!(0.1)), Val::Float64(0.1));
    same(&WitType::F64, json!(f64::MAX));
    same(&WitType::F64, json!(f64::MIN_POSITIVE));
    same(&WitType::F64, json!(5e-324));
}

#[test]
fn every_kind_of_f32_survives_the_text_round_trip() {
    // A spread of bit patterns over the whole space: subnormals, normals of every exponent,
    // infinities and NaNs, both signs.
    for i in 0u32..100_000 {
        let v = f32::from_bits(i.wrapping_mul(2_654_435_761));
        let json = val_to_json(&WitType::F32, &Val::Float32(v)).unwrap();
        let text = json.to_string();
        let back = json_to_val(&WitType::F32, &serde_json::from_str(&text).unwrap()).unwrap();
        match back {
            Val::Float32(b) if v.is_nan() => assert!(b.is_nan()),
            Val::Float32(b) => assert_eq!(b.to_bits(), v.to_bits(), "{v} via {text}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn char_is_exactly_one_scalar_value() {
    for c in ["a", "é", "€", "😀", "\u{10FFFF}", "\0"] {
        let val = same(&WitType::Char, json!(c));
        assert_eq!(val, Val::Char(c.chars().next().unwrap()));
    }
    // Rust strings cannot hold lone surrogates; what we can get wrong is length.
    for bad in ["", "ab", "e\u{301}", "😀😀"] {
        assert_schema_rejects(&WitType::Char, &json!(bad));
        let message = reject(&WitType::Char, json!(bad));
        assert!(
            message.starts_with(
                "expected char (a string of exactly one Unicode scalar value), got string"
            ),
            "{message}"
        );
    }
    reject(&WitType::Char, json!(65));
}

#[test]
fn strings_pass_through() {
    for s in ["", "hello", "ünïcödé 😀", "line\nbreak \"quoted\""] {
        assert_eq!(same(&WitType::String, json!(s)), Val::String(s.into()));
    }
    assert_eq!(
        reject(&WitType::String, json!(["a"])),
        "expected string, got array of 1 item"
    );
}

// ---------------------------------------------------------------- containers

#[test]
fn lists() {
    let ty = list(WitType::U8);
    assert_eq!(
        schema(&ty),
        json!({"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}})
    );
    assert_eq!(same(&ty, json!([])), Val::List(vec![]));
    assert_eq!(
        same(&ty, json!([1, 2, 255])),
        Val::List(vec![Val::U8(1), Val::U8(2), Val::U8(255)])
    );
    let sig = one_param("list", ty.clone());
    let err = args_to_vals(&sig, &args(json!({"list": [0, 1, 2, 300]}))).unwrap_err();
    assert_eq!(err.to_string(), "list[3]: expected u8 (0..=255), got 300");
    assert_eq!(err.path(), "list[3]");
    reject(&ty, json!({"0": 1}));
    same(&list(list(WitType::String)), json!([[], ["a"], ["b", "c"]]));
}

#[test]
fn fixed_length_lists() {
    let ty = WitType::FixedList(Box::new(WitType::S16), 3);
    assert_eq!(schema(&ty)["minItems"], json!(3));
    assert_eq!(schema(&ty)["maxItems"], json!(3));
    assert_eq!(
        same(&ty, json!([-1, 0, 1])),
        Val::FixedLengthList(vec![Val::S16(-1), Val::S16(0), Val::S16(1)])
    );
    for bad in [json!([1, 2]), json!([1, 2, 3, 4]), json!([])] {
        assert_schema_rejects(&ty, &bad);
        assert!(reject(&ty, bad).starts_with("expected array of exactly 3 items, got array of"));
    }
    assert!(val_to_json(&ty, &Val::FixedLengthList(vec![Val::S16(1)])).is_err());
    // A huge declared length costs nothing until an input of that length arrives.
    let huge = WitType::FixedList(Box::new(WitType::U8), u32::MAX);
    assert!(reject(&huge, json!([1])).contains("4294967295"));
}

#[test]
fn maps() {
    let by_name = WitType::Map(Box::new(WitType::String), Box::new(WitType::U32));
    assert_eq!(
        schema(&by_name),
        json!({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": u32::MAX}})
    );
    let val = same(&by_name, json!({"a": 1, "b": 2, "": 0}));
    assert_eq!(
        val,
        Val::Map(vec![
            (Val::String("a".into()), Val::U32(1)),
            (Val::String("b".into()), Val::U32(2)),
            (Val::String("".into()), Val::U32(0)),
        ])
    );
    same(&by_name, json!({}));
    assert_eq!(
        reject(&by_name, json!({"a": 1, "b c": -1})),
        "[\"b c\"]: expected u32 (0..=4294967295), got -1"
    );
    // Duplicate keys in a component value: the last wins, as in the component model.
    let dup = Val::Map(vec![
        (Val::String("k".into()), Val::U32(1)),
        (Val::String("k".into()), Val::U32(2)),
    ]);
    assert_eq!(val_to_json(&by_name, &dup).unwrap(), json!({"k": 2}));

    let by_number = WitType::Map(Box::new(WitType::U32), Box::new(option(WitType::String)));
    let val = same(&by_number, json!([[1, "one"], [2, null]]));
    assert_eq!(
        val,
        Val::Map(vec![
            (
                Val::U32(1),
                Val::Option(Some(Box::new(Val::String("one".into()))))
            ),
            (Val::U32(2), Val::Option(None)),
        ])
    );
    same(&by_number, json!([]));
    for bad in [
        json!([[1]]),
        json!([[1, "a", 3]]),
        json!([{"1": "a"}]),
        json!({"1": "a"}),
    ] {
        assert_schema_rejects(&by_number, &bad);
        reject(&by_number, bad);
    }
    assert_eq!(
        reject(&by_number, json!([[1, "a"], [-2, "b"]])),
        "[1][0]: expected u32 (0..=4294967295), got -2"
    );
    assert_eq!(
        reject(&by_number, json!([[1, "a"], 7])),
        "[1]: expected a [key, value] pair, got 7"
    );
}

#[test]
fn tuples() {
    let ty = WitType::Tuple(vec![WitType::String, WitType::Bool]);
    assert_eq!(
        schema(&ty),
        json!({
            "type": "array",
            "prefixItems": [{"type": "string"}, {"type": "boolean"}],
            "minItems": 2, "maxItems": 2, "items": false,
        })
    );
    assert_eq!(
        same(&ty, json!(["x", true])),
        Val::Tuple(vec![Val::String("x".into()), Val::Bool(true)])
    );
    for bad in [json!(["x"]), json!(["x", true, 1]), json!([true, "x"])] {
        assert_schema_rejects(&ty, &bad);
        reject(&ty, bad);
    }
    assert_eq!(
        reject(&ty, json!(["x", "yes"])),
        "[1]: expected bool, got string \"yes\""
    );
    let empty = WitType::Tuple(vec![]);
    assert_eq!(same(&empty, json!([])), Val::Tuple(vec![]));
    assert_schema_rejects(&empty, &json!([1]));
}

#[test]
fn records() {
    let point = record("point", &[("x", WitType::F64), ("y", WitType::F64)]);
    let circle = record(
        "circle",
        &[
            ("center", point.clone()),
            ("radius", WitType::F64),
            ("label", option(WitType::String)),
        ],
    );
    let val = same(
        &circle,
        json!({"center": {"x": 1.0, "y": -2.5}, "radius": 3.0, "label": null}),
    );
    // Declaration order, whatever the JSON order.
    let shuffled = json_to_val(
        &circle,
        &json!({"label": "c", "radius": 3.0, "center": {"y": -2.5, "x": 1.0}}),
    )
    .unwrap();
    let Val::Record(fields) = &shuffled else {
        panic!()
    };
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["center", "radius", "label"]);
    assert_ne!(val, shuffled);

    let sig = one_param("s", circle.clone());
    let call = |json: Value| args_to_vals(&sig, &args(json)).unwrap_err().to_string();
    assert_eq!(
        call(json!({"s": {"center": {"x": 1, "y": 2}, "label": null}})),
        "s: missing required field \"radius\""
    );
    // An option field must be present.
    assert_eq!(
        call(json!({"s": {"center": {"x": 1, "y": 2}, "radius": 1}})),
        "s: missing required field \"label\""
    );
    assert_eq!(
        call(
            json!({"s": {"center": {"x": 1, "y": 2}, "radius": 1, "label": null, "color": "red"}})
        ),
        "s: unexpected field \"color\""
    );
    assert_eq!(
        call(json!({"s": {"center": {"x": 1, "y": "2"}, "radius": 1, "label": null}})),
        "s.center.y: expected f64 (a number, or \"NaN\", \"Infinity\", \"-Infinity\"), got string \"2\""
    );
    assert_eq!(
        call(json!({"s": [1, 2]})),
        "s: expected object (record `circle`), got array of 2 items"
    );
    for bad in [
        json!({"center": {"x": 1, "y": 2}, "radius": 1}),
        json!({"center": {"x": 1, "y": 2}, "radius": 1, "label": null, "extra": 1}),
    ] {
        assert_schema_rejects(&circle, &bad);
    }
}

#[test]
fn variants() {
    let ty = shape();
    let sch = schema(&ty);
    assert_eq!(sch["title"], "shape");
    assert_eq!(sch["oneOf"].as_array().unwrap().len(), 2);
    assert_eq!(
        same(&ty, json!({"circle": 2.5})),
        Val::Variant("circle".into(), Some(Box::new(Val::Float64(2.5))))
    );
    assert_eq!(
        same(&ty, json!({"point": null})),
        Val::Variant("point".into(), None)
    );
    assert_eq!(
        reject(&ty, json!({"square": 1})),
        "expected one of \"circle\", \"point\", got \"square\""
    );
    assert_eq!(
        reject(&ty, json!({"circle": 1, "point": null})),
        "expected an object with one key, one of \"circle\", \"point\", got object with keys \"circle\", \"point\""
    );
    assert_eq!(
        reject(&ty, json!({"point": 1})),
        "point: expected null (this case has no payload), got 1"
    );
    assert_eq!(
        reject(&ty, json!({"circle": "big"}))
            .split(',')
            .next()
            .unwrap(),
        "circle: expected f64 (a number"
    );
    for bad in [
        json!("point"),
        json!({}),
        json!({"point": 1}),
        json!({"circle": null}),
    ] {
        assert_schema_rejects(&ty, &bad);
        reject(&ty, bad);
    }
}

#[test]
fn enums() {
    let ty = color();
    assert_eq!(
        schema(&ty),
        json!({"type": "string", "enum": ["red", "green", "blue"], "title": "color"})
    );
    assert_eq!(same(&ty, json!("green")), Val::Enum("green".into()));
    let sig = one_param("color", ty.clone());
    let err = args_to_vals(&sig, &args(json!({"color": "purple"}))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "color: expected one of \"red\", \"green\", \"blue\", got \"purple\""
    );
    assert_eq!(
        reject(&ty, json!(1)),
        "expected one of \"red\", \"green\", \"blue\", got 1"
    );
    assert_schema_rejects(&ty, &json!("RED"));
    // Long lists of names are cut short.
    let many = WitType::Enum(Enum {
        name: None,
        docs: None,
        cases: (0..100)
            .map(|i| Named {
                name: format!("c{i}"),
                docs: None,
            })
            .collect(),
    });
    let message = reject(&many, json!("nope"));
    assert!(message.contains("… (88 more)"), "{message}");
    assert!(message.len() < 200, "{message}");
}

#[test]
fn options_and_nested_options() {
    let ty = option(WitType::U32);
    assert_eq!(
        schema(&ty),
        json!({"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 0, "maximum": u32::MAX}]})
    );
    assert_eq!(same(&ty, json!(null)), Val::Option(None));
    assert_eq!(
        same(&ty, json!(7)),
        Val::Option(Some(Box::new(Val::U32(7))))
    );

    // option<option<u32>>: none, some(none), some(some(7)) are three different JSON values.
    let nested = option(option(WitType::U32));
    let some = |v: Val| Val::Option(Some(Box::new(v)));
    assert_eq!(same(&nested, json!(null)), Val::Option(None));
    assert_eq!(
        same(&nested, json!({"some": null})),
        some(Val::Option(None))
    );
    assert_eq!(same(&nested, json!({"some": 7})), some(some(Val::U32(7))));
    for bad in [
        json!(7),
        json!({"some": 7, "x": 1}),
        json!({"Some": 7}),
        json!({}),
    ] {
        assert_schema_rejects(&nested, &bad);
        reject(&nested, bad);
    }
    assert_eq!(
        reject(&nested, json!({"some": "x"})),
        "some: expected u32 (0..=4294967295), got string \"x\""
    );

    // Three levels.
    let triple = option(option(option(WitType::Bool)));
    let values = [
        (Val::Option(None), json!(null)),
        (some(Val::Option(None)), json!({"some": null})),
        (
            some(some(Val::Option(None))),
            json!({"some": {"some": null}}),
        ),
        (
            some(some(some(Val::Bool(true)))),
            json!({"some": {"some": true}}),
        ),
    ];
    for (val, json) in values {
        assert_eq!(from_val(&triple, &val), json);
        assert_eq!(same(&triple, json), val);
    }
    // An option inside a list inside an option is not "nested": the list is in between.
    let separated = option(list(option(WitType::U8)));
    same(&separated, json!([1, null]));
    same(&separated, json!(null));
}

#[test]
fn results() {
    let full = WitType::Result {
        ok: Some(Box::new(WitType::String)),
        err: Some(Box::new(color())),
    };
    assert_eq!(
        same(&full, json!({"ok": "fine"})),
        Val::Result(Ok(Some(Box::new(Val::String("fine".into())))))
    );
    assert_eq!(
        same(&full, json!({"err": "red"})),
        Val::Result(Err(Some(Box::new(Val::Enum("red".into())))))
    );
    let bare = WitType::Result {
        ok: None,
        err: None,
    };
    assert_eq!(same(&bare, json!({"ok": null})), Val::Result(Ok(None)));
    assert_eq!(same(&bare, json!({"err": null})), Val::Result(Err(None)));
    let ok_only = WitType::Result {
        ok: Some(Box::new(WitType::U8)),
        err: None,
    };
    same(&ok_only, json!({"ok": 1}));
    same(&ok_only, json!({"err": null}));
    for bad in [
        json!({"err": 1}),
        json!({"ok": null}),
        json!({"okay": 1}),
        json!(null),
        json!({"ok": 1, "err": null}),
    ] {
        assert_schema_rejects(&ok_only, &bad);
        reject(&ok_only, bad);
    }
    assert_eq!(
        reject(&ok_only, json!({"okay": 1})),
        "expected one of \"ok\", \"err\", got \"okay\""
    );
    assert_eq!(
        reject(&full, json!({"err": "purple"})),
        "err: expected one of \"red\", \"green\", \"blue\", got \"purple\""
    );
}

#[test]
fn flags() {
    let ty = perms();
    assert_eq!(
        schema(&ty),
        json!({
            "type": "array", "uniqueItems": true,
            "items": {"type": "string", "enum": ["read", "write", "exec"]},
            "title": "perms",
        })
    );
    assert_eq!(same(&ty, json!([])), Val::Flags(vec![]));
    assert_eq!(
        same(&ty, json!(["read", "exec"])),
        Val::Flags(vec!["read".into(), "exec".into()])
    );
    // Output follows declaration order.
    let (val, out) = round_trip(&ty, &json!(["exec", "read"]));
    assert_eq!(val, Val::Flags(vec!["read".into(), "exec".into()]));
    assert_eq!(out, json!(["read", "exec"]));
    assert_eq!(
        val_to_json(&ty, &Val::Flags(vec!["write".into(), "read".into()])).unwrap(),
        json!(["read", "write"])
    );
    assert_eq!(
        reject(&ty, json!(["read", "read"])),
        "[1]: duplicate flag \"read\""
    );
    assert_eq!(
        reject(&ty, json!(["read", "delete"])),
        "[1]: expected one of \"read\", \"write\", \"exec\", got \"delete\""
    );
    for bad in [
        json!(["read", "read"]),
        json!(["delete"]),
        json!("read"),
        json!([1]),
    ] {
        assert_schema_rejects(&ty, &bad);
        reject(&ty, bad);
    }
    let none = WitType::Flags(Flags {
        name: None,
        docs: None,
        names: vec![],
    });
    same(&none, json!([]));
    assert_schema_rejects(&none, &json!(["x"]));
}

// ---------------------------------------------------------------- Val → JSON errors

#[test]
fn mismatched_component_values_are_errors() {
    let circle = record("circle", &[("r", WitType::F64), ("name", WitType::String)]);
    let cases: Vec<(WitType, Val, &str)> = vec![
        (
            WitType::U8,
            Val::S8(1),
            "component value does not match its type: expected u8, got s8",
        ),
        (
            WitType::F32,
            Val::Float64(1.0),
            "component value does not match its type: expected f32, got f64",
        ),
        (
            circle.clone(),
            Val::Record(vec![
                ("name".into(), Val::String("x".into())),
                ("r".into(), Val::Float64(1.0)),
            ]),
            "component value does not match its type: expected field \"r\", got field \"name\"",
        ),
        (
            circle.clone(),
            Val::Record(vec![("r".into(), Val::Float64(1.0))]),
            "component value does not match its type: expected 2 fields, got 1 fields",
        ),
        (
            circle,
            Val::Record(vec![
                ("r".into(), Val::Float64(1.0)),
                ("name".into(), Val::U8(1)),
            ]),
            "name: component value does not match its type: expected string, got u8",
        ),
        (
            color(),
            Val::Enum("purple".into()),
            "component value does not match its type: expected one of \"red\", \"green\", \"blue\", got case \"purple\"",
        ),
        (
            shape(),
            Val::Variant("point".into(), Some(Box::new(Val::U8(1)))),
            "point: component value does not match its type: expected no payload, got u8",
        ),
        (
            shape(),
            Val::Variant("circle".into(), None),
            "circle: component value does not match its type: expected f64, got no payload",
        ),
        (
            perms(),
            Val::Flags(vec!["read".into(), "read".into()]),
            "duplicate flag \"read\"",
        ),
        (
            perms(),
            Val::Flags(vec!["sudo".into()]),
            "component value does not match its type: expected one of \"read\", \"write\", \"exec\", got flag \"sudo\"",
        ),
        (
            list(WitType::U8),
            Val::List(vec![Val::U8(1), Val::U16(2)]),
            "[1]: component value does not match its type: expected u8, got u16",
        ),
        (
            WitType::Tuple(vec![WitType::U8]),
            Val::Tuple(vec![]),
            "component value does not match its type: expected 1 items, got 0 items",
        ),
        (
            option(option(WitType::U8)),
            Val::Option(Some(Box::new(Val::U8(1)))),
            "some: component value does not match its type: expected option, got u8",
        ),
        (
            WitType::Map(Box::new(WitType::String), Box::new(WitType::U8)),
            Val::Map(vec![(Val::U8(1), Val::U8(1))]),
            "[0]: component value does not match its type: expected string, got u8",
        ),
    ];
    for (ty, val, message) in cases {
        assert_eq!(
            val_to_json(&ty, &val).unwrap_err().to_string(),
            message,
            "{ty:?}"
        );
    }
}

#[test]
fn result_wrapper_for_mcp() {
    let sig = FuncSignature {
        name: "area".into(),
        docs: None,
        params: vec![],
        result: Some(WitType::F64),
    };
    let out = output_schema(&sig).unwrap();
    assert_eq!(out["required"], json!(["result"]));
    assert_eq!(out["additionalProperties"], json!(false));
    let structured = result_to_json(&sig, &[Val::Float64(2.0)]).unwrap().unwrap();
    assert_schema_accepts(&Value::Object(out), &Value::Object(structured.clone()));
    assert_eq!(Value::Object(structured), json!({"result": 2.0}));
    assert!(result_to_json(&sig, &[]).is_err());
    assert_eq!(
        result_to_json(&sig, &[Val::U8(1)]).unwrap_err().to_string(),
        "result: component value does not match its type: expected f64, got u8"
    );
    let no_result = FuncSignature {
        result: None,
        ..sig
    };
    assert_eq!(output_schema(&no_result), None);
    assert_eq!(result_to_json(&no_result, &[]).unwrap(), None);
    assert!(result_to_json(&no_result, &[Val::U8(1)]).is_err());
}

// ---------------------------------------------------------------- arguments

#[test]
fn arguments_are_all_required_and_nothing_else_is_allowed() {
    let sig = FuncSignature {
        name: "paint".into(),
        docs: None,
        params: vec![
            Param {
                name: "color".into(),
                ty: color(),
            },
            Param {
                name: "times".into(),
                ty: WitType::U8,
            },
            Param {
                name: "note".into(),
                ty: option(WitType::String),
            },
        ],
        result: None,
    };
    let input = input_schema(&sig);
    assert_eq!(input["type"], "object");
    assert_eq!(input["required"], json!(["color", "times", "note"]));
    assert_eq!(input["additionalProperties"], json!(false));
    assert_eq!(input["properties"]["times"], schema(&WitType::U8));
    let input = Value::Object(input);

    let good = json!({"times": 2, "color": "red", "note": null});
    assert_schema_accepts(&input, &good);
    assert_eq!(
        args_to_vals(&sig, &args(good)).unwrap(),
        vec![Val::Enum("red".into()), Val::U8(2), Val::Option(None)]
    );
    let bad = [
        (
            json!({"color": "red", "times": 2}),
            "missing required argument \"note\"",
        ),
        (
            json!({"color": "red", "times": 2, "note": null, "foo": 1}),
            "unexpected argument \"foo\"",
        ),
        (
            json!({"color": "red", "times": -2, "note": null}),
            "times: expected u8 (0..=255), got -2",
        ),
        (json!({}), "missing required argument \"color\""),
    ];
    let validator = jsonschema::draft202012::new(&input).unwrap();
    for (json, message) in bad {
        assert!(!validator.is_valid(&json), "{json}");
        assert_eq!(
            args_to_vals(&sig, &args(json)).unwrap_err().to_string(),
            message
        );
    }
    let empty = FuncSignature {
        params: vec![],
        ..sig
    };
    assert_eq!(args_to_vals(&empty, &Map::new()).unwrap(), vec![]);
    assert_eq!(
        args_to_vals(&empty, &args(json!({"x": 1})))
            .unwrap_err()
            .to_string(),
        "unexpected argument \"x\""
    );
}

#[test]
fn long_input_is_abbreviated_in_messages() {
    let long = "x".repeat(10_000);
    let message = reject(&WitType::U8, json!(long));
    assert!(message.len() < 120, "{message}");
    assert!(message.ends_with("…\""), "{message}");
    let sig = one_param("a", WitType::U8);
    let message = args_to_vals(&sig, &args(json!({"a": 1, long.clone(): 2})))
        .unwrap_err()
        .to_string();
    assert!(message.len() < 120, "{message}");
    // Control characters are escaped, not printed.
    let message = reject(&WitType::U8, json!("a\u{1b}[31mred"));
    assert!(!message.contains('\u{1b}'), "{message}");
}

// ---------------------------------------------------------------- bounds

#[test]
fn deep_json_for_a_shallow_type_is_a_mismatch() {
    let mut deep = json!(1);
    for _ in 0..100_000 {
        deep = Value::Array(vec![deep]);
    }
    assert_eq!(
        json_to_val(&list(WitType::U8), &deep)
            .unwrap_err()
            .to_string(),
        "[0]: expected u8 (0..=255), got array of 1 item"
    );
    // Dropping a 100k-deep serde_json value recurses; unravel it iteratively.
    while let Value::Array(mut items) = deep {
        deep = items.pop().unwrap_or(Value::Null);
    }
}

#[test]
fn types_deeper_than_the_limit_are_refused_everywhere() {
    let mut ty = WitType::U8;
    let mut json = json!(1);
    for _ in 0..=MAX_TYPE_DEPTH {
        ty = list(ty);
        json = json!([json]);
    }
    assert_eq!(
        json_to_val(&ty, &json).unwrap_err().problem(),
        &Problem::TooDeep
    );
    let mut val = Val::U8(1);
    for _ in 0..=MAX_TYPE_DEPTH {
        val = Val::List(vec![val]);
    }
    assert_eq!(
        val_to_json(&ty, &val).unwrap_err().problem(),
        &Problem::TooDeep
    );
    // The schema admits nothing at the place the limit is crossed.
    let mut sch = &schema(&ty);
    let mut levels = 0;
    while let Some(items) = sch.get("items") {
        sch = items;
        levels += 1;
    }
    assert_eq!((levels, sch), (MAX_TYPE_DEPTH + 1, &json!(false)));
    // One level less is fine.
    let WitType::List(shallower) = ty else {
        panic!()
    };
    let Value::Array(mut inner) = json else {
        panic!()
    };
    same(&shallower, inner.pop().unwrap());
}

// ---------------------------------------------------------------- from WIT text

const SHAPES_WIT: &str = r#"
package test:shapes;

interface canvas-api {
    resource canvas {
        constructor();
        draw: func(size: u32);
    }
}

/// Functions whose types all have a JSON form.
world callable {
    /// A point in the plane.
    record point {
        /// Horizontal position.
        x: f64,
        y: f64,
    }
    /// What to draw.
    variant shape {
        /// A circle around the origin.
        circle(f64),
        polygon(list<point>),
        nothing,
    }
    enum color {
        /// Like blood.
        red,
        green,
    }
    flags style { bold, italic }
    type coords = point;
    type maybe-coords = option<coords>;

    /// Draws a shape.
    export draw: func(s: shape, c: color, st: style, at: coords, where: maybe-coords) -> result<u32, string>;
    export nothing: func();
    export numbers: func(a: s8, b: u8, c: s16, d: u16, e: s32, f: u32, g: s64, h: u64, i: f32, j: f64, k: char, l: string, m: bool) -> tuple<u64, f32>;
    export nested: func(o: option<option<u32>>, l: list<tuple<string, option<point>>>, r: result, q: result<_, color>) -> option<point>;
    export fixed: func(rgb: list<u8, 3>, tags: map<string, u32>, ids: map<u32, string>);
    /// Returns a constant (the test component's only function that does not trap).
    export sample: func() -> tuple<u64, style, color, string>;
}

/// The above and functions that cannot be called with JSON.
world shapes {
    include callable;
    use canvas-api.{canvas};

    export paint: func(c: borrow<canvas>);
    export make: func() -> canvas;
    export wrapped: func(items: list<tuple<u8, own<canvas>>>);
    export later: func(f: future<u32>);
    export flow: func(s: stream<u8>);
}
"#;

#[test]
fn signatures_from_wit_keep_docs_and_follow_aliases() {
    let (resolve, world) = parse(SHAPES_WIT, "shapes");
    let draw = sig(&resolve, world, "draw").unwrap();
    assert_eq!(draw.name, "draw");
    assert_eq!(draw.docs.as_deref(), Some("Draws a shape."));
    let names: Vec<&str> = draw.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["s", "c", "st", "at", "where"]);
    let point = WitType::Record(Record {
        name: Some("point".into()),
        docs: Some("A point in the plane.".into()),
        fields: vec![
            Field {
                name: "x".into(),
                docs: Some("Horizontal position.".into()),
                ty: WitType::F64,
            },
            Field {
                name: "y".into(),
                docs: None,
                ty: WitType::F64,
            },
        ],
    });
    // `coords` is an alias: it becomes the record itself.
    assert_eq!(draw.params[3].ty, point);
    assert_eq!(draw.params[4].ty, option(point.clone()));
    assert_eq!(
        draw.result,
        Some(WitType::Result {
            ok: Some(Box::new(WitType::U32)),
            err: Some(Box::new(WitType::String))
        })
    );
    let WitType::Variant(shape) = &draw.params[0].ty else {
        panic!()
    };
    assert_eq!(shape.docs.as_deref(), Some("What to draw."));
    assert_eq!(
        shape.cases[0].docs.as_deref(),
        Some("A circle around the origin.")
    );
    assert_eq!(shape.cases[1].ty, Some(list(point.clone())));
    assert_eq!(shape.cases[2].ty, None);

    let input = input_schema(&draw);
    let props = &input["properties"];
    assert_eq!(props["at"]["title"], "point");
    assert_eq!(props["at"]["description"], "A point in the plane.");
    let x_docs = props["at"]["properties"]["x"]["description"]
        .as_str()
        .unwrap();
    assert!(
        x_docs.starts_with("Horizontal position.\n\n64-bit float"),
        "{x_docs}"
    );
    assert_eq!(
        props["s"]["oneOf"][0]["description"],
        "A circle around the origin."
    );
    assert_eq!(props["c"]["description"], "- red: Like blood.");
    assert_eq!(props["st"]["title"], "style");

    let call = json!({
        "s": {"polygon": [{"x": 0, "y": 0}, {"x": 1, "y": 0}, {"x": 0, "y": 1}]},
        "c": "green",
        "st": ["italic"],
        "at": {"x": 0.5, "y": -0.5},
        "where": null,
    });
    assert_schema_accepts(&Value::Object(input), &call);
    let vals = args_to_vals(&draw, &args(call)).unwrap();
    assert_eq!(vals[2], Val::Flags(vec!["italic".into()]));
    let structured = result_to_json(
        &draw,
        &[Val::Result(Err(Some(Box::new(Val::String("no".into())))))],
    )
    .unwrap()
    .unwrap();
    assert_schema_accepts(
        &Value::Object(output_schema(&draw).unwrap()),
        &Value::Object(structured.clone()),
    );
    assert_eq!(Value::Object(structured), json!({"result": {"err": "no"}}));

    let nothing = sig(&resolve, world, "nothing").unwrap();
    assert!(nothing.params.is_empty() && nothing.result.is_none());
    assert_eq!(
        Value::Object(input_schema(&nothing)),
        json!({"type": "object", "properties": {}, "required": [], "additionalProperties": false})
    );

    let nested = sig(&resolve, world, "nested").unwrap();
    assert_eq!(nested.params[0].ty, option(option(WitType::U32)));
    assert_eq!(
        nested.params[2].ty,
        WitType::Result {
            ok: None,
            err: None
        }
    );
    let fixed = sig(&resolve, world, "fixed").unwrap();
    assert_eq!(
        fixed.params[0].ty,
        WitType::FixedList(Box::new(WitType::U8), 3)
    );
    assert_eq!(
        fixed.params[2].ty,
        WitType::Map(Box::new(WitType::U32), Box::new(WitType::String))
    );
}

#[test]
fn resources_futures_and_streams_are_unsupported() {
    let (resolve, world) = parse(SHAPES_WIT, "shapes");
    let reason = |name: &str| sig(&resolve, world, name).unwrap_err();
    let paint = reason("paint");
    assert_eq!(paint.function, "paint");
    assert_eq!(
        paint.reason,
        "parameter `c`: resource `canvas` cannot be passed as JSON"
    );
    assert_eq!(
        paint.to_string(),
        "function `paint` cannot be called with JSON: parameter `c`: resource `canvas` cannot be passed as JSON"
    );
    assert_eq!(
        reason("make").reason,
        "result: resource `canvas` cannot be passed as JSON"
    );
    assert_eq!(
        reason("wrapped").reason,
        "parameter `items` at `[][1]`: resource `canvas` cannot be passed as JSON"
    );
    assert_eq!(
        reason("later").reason,
        "parameter `f`: `future` cannot be passed as JSON"
    );
    assert_eq!(
        reason("flow").reason,
        "parameter `s`: `stream` cannot be passed as JSON"
    );
    // The resource's own methods take `borrow<canvas>` as `self`.
    let types = resolve
        .interfaces
        .iter()
        .find(|(_, i)| i.name.as_deref() == Some("canvas-api"))
        .unwrap()
        .1;
    let method = &types.functions["[method]canvas.draw"];
    assert!(signature(&resolve, &types.functions["[constructor]canvas"]).is_err());
    assert_eq!(
        signature(&resolve, method).unwrap_err().reason,
        "parameter `self`: resource `canvas` cannot be passed as JSON"
    );
}

#[test]
fn exponentially_expanding_types_are_refused() {
    let mut wit = String::from("package test:big;\ninterface t {\n type t0 = u8;\n");
    for i in 1..=30 {
        wit.push_str(&format!(" type t{i} = tuple<t{p}, t{p}>;\n", p = i - 1));
    }
    wit.push_str(" f: func(x: t30);\n g: func(x: t10);\n}\nworld w { export t; }\n");
    let (resolve, world) = parse(&wit, "w");
    let err = sig(&resolve, world, "f").unwrap_err();
    assert!(
        err.reason.contains("more than 100000 nodes"),
        "{}",
        err.reason
    );
    // A moderate one is fine.
    assert!(sig(&resolve, world, "g").is_ok());
}

#[test]
fn deeply_nested_wit_is_refused() {
    let depth = MAX_TYPE_DEPTH + 5;
    let ty = format!("{}u8{}", "list<".repeat(depth), ">".repeat(depth));
    let wit = format!("package test:deep;\nworld w {{ export f: func(x: {ty}); }}\n");
    let mut resolve = Resolve::default();
    // wit-parser may refuse this itself; if it does not, we must.
    if let Ok(pkg) = resolve.push_str("deep.wit", &wit) {
        let world = resolve.select_world(&[pkg], Some("w")).unwrap();
        let err = sig(&resolve, world, "f").unwrap_err();
        assert!(
            err.reason.contains("deeper than 100 levels"),
            "{}",
            err.reason
        );
    }
}

// ---------------------------------------------------------------- against wasmtime

/// A component exporting the functions of `world`, each trapping with `unreachable` as soon as
/// it is entered, with a working allocator so that wasmtime can lower strings and lists. A call
/// whose arguments wasmtime type-checks and lowers successfully therefore ends in that trap; a
/// call with ill-typed arguments fails before entering.
///
/// The exception is `sample`, which returns a constant laid out in memory at 1024 by hand
/// (canonical ABI of `tuple<u64, style, color, string>`: u64 at 0, flags byte at 8, enum byte at
/// 9, string pointer and length at 12 and 16), so that we see what wasmtime lifts.
fn trapping_component(resolve: &Resolve, world: WorldId) -> Vec<u8> {
    use wit_parser::abi::{AbiVariant, WasmType};
    use wit_parser::{LiftLowerAbi, ManglingAndAbi, WasmExport, WasmExportKind};

    let mangling = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);
    let core = |ty: &WasmType| match ty {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => "i32",
        WasmType::I64 | WasmType::PointerOrI64 => "i64",
        WasmType::F32 => "f32",
        WasmType::F64 => "f64",
    };
    let mut wat = String::from("(module\n");
    for item in resolve.worlds[world].exports.values() {
        let WorldItem::Function(func) = item else {
            continue;
        };
        if signature(resolve, func).is_err() {
            continue;
        }
        let sig = resolve.wasm_signature(AbiVariant::GuestExport, func);
        let name = resolve.wasm_export_name(
            mangling,
            WasmExport::Func {
                interface: None,
                func,
                kind: WasmExportKind::Normal,
            },
        );
        let params: Vec<&str> = sig.params.iter().map(core).collect();
        let results: Vec<&str> = sig.results.iter().map(core).collect();
        let body = if func.name == "sample" {
            "i32.const 1024"
        } else {
            "unreachable"
        };
        wat.push_str(&format!(
            "(func (export {name:?}) (param {}) (result {}) {body})\n",
            params.join(" "),
            results.join(" ")
        ));
    }
    let memory = resolve.wasm_export_name(mangling, WasmExport::Memory);
    let realloc = resolve.wasm_export_name(mangling, WasmExport::Realloc);
    wat.push_str(&format!(
        r#"(memory (export {memory:?}) 16)
        (data (i32.const 1024) "\ff\ff\ff\ff\ff\ff\ff\ff\03\01\00\00\4c\04\00\00\07\00\00\00")
        (data (i32.const 1100) "hi \f0\9f\98\80")
        (global $next (mut i32) (i32.const 16))
        (func (export {realloc:?}) (param i32 i32 i32 i32) (result i32)
          (local $p i32)
          (local.set $p (i32.and
            (i32.add (global.get $next) (i32.sub (local.get 2) (i32.const 1)))
            (i32.sub (i32.const 0) (local.get 2))))
          (global.set $next (i32.add (local.get $p) (local.get 3)))
          (if (i32.gt_u (global.get $next) (i32.const 1048576)) (then unreachable))
          (local.get $p))
        )"#
    ));
    let mut module = wat::parse_str(&wat).expect("our WAT assembles");
    wit_component::embed_component_metadata(
        &mut module,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .encode()
        .unwrap()
}

/// Instantiates the component afresh and calls `func` with `args`.
fn call_export(component: &[u8], func: &str, args: &[Val]) -> wasmtime::Result<Vec<Val>> {
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Config, Engine, Store};

    let mut config = Config::new();
    config.wasm_component_model_map(true);
    config.wasm_component_model_fixed_length_lists(true);
    let engine = Engine::new(&config)?;
    let component = Component::new(&engine, component)?;
    let mut store = Store::new(&engine, ());
    let instance = Linker::<()>::new(&engine).instantiate(&mut store, &component)?;
    let f = instance
        .get_func(&mut store, func)
        .ok_or_else(|| wasmtime::format_err!("no export {func}"))?;
    let mut results = vec![Val::Bool(false); f.ty(&store).results().len()];
    f.call(&mut store, args, &mut results)?;
    Ok(results)
}

/// `Ok(())` when wasmtime accepted the arguments (the guest then traps as designed),
/// `Err(message)` when it refused them.
fn wasmtime_accepts(component: &[u8], func: &str, args: &[Val]) -> Result<(), String> {
    let err = match call_export(component, func, args) {
        Ok(results) => return Err(format!("{func} returned {results:?}")),
        Err(err) => err,
    };
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::UnreachableCodeReached) => Ok(()),
        _ => Err(format!("{err:?}")),
    }
}

#[test]
fn values_lifted_by_wasmtime_convert_to_json() {
    let (resolve, world) = parse(SHAPES_WIT, "callable");
    let component = trapping_component(&resolve, world);
    let results = call_export(&component, "sample", &[]).unwrap();
    let signature = sig(&resolve, world, "sample").unwrap();
    let structured = result_to_json(&signature, &results).unwrap().unwrap();
    let structured = Value::Object(structured);
    assert_eq!(
        structured,
        json!({"result": ["18446744073709551615", ["bold", "italic"], "green", "hi 😀"]})
    );
    assert_schema_accepts(
        &Value::Object(output_schema(&signature).unwrap()),
        &structured,
    );
    // And back: the JSON converts to the very value wasmtime lifted.
    let ty = signature.result.as_ref().unwrap();
    assert_eq!(json_to_val(ty, &structured["result"]).unwrap(), results[0]);
}

#[test]
fn converted_arguments_type_check_in_wasmtime() {
    let (resolve, world) = parse(SHAPES_WIT, "callable");
    let component = trapping_component(&resolve, world);
    let calls = [
        (
            "draw",
            json!({
                "s": {"polygon": [{"x": 0, "y": 0}, {"x": 1, "y": 0.5}]},
                "c": "red", "st": ["italic", "bold"], "at": {"y": 2, "x": 1},
                "where": {"x": 3, "y": 4},
            }),
        ),
        (
            "draw",
            json!({"s": {"nothing": null}, "c": "green", "st": [], "at": {"x": 1, "y": 2}, "where": null}),
        ),
        (
            "draw",
            json!({"s": {"circle": "NaN"}, "c": "green", "st": ["bold"], "at": {"x": -0.0, "y": 2}, "where": null}),
        ),
        ("nothing", json!({})),
        (
            "numbers",
            json!({
                "a": -128, "b": 255, "c": -32768, "d": 65535, "e": -2147483648, "f": 4294967295u32,
                "g": "-9223372036854775808", "h": "18446744073709551615", "i": "Infinity", "j": -0.0,
                "k": "😀", "l": "ünï", "m": true,
            }),
        ),
        (
            "nested",
            json!({"o": {"some": null}, "l": [["a", null], ["b", {"x": 1, "y": 2}]], "r": {"err": null}, "q": {"err": "red"}}),
        ),
        (
            "nested",
            json!({"o": {"some": 5}, "l": [], "r": {"ok": null}, "q": {"ok": null}}),
        ),
        (
            "fixed",
            json!({"rgb": [1, 2, 3], "tags": {"a": 1, "b": 2}, "ids": [[1, "one"], [2, "two"]]}),
        ),
    ];
    for (func, call) in calls {
        let signature = sig(&resolve, world, func).unwrap();
        assert_schema_accepts(&Value::Object(input_schema(&signature)), &call);
        let vals = args_to_vals(&signature, &args(call.clone())).unwrap();
        if let Err(e) = wasmtime_accepts(&component, func, &vals) {
            panic!("wasmtime refused {func}({call}): {e}");
        }
    }
    // The check can fail: a record with its fields out of order is refused.
    let swapped = Val::Record(vec![
        ("y".into(), Val::Float64(1.0)),
        ("x".into(), Val::Float64(1.0)),
    ]);
    let mut vals = args_to_vals(
        &sig(&resolve, world, "draw").unwrap(),
        &args(json!({"s": {"nothing": null}, "c": "red", "st": [], "at": {"x": 1, "y": 2}, "where": null})),
    )
    .unwrap();
    vals[3] = swapped;
    let refused = wasmtime_accepts(&component, "draw", &vals).unwrap_err();
    assert!(refused.contains("expected field `x`"), "{refused}");
}

// ---------------------------------------------------------------- composite schema shapes

#[test]
fn composite_schema_shapes() {
    assert_eq!(
        schema(&shape()),
        json!({
            "oneOf": [
                {"type": "object", "properties": {"circle": schema(&WitType::F64)},
                 "required": ["circle"], "additionalProperties": false},
                {"type": "object", "properties": {"point": {"type": "null"}},
                 "required": ["point"], "additionalProperties": false},
            ],
            "title": "shape",
        })
    );
    assert_eq!(
        schema(&WitType::Result {
            ok: Some(Box::new(WitType::Bool)),
            err: None
        }),
        json!({"oneOf": [
            {"type": "object", "properties": {"ok": {"type": "boolean"}},
             "required": ["ok"], "additionalProperties": false},
            {"type": "object", "properties": {"err": {"type": "null"}},
             "required": ["err"], "additionalProperties": false},
        ]})
    );
    assert_eq!(
        schema(&option(option(WitType::Bool))),
        json!({"anyOf": [
            {"type": "null"},
            {"type": "object", "properties": {"some": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}},
             "required": ["some"], "additionalProperties": false},
        ]})
    );
    assert_eq!(
        schema(&record(
            "point",
            &[("x", WitType::Bool), ("long-name", WitType::String)]
        )),
        json!({
            "type": "object",
            "properties": {"x": {"type": "boolean"}, "long-name": {"type": "string"}},
            "required": ["x", "long-name"],
            "additionalProperties": false,
            "title": "point",
        })
    );
    assert_eq!(
        schema(&WitType::Map(
            Box::new(WitType::Char),
            Box::new(WitType::Bool)
        )),
        json!({
            "type": "array",
            "items": {"type": "array", "prefixItems": [schema(&WitType::Char), {"type": "boolean"}],
                      "minItems": 2, "maxItems": 2, "items": false},
            "description": "a map, as [key, value] pairs",
        })
    );
    assert_eq!(
        schema(&WitType::S64),
        json!({
            "anyOf": [
                {"type": "integer", "minimum": i64::MIN, "maximum": i64::MAX},
                {"type": "string", "pattern": "^(0|-?[1-9][0-9]{0,18})$"},
            ],
            "description": "64-bit signed integer (-9223372036854775808..=9223372036854775807); integers beyond ±2^53−1 as decimal strings",
        })
    );
    // Text `-0` is a float zero with its sign.
    let minus_zero: Value = serde_json::from_str("-0").unwrap();
    match json_to_val(&WitType::F64, &minus_zero).unwrap() {
        Val::Float64(v) => assert!(v == 0.0 && v.is_sign_negative()),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- generated types and values

/// A small deterministic PRNG (xorshift64*), so the generated cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

fn gen_type(rng: &mut Rng, depth: usize) -> WitType {
    let leaf = depth >= 4 || rng.below(3) == 0;
    let choice = if leaf {
        rng.below(13)
    } else {
        13 + rng.below(12)
    };
    let inner = |rng: &mut Rng| Box::new(gen_type(rng, depth + 1));
    let names = |rng: &mut Rng, prefix: &str| -> Vec<Named> {
        (0..1 + rng.below(4))
            .map(|i| Named {
                name: format!("{prefix}-{i}"),
                docs: None,
            })
            .collect()
    };
    match choice {
        scalar @ 0..=12 => WitType::SCALARS[scalar].clone(),
        13 => WitType::List(inner(rng)),
        14 => WitType::FixedList(inner(rng), rng.below(3) as u32),
        15 => {
            let key = if rng.below(2) == 0 {
                Box::new(WitType::String)
            } else {
                inner(rng)
            };
            WitType::Map(key, inner(rng))
        }
        16 => WitType::Tuple(
            (0..rng.below(4))
                .map(|_| gen_type(rng, depth + 1))
                .collect(),
        ),
        17 => WitType::Record(Record {
            name: Some("r".into()),
            docs: Some("a record".into()),
            fields: (0..1 + rng.below(3))
                .map(|i| Field {
                    name: format!("f-{i}"),
                    docs: None,
                    ty: gen_type(rng, depth + 1),
                })
                .collect(),
        }),
        18 => WitType::Variant(Variant {
            name: Some("v".into()),
            docs: None,
            cases: (0..1 + rng.below(3))
                .map(|i| Case {
                    name: format!("c-{i}"),
                    docs: Some(format!("case {i}")),
                    ty: (rng.below(2) == 0).then(|| gen_type(rng, depth + 1)),
                })
                .collect(),
        }),
        19 => WitType::Enum(Enum {
            name: Some("e".into()),
            docs: None,
            cases: names(rng, "e"),
        }),
        20 | 21 => WitType::Option(inner(rng)),
        22 => WitType::Result {
            ok: (rng.below(2) == 0).then(|| inner(rng)),
            err: (rng.below(2) == 0).then(|| inner(rng)),
        },
        _ => WitType::Flags(Flags {
            name: None,
            docs: None,
            names: names(rng, "f"),
        }),
    }
}

fn gen_val(rng: &mut Rng, ty: &WitType) -> Val {
    const SAFE: i64 = (1 << 53) - 1;
    let r = rng.next();
    let many = |rng: &mut Rng, ty: &WitType, n: usize| -> Vec<Val> {
        (0..n).map(|_| gen_val(rng, ty)).collect()
    };
    match ty {
        WitType::Bool => Val::Bool(rng.below(2) == 0),
        WitType::S8 => Val::S8(rng.next() as i8),
        WitType::U8 => Val::U8(rng.next() as u8),
        WitType::S16 => Val::S16(rng.next() as i16),
        WitType::U16 => Val::U16(rng.next() as u16),
        WitType::S32 => Val::S32(rng.next() as i32),
        WitType::U32 => Val::U32(rng.next() as u32),
        WitType::S64 => Val::S64(rng.pick(&[
            i64::MIN,
            i64::MAX,
            SAFE,
            -SAFE,
            SAFE + 1,
            -SAFE - 1,
            0,
            r as i64,
        ])),
        WitType::U64 => Val::U64(rng.pick(&[u64::MAX, SAFE as u64, SAFE as u64 + 1, 0, r])),
        WitType::F32 => Val::Float32(rng.pick(&[
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::MAX,
            f32::from_bits(r as u32),
        ])),
        WitType::F64 => Val::Float64(rng.pick(&[
            f64::NAN,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN,
            f64::from_bits(r),
        ])),
        WitType::Char => {
            Val::Char(char::from_u32(rng.next() as u32 % 0x11_0000).unwrap_or('\u{FFFD}'))
        }
        WitType::String => Val::String(rng.pick(&["", "a", "😀 é", "\"\\\n", "null"]).to_string()),
        WitType::List(item) => {
            let n = rng.below(4);
            Val::List(many(rng, item, n))
        }
        WitType::FixedList(item, n) => Val::FixedLengthList(many(rng, item, *n as usize)),
        WitType::Map(key, value) => {
            let n = rng.below(4);
            Val::Map(
                (0..n)
                    .map(|i| {
                        // Object keys are unique, so string-keyed maps get distinct keys.
                        let k = if **key == WitType::String {
                            Val::String(format!("k{i}"))
                        } else {
                            gen_val(rng, key)
                        };
                        (k, gen_val(rng, value))
                    })
                    .collect(),
            )
        }
        WitType::Tuple(types) => Val::Tuple(types.iter().map(|t| gen_val(rng, t)).collect()),
        WitType::Record(r) => Val::Record(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), gen_val(rng, &f.ty)))
                .collect(),
        ),
        WitType::Variant(v) => {
            let case = &v.cases[rng.below(v.cases.len())];
            Val::Variant(
                case.name.clone(),
                case.ty.as_ref().map(|t| Box::new(gen_val(rng, t))),
            )
        }
        WitType::Enum(e) => Val::Enum(e.cases[rng.below(e.cases.len())].name.clone()),
        WitType::Option(inner) => {
            Val::Option((rng.below(3) != 0).then(|| Box::new(gen_val(rng, inner))))
        }
        WitType::Result { ok, err } => {
            let payload = |rng: &mut Rng, t: &Option<Box<WitType>>| {
                t.as_ref().map(|t| Box::new(gen_val(rng, t)))
            };
            if rng.below(2) == 0 {
                Val::Result(Ok(payload(rng, ok)))
            } else {
                Val::Result(Err(payload(rng, err)))
            }
        }
        WitType::Flags(f) => Val::Flags(
            f.names
                .iter()
                .filter(|_| rng.below(2) == 0)
                .map(|n| n.name.clone())
                .collect(),
        ),
    }
}

#[test]
fn generated_values_round_trip_and_match_their_schema() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut checked = 0;
    for _ in 0..300 {
        let ty = gen_type(&mut rng, 0);
        let sch = schema(&ty);
        jsonschema::draft202012::meta::validate(&sch).unwrap_or_else(|e| panic!("{e}: {sch:#}"));
        let validator = jsonschema::draft202012::new(&sch).unwrap();
        for _ in 0..10 {
            let val = gen_val(&mut rng, &ty);
            let json = val_to_json(&ty, &val).unwrap_or_else(|e| panic!("{ty:?} {val:?}: {e}"));
            assert!(validator.is_valid(&json), "{json} vs {sch:#}");
            let text = json.to_string();
            let back = json_to_val(&ty, &serde_json::from_str(&text).unwrap())
                .unwrap_or_else(|e| panic!("{ty:?}: {text}: {e}"));
            assert_eq!(back, val, "{ty:?} via {text}");
            checked += 1;
        }
    }
    assert_eq!(checked, 3000);
}
