//! What an auditor reads, shaped once for every reader: the one-line description of an entry,
//! time bounds as people write them, the calls of a log with their outcome, one call's story,
//! and activity over time. `gatehouse audit` prints these; the web view serves them as JSON.

use serde::Serialize;
use serde_json::Value;

use super::AuditError;
use super::entry::{Entry, format_time, parse_time};
use super::reader::{AuditReader, EntryFilter};

/// RFC 3339 (any offset), a date (`2026-11-22`, midnight UTC), or a duration ago (`90s`, `30m`,
/// `1h`, `7d`, `2w`) → our stored time format, which compares correctly as text.
pub fn parse_time_bound(s: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String, AuditError> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(format_time(t.with_timezone(&chrono::Utc)));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(format_time(
            d.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
        ));
    }
    let invalid = |what: String| AuditError::Invalid(format!("time {s:?}: {what}"));
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: i64 = number.parse().map_err(|_| {
        invalid("expected RFC 3339, YYYY-MM-DD, or a duration like 30m, 1h, 7d".into())
    })?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => {
            return Err(invalid(format!(
                "unknown unit {unit:?} (use s, m, h, d or w)"
            )));
        }
    };
    let delta = chrono::Duration::try_seconds(n.saturating_mul(seconds))
        .ok_or_else(|| invalid("duration too large".into()))?;
    Ok(format_time(now - delta))
}

/// A JSON value as plain text (a string without its quotes, null as nothing).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The caller's principal, as the entry records it.
pub fn principal(e: &Entry) -> String {
    e.caller
        .get("principal")
        .and_then(Value::as_str)
        .unwrap_or("-")
        .to_owned()
}

/// What an auditor wants to see first about an entry: what it was about (the request, the
/// file, the socket…) and its reasons.
pub fn describe(e: &Entry) -> String {
    let s = |v: &Value, ptrs: &[&str]| {
        ptrs.iter()
            .find_map(|p| v.pointer(p).map(plain))
            .unwrap_or_default()
    };
    let about = match e.phase.as_str() {
        "http" => {
            let r = |field: &str| s(&e.input, &[&format!("/request/{field}")]);
            let host = r("host");
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host
            };
            let query = r("query");
            let query = if query.is_empty() {
                query
            } else {
                format!("?{query}")
            };
            format!(
                "{} {}://{host}:{}{}{query}",
                r("method"),
                r("scheme"),
                r("port"),
                r("path")
            )
        }
        "socket" => {
            let r = |field: &str| s(&e.input, &[&format!("/socket/{field}")]);
            format!(
                "{} {} {}:{}",
                r("protocol"),
                r("operation"),
                r("address"),
                r("port")
            )
        }
        "fs" => {
            let op = s(&e.input, &["/fs/operation"]);
            let path = s(&e.input, &["/fs/path"]);
            let access = s(&e.input, &["/fs/access"]);
            let target = s(&e.input, &["/fs/target"]);
            let target = if target.is_empty() {
                target
            } else {
                format!(" (target {target})")
            };
            format!("{op} {path} [{access}]{target}")
        }
        "config" => {
            let key = s(&e.input, &["/config/key"]);
            format!("{} {key}", s(&e.input, &["/config/operation"]))
                .trim_end()
                .to_owned()
        }
        "log" => {
            // A tool's words: terminal control characters are shown escaped, never obeyed.
            let printable =
                |p: &str| crate::support::logging::printable(&s(&e.input, &[p])).into_owned();
            let context = printable("/log/context");
            let message = printable("/log/message");
            let dropped = s(&e.input, &["/log/dropped_lines"]);
            match (dropped.is_empty(), context.is_empty()) {
                (false, _) => format!("{dropped} lines dropped (over the call's log bounds)"),
                (true, true) => message,
                (true, false) => format!("[{context}] {message}"),
            }
        }
        "approval" => {
            // Who answered which question, and what the approval covers.
            let question = s(&e.input, &["/question/id"]);
            let by = s(&e.input, &["/answer/by/kind"]);
            let name = s(&e.input, &["/answer/by/name"]);
            let by = if name.is_empty() {
                by
            } else {
                format!("{by} {name}")
            };
            let scope = match (
                s(&e.input, &["/answer/scope/scope"]).as_str(),
                s(&e.input, &["/answer/scope/minutes"]),
            ) {
                ("", _) => String::new(),
                ("minutes", minutes) => format!(" for {minutes} min"),
                (scope, _) => format!(" ({scope})"),
            };
            format!("{question} answered by {by}{scope}")
        }
        // Measurements the call has (a denied call never ran), and of the host operations
        // only those that happened.
        "outcome" => e
            .metrics
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| match v.as_object() {
                        Some(counts) => counts
                            .iter()
                            .filter(|(_, n)| n.as_u64() != Some(0))
                            .map(|(name, n)| format!("{name}={}", plain(n)))
                            .collect::<Vec<_>>()
                            .join(" "),
                        None => format!("{k}={}", plain(v)),
                    })
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default(),
        _ => String::new(),
    };
    let mut reasons = e.reasons.join("; ");
    if let Some(question) = e.obligations.pointer("/approval").and_then(Value::as_str) {
        reasons = format!("asked {question}: {reasons}");
    }
    match (about.is_empty(), reasons.is_empty()) {
        (true, _) => reasons,
        (false, true) => about,
        (false, false) => format!("{about} — {reasons}"),
    }
}

