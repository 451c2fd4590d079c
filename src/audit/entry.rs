//! Audit records: what a caller hands in ([`NewEntry`]), what is stored ([`Entry`]), and the
//! canonical bytes each entry's leaf hash is computed over.
//!
//! Canonical entry bytes are the RFC 8785 (JCS) serialization of one JSON object with exactly
//! these members (absent optional values are `null`):
//! `call_id, caller, component_digest, decision_id, input, metrics, obligations, phase,
//! policy_revision, reasons, seq, time, tool, v, verdict` (see `audit/VERIFY.md`).
//!
//! The writer builds those bytes from pieces: the caller's side canonicalizes every member it
//! knows ([`PreparedEntry`]); the writer only splices in `seq` and `time`. Because JCS sorts
//! members by name and every member before `seq` sorts below it and every member after `time`
//! sorts above it, `head ‖ seq ‖ time ‖ tail` *is* the JCS serialization of the whole object.
//! A test checks this against the canonicalizer on whole objects, and `verify` recomputes from
//! the stored columns the same way.

use serde::Serialize;
use serde_json::{Map, Value};

use super::AuditError;
use super::canonical::{canonical_strings, canonical_value, write_str};
use super::merkle::{Hash, LeafHasher};

/// Version of the canonical entry format (the `v` member).
pub const ENTRY_FORMAT_VERSION: u64 = 1;

/// Phases whose entries record a decision (verdict `allow` or `deny`): the policy's, and
/// `auth`, the transport refusing a caller's credential before any policy runs.
pub const DECISION_PHASES: &[&str] = &[
    "list", "call", "http", "fs", "socket", "config", "result", "auth",
];
/// Decision phases whose policy may ask a person (verdict `ask`, answered by an `approval`
/// entry).
pub const ASKING_PHASES: &[&str] = &["call", "http", "fs", "socket", "config"];
/// Verdicts of `approval` entries: a person's (or a grant's) answer to an `ask`.
pub const APPROVAL_VERDICTS: &[&str] = &["approve", "deny"];
/// Verdicts of `outcome` entries: how a call ended (`input_required`: not run, waiting for
/// the client to call again with a person's answer).
pub const OUTCOME_VERDICTS: &[&str] = &[
    "ok",
    "tool_error",
    "trap",
    "limit",
    "denied",
    "error",
    "input_required",
];
/// Verdicts of `lifecycle` entries (log opened, rotated, …).
pub const LIFECYCLE_VERDICTS: &[&str] = &["ok", "error"];
/// Verdicts of `supply` entries (component loads and tool-definition pins):
/// `loaded`, `refused` (digest, signature or strict mode), `pinned` (first sight of a tool
/// definition), `drift` (a changed definition), `accepted` (an operator accepted it).
pub const SUPPLY_VERDICTS: &[&str] = &["loaded", "refused", "pinned", "drift", "accepted"];
/// Verdicts of `log` entries (a line a tool logged through `wasi:logging`): its level, or
/// `dropped` for the one entry that counts the lines past the call's bounds.
pub const LOG_VERDICTS: &[&str] = &[
    "trace", "debug", "info", "warn", "error", "critical", "dropped",
];

/// One record the gateway asks to be written. The writer adds `seq`, `time` and `decision_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// Groups the entries of one tool call (its call verdict, egress decisions, outcome).
    pub call_id: Option<String>,
    /// `list | call | http | fs | socket | config | result | auth | outcome | lifecycle |
    /// supply | log`.
    pub phase: String,
    /// `{principal, transport, client, authenticated}`; must be a JSON object.
    pub caller: Value,
    pub tool: Option<String>,
    pub component_digest: Option<String>,
    pub policy_revision: Option<String>,
    /// The policy input (or outcome details); the values at `redact` are replaced by keyed hashes.
    pub input: Value,
    /// JSON pointers (RFC 6901) into `input` whose values must not be stored in clear.
    pub redact: Vec<String>,
    /// `allow | deny` for decision phases; `ok | tool_error | trap | limit | denied | error` for
    /// outcomes; `ok | error` for lifecycle entries.
    pub verdict: String,
    pub reasons: Vec<String>,
    pub obligations: Value,
    /// Measurements such as `duration_us`, `fuel`, `memory`.
    pub metrics: Value,
}

