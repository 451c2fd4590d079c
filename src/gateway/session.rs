//! What a policy remembers of a caller's session: `input.session` in every phase's input.
//!
//! An MCP session over streamable HTTP, a stdio connection, and one `gatehouse call` each have a
//! [`Session`]. Every decision made for the session — the call, each HTTP request, file
//! operation, socket and settings read of its tools, the result — is remembered in order, with
//! the labels the policy attached to it (the `labels` obligation). A later decision reads them:
//!
//! ```json
//! "session": {
//!   "id": "s-0192f3c4-…",            // the gateway's own id, not the Mcp-Session-Id
//!   "started": "2026-12-06T07:00:00.000Z",
//!   "labels": ["read_sensitive"],     // every label attached so far, sorted
//!   "decisions": 7,                   // decisions made so far (the history may hold fewer)
//!   "history": [                      // the last `limits.session_history`, oldest first
//!     {"call": "0192…", "time": "…", "phase": "fs", "tool": "files_read", "verdict": "allow",
//!      "operation": "read", "target": "/secrets/token", "labels": ["read_sensitive"]}
//!   ]
//! }
//! ```
//!
//! `operation` and `target` say what was decided: for `http` the method and host, for `fs`
//! read or write and the path, for `socket` the operation and `address:port`, for `config`
//! the operation and key; a `call` or `result` decision has neither (its tool says it).
//!
//! Bounds: the history keeps the last N decisions (a ring, so its size does not depend on the
//! traffic) and a session holds at most [`MAX_LABELS`] labels; a decision that would attach
//! one more is turned into a deny (fail closed: a label forgotten could be the one that stops
//! an exfiltration). The state lives as long as the session: the MCP layer drops it when the
//! session is closed or times out, and nothing else holds it.
//!
//! The id is the gateway's, not the transport's `Mcp-Session-Id`: that one lets whoever holds
//! it post into the session, so it stays out of policy inputs and the audit log.
//!
//! MCP over HTTP from protocol revision 2026-07-28 on has no transport session: each request
//! stands alone. Such requests share their principal's session ([`PrincipalSessions`]), kept
//! while it is used and dropped after [`IDLE`] without a request, so what one request did still
//! counts for the next (all anonymous callers are one principal, and share one).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use super::record::now;
use crate::policy::{Decision, Phase, Verdict};
use crate::telemetry::Metrics;
use crate::telemetry::metrics::Held;

/// The most distinct labels one session may carry.
pub const MAX_LABELS: usize = 64;

/// The most decisions a session's history may be configured to keep.
pub const MAX_HISTORY: usize = 1024;

/// Refuses a configured history longer than [`MAX_HISTORY`]: every decision's input carries
/// it, so its length is a cost on every decision of a busy session.
pub fn validate_history(history: usize) -> Result<(), String> {
    if history > MAX_HISTORY {
        return Err(format!(
            "limits.session_history = {history} is above {MAX_HISTORY}; every decision's input carries the history, so keep it short (default 64, 0 keeps none)"
        ));
    }
    Ok(())
}

/// One MCP session (or stdio connection, or CLI call) as the policy sees it.
#[derive(Debug)]
pub struct Session {
    id: String,
    started: String,
    capacity: usize,
    state: Mutex<State>,
    /// Counts the session in `gatehouse_sessions_open` until its state is dropped.
    _open: Held,
}

#[derive(Debug, Default)]
struct State {
    history: VecDeque<Remembered>,
    labels: BTreeSet<String>,
    decisions: u64,
}

/// One decision of the session's history.
#[derive(Debug, Clone, Serialize)]
struct Remembered {
    call: String,
    time: String,
    phase: &'static str,
    tool: String,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    labels: Vec<String>,
}

/// What one decision was about, for the history.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    pub call_id: &'a str,
    pub tool: &'a str,
    /// The method, `read`/`write`, socket operation or settings operation; `None` for `call`
    /// and `result`.
    pub operation: Option<&'a str>,
    /// The host, path, `address:port` or key.
    pub target: Option<&'a str>,
}

impl Session {
    /// A new session keeping the last `history` decisions (at most [`MAX_HISTORY`]).
    pub fn new(history: usize, metrics: &Metrics) -> Arc<Session> {
        Arc::new(Session {
            id: format!("s-{}", uuid::Uuid::now_v7()),
            started: now(),
            capacity: history.min(MAX_HISTORY),
            state: Mutex::new(State::default()),
            _open: metrics.session_opened(),
        })
    }

