//! The JSON the pages are drawn from, documented in `docs/web-view.md` so auditors can script
//! it. Every answer comes from the audit layer's read-only views; nothing here interprets
//! entries itself.

use std::path::Path;

use serde_json::{Value, json};

use crate::approval::{ApprovalError, ApprovalStore, Scope};
use crate::audit::{AuditError, AuditReader, EntryFilter, NoteVerifier, VerifyOptions, verify};

/// Calls a timeline answer lists by default, and at most.
pub const DEFAULT_CALLS: usize = 100;
pub const MAX_CALLS: usize = 500;

/// The filters of `/ui/api/calls`, as in `gatehouse audit query`.
const FILTERS: &[&str] = &[
    "caller",
    "tool",
    "verdict",
    "phase",
    "since",
    "until",
    "text",
    "limit",
    "known_seq",
];

/// A request the API cannot answer as asked: told to the caller as a 400.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no call {0:?} in the audit log")]
    NoSuchCall(String),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error("encoding the answer: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Approvals(#[from] ApprovalError),
}

/// What a `/ui/api/calls` query string asks for.
#[derive(Debug, Clone)]
pub struct CallsQuery {
    pub filter: EntryFilter,
    pub limit: usize,
    /// The log's `last_seq` the asker already has: while it is still the newest, the answer
    /// carries no calls (a polling page then costs one small query).
    pub known_seq: Option<u64>,
}

/// Parses a `/ui/api/calls` query string. Empty values mean "any"; an unknown parameter is
/// refused rather than silently ignored.
pub fn calls_query(
    query: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<CallsQuery, ApiError> {
    let mut filter = EntryFilter::default();
    let mut limit = DEFAULT_CALLS;
    let mut known_seq = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let value = value.trim();
        if value.is_empty() && FILTERS.contains(&key.as_ref()) {
            continue;
        }
        let time = |v: &str| crate::audit::parse_time_bound(v, now).map_err(ApiError::Audit);
        match key.as_ref() {
            "caller" => filter.principal = Some(value.to_owned()),
            "tool" => filter.tool = Some(value.to_owned()),
            "verdict" => filter.verdict = Some(value.to_owned()),
            "phase" => filter.phase = Some(value.to_owned()),
            "text" => filter.text = Some(value.to_owned()),
            "since" => filter.since = Some(time(value)?),
            "until" => filter.until = Some(time(value)?),
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_CALLS).contains(n))
                    .ok_or_else(|| {
                        ApiError::BadRequest(format!(
                            "limit {value:?}: give a number from 1 to {MAX_CALLS}"
                        ))
                    })?;
            }
            "known_seq" => {
                known_seq = Some(value.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!("known_seq {value:?}: give a number"))
                })?);
            }
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown filter {other:?}; use {}",
                    FILTERS.join(", ")
                )));
            }
        }
    }
    Ok(CallsQuery {
        filter,
        limit,
        known_seq,
    })
}

/// `GET /ui/api/calls`: the newest matching calls and the log's last seq; only
/// `{"last_seq", "unchanged": true}` when the log has not grown past `known_seq`.
pub fn calls(db: &Path, query: &CallsQuery) -> Result<Value, ApiError> {
    let reader = AuditReader::open(db)?;
    let last_seq = reader.last_seq()?;
    if query.known_seq == Some(last_seq) {
        return Ok(json!({ "last_seq": last_seq, "unchanged": true }));
    }
    let calls = reader.recent_calls(&query.filter, query.limit)?;
    Ok(json!({ "last_seq": last_seq, "calls": calls }))
}

/// `GET /ui/api/calls/{id}`: one call's story.
pub fn story(db: &Path, call_id: &str) -> Result<Value, ApiError> {
    let reader = AuditReader::open(db)?;
    let story = reader
        .story(call_id)?
        .ok_or_else(|| ApiError::NoSuchCall(call_id.to_owned()))?;
    Ok(serde_json::to_value(story)?)
}

/// The bucket length that draws `window_seconds` in about 48 bars.
pub fn bucket_for(window_seconds: i64) -> u64 {
    const STEPS: &[u64] = &[60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 86_400];
    let wanted = (window_seconds.max(0) as u64) / 48;
    STEPS
        .iter()
        .copied()
        .find(|&s| s >= wanted)
        .unwrap_or(86_400)
}