impl NewEntry {
    /// An entry with the required fields and everything else empty.
    pub fn new(phase: &str, verdict: &str, caller: Value, input: Value) -> Self {
        Self {
            call_id: None,
            phase: phase.to_owned(),
            caller,
            tool: None,
            component_digest: None,
            policy_revision: None,
            input,
            redact: Vec::new(),
            verdict: verdict.to_owned(),
            reasons: Vec::new(),
            obligations: Value::Object(Map::new()),
            metrics: Value::Object(Map::new()),
        }
    }

    /// Refuses entries the log must not contain: unknown phase, a verdict that does not belong to
    /// the phase, a caller that is not an object.
    pub fn validate(&self) -> Result<(), AuditError> {
        let allowed: &[&str] = if ASKING_PHASES.contains(&self.phase.as_str()) {
            &["allow", "deny", "ask"]
        } else if DECISION_PHASES.contains(&self.phase.as_str()) {
            &["allow", "deny"]
        } else if self.phase == "approval" {
            APPROVAL_VERDICTS
        } else if self.phase == "outcome" {
            OUTCOME_VERDICTS
        } else if self.phase == "lifecycle" {
            LIFECYCLE_VERDICTS
        } else if self.phase == "supply" {
            SUPPLY_VERDICTS
        } else if self.phase == "log" {
            LOG_VERDICTS
        } else {
            return Err(AuditError::InvalidEntry {
                field: "phase",
                detail: format!(
                    "{:?} is not one of list, call, http, fs, socket, config, result, auth, approval, outcome, lifecycle, supply, log",
                    self.phase
                ),
            });
        };
        if !allowed.contains(&self.verdict.as_str()) {
            return Err(AuditError::InvalidEntry {
                field: "verdict",
                detail: format!(
                    "{:?} is not valid for phase {:?} (expected one of {})",
                    self.verdict,
                    self.phase,
                    allowed.join(", ")
                ),
            });
        }
        if !self.caller.is_object() {
            return Err(AuditError::InvalidEntry {
                field: "caller",
                detail: "must be a JSON object {principal, transport, client, authenticated}"
                    .into(),
            });
        }
        // Queries find an entry by the principal string (`entry_blocks`, the `principal`
        // column); a number or object there could not be looked up as the caller it names.
        if self
            .caller
            .get("principal")
            .is_some_and(|principal| !principal.is_string())
        {
            return Err(AuditError::InvalidEntry {
                field: "caller",
                // Not quoted: it may be an object of any size.
                detail: "principal must be a string".into(),
            });
        }
        Ok(())
    }
}

/// What `append` answers once the entry is durably committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    /// The entry's Merkle leaf hash.
    pub entry_hash: Hash,
}

/// A stored entry, as read back by the auditor tools.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub seq: u64,
    pub time: String,
    pub decision_id: String,
    pub call_id: Option<String>,
    pub phase: String,
    pub caller: Value,
    pub tool: Option<String>,
    pub component_digest: Option<String>,
    pub policy_revision: Option<String>,
    pub input: Value,
    pub verdict: String,
    pub reasons: Vec<String>,
    pub obligations: Value,
    pub metrics: Value,
    #[serde(serialize_with = "hex_hash")]
    pub entry_hash: Hash,
}

fn hex_hash<S: serde::Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(h))
}

impl Entry {
    /// The entry as the JSON object whose RFC 8785 serialization is its canonical form.
    pub fn canonical_object(&self) -> Value {
        let opt = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let mut m = Map::new();
        m.insert("call_id".into(), opt(&self.call_id));
        m.insert("caller".into(), self.caller.clone());
        m.insert("component_digest".into(), opt(&self.component_digest));
        m.insert("decision_id".into(), self.decision_id.clone().into());
        m.insert("input".into(), self.input.clone());
        m.insert("metrics".into(), self.metrics.clone());
        m.insert("obligations".into(), self.obligations.clone());
        m.insert("phase".into(), self.phase.clone().into());
        m.insert("policy_revision".into(), opt(&self.policy_revision));
        m.insert("reasons".into(), self.reasons.clone().into());
        m.insert("seq".into(), self.seq.into());
        m.insert("time".into(), self.time.clone().into());
        m.insert("tool".into(), opt(&self.tool));
        m.insert("v".into(), ENTRY_FORMAT_VERSION.into());
        m.insert("verdict".into(), self.verdict.clone().into());
        Value::Object(m)
    }
}

