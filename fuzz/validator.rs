//! The JSON Schema validator behind `gatehouse::fuzzing::SchemaValidator`, shared by the fuzz
//! targets and `tests/fuzz_regressions.rs` (both include this file).

use gatehouse::fuzzing::SchemaValidator;
use serde_json::Value;

/// `jsonschema`, draft 2020-12 (the draft our schemas are written for).
pub struct JsonSchema;

impl SchemaValidator for JsonSchema {
    fn validate(&self, schema: &Value, instance: Option<&Value>) -> Result<(), String> {
        let Some(instance) = instance else {
            return jsonschema::draft202012::meta::validate(schema)
                .map_err(|e| format!("not a valid draft 2020-12 schema: {e}"));
        };
        let validator = jsonschema::draft202012::new(schema)
            .map_err(|e| format!("the schema does not compile: {e}"))?;
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
