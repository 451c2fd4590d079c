//! The exact JSON Schemas written for composite types.

use super::*;

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
