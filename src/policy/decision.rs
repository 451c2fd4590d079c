//! The decision a phase package produces, and how raw rule values become one.
//!
//! Everything here fails closed: a value of the wrong shape is not ignored, it turns the verdict
//! into a deny whose reason names the rule and what was wrong with it.

use std::collections::BTreeMap;

use regorus::Value;
use serde::{Deserialize, Serialize};

use super::phase::Phase;
use crate::secrets::Template;

/// Prefix of every reason that comes from a broken policy rather than from a `deny` message, so
/// an operator can tell "the policy said no" from "the policy could not answer".
pub const POLICY_ERROR: &str = "policy error";

/// The final answer of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Allow,
    Deny,
    /// A person decides (the `ask` rule): the action waits for their answer. Until one is
    /// given it is not allowed, so code that does not know how to ask denies.
    Ask,
}

impl Verdict {
    /// `"allow"`, `"deny"` or `"ask"`, as the audit log records it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Ask => "ask",
        }
    }
}

/// Resource limits the policy attaches to an allowed call (the `limits` obligation).
///
/// `None` means the policy did not set the limit and the gateway's configured default applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub timeout_ms: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub fuel: Option<u64>,
    pub max_requests: Option<u64>,
    pub max_result_bytes: Option<u64>,
    /// Calls the principal may have started in the last 60 s for this one to start (all its
    /// calls count); tightens `limits.calls_per_minute_per_principal`.
    pub calls_per_minute: Option<u64>,
}

impl Limits {
    /// The keys a policy may set in `limits`; anything else is a policy error, because a typo
    /// (`timeout` for `timeout_ms`) would otherwise silently drop a limit.
    pub const KEYS: [&'static str; 6] = [
        "timeout_ms",
        "memory_bytes",
        "fuel",
        "max_requests",
        "max_result_bytes",
        "calls_per_minute",
    ];

    fn slot(&mut self, key: &str) -> Option<&mut Option<u64>> {
        match key {
            "timeout_ms" => Some(&mut self.timeout_ms),
            "memory_bytes" => Some(&mut self.memory_bytes),
            "fuel" => Some(&mut self.fuel),
            "max_requests" => Some(&mut self.max_requests),
            "max_result_bytes" => Some(&mut self.max_result_bytes),
            "calls_per_minute" => Some(&mut self.calls_per_minute),
            _ => None,
        }
    }
}

/// The `inject` obligation of the `http` phase: headers the host sets on the one outgoing
/// request the decision allows, their values filled in from brokered secrets. It holds the
/// templates (`"Bearer {{secret.github}}"`), never a value, so it is safe to log and record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Injection {
    /// Lower-case header name → value template. A header the tool set with the same name is
    /// replaced.
    pub headers: BTreeMap<String, Template>,
}

impl Injection {
    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }

    /// Headers a policy may not inject: they decide where and how the request is framed and
    /// sent, which the tool and the checked URL already fixed.
    pub const FORBIDDEN_HEADERS: [&'static str; 9] = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
    ];
}

/// One policy decision: what the gateway enforces and what the audit log records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub phase: Phase,
    /// `allow` only when the `allow` rule is `true`, `deny` is empty and nothing went wrong.
    pub verdict: Verdict,
    /// The value of the package's `allow` rule (`false` when undefined or broken).
    pub allow: bool,
    /// Why the verdict is deny: the `deny` messages, or the policy error; for `ask`, the `ask`
    /// messages (what the person is told). Empty when allowed.
    pub reasons: Vec<String>,
    /// The `limits` obligation.
    pub limits: Limits,
    /// The `redact` obligation: JSON pointers (RFC 6901) of values to mask in logs and results.
    pub redact: Vec<String>,
    /// The `env` obligation: names of environment variables (from the gateway's `[env]`
    /// configuration) granted to the tool for this call.
    pub env: Vec<String>,
    /// The `inject` obligation (phase `http` only).
    #[serde(default, skip_serializing_if = "Injection::is_empty")]
    pub inject: Injection,
    /// The `labels` obligation: marks the policy attaches to the caller's session, whatever
    /// the verdict (a denied attempt can be worth remembering too); later decisions of the
    /// session read them in `input.session.labels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// The revision of the bundle that made the decision.
    pub revision: String,
    /// Wall-clock time the evaluation took, in microseconds.
    pub eval_micros: u64,
}

