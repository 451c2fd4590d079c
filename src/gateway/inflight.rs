//! The decisions made while a tool runs: every outgoing HTTP request, raw socket use and
//! filesystem operation the host code intercepts is decided here by the policy (phases
//! `http`, `socket`, `fs`) and recorded in the audit log.
//!
//! Deciding must not wait for the disk — a tool reading ten files would otherwise pay ten
//! fsyncs — so each record is queued in order as it is made, and [`InFlight::settle`] waits
//! for all of them before the call's outcome is written and the agent is answered. A record
//! that cannot be queued denies the operation it describes; one that fails to commit withholds
//! the call's result. Either way nothing a tool did goes unrecorded and answered.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::audit::{AuditSink, PendingAppend};
use crate::host::guard::{HostGuard, HostRequest, HostVerdict};
use crate::policy::{self, Phase, PolicyStore};
use crate::telemetry::Metrics;

use super::record::{CallRecord, now};

/// The guard of one running call.
pub struct InFlight {
    policy: PolicyStore,
    audit: Arc<dyn AuditSink>,
    metrics: Metrics,
    record: CallRecord,
    /// `call`, `caller`, `tool` and `arguments`: the part of the input every phase shares.
    shared_input: Arc<Map<String, Value>>,
    /// The call decision's `redact` pointers: they mask the same arguments in every record.
    call_redact: Vec<String>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: Vec<PendingAppend>,
    /// Why a record could not be queued, if one could not.
    unrecorded: Option<String>,
    tally: Tally,
}

/// How many in-flight decisions went which way, per phase (kept with the call's outcome).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub http_allowed: u32,
    pub http_denied: u32,
    pub socket_allowed: u32,
    pub socket_denied: u32,
    pub fs_allowed: u32,
    pub fs_denied: u32,
}

impl Tally {
    fn count(&mut self, request: &HostRequest, allowed: bool) {
        let slot = match (request, allowed) {
            (HostRequest::Http(_), true) => &mut self.http_allowed,
            (HostRequest::Http(_), false) => &mut self.http_denied,
            (HostRequest::Socket(_), true) => &mut self.socket_allowed,
            (HostRequest::Socket(_), false) => &mut self.socket_denied,
            (HostRequest::Fs(_), true) => &mut self.fs_allowed,
            (HostRequest::Fs(_), false) => &mut self.fs_denied,
        };
        *slot = slot.saturating_add(1);
    }
}

fn phase_of(request: &HostRequest) -> Phase {
    match request {
        HostRequest::Http(_) => Phase::Http,
        HostRequest::Socket(_) => Phase::Socket,
        HostRequest::Fs(_) => Phase::Fs,
    }
}

impl InFlight {
    /// `shared_input` are the call input's fields every later phase carries.
    pub(crate) fn new(
        policy: PolicyStore,
        audit: Arc<dyn AuditSink>,
        metrics: Metrics,
        record: CallRecord,
        shared_input: Arc<Map<String, Value>>,
        call_redact: Vec<String>,
    ) -> InFlight {
        InFlight {
            policy,
            audit,
            metrics,
            record,
            shared_input,
            call_redact,
            state: Mutex::new(State::default()),
        }
    }

    fn input_for(&self, request: &HostRequest) -> Value {
        policy::input::phase_input(
            &self.shared_input,
            request.phase(),
            &now(),
            request.input_field(),
            request.to_json(),
        )
    }

