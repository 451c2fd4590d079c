//! Tests of the WIT ↔ JSON converters and schemas, one module per subject; the helpers and the
//! WIT they share are here.
//!
//! Every JSON value these tests produce or accept is also validated against the generated
//! schema (and every schema against the 2020-12 meta-schema), so the schema and the converters
//! cannot drift apart unnoticed.

use serde_json::{Map, Value, json};
use wasmtime::component::Val;
use wit_parser::{Resolve, WorldId, WorldItem};

use super::*;

mod against_wasmtime;
mod arguments;
mod composite_schemas;
mod containers;
mod generated;
mod limits;
mod mismatches;
mod scalars;
mod wit_text;

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

/// The WIT the signature and wasmtime tests read: world `callable` is what
/// `against_wasmtime` builds a component for, world `shapes` adds what JSON cannot carry.
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
