//! Credentials written into URLs (`https://alice:secret@host/`) never leave the gateway in
//! clear: a URL's userinfo is masked in every text the gateway records or shows (policy
//! reasons, audit entries, logs), while the policy itself still sees the URL as sent.
//!
//! The rule is textual, so it also catches URLs inside free text (a reason that quotes an
//! argument, a tool's error message): after each `scheme://`, the authority runs to the first
//! `/`, `?`, `#`, whitespace, quote or angle bracket; if it holds an `@`, everything before its
//! last `@` becomes `***`.

use std::borrow::Cow;

use serde_json::Value;

/// What replaces a URL's userinfo.
pub const MASK: &str = "***";

/// `text` with the userinfo of every URL in it replaced by [`MASK`].
pub fn mask_userinfo(text: &str) -> Cow<'_, str> {
    if !text.contains("://") || !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut masked = String::with_capacity(text.len());
    let mut rest = text;
    let mut changed = false;
    while let Some(start) = rest.find("://") {
        let authority_start = start + 3;
        masked.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        let end = after
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`') || c.is_whitespace()
            })
            .unwrap_or(after.len());
        let authority = &after[..end];
        match authority.rfind('@') {
            Some(at) => {
                masked.push_str(MASK);
                masked.push_str(&authority[at..]);
                changed = true;
            }
            None => masked.push_str(authority),
        }
        rest = &after[end..];
    }
    if !changed {
        return Cow::Borrowed(text);
    }
    masked.push_str(rest);
    Cow::Owned(masked)
}

/// Masks URL userinfo in every string of a JSON value, in place (object keys are left alone:
/// they are names, not values).
pub fn mask_userinfo_in(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Cow::Owned(masked) = mask_userinfo(text) {
                *text = masked;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_userinfo_in),
        Value::Object(map) => map.values_mut().for_each(mask_userinfo_in),
        _ => {}
    }
}

/// Whether a string of `value` holds a URL whose userinfo [`mask_userinfo_in`] masked: what
/// was recorded is then not what the policy saw.
pub fn holds_masked_userinfo(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains(&format!("://{MASK}@")),
        Value::Array(items) => items.iter().any(holds_masked_userinfo),
        Value::Object(map) => map.values().any(holds_masked_userinfo),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn userinfo_is_masked_wherever_a_url_appears() {
        assert_eq!(
            mask_userinfo("https://alice:Hunter2SECRET@example.com/x?q=1"),
            "https://***@example.com/x?q=1"
        );
        assert_eq!(
            mask_userinfo("argument /arguments/url got \"ftp://u:p@h\" and http://k@h2:80#f"),
            "argument /arguments/url got \"ftp://***@h\" and http://***@h2:80#f"
        );
        // The last `@` of the authority ends the userinfo (a password may hold `@`).
        assert_eq!(mask_userinfo("http://a:b@c@host/"), "http://***@host/");
    }

    #[test]
    fn text_without_userinfo_is_unchanged() {
        for text in [
            "plain text",
            "mail ann@example.com",
            "https://example.com/a@b",
            "https://example.com?x=a@b",
        ] {
            assert!(matches!(mask_userinfo(text), Cow::Borrowed(_)), "{text}");
        }
    }

    #[test]
    fn json_strings_are_masked_and_keys_kept() {
        let mut value = json!({"url": "https://u:p@h/", "list": ["x", "ssh://k@h"], "n": 1});
        mask_userinfo_in(&mut value);
        assert_eq!(
            value,
            json!({"url": "https://***@h/", "list": ["x", "ssh://***@h"], "n": 1})
        );
        assert!(holds_masked_userinfo(&value));
        assert!(!holds_masked_userinfo(
            &json!({"url": "https://h/", "who": "***@h"})
        ));
    }
}
