//! Signatures read from WIT text: docs, aliases, and the types JSON cannot carry.

use super::*;

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