    /// Queues the record of one decision; a record that cannot be queued turns the verdict
    /// into a denial.
    fn record(
        &self,
        request: &HostRequest,
        input: Value,
        mut verdict: HostVerdict,
        revision: String,
        redact: &[String],
        metrics: Value,
    ) -> HostVerdict {
        let label = if verdict.allowed { "allow" } else { "deny" };
        log_verdict(&self.record.call_id, request, &input, &verdict);
        let mut entry = self.record.entry(request.phase(), label, input, revision);
        entry.reasons = verdict.reasons.clone();
        entry.redact = self.call_redact.iter().chain(redact).cloned().collect();
        entry.metrics = metrics;
        if !verdict.inject.is_empty() {
            // The templates say which secret goes into which header; values never get here.
            entry.obligations = json!({"inject": verdict.inject});
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match self.audit.submit(entry) {
            Ok(pending) => state.pending.push(pending),
            Err(error) => {
                tracing::error!(call_id = %self.record.call_id, %error, "cannot record an in-flight decision; denying it");
                state.unrecorded.get_or_insert_with(|| error.to_string());
                verdict = HostVerdict::deny(format!(
                    "the audit log cannot record this {} decision ({error})",
                    request.phase()
                ));
            }
        }
        state.tally.count(request, verdict.allowed);
        drop(state);
        verdict
    }

    /// Ends the call's in-flight recording: the records queued so far (to be awaited with the
    /// outcome, so they share its commit), how the decisions went, and — if a record could
    /// not even be queued — why the result must be withheld.
    pub fn close(&self) -> Closed {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Closed {
            pending: std::mem::take(&mut state.pending),
            unrecorded: state.unrecorded.take(),
            tally: state.tally,
        }
    }

    /// Waits until every in-flight record is committed. `Err` says why the call's result must
    /// be withheld.
    pub async fn settle(&self) -> Result<Tally, String> {
        let closed = self.close();
        let committed = commit_all(closed.pending).await;
        match closed.unrecorded {
            Some(error) => Err(error),
            None => committed.map(|()| closed.tally),
        }
    }
}

/// Waits for every queued record; the first failure, if any, says why.
pub async fn commit_all(pending: impl IntoIterator<Item = PendingAppend>) -> Result<(), String> {
    let mut failure = None;
    for append in pending {
        if let Err(error) = append.committed().await {
            failure.get_or_insert_with(|| error.to_string());
        }
    }
    failure.map_or(Ok(()), Err)
}

/// What [`InFlight::close`] hands over.
pub struct Closed {
    pub pending: Vec<PendingAppend>,
    pub unrecorded: Option<String>,
    pub tally: Tally,
}

impl HostGuard for InFlight {
    fn decide(&self, request: HostRequest) -> HostVerdict {
        let started = Instant::now();
        let input = self.input_for(&request);
        let decision = self.policy.decide(phase_of(&request), &input);
        let verdict = HostVerdict {
            allowed: decision.is_allowed(),
            reasons: decision.reasons.clone(),
            inject: decision.inject,
        };
        let metrics = json!({
            "eval_us": decision.eval_micros,
            "decide_us": u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        });
        let verdict = self.record(
            &request,
            input,
            verdict,
            decision.revision,
            &decision.redact,
            metrics,
        );
        self.metrics.decided(
            request.phase(),
            verdict.allowed,
            &self.record.tool,
            Duration::from_micros(decision.eval_micros),
        );
        verdict
    }

    fn refuse(&self, request: HostRequest, reason: String) -> HostVerdict {
        let input = self.input_for(&request);
        self.metrics
            .host_refused(request.phase(), &self.record.tool);
        let metrics = json!({"refused_by": "host"});
        self.record(
            &request,
            input,
            HostVerdict::deny(reason),
            self.policy.revision(),
            &[],
            metrics,
        )
    }
}

/// Logs a verdict: at info and warn only a summary of the request (for HTTP: method, host and
/// path), the whole request document at debug. The audit entry keeps the decided input.
fn log_verdict(call_id: &str, request: &HostRequest, input: &Value, verdict: &HostVerdict) {
    let summary = request.summary();
    if verdict.allowed {
        tracing::info!(%call_id, phase = request.phase(), request = %summary, "allowed");
    } else {
        tracing::warn!(%call_id, phase = request.phase(), request = %summary, reasons = ?verdict.reasons, "denied");
    }
    tracing::debug!(%call_id, phase = request.phase(), request = %input[request.input_field()], "decided");
}