    /// The session's id, as `input.session.id` and the audit log carry it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `input.session` as it stands now.
    pub fn document(&self) -> Value {
        let state = self.lock();
        json!({
            "id": self.id,
            "started": self.started,
            "labels": state.labels,
            "decisions": state.decisions,
            "history": state.history,
        })
    }

    /// Remembers `decision` with the labels it attaches. If they would take the session past
    /// [`MAX_LABELS`], none is attached and the decision becomes a deny that says why.
    pub fn remember(&self, decision: &mut Decision, decided: Decided<'_>) {
        let mut state = self.lock();
        let new = decision
            .labels
            .iter()
            .filter(|label| !state.labels.contains(*label))
            .count();
        if state.labels.len() + new > MAX_LABELS {
            decision.deny_for(format!(
                "this session already carries {} labels, the most it may ({MAX_LABELS}); start a new session",
                state.labels.len()
            ));
            decision.labels.clear();
        }
        state.labels.extend(decision.labels.iter().cloned());
        self.push(
            &mut state,
            decision.phase,
            decision.verdict,
            decision.labels.clone(),
            decided,
        );
    }

    /// Remembers an operation the host refused by itself (a path out of its mount, a limit):
    /// a deny without labels.
    pub fn remember_refusal(&self, phase: Phase, decided: Decided<'_>) {
        let mut state = self.lock();
        self.push(&mut state, phase, Verdict::Deny, Vec::new(), decided);
    }

    fn push(
        &self,
        state: &mut State,
        phase: Phase,
        verdict: Verdict,
        labels: Vec<String>,
        decided: Decided<'_>,
    ) {
        state.decisions = state.decisions.saturating_add(1);
        if self.capacity == 0 {
            return;
        }
        if state.history.len() == self.capacity {
            state.history.pop_front();
        }
        state.history.push_back(Remembered {
            call: decided.call_id.to_owned(),
            time: now(),
            phase: phase.as_str(),
            tool: decided.tool.to_owned(),
            verdict: verdict.as_str(),
            operation: decided.operation.map(str::to_owned),
            target: decided.target.map(str::to_owned),
            labels,
        });
    }
}

/// How long a principal's session outlives its last request: rmcp's keep-alive of an idle
/// transport session, so both kinds of session end alike.
pub const IDLE: Duration = Duration::from_secs(300);

/// The sessions of session-less requests, one per principal.
#[derive(Debug)]
pub struct PrincipalSessions {
    history: usize,
    metrics: Metrics,
    idle: Duration,
    state: Mutex<Principals>,
}

#[derive(Debug)]
struct Principals {
    sessions: HashMap<String, Kept>,
    next_sweep: Instant,
}

#[derive(Debug)]
struct Kept {
    session: Arc<Session>,
    last_used: Instant,
}

impl PrincipalSessions {
    pub fn new(history: usize, metrics: Metrics) -> PrincipalSessions {
        PrincipalSessions::with_idle(history, metrics, IDLE)
    }

    fn with_idle(history: usize, metrics: Metrics, idle: Duration) -> PrincipalSessions {
        PrincipalSessions {
            history,
            metrics,
            idle,
            state: Mutex::new(Principals {
                sessions: HashMap::new(),
                next_sweep: Instant::now() + idle,
            }),
        }
    }

    /// The session of `principal`'s session-less requests: its live one, or a new one. Sessions
    /// idle for longer than the idle time, and used by no running call, are dropped on the way.
    pub fn session_of(&self, principal: &str) -> Arc<Session> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if now >= state.next_sweep {
            let idle = self.idle;
            state.sessions.retain(|_, kept| {
                Arc::strong_count(&kept.session) > 1
                    || now.saturating_duration_since(kept.last_used) < idle
            });
            state.next_sweep = now + idle.min(Duration::from_secs(60));
        }
        let kept = state
            .sessions
            .entry(principal.to_owned())
            .or_insert_with(|| Kept {
                session: Session::new(self.history, &self.metrics),
                last_used: now,
            });
        if now.saturating_duration_since(kept.last_used) >= self.idle
            && Arc::strong_count(&kept.session) == 1
        {
            kept.session = Session::new(self.history, &self.metrics);
        }
        kept.last_used = now;
        kept.session.clone()
    }
}