/// One call as a timeline shows it: its `call` decision and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSummary {
    pub call_id: String,
    /// When the call was decided.
    pub time: String,
    pub caller: String,
    pub transport: Option<String>,
    pub tool: Option<String>,
    /// The `call` decision: `allow` or `deny` (`-` if the log holds none, e.g. an unknown tool).
    pub verdict: String,
    /// `ok`, `tool_error`, `trap`, `limit`, `denied`, `error`; `None` while it runs.
    pub outcome: Option<String>,
    /// From the decision to the outcome's record, in milliseconds.
    pub duration_ms: Option<i64>,
    /// The call decision's reasons, else the outcome's.
    pub reasons: Vec<String>,
    /// The largest seq of the call's entries.
    pub last_seq: u64,
}

impl CallSummary {
    fn of(call_id: &str, story: &[Entry]) -> Option<CallSummary> {
        let first = story.first()?;
        let decision = story.iter().find(|e| e.phase == "call");
        let outcome = story.iter().rev().find(|e| e.phase == "outcome");
        let duration_ms = match (
            parse_time(&first.time),
            outcome.and_then(|o| parse_time(&o.time)),
        ) {
            (Some(a), Some(b)) => Some((b - a).num_milliseconds()),
            _ => None,
        };
        let reasons = decision
            .filter(|d| !d.reasons.is_empty())
            .or(outcome)
            .map(|e| e.reasons.clone())
            .unwrap_or_default();
        Some(CallSummary {
            call_id: call_id.to_owned(),
            time: first.time.clone(),
            caller: principal(first),
            transport: first
                .caller
                .get("transport")
                .and_then(Value::as_str)
                .map(str::to_owned),
            tool: story.iter().find_map(|e| e.tool.clone()),
            verdict: decision.map_or_else(|| "-".to_owned(), |d| d.verdict.clone()),
            outcome: outcome.map(|o| o.verdict.clone()),
            duration_ms,
            reasons,
            last_seq: story.iter().map(|e| e.seq).max().unwrap_or(0),
        })
    }
}

/// One entry of a call's story, with its offset from the call's first entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoryStep {
    pub seq: u64,
    pub time: String,
    pub offset_ms: Option<i64>,
    pub phase: String,
    pub verdict: String,
    /// [`describe`] of the entry.
    pub detail: String,
    pub reasons: Vec<String>,
    /// The entry's measurements (evaluation time, run time).
    pub metrics: Value,
}

/// Everything the log holds about one call, as `gatehouse audit show` tells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallStory {
    pub summary: CallSummary,
    pub component_digest: Option<String>,
    pub policy_revision: Option<String>,
    /// The arguments as the `call` decision recorded them (already redacted by the log).
    pub arguments: Option<Value>,
    pub steps: Vec<StoryStep>,
}

/// Calls and denied calls in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActivityBucket {
    /// The bucket's start, in our time format.
    pub start: String,
    pub calls: u64,
    pub denied: u64,
}

/// Call decisions over time, in buckets of equal length.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Activity {
    pub bucket_seconds: u64,
    /// Only buckets with at least one call, oldest first.
    pub buckets: Vec<ActivityBucket>,
}