impl Decision {
    /// Whether the gateway may go ahead (an `ask` may not, until a person approves).
    pub fn is_allowed(&self) -> bool {
        self.verdict == Verdict::Allow
    }

    /// Whether a person must decide.
    pub fn is_ask(&self) -> bool {
        self.verdict == Verdict::Ask
    }

    /// Settles an `ask` with a person's answer: an allow when they approved, else a deny whose
    /// reasons are `refusal` (why not) and then the `ask` messages (why they were asked).
    pub fn answer(&mut self, approved: bool, refusal: Option<String>) {
        if self.verdict != Verdict::Ask {
            return;
        }
        let asked = std::mem::take(&mut self.reasons);
        if approved {
            self.verdict = Verdict::Allow;
        } else {
            self.verdict = Verdict::Deny;
            self.inject = Injection::default();
            self.reasons = refusal.into_iter().collect();
            self.reasons.extend(
                asked
                    .into_iter()
                    .map(|m| format!("approval was asked because: {m}")),
            );
        }
    }

    /// A deny for a cause outside the rules' values (no package, evaluation error, bad input).
    pub fn policy_error(
        phase: Phase,
        revision: &str,
        cause: impl std::fmt::Display,
        eval_micros: u64,
    ) -> Decision {
        Decision {
            phase,
            verdict: Verdict::Deny,
            allow: false,
            reasons: vec![
                crate::support::userinfo::mask_userinfo(&format!("{POLICY_ERROR}: {cause}"))
                    .into_owned(),
            ],
            limits: Limits::default(),
            redact: REDACT_ON_ERROR.iter().map(|p| (*p).to_owned()).collect(),
            env: Vec::new(),
            inject: Injection::default(),
            labels: Vec::new(),
            revision: revision.to_string(),
            eval_micros,
        }
    }

    /// Turns this decision into a deny for `reason` (a limit the gateway enforces after the
    /// policy answered). Obligations that only an allowed action uses are dropped with it.
    pub fn deny_for(&mut self, reason: String) {
        self.verdict = Verdict::Deny;
        self.reasons.push(reason);
        self.inject = Injection::default();
    }
}

/// The longest session label a policy may attach, in bytes.
pub const MAX_LABEL_BYTES: usize = 64;

/// What the log masks when an evaluation fails: every input value a caller or a tool controls.
/// The policy's own `redact` is lost with its evaluation, and a caller can make it fail on
/// purpose, so the log keeps only keyed digests of these rather than risk a secret in clear.
pub const REDACT_ON_ERROR: [&str; 5] = [
    "/arguments",
    "/result",
    "/request/path",
    "/request/query",
    "/request/headers",
];

/// The raw values of a phase package's decision rules. `None` means the bundle declares no such
/// rule; `Some(Value::Undefined)` means it is declared but produced nothing for this input.
#[derive(Debug, Clone, Default)]
pub struct RuleValues {
    pub allow: Option<Value>,
    pub deny: Option<Value>,
    pub limits: Option<Value>,
    pub redact: Option<Value>,
    pub env: Option<Value>,
    pub inject: Option<Value>,
    pub labels: Option<Value>,
    pub ask: Option<Value>,
}

impl RuleValues {
    /// Turns the rule values into a decision; every malformed value becomes a deny reason.
    pub fn into_decision(self, phase: Phase, revision: &str, eval_micros: u64) -> Decision {
        let package = phase.package();
        let mut errors = Vec::new();
        let mut error = |message: String| errors.push(format!("{POLICY_ERROR}: {message}"));

        let allow = match &self.allow {
            None => {
                error(format!(
                    "{package} declares no allow rule, so nothing is allowed"
                ));
                None
            }
            Some(Value::Undefined) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                error(format!(
                    "{package}.allow must be a boolean, got {}",
                    type_name(other)
                ));
                None
            }
        };

