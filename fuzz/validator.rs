//! The JSON Schema validator behind `gatehouse::fuzzing::SchemaValidator`, shared by the fuzz
//! targets and `tests/fuzz_regressions.rs` (both include this file).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use gatehouse::fuzzing::SchemaValidator;
use jsonschema::Validator;
use serde_json::Value;

/// `jsonschema`, draft 2020-12 (the draft our schemas are written for).
pub struct JsonSchema;

/// How many schemas' outcomes each cache keeps before it starts afresh (a bound on memory).
const CACHE_ENTRIES: usize = 1024;

thread_local! {
    /// Compiled validators (or why the schema does not compile), by schema text. Compiling
    /// costs far more than validating one instance, and a fuzzer runs the same schema again and
    /// again: every mutation that only changes a value's bytes keeps its type. A schema's text
    /// determines its validator, so a cached one checks exactly what a fresh one would.
    static VALIDATORS: RefCell<HashMap<String, Rc<Result<Validator, String>>>> =
        RefCell::new(HashMap::new());
    /// Whether a schema is a valid draft 2020-12 schema, by schema text.
    static META: RefCell<HashMap<String, Result<(), String>>> = RefCell::new(HashMap::new());
}

/// `compute(schema)`, remembered in `cache` under the schema's text.
fn cached<T: Clone>(
    cache: &'static std::thread::LocalKey<RefCell<HashMap<String, T>>>,
    schema: &Value,
    compute: impl FnOnce(&Value) -> T,
) -> T {
    let key = serde_json::to_string(schema).expect("schemas serialize");
    if let Some(hit) = cache.with_borrow(|c| c.get(&key).cloned()) {
        return hit;
    }
    let outcome = compute(schema);
    cache.with_borrow_mut(|c| {
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(key, outcome.clone());
    });
    outcome
}

impl SchemaValidator for JsonSchema {
    fn validate(&self, schema: &Value, instance: Option<&Value>) -> Result<(), String> {
        let Some(instance) = instance else {
            return cached(&META, schema, |schema| {
                jsonschema::draft202012::meta::validate(schema)
                    .map_err(|e| format!("not a valid draft 2020-12 schema: {e}"))
            });
        };
        let validator = cached(&VALIDATORS, schema, |schema| {
            Rc::new(
                jsonschema::draft202012::new(schema)
                    .map_err(|e| format!("the schema does not compile: {e}")),
            )
        });
        let validator = validator.as_ref().as_ref().map_err(Clone::clone)?;
        if validator.is_valid(instance) {
            return Ok(());
        }
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| e.to_string())
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