/// `GET /ui/api/overview?since=24h`: the statistics of `gatehouse audit stats` and the calls
/// over time.
pub fn overview(
    db: &Path,
    since: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Value, ApiError> {
    let since_text = since.filter(|s| !s.trim().is_empty()).unwrap_or("24h");
    let since = crate::audit::parse_time_bound(since_text, now)?;
    let window = crate::audit::parse_time(&since).map_or(86_400, |t| (now - t).num_seconds());
    let reader = AuditReader::open(db)?;
    let stats = reader.stats(Some(&since))?;
    let activity = reader.activity(Some(&since), bucket_for(window))?;
    Ok(
        json!({ "since": since, "until": crate::audit::format_time(now), "stats": stats, "activity": activity }),
    )
}

/// The public key checkpoints are checked with, as auditors are given it.
fn key_json(key: Option<&NoteVerifier>) -> Value {
    key.map_or(
        Value::Null,
        |k| json!({ "name": k.name(), "key_id": hex::encode(k.key_id()), "verifier": k.to_text() }),
    )
}

/// `GET /ui/api/integrity`: the latest checkpoint, who signed it, and what came after it.
pub fn integrity(db: &Path, key: Option<&NoteVerifier>) -> Result<Value, ApiError> {
    let reader = AuditReader::open(db)?;
    let entries = reader.last_seq()?;
    let checkpoint = reader
        .checkpoints()?
        .into_iter()
        .max_by_key(|c| c.checkpoint.size);
    let checkpoint_json = checkpoint.as_ref().map(|cp| {
        let signatures: Vec<Value> = cp
            .signatures
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "key_id": hex::encode(s.key_id),
                    "by_the_gateway_key": key.is_some_and(|k| k.name() == s.name && k.key_id() == s.key_id),
                })
            })
            .collect();
        json!({
            "origin": cp.checkpoint.origin,
            "size": cp.checkpoint.size,
            "root": hex::encode(cp.checkpoint.root),
            "signatures": signatures,
            "note": cp.note,
        })
    });
    Ok(json!({
        "log": reader.path().display().to_string(),
        "entries": entries,
        "checkpoint": checkpoint_json,
        "entries_since_checkpoint": entries.saturating_sub(checkpoint.map_or(0, |c| c.checkpoint.size)),
        "key": key_json(key),
    }))
}

/// `POST /ui/api/verify`: `gatehouse audit verify` with the gateway's public key.
pub fn verify_now(db: &Path, key: Option<&NoteVerifier>) -> Result<Value, ApiError> {
    let reader = AuditReader::open(db)?;
    let report = verify(
        &reader,
        &VerifyOptions {
            pubkey: key.cloned(),
            external: None,
        },
    )?;
    let intact = report.is_intact();
    let mut value = serde_json::to_value(&report)?;
    value["intact"] = Value::Bool(intact);
    value["key"] = key_json(key);
    Ok(value)
}

/// The questions in the approvals file `path` (the pending ones, or all), newest first; none
/// while the gateway has not asked any (it creates the file when it first asks).
pub fn approvals(path: &Path, all: bool) -> Result<Value, ApiError> {
    let questions = if path.exists() {
        ApprovalStore::open(path)?.list(all)?
    } else {
        Vec::new()
    };
    Ok(json!({ "questions": questions }))
}

/// An operator's answer to a question, as the page posts it.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `approve` or `deny`.
    pub decision: String,
    /// For an approval: `once`, `session` or a number of minutes (default once).
    #[serde(rename = "for", default)]
    pub scope: Option<String>,
    /// For a denial: why, for the caller and the log.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Answers question `id` in the approvals file `path` as `operator` decided; the gateway that
