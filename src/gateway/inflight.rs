//! The decisions made while a tool runs: every outgoing HTTP request, raw socket use and
//! filesystem operation the host code intercepts, and every settings read, is decided here by
//! the policy (phases `http`, `socket`, `fs`, `config`) and recorded in the audit log. The lines the tool logs
//! (`wasi:logging`) are recorded beside them (phase `log`), written to the gateway's own log
//! and handed to the call's [`LogObserver`] (the MCP session that made the call).
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
use crate::host::guard::{Access, HostGuard, HostRequest, HostVerdict, LogLevel, ToolLog};
use crate::policy::{self, Phase, PolicyStore};
use crate::telemetry::Metrics;
use crate::telemetry::trace::{self, HostTarget};

use super::approve::{self, Asking};
use super::record::{CallRecord, now};

/// The guard of one running call.
pub struct InFlight {
    policy: PolicyStore,
    audit: Arc<dyn AuditSink>,
    metrics: Metrics,
    /// The call, and the session every decision reads and is remembered in.
    record: CallRecord,
    /// `call`, `caller`, `tool` and `arguments`: the part of the input every phase shares.
    shared_input: Arc<Map<String, Value>>,
    /// The call decision's `redact` pointers: they mask the same arguments in every record.
    call_redact: Vec<String>,
    /// Who else hears the tool's log lines, if anyone.
    observer: Option<LogObserver>,
    /// Who answers an `ask`, and the clock a wait for an answer stops.
    asking: Asking,
    state: Mutex<State>,
}

/// Hears the lines a running tool logs, after they are recorded (the MCP session that made
/// the call forwards them to its client). Called while the tool runs: it must not block.
pub type LogObserver = Arc<dyn Fn(&ToolLog) + Send + Sync>;

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
    pub config_allowed: u32,
    pub config_denied: u32,
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
            (HostRequest::Config(_), true) => &mut self.config_allowed,
            (HostRequest::Config(_), false) => &mut self.config_denied,
        };
        *slot = slot.saturating_add(1);
    }
}

/// What the trace may say about a host request (`telemetry::trace`): never a path, query or
/// header, which may carry an argument's value.
fn trace_target(request: &HostRequest, refused_by_host: bool) -> HostTarget<'_> {
    let target = match request {
        HostRequest::Http(facts) => HostTarget {
            method: Some(facts.method.as_str()),
            scheme: Some(facts.scheme.as_str()),
            address: Some(facts.host.clone()),
            port: Some(facts.port),
            ..HostTarget::default()
        },
        HostRequest::Socket(access) => HostTarget {
            address: Some(access.address.to_string()),
            port: Some(access.port),
            transport: Some(access.protocol),
            operation: Some(access.operation),
            ..HostTarget::default()
        },
        HostRequest::Fs(access) => HostTarget {
            operation: Some(access.operation),
            access: Some(match access.access {
                Access::Read => "read",
                Access::Write => "write",
            }),
            ..HostTarget::default()
        },
        HostRequest::Config(read) => HostTarget {
            operation: Some(read.operation),
            ..HostTarget::default()
        },
    };
    HostTarget {
        refused_by_host,
        ..target
    }
}

fn phase_of(request: &HostRequest) -> Phase {
    match request {
        HostRequest::Http(_) => Phase::Http,
        HostRequest::Socket(_) => Phase::Socket,
        HostRequest::Fs(_) => Phase::Fs,
        HostRequest::Config(_) => Phase::Config,
    }
}