/// The session as an audit entry records it: the history is left out, because it is the
/// session's earlier entries (the same `session.id`), which the log already holds; repeating
/// it would make every entry up to N decisions larger.
pub fn for_audit(input: &mut Value) {
    if let Some(session) = input.get_mut("session").and_then(Value::as_object_mut) {
        session.remove("history");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(phase: Phase, labels: &[&str]) -> Decision {
        let mut decision = Decision::policy_error(phase, "rev", "x", 0);
        decision.verdict = Verdict::Allow;
        decision.reasons.clear();
        decision.labels = labels.iter().map(|l| (*l).to_owned()).collect();
        decision
    }

    fn decided<'a>(target: &'a str) -> Decided<'a> {
        Decided {
            call_id: "c1",
            tool: "files_read",
            operation: Some("read"),
            target: Some(target),
        }
    }

    #[test]
    fn history_keeps_the_last_decisions_and_every_label() {
        let session = Session::new(3, &Metrics::new());
        let mut first = decision(Phase::Fs, &["read_sensitive"]);
        session.remember(&mut first, decided("/secrets/a"));
        for n in 0..5 {
            session.remember(
                &mut decision(Phase::Fs, &[]),
                decided(&format!("/data/{n}")),
            );
        }
        let document = session.document();
        assert_eq!(document["decisions"], 6);
        assert_eq!(document["labels"], json!(["read_sensitive"]));
        let targets: Vec<&str> = document["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["target"].as_str().unwrap())
            .collect();
        assert_eq!(targets, ["/data/2", "/data/3", "/data/4"]);
        assert!(document["id"].as_str().unwrap().starts_with("s-"));
    }

    #[test]
    fn a_label_past_the_bound_denies_and_is_not_attached() {
        let session = Session::new(0, &Metrics::new());
        for n in 0..MAX_LABELS {
            let mut allowed = decision(Phase::Fs, &[&format!("l{n}"), "l0"]);
            session.remember(&mut allowed, decided("/x"));
            assert_eq!(allowed.verdict, Verdict::Allow);
        }
        let mut known = decision(Phase::Http, &["l1"]);
        session.remember(&mut known, decided("example.com"));
        assert_eq!(
            known.verdict,
            Verdict::Allow,
            "a label already carried is free"
        );
        let mut one_more = decision(Phase::Http, &["new"]);
        session.remember(&mut one_more, decided("example.com"));
        assert_eq!(one_more.verdict, Verdict::Deny);
        assert!(
            one_more.reasons[0].contains("64 labels"),
            "{:?}",
            one_more.reasons
        );
        let document = session.document();
        assert_eq!(document["labels"].as_array().unwrap().len(), MAX_LABELS);
        assert_eq!(
            document["history"],
            json!([]),
            "a zero-length history keeps nothing"
        );
    }

    #[test]
    fn an_open_session_is_counted_until_its_state_is_dropped() {
        let metrics = Metrics::new();
        let open = |metrics: &Metrics| {
            let text = metrics.encode();
            text.lines()
                .find_map(|line| line.strip_prefix("gatehouse_sessions_open "))
                .map(str::to_owned)
        };
        let first = Session::new(4, &metrics);
        let second = Session::new(4, &metrics);
        assert_eq!(open(&metrics).as_deref(), Some("2"));
        drop(first);
        assert_eq!(open(&metrics).as_deref(), Some("1"));
        drop(second);
        assert_eq!(open(&metrics).as_deref(), Some("0"));
    }

    #[test]
    fn a_principal_keeps_its_session_until_it_is_idle() {
        let metrics = Metrics::new();
        let sessions = PrincipalSessions::with_idle(4, metrics, Duration::from_millis(50));
        let alice = sessions.session_of("alice");
        assert_eq!(sessions.session_of("alice").id(), alice.id());
        assert_ne!(sessions.session_of("bob").id(), alice.id());
        // Held by a running call: kept however long it takes.
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(sessions.session_of("alice").id(), alice.id());
        let id = alice.id().to_owned();
        drop(alice);
        std::thread::sleep(Duration::from_millis(80));
        assert_ne!(
            sessions.session_of("alice").id(),
            id,
            "an idle session starts afresh"
        );
    }

    #[test]
    fn a_history_longer_than_the_bound_is_refused_with_the_fix() {
        assert!(validate_history(0).is_ok());
        assert!(validate_history(MAX_HISTORY).is_ok());
        let refused = validate_history(MAX_HISTORY + 1).unwrap_err();
        assert!(
            refused.starts_with("limits.session_history = 1025 is above 1024"),
            "{refused}"
        );
    }

    #[test]
    fn the_audit_form_leaves_the_history_out() {
        let session = Session::new(4, &Metrics::new());
        session.remember(&mut decision(Phase::Call, &[]), decided("x"));
        let mut input = json!({"phase": "call", "session": session.document()});
        for_audit(&mut input);
        assert_eq!(input["session"]["decisions"], 1);
        assert!(input["session"].get("history").is_none());
    }
}