/// `Some(true)` for an integer an IEEE 754 double holds exactly (I-JSON, RFC 7493 §2.2),
/// `Some(false)` for a larger one, `None` for a number that is not an integer.
fn exact_integer(n: &serde_json::Number) -> Option<bool> {
    n.as_u64()
        .map(|u| u <= MAX_SAFE_INTEGER)
        .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= MAX_SAFE_INTEGER))
}

/// The stored column values of an entry, each JSON column as canonical text: exactly what the
/// canonical bytes are built from, on write and on verify (in the file, and in the fleet's
/// PostgreSQL store, which keeps the same columns byte for byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryColumns {
    pub decision_id: String,
    pub call_id: Option<String>,
    pub phase: String,
    pub caller: String,
    pub tool: Option<String>,
    pub component_digest: Option<String>,
    pub policy_revision: Option<String>,
    pub input: String,
    pub verdict: String,
    pub reasons: String,
    pub obligations: String,
    pub metrics: String,
}

impl EntryColumns {
    /// The entry's canonical bytes (RFC 8785), whose leaf hash is its `entry_hash`.
    pub fn canonical(&self, seq: u64, time: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.fields().write_canonical(seq, time, &mut out);
        out
    }

    pub(crate) fn fields(&self) -> CanonicalFields<'_> {
        CanonicalFields {
            decision_id: &self.decision_id,
            call_id: self.call_id.as_deref(),
            phase: &self.phase,
            caller: &self.caller,
            tool: self.tool.as_deref(),
            component_digest: self.component_digest.as_deref(),
            policy_revision: self.policy_revision.as_deref(),
            input: &self.input,
            verdict: &self.verdict,
            reasons: &self.reasons,
            obligations: &self.obligations,
            metrics: &self.metrics,
        }
    }
}

/// The same fields borrowed (from an [`EntryColumns`] or straight from a database row).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CanonicalFields<'a> {
    pub decision_id: &'a str,
    pub call_id: Option<&'a str>,
    pub phase: &'a str,
    pub caller: &'a str,
    pub tool: Option<&'a str>,
    pub component_digest: Option<&'a str>,
    pub policy_revision: Option<&'a str>,
    pub input: &'a str,
    pub verdict: &'a str,
    pub reasons: &'a str,
    pub obligations: &'a str,
    pub metrics: &'a str,
}

fn write_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => write_str(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

impl CanonicalFields<'_> {
    /// Canonical text of every member up to (excluding) `seq`: `{"call_id":…,…,"reasons":…,`.
    pub fn write_head(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"call_id\":");
        write_opt(out, self.call_id);
        out.extend_from_slice(b",\"caller\":");
        out.extend_from_slice(self.caller.as_bytes());
        out.extend_from_slice(b",\"component_digest\":");
        write_opt(out, self.component_digest);
        out.extend_from_slice(b",\"decision_id\":");
        write_str(out, self.decision_id);
        out.extend_from_slice(b",\"input\":");
        out.extend_from_slice(self.input.as_bytes());
        out.extend_from_slice(b",\"metrics\":");
        out.extend_from_slice(self.metrics.as_bytes());
        out.extend_from_slice(b",\"obligations\":");
        out.extend_from_slice(self.obligations.as_bytes());
        out.extend_from_slice(b",\"phase\":");
        write_str(out, self.phase);
        out.extend_from_slice(b",\"policy_revision\":");
        write_opt(out, self.policy_revision);
        out.extend_from_slice(b",\"reasons\":");
        out.extend_from_slice(self.reasons.as_bytes());
        out.push(b',');
    }

    /// Canonical text of every member after `time`: `,"tool":…,"v":1,"verdict":…}`.
    pub fn write_tail(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"tool\":");
        write_opt(out, self.tool);
        out.extend_from_slice(format!(",\"v\":{ENTRY_FORMAT_VERSION},\"verdict\":").as_bytes());
        write_str(out, self.verdict);
        out.push(b'}');
    }

    /// The complete canonical entry bytes, appended to `out`.
    pub fn write_canonical(&self, seq: u64, time: &str, out: &mut Vec<u8>) {
        self.write_head(out);
        write_seq_time(out, seq, time);
        self.write_tail(out);
    }
}

