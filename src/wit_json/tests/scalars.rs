//! Scalars: bools, integers with their exact bounds (and strings beyond 2^53), floats with
//! their specials, chars and strings.

use super::*;

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
