//! Bounds: JSON and types nested past the depth limit, and WIT types that expand too far.

use super::*;

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
