//! The JSON the pages are drawn from, documented in `docs/web-view.md` so auditors can script
//! it. Every answer comes from the audit layer's read-only views; nothing here interprets
//! entries itself.

use std::path::Path;

use serde_json::{Value, json};

use crate::audit::{AuditError, AuditReader, EntryFilter, NoteVerifier, VerifyOptions, verify};

/// Calls a timeline answer lists by default, and at most.
pub const DEFAULT_CALLS: usize = 100;
pub const MAX_CALLS: usize = 500;

/// The filters of `/ui/api/calls`, as in `gatehouse audit query`.
const FILTERS: &[&str] = &[
    "caller", "tool", "verdict", "phase", "since", "until", "text", "limit",
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
}

/// The filter and limit of a `/ui/api/calls` query string. Empty values mean "any"; an unknown
/// parameter is refused rather than silently ignored.
pub fn calls_filter(
    query: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(EntryFilter, usize), ApiError> {
    let mut filter = EntryFilter::default();
    let mut limit = DEFAULT_CALLS;
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
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unknown filter {other:?}; use {}",
                    FILTERS.join(", ")
                )));
            }
        }
    }
    Ok((filter, limit))
}

/// `GET /ui/api/calls`: the newest matching calls, and the log's last seq (a page polling
/// for updates redraws only when it grew).
pub fn calls(db: &Path, filter: &EntryFilter, limit: usize) -> Result<Value, ApiError> {
    let reader = AuditReader::open(db)?;
    let calls = reader.recent_calls(filter, limit)?;
    Ok(json!({ "last_seq": reader.last_seq()?, "calls": calls }))
}

/// `GET /ui/api/calls/{id}`: one call's story.
pub fn story(db: &Path, call_id: &str) -> Result<Value, ApiError> {
    let reader = AuditReader::open(db)?;
    let story = reader
        .story(call_id)?
        .ok_or_else(|| ApiError::NoSuchCall(call_id.to_owned()))?;
    Ok(serde_json::to_value(story).map_err(|e| ApiError::BadRequest(e.to_string()))?)
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
    let mut value =
        serde_json::to_value(&report).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    value["intact"] = Value::Bool(intact);
    value["key"] = key_json(key);
    Ok(value)
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
        let (f, limit) = calls_filter(
            "caller=alice&tool=echo_echo&verdict=deny&phase=call&since=1h&until=2026-12-06&text=%3Cscript%3E&limit=5",
            now(),
        )
        .unwrap();
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
        let (f, limit) = calls_filter("caller=&tool=&since=", now()).unwrap();
        assert!(f.principal.is_none() && f.tool.is_none() && f.since.is_none());
        assert_eq!(limit, DEFAULT_CALLS);
        let err = calls_filter("user=alice", now()).unwrap_err().to_string();
        assert!(
            err.contains("unknown filter \"user\"") && err.contains("caller"),
            "{err}"
        );
        let err = calls_filter("limit=0", now()).unwrap_err().to_string();
        assert!(err.contains("1 to 500"), "{err}");
        let err = calls_filter("since=yesterday", now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected RFC 3339"), "{err}");
    }

    #[test]
    fn buckets_draw_about_48_bars() {
        assert_eq!(bucket_for(3600), 300);
        assert_eq!(bucket_for(86_400), 1800);
        assert_eq!(bucket_for(7 * 86_400), 6 * 3600);
        assert_eq!(bucket_for(365 * 86_400), 86_400);
        assert_eq!(bucket_for(-5), 60);
    }
}