/// `"seq":<n>,"time":"<time>"`.
fn write_seq_time(out: &mut Vec<u8>, seq: u64, time: &str) {
    out.extend_from_slice(b"\"seq\":");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.extend_from_slice(b",\"time\":");
    write_str(out, time);
}

/// An entry after redaction and canonicalization, ready for the writer: all the expensive work
/// is done on the caller's thread so the single writer only assigns `seq`/`time`, finishes the
/// leaf hash and inserts.
#[derive(Debug, Clone)]
pub(crate) struct PreparedEntry {
    pub columns: EntryColumns,
    /// `caller.principal`, the key the entry is filed under in `entry_blocks`.
    pub principal: Option<String>,
    /// The leaf hash fed with every canonical member before `seq` (most of the entry's bytes):
    /// the callers hash those in parallel, the one writer only what it assigns and the tail.
    head_hashed: LeafHasher,
    /// Canonical text of every member after `time`.
    tail: Vec<u8>,
}

impl PreparedEntry {
    pub fn new(
        entry: NewEntry,
        redaction: &super::redact::RedactionKey,
    ) -> Result<Self, AuditError> {
        entry.validate()?;
        let mut entry = entry;
        for v in [
            &mut entry.caller,
            &mut entry.input,
            &mut entry.obligations,
            &mut entry.metrics,
        ] {
            to_i_json(v);
        }
        let mut input = entry.input;
        redaction.redact(&mut input, &entry.redact)?;
        // Credentials written into URLs never reach the log, whoever quoted them.
        crate::support::userinfo::mask_userinfo_in(&mut input);
        let reasons: Vec<String> = entry
            .reasons
            .iter()
            .map(|reason| crate::support::userinfo::mask_userinfo(reason).into_owned())
            .collect();
        let principal = entry
            .caller
            .get("principal")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let columns = EntryColumns {
            decision_id: new_decision_id()?,
            call_id: entry.call_id,
            phase: entry.phase,
            caller: canonical_value(&entry.caller)?,
            tool: entry.tool,
            component_digest: entry.component_digest,
            policy_revision: entry.policy_revision,
            input: canonical_value(&input)?,
            verdict: entry.verdict,
            reasons: canonical_strings(&reasons),
            obligations: canonical_value(&entry.obligations)?,
            metrics: canonical_value(&entry.metrics)?,
        };
        let (mut head, mut tail) = (Vec::new(), Vec::new());
        columns.fields().write_head(&mut head);
        columns.fields().write_tail(&mut tail);
        let mut head_hashed = LeafHasher::new();
        head_hashed.update(&head);
        Ok(Self {
            head_hashed,
            tail,
            columns,
            principal,
        })
    }

    /// The Merkle leaf hash of the entry's canonical bytes once it is `seq`, written at `time`
    /// (the bytes [`CanonicalFields::write_canonical`] writes).
    pub fn leaf_hash(&self, seq: u64, time: &str) -> Hash {
        let mut seq_time = Vec::with_capacity(64);
        write_seq_time(&mut seq_time, seq, time);
        let mut h = self.head_hashed.clone();
        h.update(&seq_time);
        h.update(&self.tail);
        h.finish()
    }
}

/// The largest integer an IEEE 754 double holds exactly (I-JSON, RFC 7493 §2.2).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Makes a value I-JSON so its RFC 8785 form is the same in every implementation: an integer
/// beyond ±(2^53 − 1), which a verifier reading JSON numbers as doubles would round, is stored
/// as the string of its exact decimal digits instead.
fn to_i_json(v: &mut Value) {
    match v {
        Value::Number(n) if exact_integer(n) == Some(false) => {
            *v = Value::String(n.to_string());
        }
        Value::Array(items) => items.iter_mut().for_each(to_i_json),
        Value::Object(map) => map.values_mut().for_each(to_i_json),
        _ => {}
    }
}

/// A random (v4) UUID identifying one decision or outcome.
fn new_decision_id() -> Result<String, AuditError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| AuditError::InvalidEntry {
        field: "decision_id",
        detail: format!("no randomness available: {e}"),
    })?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}

