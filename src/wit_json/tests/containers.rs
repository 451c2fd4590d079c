//! Containers: lists, fixed-length lists, maps, tuples, records, variants, enums, options,
//! results and flags.

use super::*;

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