        let errors = &mut errors;
        let deny = obligation(self.deny.as_ref(), errors, |v| {
            strings(v, &format!("{package}.deny"))
        });
        let limits = obligation(self.limits.as_ref(), errors, |v| limits(v, &package));
        let redact = obligation(self.redact.as_ref(), errors, |v| {
            json_pointers(v, &format!("{package}.redact"))
        });
        let env = obligation(self.env.as_ref(), errors, |v| {
            strings(v, &format!("{package}.env"))
        });
        let inject = obligation(self.inject.as_ref(), errors, |v| injection(v, &package));
        let labels = obligation(self.labels.as_ref(), errors, |v| labels(v, &package));
        let ask = obligation(self.ask.as_ref(), errors, |v| {
            strings(v, &format!("{package}.ask"))
        });

        // Precedence: a policy error or a `deny` message denies; else an `ask` message asks a
        // person (whatever `allow` says); else `allow` decides.
        let denied = !deny.is_empty() || !errors.is_empty();
        let asked = !denied && !ask.is_empty();
        let allowed = !denied && !asked && allow == Some(true);
        let mut reasons = std::mem::take(errors);
        reasons.extend(deny);
        if asked {
            reasons = ask;
        } else if !allowed && reasons.is_empty() {
            let why = if allow.is_none() {
                "undefined"
            } else {
                "false"
            };
            reasons.push(format!("not allowed by {package} (allow is {why})"));
        }
        Decision {
            phase,
            verdict: if allowed {
                Verdict::Allow
            } else if asked {
                Verdict::Ask
            } else {
                Verdict::Deny
            },
            allow: allow == Some(true),
            reasons: if allowed {
                Vec::new()
            } else {
                // A reason may quote what it judged; a URL's credentials go no further.
                reasons
                    .iter()
                    .map(|r| crate::support::userinfo::mask_userinfo(r).into_owned())
                    .collect()
            },
            limits,
            redact,
            env,
            // Nothing is injected into a request that is not sent (an asked one may be).
            inject: if allowed || asked {
                inject
            } else {
                Injection::default()
            },
            labels,
            revision: revision.to_string(),
            eval_micros,
        }
    }
}

/// The parsed value of a declared rule, or its default when the bundle does not declare it. A
/// malformed value is a policy error pushed to `errors` (which denies the decision), and the
/// default stands in for it.
fn obligation<T: Default>(
    value: Option<&Value>,
    errors: &mut Vec<String>,
    parse: impl FnOnce(&Value) -> Result<T, String>,
) -> T {
    match value.map(parse) {
        None => T::default(),
        Some(Ok(parsed)) => parsed,
        Some(Err(message)) => {
            errors.push(format!("{POLICY_ERROR}: {message}"));
            T::default()
        }
    }
}

/// A Rego type name for error messages.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Set(_) => "set",
        Value::Object(_) => "object",
        Value::Undefined => "undefined",
    }
}

/// The strings of a set or array of strings (undefined counts as empty).
fn strings(value: &Value, rule: &str) -> Result<Vec<String>, String> {
    let items: Vec<&Value> = match value {
        Value::Undefined => return Ok(Vec::new()),
        Value::Set(set) => set.iter().collect(),
        Value::Array(array) => array.iter().collect(),
        other => {
            return Err(format!(
                "{rule} must be a set of strings, got {}",
                type_name(other)
            ));
        }
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.to_string()),
            other => Err(format!(
                "{rule} must be a set of strings, got a {} containing a {}",
                type_name(value),
                type_name(other)
            )),
        })
        .collect()
}

fn json_pointers(value: &Value, rule: &str) -> Result<Vec<String>, String> {
    let pointers = strings(value, rule)?;
    match pointers
        .iter()
        .find(|p| !p.is_empty() && !p.starts_with('/'))
    {
        Some(bad) => Err(format!(
            "{rule} must hold JSON pointers (\"/arguments/token\"), got {bad:?}"
        )),
        None => Ok(pointers),
    }
}