impl InFlight {
    /// `shared_input` are the call input's fields every later phase carries.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        policy: PolicyStore,
        audit: Arc<dyn AuditSink>,
        metrics: Metrics,
        record: CallRecord,
        shared_input: Arc<Map<String, Value>>,
        call_redact: Vec<String>,
        observer: Option<LogObserver>,
        asking: Asking,
    ) -> InFlight {
        InFlight {
            policy,
            audit,
            metrics,
            record,
            shared_input,
            call_redact,
            observer,
            asking,
            state: Mutex::new(State::default()),
        }
    }

    /// Queues one record that is not a decision; one that cannot be queued withholds the
    /// call's result, as for decisions.
    fn queue(&self, entry: crate::audit::NewEntry) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match self.audit.submit(entry) {
            Ok(pending) => {
                state.pending.push(pending);
                true
            }
            Err(error) => {
                tracing::error!(call_id = %self.record.call_id, %error, "cannot record a line the tool logged; the result will be withheld");
                state.unrecorded.get_or_insert_with(|| error.to_string());
                false
            }
        }
    }

    /// The argument values the call decision masks (its `redact` pointers into
    /// `/arguments`): a tool that logs one must not put it in clear into the log.
    fn masked_arguments(&self) -> Vec<String> {
        let arguments = json!({"arguments": self.shared_input.get("arguments")});
        let mut values = Vec::new();
        for pointer in &self.call_redact {
            collect_strings(arguments.pointer(pointer), &mut values);
        }
        values.sort();
        values.dedup();
        // Longest first, so that a value containing another is masked whole.
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values
    }

    fn input_for(&self, request: &HostRequest) -> Value {
        policy::input::phase_input(
            &self.shared_input,
            request.phase(),
            &now(),
            self.record.session.document(),
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
        self.record_as(
            request,
            input,
            label,
            &mut verdict,
            revision,
            redact,
            metrics,
            None,
        );
        verdict
    }

    /// Queues the record of a decision with verdict `label` (`ask` for a question, whose id
    /// goes into its obligations); a record that cannot be queued denies `verdict`.
    #[allow(clippy::too_many_arguments)]
    fn record_as(
        &self,
        request: &HostRequest,
        input: Value,
        label: &str,
        verdict: &mut HostVerdict,
        revision: String,
        redact: &[String],
        metrics: Value,
        question: Option<&str>,
    ) {
        if question.is_none() {
            log_verdict(&self.record.call_id, request, &input, verdict);
        }
        let mut entry = self.record.entry(request.phase(), label, input, revision);
        entry.reasons = verdict.reasons.clone();
        entry.redact = self.call_redact.iter().chain(redact).cloned().collect();
        entry.metrics = metrics;
        if !verdict.inject.is_empty() {
            // The templates say which secret goes into which header; values never get here.
            entry.obligations = json!({"inject": verdict.inject});
        }
        if let Some(question) = question {
            entry.obligations["approval"] = json!(question);
        }
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match self.audit.submit(entry) {
            Ok(pending) => state.pending.push(pending),
            Err(error) => {
                tracing::error!(call_id = %self.record.call_id, %error, "cannot record an in-flight decision; denying it");
                state.unrecorded.get_or_insert_with(|| error.to_string());
                *verdict = HostVerdict::deny(format!(
                    "the audit log cannot record this {} decision ({error})",
                    request.phase()
                ));
            }
        }
        if question.is_none() {
            state.tally.count(request, verdict.allowed);
        }
    }

    /// An `ask` from the policy about `request`: the question recorded, put to a person
    /// while the tool's request waits (its wall-clock limit stopped), the answer recorded.
    /// The verdict is the answer's.
    fn ask(
        &self,
        request: &HostRequest,
        input: Value,
        decision: crate::policy::Decision,
        metrics: Value,
    ) -> HostVerdict {
        let principal = self.shared_input["caller"]["principal"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let question = approve::question(
            &self.record,
            &principal,
            request.phase(),
            &input,
            request.summary(),
            &decision,
        );
        let mut verdict = HostVerdict {
            allowed: false,
            reasons: decision.reasons.clone(),
            inject: decision.inject.clone(),
        };
        self.record_as(
            request,
            input,
            "ask",
            &mut verdict,
            decision.revision.clone(),
            &decision.redact,
            metrics,
            Some(&question.id),
        );
        if self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unrecorded
            .is_some()
        {
            return self.counted(request, verdict);
        }
        let paused = self.asking.waited.pause();
        let (answer, waited) = approve::resolve_blocking(
            &self.asking.approvals,
            &question,
            self.asking.asker.as_ref(),
        );
        drop(paused);
        tracing::info!(call_id = %self.record.call_id, question = %question.id, approved = answer.approved, by = %answer.by.to_text(), waited_ms = waited.as_millis() as u64, "approval answered");
        self.metrics
            .approval_answered(request.phase(), answer.label(), answer.by.kind(), waited);
        let entry =
            approve::answer_entry(&self.record, &question, &answer, decision.revision.clone());
        if !self.queue(entry) {
            return self.counted(
                request,
                HostVerdict::deny("the audit log cannot record the approval of this request"),
            );
        }
        let mut decision = decision;
        decision.answer(answer.approved, answer.reason);
        let verdict = HostVerdict {
            allowed: decision.is_allowed(),
            reasons: decision.reasons,
            inject: decision.inject,
        };
        self.counted(request, verdict)
    }

    /// Counts `verdict`'s final answer in the call's tally.
    fn counted(&self, request: &HostRequest, verdict: HostVerdict) -> HostVerdict {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.tally.count(request, verdict.allowed);
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
        let deciding = trace::host_decision_span(&self.record.span, request.phase(), || {
            trace_target(&request, false)
        });
        let input = self.input_for(&request);
        let mut decision = self.policy.decide(phase_of(&request), &input);
        let (operation, target) = request.subject();
        self.record
            .remember(&mut decision, Some(&operation), target.as_deref());
        let metrics = json!({
            "eval_us": decision.eval_micros,
            "decide_us": u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        });
        if decision.is_ask() {
            let eval = Duration::from_micros(decision.eval_micros);
            let verdict = self.ask(&request, input, decision, metrics);
            trace::record_verdict(&deciding, if verdict.allowed { "allow" } else { "deny" });
            self.metrics
                .decided(request.phase(), verdict.allowed, &self.record.tool, eval);
            return verdict;
        }
        let verdict = HostVerdict {
            allowed: decision.is_allowed(),
            reasons: decision.reasons.clone(),
            inject: decision.inject,
        };
        let verdict = self.record(
            &request,
            input,
            verdict,
            decision.revision,
            &decision.redact,
            metrics,
        );
        trace::record_verdict(&deciding, if verdict.allowed { "allow" } else { "deny" });
        self.metrics.decided(
            request.phase(),
            verdict.allowed,
            &self.record.tool,
            Duration::from_micros(decision.eval_micros),
        );
        verdict
    }

    fn log(&self, mut record: ToolLog) {
        if let ToolLog::Line(line) = &mut record {
            for value in self.masked_arguments() {
                line.context = line.context.replace(&value, super::REDACTED);
                line.message = line.message.replace(&value, super::REDACTED);
            }
        }
        emit_tool_log(&self.record.call_id, &self.record.tool, &record);
        let (verdict, detail) = match &record {
            ToolLog::Line(line) => (line.level.as_str(), json!(line)),
            ToolLog::Dropped { lines, bytes } => (
                "dropped",
                json!({"dropped_lines": lines, "dropped_bytes": bytes}),
            ),
        };
        let input = json!({
            "phase": "log",
            "time": now(),
            "call": {"id": self.record.call_id},
            "log": detail,
        });
        let entry = self
            .record
            .entry("log", verdict, input, self.policy.revision());
        if self.queue(entry)
            && let Some(observer) = &self.observer
        {
            observer(&record);
        }
    }

    fn refuse(&self, request: HostRequest, reason: String) -> HostVerdict {
        let refusing = trace::host_decision_span(&self.record.span, request.phase(), || {
            trace_target(&request, true)
        });
        trace::record_verdict(&refusing, "deny");
        let input = self.input_for(&request);
        let (operation, target) = request.subject();
        self.record
            .remember_refusal(phase_of(&request), Some(&operation), target.as_deref());
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

/// The strings in `value` (itself, or inside arrays and objects), at least 4 bytes long: a
/// shorter one would mask unrelated text.
fn collect_strings(value: Option<&Value>, into: &mut Vec<String>) {
    match value {
        Some(Value::String(s)) if s.len() >= 4 => into.push(s.clone()),
        Some(Value::Array(items)) => items.iter().for_each(|v| collect_strings(Some(v), into)),
        Some(Value::Object(map)) => map.values().for_each(|v| collect_strings(Some(v), into)),
        _ => {}
    }
}

/// Writes a tool's log line to the gateway's log under the target `gatehouse::tool`, at the
/// line's level (`critical` as error).
fn emit_tool_log(call_id: &str, tool: &str, record: &ToolLog) {
    let line = match record {
        ToolLog::Line(line) => line,
        ToolLog::Dropped { lines, bytes } => {
            tracing::warn!(target: "gatehouse::tool", %call_id, %tool, dropped_lines = lines, dropped_bytes = bytes, "tool logged past its bounds; lines dropped");
            return;
        }
    };
    let context = crate::support::logging::printable(&line.context);
    let message = crate::support::logging::printable(&line.message);
    match line.level {
        LogLevel::Trace => {
            tracing::trace!(target: "gatehouse::tool", %call_id, %tool, %context, "{message}")
        }
        LogLevel::Debug => {
            tracing::debug!(target: "gatehouse::tool", %call_id, %tool, %context, "{message}")
        }
        LogLevel::Info => {
            tracing::info!(target: "gatehouse::tool", %call_id, %tool, %context, "{message}")
        }
        LogLevel::Warn => {
            tracing::warn!(target: "gatehouse::tool", %call_id, %tool, %context, "{message}")
        }
        LogLevel::Error | LogLevel::Critical => {
            tracing::error!(target: "gatehouse::tool", %call_id, %tool, %context, level = line.level.as_str(), "{message}")
        }
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
