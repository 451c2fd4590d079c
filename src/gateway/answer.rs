//! What the agent receives from a call that ran: the returned value as JSON and as text, the
//! result size limit, and the `result` phase's masking of parts of it.

use serde_json::Value;
use wasmtime::component::Val;

use super::CallResult;
use crate::runtime::{CallError, CallLimits};
use crate::secrets::Secrets;
use crate::wit_json::{self, FuncSignature, WitType};

/// Where the `result` phase's input holds the value the tool returned.
pub(crate) const RESULT_VALUE: &str = "/result/value";

/// What replaces a value the `result` phase's `redact` masks in the agent's answer.
pub const REDACTED: &str = "[redacted]";

/// Converts the returned value to the JSON the agent sees, enforcing the result size limit.
pub(crate) fn shape_result(
    signature: &FuncSignature,
    result: Option<Val>,
    limits: &CallLimits,
) -> Result<CallResult, CallError> {
    let structured =
        wit_json::result_to_json(signature, result.as_slice()).map_err(|e| CallError::Trap {
            message: format!("the tool returned a value that does not match its signature: {e}"),
        })?;
    let Some(structured) = structured else {
        return Ok(CallResult::Completed {
            structured: None,
            text: "done (the function returns nothing)".to_owned(),
            is_error: false,
        });
    };
    let value = &structured["result"];
    let is_error =
        matches!(signature.result, Some(WitType::Result { .. })) && value.get("err").is_some();
    let text = result_text(is_error, value);
    let size = text.len() as u64;
    if size > limits.max_result_bytes {
        return Err(CallError::ResultTooLarge {
            limit: limits.max_result_bytes,
            size,
        });
    }
    Ok(CallResult::Completed {
        structured: Some(Value::Object(structured)),
        text,
        is_error,
    })
}

/// The text rendering of a tool's result value, beside its structured form.
fn result_text(is_error: bool, value: &Value) -> String {
    match (is_error, value) {
        (true, Value::Object(err)) => match &err["err"] {
            Value::Null => "the tool reported an error".to_owned(),
            Value::String(message) => format!("the tool reported an error: {message}"),
            other => format!("the tool reported an error: {other}"),
        },
        (_, Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// Applies the `result` phase's `redact` pointers that point into the returned value
/// (`/result/value/...`) to what the agent receives: the structured value and its text
/// rendering. Returns the pointers that selected something, for the record.
pub(crate) fn mask_answer(result: CallResult, pointers: &[String]) -> (CallResult, Vec<String>) {
    let CallResult::Completed {
        structured: Some(mut structured),
        text,
        is_error,
    } = result
    else {
        return (result, Vec::new());
    };
    let mut masked = Vec::new();
    for pointer in pointers {
        let Some(inner) = pointer.strip_prefix(RESULT_VALUE) else {
            continue;
        };
        if !(inner.is_empty() || inner.starts_with('/')) {
            continue;
        }
        if let Some(slot) = structured.pointer_mut(&format!("/result{inner}")) {
            *slot = Value::String(REDACTED.to_owned());
            masked.push(pointer.clone());
        }
    }
    let text = if masked.is_empty() {
        text
    } else {
        result_text(is_error, &structured["result"])
    };
    let result = CallResult::Completed {
        structured: Some(structured),
        text,
        is_error,
    };
    (result, masked)
}

/// Masks brokered secrets' values in what the tool returned: the last line of defence after
/// the HTTP host's response masking, so no value the gateway holds reaches the agent or the
/// result's record. Returns the names of the secrets found.
pub(crate) fn mask_secrets(result: CallResult, secrets: &Secrets) -> (CallResult, Vec<String>) {
    if secrets.is_empty() {
        return (result, Vec::new());
    }
    let mut found = Vec::new();
    let mut mask = |text: &mut String| {
        if let Some((masked, names)) = secrets.mask_text(text) {
            *text = masked;
            for name in names {
                if !found.iter().any(|f| f == name) {
                    found.push(name.to_owned());
                }
            }
        }
    };
    let result = match result {
        CallResult::Completed {
            mut structured,
            mut text,
            is_error,
        } => {
            if let Some(value) = &mut structured {
                mask_strings(value, &mut mask);
            }
            mask(&mut text);
            CallResult::Completed {
                structured,
                text,
                is_error,
            }
        }
        other => other,
    };
    (result, found)
}

/// Applies `mask` to every string of `value`, object keys included.
fn mask_strings(value: &mut Value, mask: &mut impl FnMut(&mut String)) {
    match value {
        Value::String(text) => mask(text),
        Value::Array(items) => items.iter_mut().for_each(|item| mask_strings(item, mask)),
        Value::Object(object) => {
            object
                .values_mut()
                .for_each(|item| mask_strings(item, mask));
            // Keys are rebuilt only when one of them changes, keeping the order.
            let keys: Vec<String> = object.keys().cloned().collect();
            let mut masked_keys = keys.clone();
            masked_keys.iter_mut().for_each(&mut *mask);
            if masked_keys != keys {
                let entries = std::mem::take(object);
                object.extend(
                    masked_keys
                        .into_iter()
                        .zip(entries.into_iter().map(|(_, v)| v)),
                );
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokered_values_are_masked_in_values_keys_and_text_keeping_order() {
        let token = "ghp_0123456789abcdef";
        let secrets = Secrets::from_values([("github", token)]).unwrap();
        let result = CallResult::Completed {
            structured: Some(
                serde_json::json!({"result": {"a": 1, token: [format!("x {token}")], "z": 2}}),
            ),
            text: format!("echo {token}"),
            is_error: false,
        };
        let (masked, found) = mask_secrets(result, &secrets);
        assert_eq!(found, ["github"]);
        let CallResult::Completed {
            structured, text, ..
        } = masked
        else {
            panic!("still completed")
        };
        let stars = "*".repeat(token.len());
        assert_eq!(text, format!("echo {stars}"));
        let keys: Vec<_> = structured.as_ref().unwrap()["result"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["a", stars.as_str(), "z"]);
        assert_eq!(
            structured.unwrap()["result"][&stars][0],
            format!("x {stars}")
        );
    }
}
