//! `input.nodes`: every node of the arguments and of the result, listed by the gateway.
//!
//! Policies match arguments by name at any depth (`{"url": …}` and `{"req": {"url": …}}`), which
//! in plain Rego takes `walk`. regorus's compiled form (the RVM, see `compiled.rs`) cannot
//! compile `walk`, and `walk` was also most of what an argument check cost in the interpreter.
//! So the gateway lists the nodes once, in Rust, before evaluating:
//!
//! - `input.nodes.arguments` is `[[path, value], …]` for every node of `input.arguments` below
//!   its root, in the order `walk(input.arguments, [path, value])` yields them;
//! - `input.nodes.result` is the same for `input.result.value`.
//!
//! Whatever the caller put under `input.nodes` is replaced: these facts are derived, never
//! taken from an input file or a client. The listing is bounded: a document whose node paths
//! add up to more than [`MAX_PATH_ELEMENTS`] elements is refused (the decision is a deny), so
//! a deep and wide argument cannot turn one decision into gigabytes of paths.

use regorus::Value;

/// Largest total of path elements over all listed nodes of one document. A path costs one
/// element per level, so this bounds depth × breadth, not the document's size (which the
/// input size limit bounds).
pub const MAX_PATH_ELEMENTS: usize = 1 << 18;

/// Sets `input.nodes` from `input.arguments` and `input.result.value`, those that are present.
pub fn derive(input: &mut Value) -> Result<(), String> {
    let mut nodes = std::collections::BTreeMap::new();
    for (name, path) in [
        ("arguments", &["arguments"][..]),
        ("result", &["result", "value"]),
    ] {
        if let Some(document) = field(input, path) {
            let listed = list(&document).map_err(|limit| {
                format!(
                    "input.{} is too deeply nested to evaluate: its node paths exceed {limit} elements",
                    path.join(".")
                )
            })?;
            nodes.insert(Value::from(name), listed);
        }
    }
    input
        .as_object_mut()
        .map_err(|_| "input must be a JSON object".to_string())?
        .insert(Value::from("nodes"), Value::from(nodes));
    Ok(())
}

/// The value at `path` under `input`, if every step is an object holding the next key.
fn field(input: &Value, path: &[&str]) -> Option<Value> {
    let mut value = input;
    for key in path {
        value = value.as_object().ok()?.get(&Value::from(*key))?;
    }
    Some(value.clone())
}

/// `[[path, value], …]` for every node below `root`, pre-order, objects in key order: the
/// order of regorus's `walk`. Iterative, so nesting depth cannot exhaust the stack; the values
/// are shared with `root`, not copied. `Err` carries the limit that was exceeded.
fn list(root: &Value) -> Result<Value, usize> {
    let mut listed = Vec::new();
    let mut path_elements = 0usize;
    // Children still to visit, each with its path; pushed in reverse so they pop in order.
    let mut pending: Vec<(Vec<Value>, Value)> = Vec::new();
    push_children(&mut pending, &[], root);
    while let Some((path, value)) = pending.pop() {
        path_elements += path.len();
        if path_elements > MAX_PATH_ELEMENTS {
            return Err(MAX_PATH_ELEMENTS);
        }
        push_children(&mut pending, &path, &value);
        listed.push(Value::from(vec![Value::from(path), value]));
    }
    Ok(Value::from(listed))
}

fn push_children(pending: &mut Vec<(Vec<Value>, Value)>, path: &[Value], value: &Value) {
    let child = |key: Value| {
        let mut child_path = Vec::with_capacity(path.len() + 1);
        child_path.extend_from_slice(path);
        child_path.push(key);
        child_path
    };
    match value {
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate().rev() {
                pending.push((child(Value::from(index)), item.clone()));
            }
        }
        Value::Set(items) => {
            for item in items.iter().rev() {
                pending.push((child(item.clone()), item.clone()));
            }
        }
        Value::Object(fields) => {
            let sorted: Vec<_> = fields.iter_sorted().collect();
            for (key, item) in sorted.into_iter().rev() {
                pending.push((child(key.clone()), item.clone()));
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(json: serde_json::Value) -> Value {
        Value::from(json)
    }

    /// What regorus's own `walk` yields (root excluded): the reference the listing must match.
    fn walked(document: &Value) -> Value {
        let mut engine = regorus::Engine::new();
        engine.set_input(value(serde_json::json!({ "doc": document })));
        let results = engine
            .eval_query(
                "x := [[p, v] | walk(input.doc, [p, v]); count(p) > 0]".to_string(),
                false,
            )
            .unwrap();
        results.result[0].bindings[&Value::from("x")].clone()
    }

    #[test]
    fn lists_nodes_exactly_as_walk_does() {
        let documents = [
            serde_json::json!({}),
            serde_json::json!({"url": "https://example.com", "req": {"url": 3, "list": [1, {"path": "/a"}, []]}}),
            serde_json::json!({"b": 1, "a": {"z": null, "y": [true, false]}, "a/b~c": "x"}),
            serde_json::json!([[[["deep"]]], {"k": {"k": {"k": {}}}}]),
        ];
        for document in documents {
            let document = value(document);
            assert_eq!(list(&document).unwrap(), walked(&document), "{document}");
        }
    }

    #[test]
    fn derive_replaces_client_supplied_nodes_and_covers_the_result() {
        let mut input = value(serde_json::json!({
            "arguments": {"token": "x"},
            "result": {"value": {"items": [{"secret": 1}]}, "size": 10},
            "nodes": {"arguments": [[["innocent"], 1]]}
        }));
        derive(&mut input).unwrap();
        let nodes = field(&input, &["nodes"]).unwrap();
        assert_eq!(
            nodes,
            value(serde_json::json!({
                "arguments": [[["token"], "x"]],
                "result": [
                    [["items"], [{"secret": 1}]],
                    [["items", 0], {"secret": 1}],
                    [["items", 0, "secret"], 1]
                ]
            }))
        );
    }

    #[test]
    fn absent_documents_list_nothing_and_non_objects_are_refused() {
        let mut input = value(serde_json::json!({"phase": "list"}));
        derive(&mut input).unwrap();
        assert_eq!(
            field(&input, &["nodes"]).unwrap(),
            value(serde_json::json!({}))
        );
        assert!(derive(&mut value(serde_json::json!([1]))).is_err());
    }

    #[test]
    fn deep_and_wide_documents_are_refused_not_listed() {
        // 200 levels deep, 2,000 leaves at the bottom: ~400,000 path elements.
        let mut document = serde_json::json!((0..2000).collect::<Vec<_>>());
        for _ in 0..200 {
            document = serde_json::json!({ "a": document });
        }
        let mut input = value(serde_json::json!({ "arguments": document }));
        let error = derive(&mut input).unwrap_err();
        assert!(
            error.contains("input.arguments is too deeply nested"),
            "{error}"
        );

        // Deep but narrow is fine: 500 levels are 125,250 path elements, listed without
        // recursion.
        let mut document = serde_json::json!(1);
        for _ in 0..500 {
            document = serde_json::json!([document]);
        }
        let listed = list(&value(document)).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 500);
    }
}