/// asked sees the answer at its next poll.
pub fn answer_question(
    path: &Path,
    id: &str,
    operator: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let decision: Decision = serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected {{\"decision\": \"approve\"|\"deny\", \"for\": \"once\"|\"session\"|MINUTES, \"reason\": TEXT}}: {e}"
        ))
    })?;
    let approve = match decision.decision.as_str() {
        "approve" => Some(
            decision
                .scope
                .as_deref()
                .unwrap_or("once")
                .parse::<Scope>()
                .map_err(ApiError::BadRequest)?,
        ),
        "deny" => None,
        other => {
            return Err(ApiError::BadRequest(format!(
                "decision must be approve or deny, got {other:?}"
            )));
        }
    };
    if !path.exists() {
        return Err(ApprovalError::Unknown(id.to_owned()).into());
    }
    let reason = decision.reason.filter(|r| !r.trim().is_empty());
    let question = ApprovalStore::open(path)?.decide(id, operator, approve, reason)?;
    Ok(json!({ "question": question }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-12-06T12:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
    }

    #[test]
    fn the_query_string_becomes_the_cli_filter() {
        let CallsQuery {
            filter: f,
            limit,
            known_seq,
        } = calls_query(
            "caller=alice&tool=echo_echo&verdict=deny&phase=call&since=1h&until=2026-12-06&text=%3Cscript%3E&limit=5&known_seq=9",
            now(),
        )
        .unwrap();
        assert_eq!(known_seq, Some(9));
        assert_eq!(f.principal.as_deref(), Some("alice"));
        assert_eq!(f.tool.as_deref(), Some("echo_echo"));
        assert_eq!(f.verdict.as_deref(), Some("deny"));
        assert_eq!(f.phase.as_deref(), Some("call"));
        assert_eq!(f.since.as_deref(), Some("2026-12-06T11:00:00.000Z"));
        assert_eq!(f.until.as_deref(), Some("2026-12-06T00:00:00.000Z"));
        assert_eq!(f.text.as_deref(), Some("<script>"));
        assert_eq!(limit, 5);
    }

    #[test]
    fn empty_values_mean_any_and_bad_ones_are_explained() {
        let q = calls_query("caller=&tool=&since=&known_seq=", now()).unwrap();
        let f = &q.filter;
        assert!(f.principal.is_none() && f.tool.is_none() && f.since.is_none());
        assert_eq!((q.limit, q.known_seq), (DEFAULT_CALLS, None));
        let err = calls_query("user=alice", now()).unwrap_err().to_string();
        assert!(
            err.contains("unknown filter \"user\"") && err.contains("caller"),
            "{err}"
        );
        let err = calls_query("limit=0", now()).unwrap_err().to_string();
        assert!(err.contains("1 to 500"), "{err}");
        let err = calls_query("since=yesterday", now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected RFC 3339"), "{err}");
    }

    /// A log of two calls by `agent`: `c-1` allowed with an egress denial, `c-2` denied; its
    /// path, and the public key its checkpoints are signed with.
    fn log(dir: &Path) -> (std::path::PathBuf, NoteVerifier) {
        use crate::audit::{AuditConfig, AuditLog, NewEntry, NoteSigner};
        let key = dir.join("audit.key");
        let signer = NoteSigner::generate("ui-test").unwrap();
        signer.write_key_files(&key).unwrap();
        let db = dir.join("audit.db");
        let audit = AuditLog::open(
            &db,
            AuditConfig {
                signing_key: Some(key),
                key_dir: Some(dir.join("keys")),
                checkpoint_every: 2,
                ..Default::default()
            },
        )
        .unwrap();
        let caller = json!({"principal": "agent", "transport": "http"});
        let entry = |phase: &str, verdict: &str, call: &str, input: Value, reasons: &[&str]| {
            let mut e = NewEntry::new(phase, verdict, caller.clone(), input);
            e.call_id = Some(call.into());
            e.tool = Some(
                if call == "c-1" {
                    "fetch"
                } else {
                    "<script>x</script>"
                }
                .into(),
            );
            e.reasons = reasons.iter().map(|r| r.to_string()).collect();
            e
        };
        for e in [
            entry(
                "call",
                "allow",
                "c-1",
                json!({"arguments": {"url": "https://a.example/"}}),
                &[],
            ),
            entry(
                "http",
                "deny",
                "c-1",
                json!({"request": {"method": "GET", "scheme": "https", "host": "evil.example", "port": 443, "path": "/x", "query": ""}}),
                &["host not allowed"],
            ),
            entry("outcome", "ok", "c-1", json!({}), &[]),
            entry(
                "call",
                "deny",
                "c-2",
                json!({"arguments": {}}),
                &["not for you"],
            ),
            entry("outcome", "denied", "c-2", json!({}), &["not for you"]),
        ] {
            audit.append_blocking(e).unwrap();
        }
        audit.close().unwrap();
        (db, signer.verifier())
    }

    #[test]
    fn the_endpoints_answer_in_their_documented_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let (db, key) = log(dir.path());

        let query = |text: &str| calls_query(text, now()).unwrap();
        let all = calls(&db, &query("limit=10")).unwrap();
        assert_eq!(all["last_seq"], 5);
        let listed = all["calls"].as_array().unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0]["call_id"], "c-2", "newest first");
        assert_eq!(
            listed[0]["tool"], "<script>x</script>",
            "as stored: the page shows it as text"
        );
        assert_eq!(
            (
                &listed[0]["verdict"],
                &listed[0]["outcome"],
                &listed[0]["caller"]
            ),
            (&json!("deny"), &json!("denied"), &json!("agent"))
        );
        assert_eq!(listed[0]["reasons"], json!(["not for you"]));
        for field in ["time", "transport", "duration_ms", "last_seq"] {
            assert!(listed[1].get(field).is_some(), "{field}");
        }

        // A filter matches a call by any of its entries: the egress denial finds c-1.
        let denied = calls(&db, &query("verdict=deny&phase=http")).unwrap();
        assert_eq!(denied["calls"][0]["call_id"], "c-1");
        assert_eq!(denied["calls"].as_array().unwrap().len(), 1);
        let count = |answer: Value| answer["calls"].as_array().map_or(0, Vec::len);
        assert_eq!(count(calls(&db, &query("limit=1")).unwrap()), 1);
        // A poller that has the newest seq gets no calls; one behind gets them all.
        assert_eq!(
            calls(&db, &query("known_seq=5")).unwrap(),
            json!({"last_seq": 5, "unchanged": true})
        );
        assert_eq!(count(calls(&db, &query("known_seq=4")).unwrap()), 2);

        let told = story(&db, "c-1").unwrap();
        assert_eq!(told["summary"]["verdict"], "allow");
        assert_eq!(told["arguments"], json!({"url": "https://a.example/"}));
        let steps = told["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 3);
        assert_eq!(
            steps[1]["detail"],
            "GET https://evil.example:443/x — host not allowed"
        );
        assert!(matches!(story(&db, "nope"), Err(ApiError::NoSuchCall(_))));

        let seen = overview(&db, Some("1h"), chrono::Utc::now()).unwrap();
        assert_eq!(seen["stats"]["calls"], 2);
        assert_eq!(seen["stats"]["calls_denied"], 1);
        let buckets = seen["activity"]["buckets"].as_array().unwrap();
        assert_eq!(
            buckets
                .iter()
                .map(|b| b["calls"].as_u64().unwrap())
                .sum::<u64>(),
            2
        );
        assert_eq!(
            buckets
                .iter()
                .map(|b| b["denied"].as_u64().unwrap())
                .sum::<u64>(),
            1
        );

        let state = integrity(&db, Some(&key)).unwrap();
        assert_eq!(state["entries"], 5);
        let checkpoint = &state["checkpoint"];
        assert_eq!(
            checkpoint["size"], 5,
            "closing the log wrote a final checkpoint"
        );
        assert_eq!(checkpoint["signatures"][0]["by_the_gateway_key"], true);
        assert_eq!(state["entries_since_checkpoint"], 0);
        assert_eq!(state["key"]["name"], "ui-test");

        let report = verify_now(&db, Some(&key)).unwrap();
        assert_eq!(report["intact"], true);
        assert_eq!(report["signatures_checked"], true);
        let other = crate::audit::NoteSigner::generate("someone-else")
            .unwrap()
            .verifier();
        let report = verify_now(&db, Some(&other)).unwrap();
        assert_eq!(
            report["intact"], false,
            "a key that did not sign the log fails"
        );
    }

    #[test]
    fn buckets_draw_about_48_bars() {
        assert_eq!(bucket_for(3600), 300);
        assert_eq!(bucket_for(86_400), 1800);
        assert_eq!(bucket_for(7 * 86_400), 6 * 3600);
        assert_eq!(bucket_for(365 * 86_400), 86_400);
        assert_eq!(bucket_for(-5), 60);
    }

    #[test]
    fn an_operators_answer_reaches_the_approvals_file_and_bad_ones_are_named() {
        use crate::approval::{Binding, Question, QuestionStatus};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("approvals.db");
        assert_eq!(approvals(&path, true).unwrap(), json!({"questions": []}));
        assert!(!path.exists(), "looking must not create the gateway's file");
        let binding = Binding::of("agent", "echo_echo", "sha256:1", "call", &json!({}));
        let question = Question::new(
            "c",
            "s",
            "agent",
            "echo_echo",
            "call",
            "call echo_echo {}".into(),
            vec!["why".into()],
            binding,
        );
        ApprovalStore::open(&path)
            .unwrap()
            .park(&question, std::time::Duration::from_secs(60))
            .unwrap();
        assert_eq!(
            approvals(&path, false).unwrap()["questions"][0]["id"],
            json!(question.id)
        );
        for (body, expected) in [
            (
                r#"{"decision": "maybe"}"#,
                "decision must be approve or deny",
            ),
            (
                r#"{"decision": "approve", "for": "ever"}"#,
                "unknown approval scope",
            ),
            (r#"{"decision": "approve", "extra": 1}"#, "unknown field"),
        ] {
            let error = answer_question(&path, &question.id, "olga", body.as_bytes()).unwrap_err();
            assert!(
                matches!(error, ApiError::BadRequest(_)) && error.to_string().contains(expected),
                "{error}"
            );
        }
        let answered = answer_question(
            &path,
            &question.id,
            "olga",
            br#"{"decision": "approve", "for": "15"}"#,
        )
        .unwrap();
        assert_eq!(
            answered["question"]["status"],
            json!(QuestionStatus::Approved)
        );
        assert_eq!(answered["question"]["scope"], json!("minutes:15"));
        let again =
            answer_question(&path, &question.id, "olga", br#"{"decision": "deny"}"#).unwrap_err();
        assert!(
            matches!(again, ApiError::Approvals(ApprovalError::Answered { .. })),
            "{again}"
        );
    }
}
