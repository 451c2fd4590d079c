//! The converters against a real wasmtime component: values it lifts convert to JSON, and
//! arguments converted from JSON type-check in it.

use super::*;

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
