//! The call pipeline, in one place: every tool call — from MCP or from `gatehouse call` — goes
//! through [`Gateway::call`] (or [`Gateway::call_values`]) and then these steps, in this order:
//!
//! 1. build the policy input (caller, tool, component digest, arguments);
//! 2. policy phase `call` → allow or deny, with reasons and limits; an allowed call must also
//!    pass the rate and concurrency limits (`admission`);
//! 3. commit the verdict to the audit log — no audit row, no call; an `ask` verdict is then
//!    answered by a person (`approve`) and the answer committed before anything runs;
//! 4. run the function in a fresh instance inside the limits, every outgoing request, socket
//!    and file operation decided and recorded as it happens (`inflight`);
//! 5. policy phase `result` on what the tool returned (it may withhold or mask it);
//! 6. commit the outcome once every in-flight record is committed, then answer the agent.
//!
//! Each step has a span in the call's trace (`telemetry::trace`), a child of the call's span.
//!
//! Every failure on this path denies: a policy error is a deny (the policy store guarantees
//! it), an audit write failure refuses the call or withholds the result.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use wasmtime::component::Val;

use super::admission::Ticket;
use super::answer::{RESULT_VALUE, mask_answer, mask_secrets, shape_result};
use super::approve::{self, Asking};
use super::inflight::{self, InFlight, LogObserver, Tally};
use super::record::{CallRecord, now};
use super::{Gateway, Session, Tool};
use crate::approval::{Answer, Asker, Question, Resolution, Responder, Retry};
use crate::audit::{NewEntry, PendingAppend};
use crate::auth::Caller;
use crate::host::CallHost;
use crate::policy::{self, Decision, Phase};
use crate::runtime::{CallError, CallLimits};
use crate::telemetry::metrics::CallMeasure;
use crate::telemetry::trace::{self, TraceParent};
use crate::wit_json;

/// What an agent gets back from a call.
#[derive(Debug)]
pub enum CallResult {
    /// The function ran. `is_error` is set when it returned the `err` case of a top-level
    /// `result`, which is the tool reporting failure in its own words.
    Completed {
        structured: Option<Value>,
        text: String,
        is_error: bool,
    },
    /// The call was not run: the arguments do not fit the function's signature.
    InvalidArguments(String),
    /// The call was not run: no tool has this name (or the caller may not see it).
    UnknownTool(String),
    /// The call was not run, or its result is withheld: the policy denied it.
    Denied { reasons: Vec<String> },
    /// The call was not run, or its result is withheld: the audit log could not record a step
    /// of it (fail closed). The text names the step and the log's error.
    Unrecorded(String),
    /// The function was started but stopped: a trap or a limit.
    Failed(CallError),
    /// The call was not run: a person must approve it, and the client answers by calling
    /// again with the answer to `question` (MCP 2026-07-28's `input_required`).
    InputRequired {
        question: String,
        /// What the person reads.
        prompt: String,
        /// The longest *approve for N minutes* they may give.
        max_minutes: u32,
    },
}

/// What a transport knows about a call besides who makes it, of which tool, with what.
#[derive(Clone, Default)]
pub struct CallContext {
    /// The session the call belongs to, whose earlier decisions its decisions read; a session
    /// of its own when `None` (a CLI call).
    pub session: Option<Arc<Session>>,
    /// Hears each line the tool logs once it is recorded (the MCP session that made the call).
    pub observer: Option<LogObserver>,
    /// The agent's trace (a W3C `traceparent`), which the call's span joins.
    pub trace_parent: Option<TraceParent>,
    /// The person behind the client, when the client can be asked to approve (elicitation).
    pub asker: Option<Arc<dyn Asker>>,
    /// Set when the client answers questions by calling again instead (MCP 2026-07-28), with
    /// its answer when this call is the retry.
    pub retry: Option<Retry>,
}

/// A call's arguments as the policy sees them (the object, `{}` when absent), and the
/// parameter values they convert to, or why they do not: the call is decided and recorded
/// either way, so auditors see bad attempts too.
struct Arguments {
    json: Value,
    params: Result<Vec<Val>, String>,
}

/// An allowed call that passed every check and may run.
struct Cleared {
    params: Vec<Val>,
    limits: CallLimits,
    /// Holds the principal's and the component's concurrency slot until the call is recorded.
    _admitted: Ticket,
}