fn limits(value: &Value, package: &str) -> Result<Limits, String> {
    let object = match value {
        Value::Undefined => return Ok(Limits::default()),
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "{package}.limits must be an object, got {}",
                type_name(other)
            ));
        }
    };
    let mut limits = Limits::default();
    for (key, item) in object.iter() {
        let Value::String(key) = key else {
            return Err(format!(
                "{package}.limits keys must be strings, got {}",
                type_name(key)
            ));
        };
        let Some(slot) = limits.slot(key) else {
            return Err(format!(
                "{package}.limits has unknown key {key:?} (known: {})",
                Limits::KEYS.join(", ")
            ));
        };
        *slot = Some(item.as_u64().map_err(|_| {
            format!(
                "{package}.limits.{key} must be a non-negative integer, got {}",
                describe(item)
            )
        })?);
    }
    Ok(limits)
}

/// `{"headers": {"Authorization": "Bearer {{secret.github}}"}}`: header names become lower
/// case; a name that is not a header, a forbidden header or a bad template is an error.
fn injection(value: &Value, package: &str) -> Result<Injection, String> {
    let rule = format!("{package}.inject");
    let object = match value {
        Value::Undefined => return Ok(Injection::default()),
        Value::Object(object) => object,
        other => {
            return Err(format!(
                "{rule} must be an object like {{\"headers\": {{...}}}}, got {}",
                type_name(other)
            ));
        }
    };
    let mut inject = Injection::default();
    for (key, item) in object.iter() {
        if key != &Value::from("headers") {
            return Err(format!(
                "{rule} has unknown key {} (known: headers)",
                describe(key)
            ));
        }
        let Value::Object(headers) = item else {
            return Err(format!(
                "{rule}.headers must be an object of header names to templates, got {}",
                type_name(item)
            ));
        };
        for (name, template) in headers.iter() {
            let (Value::String(name), Value::String(template)) = (name, template) else {
                return Err(format!(
                    "{rule}.headers must map header names (strings) to templates (strings)"
                ));
            };
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{rule}.headers: {name:?} is not a header name"))?;
            if Injection::FORBIDDEN_HEADERS.contains(&name.as_str()) {
                return Err(format!(
                    "{rule}.headers may not set {name}: it decides how the request is sent"
                ));
            }
            let template =
                Template::parse(template).map_err(|e| format!("{rule}.headers.{name}: {e}"))?;
            inject.headers.insert(name.as_str().to_owned(), template);
        }
    }
    Ok(inject)
}

/// Session labels: short names (letters, digits, `_`, `-`, `.`, `:`), so that they read well in
/// a reason and cannot smuggle a value (a path, a token) into every later input of the session.
fn labels(value: &Value, package: &str) -> Result<Vec<String>, String> {
    let rule = format!("{package}.labels");
    let mut labels = strings(value, &rule)?;
    if let Some(bad) = labels.iter().find(|label| {
        label.is_empty()
            || label.len() > MAX_LABEL_BYTES
            || !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(&b))
    }) {
        return Err(format!(
            "{rule} must hold names of 1 to {MAX_LABEL_BYTES} letters, digits, '_', '-', '.' or ':', got {bad:?}"
        ));
    }
    labels.sort();
    labels.dedup();
    Ok(labels)
}

