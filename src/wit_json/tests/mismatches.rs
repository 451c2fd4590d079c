//! Component values that do not match their type: writing one as JSON is an error that says
//! where and what.

use super::*;

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
