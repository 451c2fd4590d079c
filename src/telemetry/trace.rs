//! The spans of a tool call, as OpenTelemetry traces show it: one span per call (`tools/call
//! <tool>`, kind server) and, as its children, one per step — each policy decision (`policy
//! call`, `policy http`, `policy fs`, `policy socket`, `policy config`, `policy result`), each
//! audit commit the call waits for (`audit verdict`, `audit outcome`) and the tool's run
//! (`run`). Every step is a direct child of the call span, the host decisions made while the
//! tool runs too, so a step's place in the trace does not depend on which part of the gateway
//! took it.
//!
//! **What a span may say.** The call id, the tool, the principal, phases, verdicts and the
//! outcome; for an HTTP decision the method, scheme, host and port; for a socket its protocol,
//! operation, address and port; for a file its operation and read/write. Never an argument,
//! a path, a query, a header, a reason text or a result: those may hold secrets, and a trace
//! backend is not the audit log, which masks what the policy asks it to.
//!
//! **Cost.** The spans are `tracing` spans under [`TARGET`]; only the exporter's layer
//! ([`super::export`]) enables that target, so while traces are off each constructor here
//! returns a disabled span after one cached check, and builds no attribute.
//!
//! **Joining the agent's trace.** A W3C `traceparent` (and `tracestate`) from the agent's
//! request parses into a [`TraceParent`]; the call span then has the agent's span as its
//! parent. What it carries is only ever an id to join: it decides nothing.

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span here: the exporter's layer takes only these, the log leaves them
/// out.
pub const TARGET: &str = "gatehouse::trace";

/// The agent's trace context, from a W3C `traceparent` (and optionally `tracestate`) header.
#[derive(Clone, Debug)]
pub struct TraceParent(opentelemetry::Context);

impl TraceParent {
    /// Parses the two W3C headers; `None` when `traceparent` is not a valid one (the call
    /// then starts a trace of its own).
    pub fn from_w3c(traceparent: &str, tracestate: Option<&str>) -> Option<TraceParent> {
        let carrier = W3cHeaders {
            traceparent,
            tracestate,
        };
        let context = TraceContextPropagator::new().extract(&carrier);
        context
            .span()
            .span_context()
            .is_valid()
            .then_some(TraceParent(context))
    }
}

struct W3cHeaders<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for W3cHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// The span of one tool call, a child of `parent` when the agent sent its trace context.
pub fn call_span(tool: &str, call_id: &str, principal: &str, parent: Option<&TraceParent>) -> Span {
    let span = tracing::info_span!(
        target: TARGET,
        parent: None,
        "tools/call",
        otel.name = %format_args!("tools/call {tool}"),
        otel.kind = "server",
        otel.status_code = Empty,
        mcp.method.name = "tools/call",
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = tool,
        gatehouse.call_id = call_id,
        gatehouse.principal = principal,
        gatehouse.verdict = Empty,
        gatehouse.outcome = Empty,
    );
    if let Some(parent) = parent
        && !span.is_disabled()
    {
        // Only fails for a span the layer does not see, which `is_disabled` ruled out.
        let _ = span.set_parent(parent.0.clone());
    }
    span
}

/// How a call ended, on its span: the call verdict, the outcome, and an error status when
/// the gateway failed to complete it (a trap, a limit, an audit failure), not when the policy
/// denied it or the tool reported an error of its own.
pub fn record_outcome(call: &Span, verdict: &str, outcome: &str, failed: bool) {
    call.record("gatehouse.verdict", verdict);
    call.record("gatehouse.outcome", outcome);
    if failed {
        call.record("otel.status_code", "ERROR");
    }
}

/// A policy decision of `phase` about the call, before its verdict is known
/// ([`record_verdict`]).
pub fn decision_span(call: &Span, phase: &'static str) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: call,
        "policy",
        otel.name = %format_args!("policy {phase}"),
        gatehouse.phase = phase,
        gatehouse.verdict = Empty,
    )
}

/// What a host decision's span says about the operation: never its path, query, headers or
/// body.
#[derive(Debug, Default)]
pub struct HostTarget<'a> {
    /// HTTP: the method.
    pub method: Option<&'a str>,
    /// HTTP: `http` or `https`.
    pub scheme: Option<&'a str>,
    /// HTTP: the host as the tool wrote it; sockets: the address.
    pub address: Option<String>,
    pub port: Option<u16>,
    /// Sockets: `tcp` or `udp`.
    pub transport: Option<&'a str>,
    /// Sockets, files, settings: the operation (`connect`, `open-at`, `get`…).
    pub operation: Option<&'a str>,
    /// Files: `read` or `write`.
    pub access: Option<&'a str>,
    /// The host refused the operation by itself, without asking the policy.
    pub refused_by_host: bool,
}

/// A decision about an operation the running tool asked the host for; `target` is only built
/// while traces are on.
pub fn host_decision_span<'a>(
    call: &Span,
    phase: &'static str,
    target: impl FnOnce() -> HostTarget<'a>,
) -> Span {
    if call.is_disabled() {
        return Span::none();
    }
    let target = target();
    tracing::info_span!(
        target: TARGET,
        parent: call,
        "policy",
        otel.name = %format_args!("policy {phase}"),
        gatehouse.phase = phase,
        gatehouse.verdict = Empty,
        gatehouse.refused_by = target.refused_by_host.then_some("host"),
        http.request.method = target.method,
        url.scheme = target.scheme,
        server.address = target.address.as_deref(),
        // Signed: the layer exports unsigned integers as text.
        server.port = target.port.map(i64::from),
        network.transport = target.transport,
        gatehouse.operation = target.operation,
        gatehouse.access = target.access,
    )
}

/// The verdict of a decision span (`allow`, `deny`, or the `result` phase's own words).
pub fn record_verdict(decision: &Span, verdict: &str) {
    decision.record("gatehouse.verdict", verdict);
}

/// The wait for the audit log to commit `record` (`verdict`, `outcome`) and the `entries`
/// queued with it.
pub fn commit_span(call: &Span, record: &'static str, entries: usize) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: call,
        "audit",
        otel.name = %format_args!("audit {record}"),
        gatehouse.audit.record = record,
        gatehouse.audit.entries = i64::try_from(entries).unwrap_or(i64::MAX),
    )
}

/// The tool's run in its component's fresh instance.
pub fn run_span(call: &Span, component: &str) -> Span {
    tracing::info_span!(
        target: TARGET,
        parent: call,
        "run",
        gatehouse.component = component,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_valid_traceparent_is_a_parent() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::from_w3c(valid, Some("vendor=x")).expect("valid");
        let context = parent.0.span().span_context().clone();
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(context.is_remote() && context.is_sampled());
        for invalid in [
            "",
            "garbage",
            // All-zero ids are invalid by the W3C spec.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Version ff is forbidden.
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(TraceParent::from_w3c(invalid, None).is_none(), "{invalid}");
        }
    }

    #[test]
    fn without_the_exporter_no_span_is_built() {
        // No subscriber takes TARGET here: every span is disabled and no target is built.
        let call = call_span("echo_echo", "id", "alice", None);
        assert!(call.is_disabled());
        let host = host_decision_span(&call, "http", || unreachable!("built while off"));
        assert!(host.is_disabled());
    }
}
