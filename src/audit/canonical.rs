//! RFC 8785 (JCS) text of the JSON an entry carries.
//!
//! Every entry's JSON members are canonicalized on the appending task, and with
//! `serde_json_canonicalizer` alone that was most of an append's CPU: it serializes each object
//! member into buffers of its own and parses every member name back to sort it (about 12 µs for
//! the audit bench's request document of 300 bytes; BENCHMARKS.md#canonical-json).
//! [`canonical_value`] walks a `serde_json::Value` in place instead, and leaves each part of
//! RFC 8785 to what already does it exactly:
//! - members are sorted by their names' UTF-16 code units (§3.2.3), compared without
//!   allocating;
//! - strings and member names are written by serde_json, whose escaping is the one §3.2.2.2
//!   prescribes (only `"`, `\` and controls; the short forms; `\u00xx` in lower case);
//! - numbers are written by `serde_json_canonicalizer`, which formats them as ECMAScript does
//!   (§3.2.2.3), the one part of JCS that is not simple.
//!
//! The crate stays the reference: the tests below and the `audit_entry` fuzz target compare
//! with it byte for byte.

use serde_json::Value;

use super::AuditError;

/// RFC 8785 text of `value`.
pub(crate) fn canonical_value(value: &Value) -> Result<String, AuditError> {
    let mut out = Vec::with_capacity(256);
    write_value(value, &mut out)?;
    Ok(String::from_utf8(out).expect("JSON written from Rust strings is UTF-8"))
}

/// RFC 8785 text of a list of strings (an entry's reasons): serde_json's compact form, since
/// it has no members to sort and no numbers to format.
pub(crate) fn canonical_strings(items: &[String]) -> String {
    serde_json::to_string(items).expect("a list of strings serializes")
}

/// A JSON string as RFC 8785 writes it.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing into a Vec cannot fail");
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), AuditError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::String(s) => write_str(out, s),
        Value::Number(n) => {
            serde_json_canonicalizer::to_writer(n, out).map_err(not_canonicalizable)?
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_unstable_by(|(a, _), (b, _)| a.encode_utf16().cmp(b.encode_utf16()));
            out.push(b'{');
            for (i, (name, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, name);
                out.push(b':');
                write_value(member, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn not_canonicalizable(e: serde_json::Error) -> AuditError {
    AuditError::InvalidEntry {
        field: "json",
        detail: format!("cannot be canonicalized (RFC 8785): {e}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn assert_same_as_the_crate(value: &Value) {
        assert_eq!(
            canonical_value(value).unwrap(),
            serde_json_canonicalizer::to_string(value).unwrap(),
            "for {value}"
        );
    }

    /// RFC 8785 §3.2.3's sorting example: names whose UTF-16 order differs from their UTF-8
    /// (code point) order, because U+1F600 is a surrogate pair below U+FB33.
    #[test]
    fn members_are_sorted_by_utf16_code_units() {
        let value: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let text = canonical_value(&value).unwrap();
        let names: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(&text)
            .unwrap()
            .values()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "Carriage Return",
                "One",
                "Control",
                "Latin Small Letter O With Diaeresis",
                "Euro Sign",
                "Emoji: Grinning Face",
                "Hebrew Letter Dalet With Dagesh"
            ]
        );
        assert_same_as_the_crate(&value);
    }

    /// RFC 8785 §3.2.2.3 and Appendix B's numbers, and strings that need escaping.
    #[test]
    fn numbers_and_strings_are_written_as_rfc_8785_says() {
        let value: Value = serde_json::from_str(
            r#"{"numbers":[333333333.33333329,1E30,4.50,2e-3,0.000000000000000000000000001,-0.0,9007199254740991,-9007199254740991,1e21,1e-7,100],"string":"\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/\ud83d\ude00","literals":[null,true,false]}"#,
        )
        .unwrap();
        assert_eq!(
            canonical_value(&value).unwrap(),
            r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27,0,9007199254740991,-9007199254740991,1e+21,1e-7,100],"string":"€$\u000f\nA'B\"\\\\\"/😀"}"#
        );
        assert_same_as_the_crate(&value);
    }

    #[test]
    fn nested_and_empty_values_match_the_crate() {
        for value in [
            json!({}),
            json!([]),
            json!(""),
            json!({"b": {"d": [1, {"z": null, "a": []}], "c": {}}, "a": [[], [{}]], "": 0}),
            json!({"aa": 1, "a": 2, "a\u{0}": 3, "A": 4, "\u{e000}": 5, "\u{10000}": 6}),
        ] {
            assert_same_as_the_crate(&value);
        }
    }

    #[test]
    fn lists_of_strings_match_the_crate() {
        for items in [
            vec![],
            vec!["".to_owned()],
            vec!["a\"b".into(), "\u{1}\u{7f}é".into()],
        ] {
            assert_eq!(
                canonical_strings(&items),
                serde_json_canonicalizer::to_string(&items).unwrap()
            );
        }
    }
}