/// How a call ended: what its outcome entry records and the agent then receives.
struct Ending {
    result: CallResult,
    /// How long the tool ran; `None` when it was never started.
    ran_for: Option<Duration>,
    /// What the tool did through the host, when every such decision was recorded.
    tally: Option<Tally>,
    /// The records of those decisions, still committing: the outcome commits behind them.
    pending: Vec<PendingAppend>,
    /// The `result` decision's record, still committing with them.
    result_record: Option<PendingAppend>,
}

/// What the metrics and the trace learn of a call as it goes through the pipeline.
struct Meter {
    /// The call verdict as recorded (`none` until decided).
    verdict: &'static str,
    ran_for: Option<Duration>,
    /// The call's span, once the call has a record.
    span: tracing::Span,
}

impl Ending {
    /// A call that ended before the tool started.
    fn not_run(result: CallResult) -> Ending {
        Ending {
            result,
            ran_for: None,
            tally: None,
            pending: Vec::new(),
            result_record: None,
        }
    }
}

impl Gateway {
    /// Calls a tool with JSON arguments, as an agent does.
    pub async fn call(
        &self,
        caller: &Caller,
        tool_name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> CallResult {
        self.call_with(caller, tool_name, arguments, CallContext::default())
            .await
    }

    /// [`Gateway::call`], with what the transport knows of the call: who hears the tool's log
    /// lines, which trace the call joins.
    pub async fn call_with(
        &self,
        caller: &Caller,
        tool_name: &str,
        arguments: Option<Map<String, Value>>,
        context: CallContext,
    ) -> CallResult {
        // The tool holds its component's `Arc`: a reload during the call does not affect it.
        let Some(tool) = self.tool(tool_name) else {
            // Counted without the name: a label a client could choose is a series it could mint.
            self.metrics.call_finished(CallMeasure {
                tool: None,
                verdict: "none",
                outcome: "unknown_tool",
                took: Duration::ZERO,
                ran_for: None,
            });
            return CallResult::UnknownTool(tool_name.to_owned());
        };
        // The transports bound the request size (`limits.max_argument_bytes`), and the policy
        // store bounds its input, so the arguments are not measured again here.
        let (json, params) = policy::input::call_arguments(&tool.function().signature, arguments);
        self.run(caller, &tool, Arguments { json, params }, context)
            .await
    }

    /// Calls a tool with component values already typed against its signature (`gatehouse
    /// call` with WAVE arguments); the policy sees them as JSON.
    pub async fn call_values(&self, caller: &Caller, tool: &Tool, params: Vec<Val>) -> CallResult {
        let signature = &tool.function().signature;
        let arguments = signature
            .params
            .iter()
            .zip(&params)
            .map(|(param, val)| {
                wit_json::val_to_json(&param.ty, val).map(|json| (param.name.clone(), json))
            })
            .collect::<Result<Map<String, Value>, _>>();
        match arguments {
            Ok(arguments) => {
                let arguments = Arguments {
                    json: Value::Object(arguments),
                    params: Ok(params),
                };
                self.run(caller, tool, arguments, CallContext::default())
                    .await
            }
            Err(error) => CallResult::InvalidArguments(error.to_string()),
        }
    }

    /// Steps 1–6 of the pipeline, measured.
    async fn run(
        &self,
        caller: &Caller,
        tool: &Tool,
        arguments: Arguments,
        context: CallContext,
    ) -> CallResult {
        let started = Instant::now();
        let _running = self.metrics.call_started();
        let mut meter = Meter {
            verdict: "none",
            ran_for: None,
            span: tracing::Span::none(),
        };
        let result = self
            .pipeline(caller, tool, arguments, context, &mut meter)
            .await;
        self.measure(tool, &meter, started.elapsed(), &result);
        result
    }

    /// Counts a finished call: its outcome, durations, and the limit or trap that stopped it.
    fn measure(&self, tool: &Tool, meter: &Meter, took: Duration, result: &CallResult) {
        if let CallResult::Failed(error) = result {
            match error {
                CallError::Trap { .. } => self.metrics.trapped(),
                _ if error.outcome() == "limit" => {
                    let kind = error.kind();
                    self.metrics
                        .limit_hit(kind.strip_prefix("limit:").unwrap_or(kind));
                    if matches!(error, CallError::RateLimited { .. }) {
                        self.metrics.rate_limited();
                    }
                }
                _ => {}
            }
        }
        let outcome = outcome_label(result);
        let failed = matches!(result, CallResult::Failed(_) | CallResult::Unrecorded(_));
        trace::record_outcome(&meter.span, meter.verdict, outcome, failed);
        self.metrics.call_finished(CallMeasure {
            tool: Some(tool.name()),
            verdict: meter.verdict,
            outcome,
            took,
            ran_for: meter.ran_for,
        });
    }

    async fn pipeline(
        &self,
        caller: &Caller,
        tool: &Tool,
        arguments: Arguments,
        context: CallContext,
        meter: &mut Meter,
    ) -> CallResult {
        // 1. The policy input, in the call's session.
        let session = context
            .session
            .clone()
            .unwrap_or_else(|| self.open_session());
        let (record, input) = open_call(
            caller,
            session,
            tool,
            arguments.json,
            context.trace_parent.as_ref(),
        );
        meter.span = record.span.clone();

        // 2. The `call` decision, remembered by the session; an allowed call over a rate or
        // concurrency limit is recorded as denied, with the limit.
        let deciding = trace::decision_span(&record.span, Phase::Call.as_str());
        let mut decision = self.policy.decide(Phase::Call, &input);
        record.remember(&mut decision, None, None);
        // An `ask` is a question: recorded with the verdict, answered once that is committed.
        let question = decision.is_ask().then(|| {
            let action = approve::call_action(&record.tool, &input, &decision.redact);
            let phase = Phase::Call.as_str();
            let mut question =
                approve::question(&record, &caller.principal, phase, &input, action, &decision);
            // A retry carries the answer to the question the first round asked.
            if let Some(Retry::Answer { question: id, .. }) = &context.retry {
                question.id.clone_from(id);
            }
            question
        });
        let admit = |decision: &Decision| {
            let rate = decision.limits.calls_per_minute;
            self.admission
                .admit(&caller.principal, &tool.component.name, rate)
        };
        let mut admission = decision.is_allowed().then(|| admit(&decision));
        // Taken once: every decision made later in the call (http, fs, socket, result) carries
        // these fields; the full input then moves into the verdict's record.
        let shared_input = Arc::new(policy::input::shared_call_fields(&input));

        // 3. The verdict committed: no audit row, no call.
        let refusal = admission.as_ref().and_then(|a| a.as_ref().err());
        let allowed = decision.is_allowed() && refusal.is_none();
        meter.verdict = if allowed {
            "allow"
        } else if decision.is_ask() {
            "ask"
        } else {
            "deny"
        };
        trace::record_verdict(&deciding, meter.verdict);
        drop(deciding);
        self.metrics.decided(
            Phase::Call.as_str(),
            allowed,
            tool.name(),
            Duration::from_micros(decision.eval_micros),
        );
        let verdict = verdict_entry(&record, input, &decision, refusal, question.as_ref());
        let committing = trace::commit_span(&record.span, "verdict", 1);
        let committed = self.sink.append(verdict).await;
        drop(committing);
        let appended = match committed {
            Ok(appended) => appended,
            Err(error) => {
                tracing::error!(call_id = %record.call_id, %error, "cannot record the call verdict; refusing the call");
                return CallResult::Unrecorded(format!(
                    "the audit log cannot record this call ({error}); calls are refused until it can"
                ));
            }
        };
        // `require_shipped`: no allowed call runs before its verdict is in the fleet's store.
        if allowed
            && let Some(gate) = &self.ship_gate
            && let Err(reason) = gate.shipped(appended.seq).await
        {
            tracing::error!(call_id = %record.call_id, %reason, "refusing the call: its verdict is not shipped");
            let ending = Ending::not_run(CallResult::Unrecorded(reason));
            return self.finish(&record, &decision, ending).await;
        }
        if let Some(question) = question {
            if let Err(result) = self
                .answer_call(&record, &question, &context, &mut decision)
                .await
            {
                return self
                    .finish(&record, &decision, Ending::not_run(result))
                    .await;
            }
            meter.verdict = if decision.is_allowed() {
                "allow"
            } else {
                "deny"
            };
            admission = decision.is_allowed().then(|| admit(&decision));
        }
        let cleared = match self.clear(&record, caller, &decision, admission, arguments.params) {
            Ok(cleared) => cleared,
            Err(result) => {
                return self
                    .finish(&record, &decision, Ending::not_run(result))
                    .await;
            }
        };

        // 4–5. The run, and the `result` decision on what it returned.
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the call semaphore is never closed");
        let ending = self
            .execute(&record, tool, &decision, shared_input, &cleared, context)
            .await;
        meter.ran_for = ending.ran_for;

        // 6. The outcome committed behind everything the call recorded, then the answer.
        self.finish(&record, &decision, ending).await
    }

    /// Answers a call's question (asking the person behind the client, or an operator) and
    /// records the answer: the decision becomes an allow, or a deny saying why. `Err` is the
    /// answer when the call must not run because the answer could not be recorded.
    async fn answer_call(
        &self,
        record: &CallRecord,
        question: &Question,
        context: &CallContext,
        decision: &mut Decision,
    ) -> Result<(), CallResult> {
        let asked = Instant::now();
        let answer = match &context.retry {
            Some(Retry::Answer { reply, .. }) => {
                self.approvals.answer_by_retry(question, reply.clone())
            }
            Some(Retry::Refused(reason)) => Answer::denied(Responder::Nobody, reason.clone()),
            Some(Retry::Ask) => match self.approvals.ask_by_retry(question) {
                Resolution::Answered(answer) => answer,
                Resolution::InputRequired => {
                    tracing::info!(call_id = %record.call_id, question = %question.id, "approval asked of the client; waiting for its retry");
                    return Err(CallResult::InputRequired {
                        question: question.id.clone(),
                        prompt: question.prompt(),
                        max_minutes: self.approvals.settings().max_minutes,
                    });
                }
            },
            None => {
                self.approvals
                    .resolve(question, context.asker.as_deref())
                    .await
            }
        };
        tracing::info!(call_id = %record.call_id, question = %question.id, approved = answer.approved, by = %answer.by.to_text(), "call approval answered");
        self.metrics.approval_answered(
            Phase::Call.as_str(),
            answer.label(),
            answer.by.kind(),
            asked.elapsed(),
        );
        let entry = approve::answer_entry(record, question, &answer, decision.revision.clone());
        if let Err(error) = self.sink.append(entry).await {
            tracing::error!(call_id = %record.call_id, %error, "cannot record an approval; refusing the call");
            return Err(CallResult::Unrecorded(format!(
                "the audit log cannot record the approval of this call ({error}); calls are refused until it can"
            )));
        }
        decision.answer(answer.approved, answer.reason);
        Ok(())
    }

    /// Whether a call whose verdict is recorded may run: allowed, admitted, with arguments
    /// that fit the signature and limits the engine can enforce. The refusal otherwise.
    fn clear(
        &self,
        record: &CallRecord,
        caller: &Caller,
        decision: &Decision,
        admission: Option<Result<Ticket, CallError>>,
        params: Result<Vec<Val>, String>,
    ) -> Result<Cleared, CallResult> {
        let call_id = &record.call_id;
        let Some(admission) = admission else {
            tracing::info!(%call_id, tool = %record.tool, principal = %caller.principal, reasons = ?decision.reasons, "call denied by policy");
            return Err(CallResult::Denied {
                reasons: decision.reasons.clone(),
            });
        };
        let ticket = admission.map_err(|refusal| {
            tracing::info!(%call_id, tool = %record.tool, principal = %caller.principal, %refusal, "call refused by a limit");
            CallResult::Failed(refusal)
        })?;
        let params = params.map_err(CallResult::InvalidArguments)?;
        let limits = self
            .limits_for(decision)
            .map_err(|reason| CallResult::Denied {
                reasons: vec![reason],
            })?;
        Ok(Cleared {
            params,
            limits,
            _admitted: ticket,
        })
    }

    /// Step 4 and 5: runs the function with every host request decided and recorded as it
    /// happens (heard by the context's observer, asked of its asker when the policy asks),
    /// then lets the `result` phase decide on what it returned.
    async fn execute(
        &self,
        record: &CallRecord,
        tool: &Tool,
        decision: &Decision,
        shared_input: Arc<Map<String, Value>>,
        cleared: &Cleared,
        context: CallContext,
    ) -> Ending {
        let function = tool.function();
        let asking = Asking {
            approvals: self.approvals.clone(),
            asker: context.asker,
            waited: Default::default(),
        };
        let waited = asking.waited.clone();
        let inflight = self.in_flight(
            record,
            shared_input.clone(),
            &decision.redact,
            context.observer,
            asking,
        );
        let host = CallHost {
            guard: inflight.clone(),
            max_requests: cleared.limits.max_requests,
            env: self.catalog.env_for(&tool.component.name, &decision.env),
            config: self.catalog.settings_for(&tool.component.name),
            waited,
        };
        let running = trace::run_span(&record.span, &tool.component.name);
        let started = Instant::now();
        let returned = self
            .runtime
            .call(
                &tool.component,
                function,
                &cleared.params,
                &cleared.limits,
                host,
            )
            .await
            .and_then(|result| shape_result(&function.signature, result, &cleared.limits))
            .map(|result| {
                let (result, found) = mask_secrets(result, &self.runtime.host().http.secrets);
                if !found.is_empty() {
                    tracing::warn!(call_id = %record.call_id, secrets = ?found, "the tool's result held a brokered secret's value; masked");
                }
                result
            });
        drop(running);
        let (result, result_record) = match returned {
            Ok(result) => self.check_result(record, &shared_input, &decision.redact, result),
            Err(error) => (CallResult::Failed(error), None),
        };
        let ran_for = Some(started.elapsed());
        // Every decision made while the tool ran must be in the log before the agent hears:
        // the records are awaited together with the outcome, so they share its commit.
        let closed = inflight.close();
        match closed.unrecorded {
            None => Ending {
                result,
                ran_for,
                tally: Some(closed.tally),
                pending: closed.pending,
                result_record,
            },
            Some(error) => {
                tracing::error!(call_id = %record.call_id, %error, "cannot record the call's in-flight decisions; withholding the result");
                Ending {
                    result: CallResult::Unrecorded(format!(
                        "the audit log cannot record what this call did ({error}); the result is withheld"
                    )),
                    ran_for,
                    tally: None,
                    pending: closed.pending,
                    result_record,
                }
            }
        }
    }

    fn in_flight(
        &self,
        record: &CallRecord,
        shared_input: Arc<Map<String, Value>>,
        redact: &[String],
        observer: Option<LogObserver>,
        asking: Asking,
    ) -> Arc<InFlight> {
        Arc::new(InFlight::new(
            self.policy.clone(),
            self.sink.clone(),
            self.metrics.clone(),
            record.clone(),
            shared_input,
            redact.to_vec(),
            observer,
            asking,
        ))
    }

    /// The guard a call of `tool` by `caller` with `arguments` runs under once allowed: its
    /// host requests decided by this gateway's policy and recorded in its audit log. For
    /// measuring and testing the host layer on its own (`benches/interception.rs`).
    pub fn guard_for(&self, caller: &Caller, tool: &Tool, arguments: Value) -> Arc<InFlight> {
        let (record, input) = open_call(caller, self.open_session(), tool, arguments, None);
        let asking = Asking {
            approvals: self.approvals.clone(),
            asker: None,
            waited: Default::default(),
        };
        self.in_flight(
            &record,
            Arc::new(policy::input::shared_call_fields(&input)),
            &[],
            None,
            asking,
        )
    }

    /// Step 5: the `result` phase, if the bundle defines it, decides whether the agent may see
    /// what the tool returned; its verdict is recorded like every other. `call_redact` are the
    /// call decision's pointers: the record carries the arguments too. The record is queued, not
    /// awaited: it commits with the outcome (step 6), before the agent hears.
    fn check_result(
        &self,
        record: &CallRecord,
        shared_input: &Map<String, Value>,
        call_redact: &[String],
        result: CallResult,
    ) -> (CallResult, Option<PendingAppend>) {
        let CallResult::Completed {
            structured,
            text,
            is_error,
        } = &result
        else {
            return (result, None);
        };
        if !self.policy.defines(Phase::Result) {
            return (result, None);
        }
        let value = structured
            .as_ref()
            .and_then(|s| s.get("result"))
            .cloned()
            .unwrap_or(Value::Null);
        let input = policy::input::phase_input(
            shared_input,
            "result",
            &now(),
            record.session.document(),
            "result",
            serde_json::json!({"ok": !is_error, "size": text.len(), "value": value}),
        );
        let deciding = trace::decision_span(&record.span, Phase::Result.as_str());
        let mut decision = self.policy.decide(Phase::Result, &input);
        record.remember(&mut decision, None, None);
        trace::record_verdict(&deciding, decision.verdict.as_str());
        drop(deciding);
        self.metrics.decided(
            Phase::Result.as_str(),
            decision.is_allowed(),
            &record.tool,
            Duration::from_micros(decision.eval_micros),
        );
        let label = decision.verdict.as_str();
        let (result, masked) = if decision.is_allowed() {
            mask_answer(result, &decision.redact)
        } else {
            (result, Vec::new())
        };
        // The log keeps what was decided about the result, not the result: a tool's output
        // can be large and can echo secrets no pointer names. Its keyed digest (the writer
        // masks the whole value) proves what it was without letting a guess be checked.
        let mut entry = record.entry("result", label, input, decision.revision.clone());
        entry.reasons = decision.reasons.clone();
        entry.redact = call_redact
            .iter()
            .chain(
                decision
                    .redact
                    .iter()
                    .filter(|p| !p.starts_with("/result/")),
            )
            .cloned()
            .chain(std::iter::once(RESULT_VALUE.to_owned()))
            .collect();
        entry.obligations = serde_json::json!({"masked_in_answer": masked});
        entry.metrics = serde_json::json!({"eval_us": decision.eval_micros});
        let pending = match self.sink.submit(entry) {
            Ok(pending) => pending,
            Err(error) => return (unrecorded_result(&error.to_string()), None),
        };
        let result = if decision.is_allowed() {
            result
        } else {
            tracing::info!(call_id = %record.call_id, reasons = ?decision.reasons, "result withheld by policy");
            CallResult::Denied {
                reasons: decision
                    .reasons
                    .iter()
                    .map(|r| format!("result withheld: {r}"))
                    .collect(),
            }
        };
        (result, Some(pending))
    }

    /// The call's limits: the configured defaults, tightened (never loosened) by the policy.
    /// A fuel limit the engine cannot meter (fuel is off) refuses the call.
    fn limits_for(&self, decision: &Decision) -> Result<CallLimits, String> {
        let tighten =
            |default: u64, policy: Option<u64>| policy.map_or(default, |p| p.min(default));
        let fuel = match (self.limits.fuel, decision.limits.fuel) {
            (0, None) => None,
            (0, Some(_)) => {
                return Err("the policy sets a fuel limit, but fuel metering is off (limits.fuel = 0 in the configuration); refusing to run the call unmetered".into());
            }
            (configured, asked) => Some(tighten(configured, asked)),
        };
        Ok(CallLimits {
            timeout: Duration::from_millis(tighten(
                self.limits.timeout_ms,
                decision.limits.timeout_ms,
            )),
            memory_bytes: tighten(self.limits.memory_bytes, decision.limits.memory_bytes),
            max_result_bytes: tighten(
                self.limits.max_result_bytes,
                decision.limits.max_result_bytes,
            ),
            fuel,
            max_requests: tighten(self.limits.max_requests, decision.limits.max_requests),
        })
    }

    /// Step 6: records the outcome behind the call's in-flight records; the agent gets the
    /// result only if all of them were committed.
    async fn finish(&self, record: &CallRecord, decision: &Decision, ending: Ending) -> CallResult {
        let Ending {
            result,
            ran_for,
            tally,
            pending,
            result_record,
        } = ending;
        let call_id = &record.call_id;
        let (verdict, detail) = outcome_of(&result);
        let kind = match &result {
            CallResult::Failed(error) => Some(error.kind()),
            _ => None,
        };
        let input = serde_json::json!({"phase": "outcome", "time": now(), "call": {"id": call_id}, "outcome": verdict, "kind": kind});
        let mut entry = record.entry("outcome", verdict, input, decision.revision.clone());
        entry.reasons = detail.into_iter().collect();
        entry.metrics = serde_json::json!({
            "duration_us": ran_for.map(|d| d.as_micros() as u64),
            "in_flight": tally,
        });
        // The outcome is queued behind the call's in-flight records and its result decision;
        // all of them must commit, in one group commit when the writer can.
        let entries = pending.len() + usize::from(result_record.is_some()) + 1;
        let committing = trace::commit_span(&record.span, "outcome", entries);
        let outcome = self.sink.submit(entry);
        let result_failure = match result_record {
            Some(pending) => pending.committed().await.err().map(|e| e.to_string()),
            None => None,
        };
        let failure = match outcome {
            Ok(outcome) => {
                inflight::commit_all(pending.into_iter().chain(std::iter::once(outcome)))
                    .await
                    .err()
            }
            Err(error) => Some(error.to_string()),
        };
        drop(committing);
        if let Some(error) = result_failure {
            tracing::error!(%call_id, %error, "cannot record the result decision; withholding the result");
            return unrecorded_result(&error);
        }
        match failure {
            None => {
                tracing::info!(%call_id, tool = %record.tool, outcome = verdict, "tool call finished");
                result
            }
            Some(error) => {
                tracing::error!(%call_id, %error, "cannot record the call; withholding the result");
                CallResult::Unrecorded(format!(
                    "the audit log cannot record this call ({error}); the result is withheld"
                ))
            }
        }
    }
}

/// Step 1: a new call's record (its id, caller, session, tool, span) and its `call` policy
/// input.
fn open_call(
    caller: &Caller,
    session: Arc<Session>,
    tool: &Tool,
    arguments: Value,
    parent: Option<&TraceParent>,
) -> (CallRecord, Value) {
    let record = CallRecord::new(caller, session, tool, parent);
    let input = policy::input::call_input(
        &record.call_id,
        &now(),
        caller,
        record.session.document(),
        &tool.policy_doc(),
        arguments,
    );
    (record, input)
}

/// The `call` verdict's audit entry: the decision, or the admission limit that refused an
/// allowed call.
fn verdict_entry(
    record: &CallRecord,
    input: Value,
    decision: &Decision,
    refusal: Option<&CallError>,
    question: Option<&Question>,
) -> NewEntry {
    let label = refusal.map_or(decision.verdict.as_str(), |_| "deny");
    let mut verdict = record.entry("call", label, input, decision.revision.clone());
    verdict.reasons = refusal.map_or_else(|| decision.reasons.clone(), |r| vec![r.to_string()]);
    verdict.redact = decision.redact.clone();
    verdict.obligations = serde_json::json!({
        "limits": decision.limits, "redact": decision.redact, "env": decision.env,
    });
    if let Some(question) = question {
        verdict.obligations["approval"] = serde_json::json!(question.id);
    }
    verdict.metrics = serde_json::json!({"eval_us": decision.eval_micros});
    verdict
}

/// The answer when the `result` decision's record failed: the result is withheld.
fn unrecorded_result(error: &str) -> CallResult {
    CallResult::Unrecorded(format!(
        "the audit log cannot record the result decision ({error}); the result is withheld"
    ))
}

/// The outcome entry's verdict label and detail for how a call ended.
fn outcome_of(result: &CallResult) -> (&'static str, Option<String>) {
    let detail = match result {
        CallResult::Completed {
            is_error: false, ..
        } => None,
        CallResult::Completed { text, .. } => Some(text.clone()),
        CallResult::Failed(error) => Some(error.to_string()),
        CallResult::InvalidArguments(message) => Some(format!("invalid arguments: {message}")),
        CallResult::Denied { reasons } => Some(reasons.join("; ")),
        CallResult::Unrecorded(reason) => Some(reason.clone()),
        CallResult::UnknownTool(name) => Some(format!("unknown tool `{name}`")),
        CallResult::InputRequired { question, .. } => Some(format!(
            "waiting for the client's answer to question {question}"
        )),
    };
    (outcome_label(result), detail)
}

/// How a call ended, as its outcome entry and `gatehouse_calls_total` label it.
fn outcome_label(result: &CallResult) -> &'static str {
    match result {
        CallResult::Completed {
            is_error: false, ..
        } => "ok",
        CallResult::Completed { is_error: true, .. } => "tool_error",
        CallResult::Failed(error) => error.outcome(),
        CallResult::InvalidArguments(_) | CallResult::UnknownTool(_) => "error",
        // Refused like a denial, for the same queries; the reason names the audit log.
        CallResult::Denied { .. } | CallResult::Unrecorded(_) => "denied",
        CallResult::InputRequired { .. } => "input_required",
    }
}