/// A short rendering of a value for error messages: its JSON when small, else its type.
fn describe(value: &Value) -> String {
    match value.to_json_str() {
        Ok(json) if json.len() <= 40 => json,
        _ => type_name(value).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Value {
        Value::from_json_str(text).unwrap()
    }

    fn set(items: &[&str]) -> Value {
        let mut set = std::collections::BTreeSet::new();
        for item in items {
            set.insert(Value::from(*item));
        }
        Value::from(set)
    }

    fn decide(values: RuleValues) -> Decision {
        values.into_decision(Phase::Call, "sha256:test", 1)
    }

    #[test]
    fn allow_true_and_empty_deny_is_the_only_allow() {
        let allowed = decide(RuleValues {
            allow: Some(Value::Bool(true)),
            deny: Some(set(&[])),
            ..Default::default()
        });
        assert!(allowed.is_allowed());
        assert!(allowed.allow);
        assert!(allowed.reasons.is_empty());

        let denied = decide(RuleValues {
            allow: Some(Value::Bool(true)),
            deny: Some(set(&["plain http", "too big"])),
            ..Default::default()
        });
        assert!(!denied.is_allowed());
        assert!(denied.allow, "allow keeps the rule's value");
        assert_eq!(denied.reasons, vec!["plain http", "too big"]);

        let not_allowed = decide(RuleValues {
            allow: Some(Value::Bool(false)),
            deny: None,
            ..Default::default()
        });
        assert!(!not_allowed.is_allowed());
        assert_eq!(
            not_allowed.reasons,
            vec!["not allowed by gatehouse.call (allow is false)"]
        );

        let undefined = decide(RuleValues {
            allow: Some(Value::Undefined),
            deny: Some(Value::Undefined),
            ..Default::default()
        });
        assert!(!undefined.is_allowed());
        assert_eq!(
            undefined.reasons,
            vec!["not allowed by gatehouse.call (allow is undefined)"]
        );
    }

    #[test]
    fn deny_comes_before_ask_and_ask_before_allow() {
        let asks = |allow: bool| RuleValues {
            allow: Some(Value::Bool(allow)),
            ask: Some(set(&["a person decides"])),
            ..Default::default()
        };
        for allow in [true, false] {
            let asked = decide(asks(allow));
            assert_eq!(asked.verdict, Verdict::Ask);
            assert!(!asked.is_allowed(), "an ask is not an allow until approved");
            assert_eq!(asked.reasons, vec!["a person decides"]);
        }
        let denied = decide(RuleValues {
            deny: Some(set(&["no"])),
            ..asks(true)
        });
        assert_eq!(denied.verdict, Verdict::Deny);
        assert_eq!(denied.reasons, vec!["no"]);
        let broken = decide(RuleValues {
            ask: Some(Value::from("not a set")),
            ..asks(true)
        });
        assert_eq!(broken.verdict, Verdict::Deny);
        assert!(
            broken.reasons[0].starts_with(POLICY_ERROR),
            "{:?}",
            broken.reasons
        );
        let mut approved = decide(asks(false));
        approved.answer(true, None);
        assert!(approved.is_allowed() && approved.reasons.is_empty());
        let mut refused = decide(asks(true));
        refused.answer(false, Some("declined".into()));
        assert_eq!(refused.verdict, Verdict::Deny);
        assert_eq!(
            refused.reasons,
            vec!["declined", "approval was asked because: a person decides"]
        );
        let quiet = decide(RuleValues {
            ask: Some(set(&[])),
            ..asks(true)
        });
        assert_eq!(quiet.verdict, Verdict::Allow);
    }

    #[test]
    fn missing_or_non_boolean_allow_denies_with_a_policy_error() {
        let missing = decide(RuleValues::default());
        assert!(!missing.is_allowed());
        assert_eq!(
            missing.reasons,
            vec!["policy error: gatehouse.call declares no allow rule, so nothing is allowed"]
        );
        let stringly = decide(RuleValues {
            allow: Some(Value::from("yes")),
            ..Default::default()
        });
        assert!(!stringly.is_allowed());
        assert_eq!(
            stringly.reasons,
            vec!["policy error: gatehouse.call.allow must be a boolean, got string"]
        );
    }

    #[test]
    fn deny_must_be_a_set_or_array_of_strings() {
        for (value, expected) in [
            (
                Value::from("no"),
                "policy error: gatehouse.call.deny must be a set of strings, got string",
            ),
            (
                Value::Bool(true),
                "policy error: gatehouse.call.deny must be a set of strings, got boolean",
            ),
            (
                json(r#"[1]"#),
                "policy error: gatehouse.call.deny must be a set of strings, got a array containing a number",
            ),
            (
                json(r#"{"a": "b"}"#),
                "policy error: gatehouse.call.deny must be a set of strings, got object",
            ),
        ] {
            let decision = decide(RuleValues {
                allow: Some(Value::Bool(true)),
                deny: Some(value),
                ..Default::default()
            });
            assert!(!decision.is_allowed());
            assert_eq!(decision.reasons, vec![expected.to_string()]);
        }
        let array = decide(RuleValues {
            allow: Some(Value::Bool(true)),
            deny: Some(json(r#"["b", "a"]"#)),
            ..Default::default()
        });
        assert_eq!(array.reasons, vec!["b", "a"], "array order is kept");
    }

    #[test]
    fn limits_are_parsed_and_unknown_keys_or_bad_values_deny() {
        let decision = decide(RuleValues {
            allow: Some(Value::Bool(true)),
            limits: Some(json(r#"{"timeout_ms": 2000, "memory_bytes": 67108864}"#)),
            ..Default::default()
        });
        assert!(decision.is_allowed());
        assert_eq!(decision.limits.timeout_ms, Some(2000));
        assert_eq!(decision.limits.memory_bytes, Some(67_108_864));
        assert_eq!(decision.limits.fuel, None);

        let typo = decide(RuleValues {
            allow: Some(Value::Bool(true)),
            limits: Some(json(r#"{"timeout": 2000}"#)),
            ..Default::default()
        });
        assert!(!typo.is_allowed());
        assert!(
            typo.reasons[0].starts_with(
                "policy error: gatehouse.call.limits has unknown key \"timeout\" (known: timeout_ms,"
            ),
            "{:?}",
            typo.reasons
        );

        for bad in [r#"{"fuel": -1}"#, r#"{"fuel": 1.5}"#, r#"{"fuel": "many"}"#] {
            let decision = decide(RuleValues {
                allow: Some(Value::Bool(true)),
                limits: Some(json(bad)),
                ..Default::default()
            });
            assert!(!decision.is_allowed(), "{bad}");
            assert!(
                decision.reasons[0].starts_with(
                    "policy error: gatehouse.call.limits.fuel must be a non-negative integer, got "
                ),
                "{:?}",
                decision.reasons
            );
        }
        let not_object = decide(RuleValues {
            allow: Some(Value::Bool(true)),
            limits: Some(json("[1]")),
            ..Default::default()
        });
        assert_eq!(
            not_object.reasons,
            vec!["policy error: gatehouse.call.limits must be an object, got array"]
        );
    }

    #[test]
    fn redact_must_be_json_pointers_and_survives_a_deny() {
        let decision = decide(RuleValues {
            allow: Some(Value::Bool(false)),
            redact: Some(set(&["/arguments/token"])),
            ..Default::default()
        });
        assert!(!decision.is_allowed());
        assert_eq!(decision.redact, vec!["/arguments/token"]);

        let bad = decide(RuleValues {
            allow: Some(Value::Bool(true)),
            redact: Some(set(&["arguments.token"])),
            ..Default::default()
        });
        assert!(!bad.is_allowed());
        assert!(
            bad.reasons[0].contains("must hold JSON pointers"),
            "{:?}",
            bad.reasons
        );
    }

    #[test]
    fn inject_holds_header_templates_and_every_flaw_denies() {
        let allowed = |inject: &str| {
            decide(RuleValues {
                allow: Some(Value::Bool(true)),
                inject: Some(json(inject)),
                ..Default::default()
            })
        };
        let decision =
            allowed(r#"{"headers": {"Authorization": "Bearer {{secret.github}}", "X-Team": "a"}}"#);
        assert!(decision.is_allowed(), "{:?}", decision.reasons);
        let headers = &decision.inject.headers;
        assert_eq!(
            headers["authorization"].to_string(),
            "Bearer {{secret.github}}"
        );
        assert_eq!(
            headers["authorization"].secrets().collect::<Vec<_>>(),
            ["github"]
        );
        assert_eq!(headers["x-team"].to_string(), "a");
        let recorded = serde_json::to_value(&decision).unwrap();
        assert_eq!(
            recorded["inject"],
            serde_json::json!({"headers": {"authorization": "Bearer {{secret.github}}", "x-team": "a"}})
        );

        for (inject, reason) in [
            (r#""Bearer x""#, "must be an object"),
            (r#"{"header": {}}"#, "unknown key \"header\""),
            (
                r#"{"headers": ["authorization"]}"#,
                "must be an object of header names",
            ),
            (
                r#"{"headers": {"authorization": 1}}"#,
                "must map header names",
            ),
            (
                r#"{"headers": {"bad header": "x"}}"#,
                "is not a header name",
            ),
            (
                r#"{"headers": {"Host": "evil.example"}}"#,
                "may not set host",
            ),
            (
                r#"{"headers": {"content-length": "0"}}"#,
                "may not set content-length",
            ),
            (
                r#"{"headers": {"authorization": "{{github}}"}}"#,
                "is not a placeholder",
            ),
            (r#"{"headers": {"x": "a\r\nb: c"}}"#, "cannot carry"),
        ] {
            let decision = allowed(inject);
            assert!(!decision.is_allowed(), "{inject} was allowed");
            assert!(decision.inject.is_empty());
            assert!(
                decision.reasons[0].starts_with(POLICY_ERROR)
                    && decision.reasons[0].contains(reason),
                "{inject}: {:?}",
                decision.reasons
            );
        }

        // A denied request carries nothing.
        let denied = decide(RuleValues {
            allow: Some(Value::Bool(false)),
            inject: Some(json(
                r#"{"headers": {"authorization": "{{secret.github}}"}}"#,
            )),
            ..Default::default()
        });
        assert!(denied.inject.is_empty());
        assert!(
            !serde_json::to_value(&denied)
                .unwrap()
                .as_object()
                .unwrap()
                .contains_key("inject"),
            "an empty inject is not recorded"
        );
    }

    #[test]
    fn labels_are_short_names_kept_whatever_the_verdict() {
        let labelled = |labels: Value, deny: &[&str]| {
            decide(RuleValues {
                allow: Some(Value::Bool(true)),
                deny: Some(set(deny)),
                labels: Some(labels),
                ..Default::default()
            })
        };
        let allowed = labelled(set(&["read_sensitive", "tier:2", "a.b-c"]), &[]);
        assert!(allowed.is_allowed());
        assert_eq!(allowed.labels, ["a.b-c", "read_sensitive", "tier:2"]);
        let denied = labelled(set(&["tried_exfiltration"]), &["no"]);
        assert!(!denied.is_allowed());
        assert_eq!(
            denied.labels,
            ["tried_exfiltration"],
            "a deny may label too"
        );
        assert!(labelled(Value::Undefined, &[]).labels.is_empty());

        for (bad, why) in [
            (set(&["/secrets/token"]), "\"/secrets/token\""),
            (set(&[""]), "\"\""),
            (
                set(&[&"x".repeat(MAX_LABEL_BYTES + 1)]),
                "must hold names of 1 to 64",
            ),
            (
                Value::from("read_sensitive"),
                "must be a set of strings, got string",
            ),
        ] {
            let decision = labelled(bad, &[]);
            assert!(!decision.is_allowed());
            assert!(decision.labels.is_empty());
            assert!(
                decision.reasons[0].starts_with("policy error: gatehouse.call.labels")
                    && decision.reasons[0].contains(why),
                "{:?}",
                decision.reasons
            );
        }
    }

    #[test]
    fn decisions_serialize_with_every_field() {
        let decision = decide(RuleValues {
            allow: Some(Value::Bool(true)),
            ..Default::default()
        });
        let json = serde_json::to_value(&decision).unwrap();
        assert_eq!(json["phase"], "call");
        assert_eq!(json["verdict"], "allow");
        assert_eq!(json["allow"], true);
        assert_eq!(json["revision"], "sha256:test");
        assert!(
            json["limits"]
                .as_object()
                .unwrap()
                .contains_key("timeout_ms")
        );
        let back: Decision = serde_json::from_value(json).unwrap();
        assert_eq!(back, decision);
    }
}