impl AuditReader {
    /// The newest calls (at most `limit`) that have at least one entry matching `filter`,
    /// newest first. A filter on the verdict matches a call by any of its entries: `deny`
    /// finds a call denied at any phase, `trap` one whose outcome was a trap.
    pub fn recent_calls(
        &self,
        filter: &EntryFilter,
        limit: usize,
    ) -> Result<Vec<CallSummary>, AuditError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut ids: Vec<String> = Vec::new();
        let mut filter = filter.clone();
        filter.newest_first = true;
        filter.limit = None;
        // Entries arrive newest first; the first `limit` distinct calls are the newest. The
        // scan stops there by returning `ENOUGH`, which is not an error.
        const ENOUGH: &str = "enough calls";
        let mut seen = std::collections::HashSet::new();
        let scanned = self.for_each(&filter, |e| {
            if let Some(id) = e.call_id
                && seen.insert(id.clone())
            {
                ids.push(id);
                if ids.len() >= limit {
                    return Err(AuditError::Invalid(ENOUGH.to_owned()));
                }
            }
            Ok(())
        });
        match scanned {
            Err(AuditError::Invalid(s)) if s == ENOUGH => {}
            other => other?,
        }
        ids.iter()
            .filter_map(|id| match self.call_story(id) {
                Ok(story) => CallSummary::of(id, &story).map(Ok),
                Err(e) => Some(Err(e)),
            })
            .collect()
    }

    /// The story of one call; `None` if the log has no entry of it.
    pub fn story(&self, call_id: &str) -> Result<Option<CallStory>, AuditError> {
        let entries = self.call_story(call_id)?;
        let Some(summary) = CallSummary::of(call_id, &entries) else {
            return Ok(None);
        };
        let start = parse_time(&entries[0].time);
        let steps = entries
            .iter()
            .map(|e| StoryStep {
                seq: e.seq,
                time: e.time.clone(),
                offset_ms: match (start, parse_time(&e.time)) {
                    (Some(s), Some(t)) => Some((t - s).num_milliseconds()),
                    _ => None,
                },
                phase: e.phase.clone(),
                verdict: e.verdict.clone(),
                detail: describe(e),
                reasons: e.reasons.clone(),
                metrics: e.metrics.clone(),
            })
            .collect();
        Ok(Some(CallStory {
            summary,
            component_digest: entries.iter().find_map(|e| e.component_digest.clone()),
            policy_revision: entries.iter().find_map(|e| e.policy_revision.clone()),
            arguments: entries
                .iter()
                .find(|e| e.phase == "call")
                .and_then(|e| e.input.get("arguments").cloned()),
            steps,
        }))
    }

    /// Call decisions since `since` (our time format), counted per `bucket_seconds`.
    pub fn activity(
        &self,
        since: Option<&str>,
        bucket_seconds: u64,
    ) -> Result<Activity, AuditError> {
        let bucket = bucket_seconds.clamp(1, 86_400 * 7) as i64;
        let mut stmt = self
            .conn
            .prepare(
                "SELECT (CAST(strftime('%s', substr(time, 1, 19)) AS INTEGER) / ?2) * ?2 AS b, \
                 count(*), sum(verdict = 'deny') FROM entries \
                 WHERE phase = 'call' AND time >= ?1 GROUP BY b ORDER BY b",
            )
            .map_err(|e| AuditError::sqlite(&self.path, "counting calls over time", e))?;
        let rows = stmt
            .query_map(rusqlite::params![since.unwrap_or(""), bucket], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .map_err(|e| AuditError::sqlite(&self.path, "counting calls over time", e))?;
        let mut buckets = Vec::new();
        for row in rows {
            let (start, calls, denied) =
                row.map_err(|e| AuditError::sqlite(&self.path, "counting calls over time", e))?;
            let start = chrono::DateTime::from_timestamp(start, 0).unwrap_or_default();
            buckets.push(ActivityBucket {
                start: format_time(start),
                calls: calls.max(0) as u64,
                denied: denied.unwrap_or(0).max(0) as u64,
            });
        }
        Ok(Activity {
            bucket_seconds: bucket as u64,
            buckets,
        })
    }
}
