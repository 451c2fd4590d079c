//! A function's arguments and result as MCP's input and output objects, and how messages
//! quote long or hostile input.

use super::*;

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
