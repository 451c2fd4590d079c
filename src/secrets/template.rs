//! Header templates of the `inject` obligation: literal text with `{{secret.NAME}}`
//! placeholders (spaces inside the braces allowed), e.g. `"Bearer {{secret.github}}"`.
//!
//! A template is what the policy decided and what the audit log records; only
//! [`super::Secrets::render`] turns it into bytes, for the one request it was decided for.

use std::fmt;

/// A parsed header template. Displays as the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Secret(String),
}

/// A template the policy produced cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`{{{{` without a closing `}}}}`")]
    Unclosed,
    #[error("`{{{{{0}}}}}` is not a placeholder: write `{{{{secret.NAME}}}}`")]
    Placeholder(String),
    #[error("the text holds a character an HTTP header cannot carry (only printable ASCII)")]
    NotHeaderText,
}

/// Whether `name` may name a secret: letters, digits, `_` and `-`.
pub(super) fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            push_literal(&mut parts, &rest[..open])?;
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or(TemplateError::Unclosed)?;
            let inner = after[..close].trim();
            match inner.strip_prefix("secret.") {
                Some(name) if is_secret_name(name) => parts.push(Part::Secret(name.to_owned())),
                _ => return Err(TemplateError::Placeholder(inner.to_owned())),
            }
            rest = &after[close + 2..];
        }
        push_literal(&mut parts, rest)?;
        Ok(Template {
            text: text.to_owned(),
            parts,
        })
    }

    /// The secrets the template names, in order of appearance.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Secret(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// The bytes with each placeholder replaced by `value(name)`; `Err` names a secret
    /// `value` does not know.
    pub(super) fn render<'a>(
        &self,
        value: impl Fn(&str) -> Option<&'a [u8]>,
    ) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.extend_from_slice(text.as_bytes()),
                Part::Secret(name) => {
                    out.extend_from_slice(value(name).ok_or_else(|| name.clone())?)
                }
            }
        }
        Ok(out)
    }
}

fn push_literal(parts: &mut Vec<Part>, text: &str) -> Result<(), TemplateError> {
    if text.is_empty() {
        return Ok(());
    }
    if !text
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    {
        return Err(TemplateError::NotHeaderText);
    }
    parts.push(Part::Literal(text.to_owned()));
    Ok(())
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for Template {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Template::parse(&text).map_err(serde::de::Error::custom)
    }
}
