//! What every audit entry of one call shares, and the clock every policy input reads.
//!
//! The record also carries the call's trace span, which the span of every later step of the
//! call (a decision, a commit, the run) is a child of.

use std::sync::Arc;

use serde_json::Value;
use tracing::Span;

use super::Tool;
use super::session::{Decided, Session};
use crate::audit::NewEntry;
use crate::auth::Caller;
use crate::policy::{Decision, Phase};
use crate::telemetry::trace::{self, TraceParent};

/// Who called which tool, under which call id: what every audit entry of a call shares; and
/// the session the call belongs to, which every decision of the call reads and is remembered in.
#[derive(Debug, Clone)]
pub(crate) struct CallRecord {
    pub(crate) call_id: String,
    caller: Value,
    pub(crate) tool: String,
    component_digest: String,
    pub(crate) session: Arc<Session>,
    /// The call's span, in the agent's trace when `parent` named one (disabled while traces
    /// are off).
    pub(crate) span: Span,
}

impl CallRecord {
    pub(crate) fn new(
        caller: &Caller,
        session: Arc<Session>,
        tool: &Tool,
        parent: Option<&TraceParent>,
    ) -> CallRecord {
        let call_id = uuid::Uuid::now_v7().to_string();
        let span = trace::call_span(tool.name(), &call_id, &caller.principal, parent);
        CallRecord {
            call_id,
            caller: serde_json::to_value(caller).unwrap_or_default(),
            tool: tool.name().to_owned(),
            component_digest: tool.component.digest.clone(),
            session,
            span,
        }
    }

    /// The digest of the component the call runs.
    pub(crate) fn component_digest(&self) -> &str {
        &self.component_digest
    }

    /// An audit entry of this call. A decision's input keeps its session without the history
    /// (`session::for_audit`).
    pub(crate) fn entry(
        &self,
        phase: &str,
        verdict: &str,
        mut input: Value,
        revision: String,
    ) -> NewEntry {
        super::session::for_audit(&mut input);
        let mut entry = NewEntry::new(phase, verdict, self.caller.clone(), input);
        entry.call_id = Some(self.call_id.clone());
        entry.tool = Some(self.tool.clone());
        entry.component_digest = Some(self.component_digest.clone());
        entry.policy_revision = Some(revision);
        entry
    }
}

impl CallRecord {
    /// Remembers a decision of this call in its session (which may turn it into a deny: see
    /// [`Session::remember`]). `operation` and `target` say what a host decision was about.
    pub(crate) fn remember(
        &self,
        decision: &mut Decision,
        operation: Option<&str>,
        target: Option<&str>,
    ) {
        self.session
            .remember(decision, self.decided(operation, target));
    }

    /// Remembers an operation the host refused by itself.
    pub(crate) fn remember_refusal(
        &self,
        phase: Phase,
        operation: Option<&str>,
        target: Option<&str>,
    ) {
        self.session
            .remember_refusal(phase, self.decided(operation, target));
    }

    fn decided<'a>(&'a self, operation: Option<&'a str>, target: Option<&'a str>) -> Decided<'a> {
        Decided {
            call_id: &self.call_id,
            tool: &self.tool,
            operation,
            target,
        }
    }
}

/// The decision time every policy input carries: RFC 3339, UTC, milliseconds.
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
