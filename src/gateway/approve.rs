//! `ask` decisions in the call pipeline: the question a decision becomes, the audit entry of
//! its answer, and how a tool's in-flight request waits for a person.
//!
//! The deciding phase's own entry records the policy's verdict (`ask`, its messages, and the
//! question's id in `obligations.approval`); the answer is an entry of phase `approval`
//! (verdict `approve` or `deny`) that says who answered, how, and what the approval covers.
//! `gatehouse audit show CALL_ID` lists both in the call's story.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::record::{CallRecord, now};
use crate::approval::{Answer, Approvals, Asker, Binding, Question, Responder};
use crate::audit::NewEntry;
use crate::host::guard::WaitClock;
use crate::policy::Decision;

/// What a running call's guard needs to ask a person: where questions go, who can be asked
/// (the MCP client, if it can elicit), and the clock its waiting stops.
#[derive(Clone)]
pub(crate) struct Asking {
    pub(crate) approvals: Arc<Approvals>,
    pub(crate) asker: Option<Arc<dyn Asker>>,
    pub(crate) waited: WaitClock,
}

/// How much of a call's arguments a question shows: enough to recognise the call.
const MAX_ACTION_CHARS: usize = 300;

/// The question `decision` (an `ask`) puts to a person about `action` in `phase`.
pub(crate) fn question(
    record: &CallRecord,
    principal: &str,
    phase: &str,
    input: &Value,
    action: String,
    decision: &Decision,
) -> Question {
    let binding = Binding::of(
        principal,
        &record.tool,
        record.component_digest(),
        phase,
        input,
    );
    Question::new(
        &record.call_id,
        record.session.id(),
        principal,
        &record.tool,
        phase,
        action,
        decision.reasons.clone(),
        binding,
    )
}

/// The line a person reads for a call: the tool and its arguments, the ones the decision
/// redacts masked, shortened.
pub(crate) fn call_action(tool: &str, input: &Value, redact: &[String]) -> String {
    let mut masked = json!({"arguments": input.get("arguments").cloned().unwrap_or(Value::Null)});
    for pointer in redact {
        if let Some(slot) = masked.pointer_mut(pointer) {
            *slot = Value::String(super::REDACTED.to_owned());
        }
    }
    let mut arguments = masked["arguments"].to_string();
    if arguments.chars().count() > MAX_ACTION_CHARS {
        arguments = arguments.chars().take(MAX_ACTION_CHARS).collect::<String>() + "…";
    }
    format!("call {tool} {arguments}")
}

/// The `approval` entry recording `answer` to `question`.
pub(crate) fn answer_entry(
    record: &CallRecord,
    question: &Question,
    answer: &Answer,
    revision: String,
) -> NewEntry {
    let input = json!({
        "phase": "approval",
        "time": now(),
        "call": {"id": record.call_id},
        "question": {
            "id": question.id,
            "phase": question.phase,
            "messages": question.messages,
            "binding": question.binding.as_str(),
        },
        "answer": answer,
    });
    let mut entry = record.entry("approval", answer.label(), input, revision);
    entry.reasons = answer.reason.iter().cloned().collect();
    entry
}

/// Asks `approvals` about `question` from synchronous host code (a tool's request waits):
/// the question is answered on the runtime while this thread, handed off by the runtime,
/// blocks. A runtime that cannot hand a thread off (single-threaded) cannot wait: denied.
/// Returns the answer and how long the wait took.
pub(crate) fn resolve_blocking(
    approvals: &Arc<Approvals>,
    question: &Question,
    asker: Option<&Arc<dyn Asker>>,
) -> (Answer, Duration) {
    let started = Instant::now();
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return (cannot_wait(), Duration::ZERO);
    };
    if runtime.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return (cannot_wait(), Duration::ZERO);
    }
    let (approvals, question, asker) = (approvals.clone(), question.clone(), asker.cloned());
    let (answered, answer) = std::sync::mpsc::sync_channel(1);
    runtime.spawn(async move {
        let answer = approvals.resolve(&question, asker.as_deref()).await;
        let _ = answered.send(answer);
    });
    let answer = tokio::task::block_in_place(|| answer.recv()).unwrap_or_else(|_| {
        Answer::unavailable("the question was dropped before it was answered".into())
    });
    (answer, started.elapsed())
}

fn cannot_wait() -> Answer {
    Answer::denied(
        Responder::Nobody,
        "approval required, but a tool's request cannot wait for a person on this runtime (it \
         needs the multi-threaded runtime `gatehouse serve` uses)"
            .into(),
    )
}