/// Our timestamp format: RFC 3339, UTC, milliseconds, `Z` (fixed width, so text order is time
/// order).
pub fn format_time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// Parses a timestamp in exactly our format (anything else is reported, not guessed).
pub fn parse_time(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = chrono::DateTime::parse_from_rfc3339(s)
        .ok()?
        .with_timezone(&chrono::Utc);
    (format_time(t) == s).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::redact::RedactionKey;
    use serde_json::json;

    fn sample(input: Value) -> NewEntry {
        let mut e = NewEntry::new(
            "call",
            "deny",
            json!({"principal": "alice", "transport": "stdio", "client": "cli/1.0", "authenticated": true}),
            input,
        );
        e.call_id = Some("c-1".into());
        e.tool = Some("fetch\u{1F600}".into());
        e.reasons = vec!["plain \"http\"\n".into(), "ü".into()];
        e.metrics = json!({"duration_us": 12, "ratio": 0.1, "big": 1e21});
        e
    }

    #[test]
    fn spliced_bytes_equal_jcs_of_the_whole_object() {
        let key = RedactionKey::from_bytes([9; 32]);
        let inputs = [
            json!({}),
            json!({"b": 1, "a": [1.5, -0.0, "x"], "\u{20ac}": null, "\u{1d11e}": {"z": true, "seq": 0, "time": ""}}),
            json!("a string"),
            json!([1, 2, 3]),
        ];
        for input in inputs {
            let p = PreparedEntry::new(sample(input), &key).unwrap();
            let time = "2026-01-02T03:04:05.678Z";
            let mut spliced = Vec::new();
            p.columns.fields().write_canonical(77, time, &mut spliced);
            assert_eq!(
                p.leaf_hash(77, time),
                crate::audit::merkle::hash_leaf(&spliced)
            );
            let c = &p.columns;
            let entry = Entry {
                seq: 77,
                time: time.into(),
                decision_id: c.decision_id.clone(),
                call_id: c.call_id.clone(),
                phase: c.phase.clone(),
                caller: serde_json::from_str(&c.caller).unwrap(),
                tool: c.tool.clone(),
                component_digest: None,
                policy_revision: None,
                input: serde_json::from_str(&c.input).unwrap(),
                verdict: c.verdict.clone(),
                reasons: serde_json::from_str(&c.reasons).unwrap(),
                obligations: serde_json::from_str(&c.obligations).unwrap(),
                metrics: serde_json::from_str(&c.metrics).unwrap(),
                entry_hash: [0; 32],
            };
            let whole = serde_json_canonicalizer::to_vec(&entry.canonical_object()).unwrap();
            assert_eq!(
                String::from_utf8(spliced).unwrap(),
                String::from_utf8(whole).unwrap()
            );
        }
    }

    #[test]
    fn invalid_entries_are_refused() {
        let key = RedactionKey::from_bytes([9; 32]);
        let mut e = sample(json!({}));
        e.phase = "exec".into();
        assert!(matches!(
            PreparedEntry::new(e, &key),
            Err(AuditError::InvalidEntry { field: "phase", .. })
        ));
        let mut e = sample(json!({}));
        e.verdict = "ok".into();
        assert!(matches!(
            PreparedEntry::new(e, &key),
            Err(AuditError::InvalidEntry {
                field: "verdict",
                ..
            })
        ));
        let mut e = sample(json!({}));
        e.caller = json!("alice");
        assert!(matches!(
            PreparedEntry::new(e, &key),
            Err(AuditError::InvalidEntry {
                field: "caller",
                ..
            })
        ));
    }

    #[test]
    fn integers_beyond_2_pow_53_are_kept_exactly_as_strings() {
        let key = RedactionKey::from_bytes([9; 32]);
        let p = PreparedEntry::new(
            sample(json!({"big": u64::MAX, "neg": i64::MIN, "ok": 9007199254740991u64, "f": 1.5})),
            &key,
        )
        .unwrap();
        assert_eq!(
            p.columns.input,
            r#"{"big":"18446744073709551615","f":1.5,"neg":"-9223372036854775808","ok":9007199254740991}"#
        );
    }

    #[test]
    fn time_format_is_strict() {
        let t = parse_time("2026-11-22T03:10:06.123Z").unwrap();
        assert_eq!(format_time(t), "2026-11-22T03:10:06.123Z");
        assert!(parse_time("2026-11-22T03:10:06Z").is_none());
        assert!(parse_time("2026-11-22T04:10:06.123+01:00").is_none());
    }
}
