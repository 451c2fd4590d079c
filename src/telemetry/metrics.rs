//! Prometheus metrics: the families the layers record into, and their text exposition.
//!
//! **Who records.** Each layer records where the event happens, through a narrow handle whose
//! methods take plain values: the gateway through [`Metrics`] (calls, decisions of every phase,
//! limits, the catalog), the policy store through [`PolicyMetrics`] (revision, reloads), the
//! audit writer through [`AuditMetrics`] (commits, queue), the trace exporter through
//! [`TraceMetrics`] (spans sent and dropped). The alternative, scrape-time
//! collectors reading counters each layer keeps, was rejected: the histograms need every
//! observation (each commit on the writer's thread, each evaluation), a collector sees only
//! totals, and each layer would grow bucket arrays of its own. No Prometheus type crosses this
//! module's API, so a layer never depends on how the numbers are exposed.
//!
//! **Cost.** Recording is an atomic add, or a histogram's short uncontended lock; a labelled
//! family also looks its series up under a read lock. None is held across an await.
//!
//! **Bounded labels.** A hostile client must not be able to mint series. Phase, verdict,
//! outcome and limit-kind labels are `&'static str`: the callers pass the names of their enums,
//! never request text. A tool label is a name from the catalog; a call of a tool the catalog
//! does not have is counted as [`UNKNOWN_TOOL`], never under the name it asked for.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The tool label of a call naming a tool the catalog does not serve.
pub const UNKNOWN_TOOL: &str = "(unknown)";

/// The `Content-Type` of [`Metrics::encode`]'s output (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// A histogram family whose histograms share one set of buckets.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Whole calls and tool runs: 250 µs to about 8 s (a call's default time limit is 5 s).
fn call_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

/// One policy evaluation: 5 µs to about 160 ms (the default budget is 50 ms).
fn evaluation_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_005, 2.0, 16))
}

/// One audit transaction: 50 µs to about 1.6 s (an fsync on a slow disk).
fn commit_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// A person's answer to an approval question: 10 ms (a grant, an operator already there) to
/// about 22 min (the longest configured waits are longer, and land in +Inf).
fn approval_seconds() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 18))
}

/// Entries per audit transaction: 1 to 4096, the writer's largest batch.
fn batch_entries() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 13))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    verdict: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    phase: &'static str,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    phase: &'static str,
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApprovalLabels {
    phase: &'static str,
    answer: &'static str,
    by: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabel {
    tool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    what: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabel {
    revision: String,
}

/// Every metric of one gateway, and the registry that exposes them. Cheap to clone; clones
/// record into the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    denials: Family<DenialLabels, Counter>,
    host_refusals: Family<PhaseLabel, Counter>,
    call_seconds: Histograms<ToolLabel>,
    run_seconds: Histograms<ToolLabel>,
    evaluation_seconds: Histograms<PhaseLabel>,
    in_flight: Gauge,
    sessions: Gauge,
    components: Gauge,
    tools: Gauge,
    reloads: Family<ReloadLabels, Counter>,
    limits: Family<KindLabel, Counter>,
    traps: Counter,
    rate_limited: Counter,
    approvals: Family<ApprovalLabels, Counter>,
    approval_seconds: Histogram,
    audit: AuditMetrics,
    policy: PolicyMetrics,
    traces: TraceMetrics,
    fleet: FleetMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// How one call went, as [`Metrics::call_finished`] counts it.
#[derive(Debug, Clone, Copy)]
pub struct CallMeasure<'a> {
    /// The tool's catalog name; `None` when the catalog has no tool of the requested name.
    pub tool: Option<&'a str>,
    /// `allow` or `deny` (a call an admission limit refused is a `deny`, as in the audit log),
    /// `none` when nothing was decided (an unknown tool).
    pub verdict: &'static str,
    /// How the call ended (`ok`, `tool_error`, `denied`, `limit`, `trap`, `error`, …).
    pub outcome: &'static str,
    /// From the request reaching the gateway to its answer.
    pub took: Duration,
    /// How long the tool ran; `None` when it never started.
    pub ran_for: Option<Duration>,
}

impl Metrics {
    /// A fresh set of metrics, all at zero, registered for [`Metrics::encode`].
    pub fn new() -> Metrics {
        let audit = AuditMetrics::default();
        let policy = PolicyMetrics::default();
        let mut inner = Inner {
            registry: Registry::with_prefix("gatehouse"),
            calls: Family::default(),
            decisions: Family::default(),
            denials: Family::default(),
            host_refusals: Family::default(),
            call_seconds: Family::new_with_constructor(call_seconds as fn() -> Histogram),
            run_seconds: Family::new_with_constructor(call_seconds as fn() -> Histogram),
            evaluation_seconds: Family::new_with_constructor(
                evaluation_seconds as fn() -> Histogram,
            ),
            in_flight: Gauge::default(),
            sessions: Gauge::default(),
            components: Gauge::default(),
            tools: Gauge::default(),
            reloads: policy.reloads.clone(),
            limits: Family::default(),
            traps: Counter::default(),
            rate_limited: Counter::default(),
            approvals: Family::default(),
            approval_seconds: approval_seconds(),
            audit,
            policy,
            traces: TraceMetrics::default(),
            fleet: FleetMetrics::default(),
        };
        inner.register();
        Metrics {
            inner: Arc::new(inner),
        }
    }

    /// The audit writer's part ([`crate::audit`] hands it to its writer thread).
    pub fn audit(&self) -> AuditMetrics {
        self.inner.audit.clone()
    }

    /// The fleet shipper's part.
    pub fn fleet(&self) -> FleetMetrics {
        self.inner.fleet.clone()
    }

    /// The policy store's part.
    pub fn policy(&self) -> PolicyMetrics {
        self.inner.policy.clone()
    }

    /// The trace exporter's part.
    pub fn traces(&self) -> TraceMetrics {
        self.inner.traces.clone()
    }

    /// Counts a call as running until the returned guard is dropped (also when the call's
    /// future is dropped unfinished).
    pub fn call_started(&self) -> Held {
        Held::new(&self.inner.in_flight)
    }

    /// Counts a session (MCP session, stdio connection, CLI call) as open until the returned
    /// guard is dropped with the session's state.
    pub fn session_opened(&self) -> Held {
        Held::new(&self.inner.sessions)
    }

    /// Counts a finished call, its duration and its tool's run time.
    pub fn call_finished(&self, call: CallMeasure<'_>) {
        let tool = call.tool.unwrap_or(UNKNOWN_TOOL).to_owned();
        if let Some(ran_for) = call.ran_for {
            self.inner
                .run_seconds
                .get_or_create(&ToolLabel { tool: tool.clone() })
                .observe(ran_for.as_secs_f64());
        }
        self.inner
            .call_seconds
            .get_or_create(&ToolLabel { tool: tool.clone() })
            .observe(call.took.as_secs_f64());
        self.inner
            .calls
            .get_or_create(&CallLabels {
                tool,
                verdict: call.verdict,
                outcome: call.outcome,
            })
            .inc();
    }

    /// Counts one policy decision in `phase` about a call of `tool` (a catalog name), and how
    /// long its evaluation took.
    pub fn decided(&self, phase: &'static str, allowed: bool, tool: &str, evaluation: Duration) {
        self.inner
            .evaluation_seconds
            .get_or_create(&PhaseLabel { phase })
            .observe(evaluation.as_secs_f64());
        self.verdict(phase, allowed, tool);
    }

    /// Counts a verdict the gateway reached without evaluating the policy: an admission limit
    /// refusing an allowed call, or an audit record that could not be queued.
    pub fn verdict(&self, phase: &'static str, allowed: bool, tool: &str) {
        let verdict = if allowed { "allow" } else { "deny" };
        self.inner
            .decisions
            .get_or_create(&DecisionLabels { phase, verdict })
            .inc();
        if !allowed {
            self.inner
                .denials
                .get_or_create(&DenialLabels {
                    phase,
                    tool: tool.to_owned(),
                })
                .inc();
        }
    }

    /// Counts a host operation the host refused by itself (a path outside its mount, a
    /// request limit reached): a denial in `phase`, without a policy evaluation.
    pub fn host_refused(&self, phase: &'static str, tool: &str) {
        self.inner
            .host_refusals
            .get_or_create(&PhaseLabel { phase })
            .inc();
        self.verdict(phase, false, tool);
    }

    /// Counts a call stopped or refused by a limit of `kind` (`time`, `memory`, `rate`, …).
    pub fn limit_hit(&self, kind: &'static str) {
        self.inner.limits.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts a call refused by a rate limit (also counted by [`Metrics::limit_hit`]).
    pub fn rate_limited(&self) {
        self.inner.rate_limited.inc();
    }

    /// Counts the answer to an approval question of `phase`: `approve` or `deny`, given `by`
    /// the client, an operator, a grant, a timeout or nobody, after a wait of `waited`.
    pub fn approval_answered(
        &self,
        phase: &'static str,
        answer: &'static str,
        by: &'static str,
        waited: Duration,
    ) {
        self.inner
            .approvals
            .get_or_create(&ApprovalLabels { phase, answer, by })
            .inc();
        self.inner.approval_seconds.observe(waited.as_secs_f64());
    }

    /// Counts a tool that trapped.
    pub fn trapped(&self) {
        self.inner.traps.inc();
    }

    /// Sets how many components and tools are being served.
    pub fn serving(&self, components: usize, tools: usize) {
        self.inner.components.set(gauge_value(components));
        self.inner.tools.set(gauge_value(tools));
    }

    /// Counts a reload of `what` (`components`; the policy store counts its own).
    pub fn reloaded(&self, what: &'static str, ok: bool) {
        count_reload(&self.inner.reloads, what, ok);
    }

    /// Every metric in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail, and every label value is escaped by the encoder.
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.inner.registry)
            .expect("encoding metrics into a String");
        text
    }
}

impl Inner {
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "calls",
            "Tool calls by tool, call verdict and outcome",
            self.calls.clone(),
        );
        r.register(
            "decisions",
            "Verdicts by phase, as the audit log records them",
            self.decisions.clone(),
        );
        r.register(
            "denials",
            "Denied verdicts by phase and tool",
            self.denials.clone(),
        );
        r.register(
            "host_refusals",
            "Host operations the host refused without asking the policy, by phase",
            self.host_refusals.clone(),
        );
        r.register_with_unit(
            "call_duration",
            "Time from a call reaching the gateway to its answer, audit commits included",
            Unit::Seconds,
            self.call_seconds.clone(),
        );
        r.register_with_unit(
            "tool_run",
            "Time a tool ran, by tool",
            Unit::Seconds,
            self.run_seconds.clone(),
        );
        r.register_with_unit(
            "policy_evaluation",
            "Time one policy decision took to evaluate, by phase",
            Unit::Seconds,
            self.evaluation_seconds.clone(),
        );
        r.register(
            "calls_in_flight",
            "Calls being processed now",
            self.in_flight.clone(),
        );
        r.register(
            "sessions_open",
            "Sessions whose state the gateway holds (MCP sessions, stdio connections, CLI calls)",
            self.sessions.clone(),
        );
        r.register(
            "components_loaded",
            "Components being served",
            self.components.clone(),
        );
        r.register("tools_served", "Tools being served", self.tools.clone());
        r.register(
            "reloads",
            "Reloads of the policy bundle and of the components, by result",
            self.reloads.clone(),
        );
        r.register(
            "limits_hit",
            "Calls stopped or refused by a limit, by kind",
            self.limits.clone(),
        );
        r.register("traps", "Tool calls that trapped", self.traps.clone());
        r.register(
            "approvals",
            "Answers to the questions a policy's ask put, by phase, answer and who gave it",
            self.approvals.clone(),
        );
        r.register_with_unit(
            "approval_wait",
            "Time an action waited for its approval question's answer",
            Unit::Seconds,
            self.approval_seconds.clone(),
        );
        r.register(
            "rate_limited_calls",
            "Calls refused by a per-principal rate limit",
            self.rate_limited.clone(),
        );
        self.policy.register(r);
        self.audit.register(r);
        self.traces.register(r);
        self.fleet.register(r);
    }
}

/// Keeps something counted in a gauge while it lives (a call in `gatehouse_calls_in_flight`, a
/// session in `gatehouse_sessions_open`).
#[derive(Debug)]
pub struct Held(Gauge);

impl Held {
    fn new(gauge: &Gauge) -> Held {
        gauge.inc();
        Held(gauge.clone())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the audit writer records. The default records into series no registry exposes (for a
/// log opened without a gateway: the CLI's readers, tests).
#[derive(Clone, Debug)]
pub struct AuditMetrics {
    commit_seconds: Histogram,
    batch_entries: Histogram,
    queue_depth: Gauge,
    since_checkpoint: Gauge,
}

impl Default for AuditMetrics {
    fn default() -> Self {
        AuditMetrics {
            commit_seconds: commit_seconds(),
            batch_entries: batch_entries(),
            queue_depth: Gauge::default(),
            since_checkpoint: Gauge::default(),
        }
    }
}

impl AuditMetrics {
    /// An entry was handed to the writer.
    pub fn queued(&self) {
        self.queue_depth.inc();
    }

    /// The writer took an entry off its queue (or it never got there).
    pub fn dequeued(&self) {
        self.queue_depth.dec();
    }

    /// A transaction of `entries` entries committed in `took`.
    pub fn committed(&self, entries: usize, took: Duration) {
        self.batch_entries.observe(entries as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// How many committed entries no checkpoint covers yet.
    pub fn uncovered(&self, entries: u64) {
        self.since_checkpoint
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    fn register(&self, r: &mut Registry) {
        r.register_with_unit(
            "audit_commit",
            "Time one audit transaction took, fsync included",
            Unit::Seconds,
            self.commit_seconds.clone(),
        );
        r.register(
            "audit_batch_entries",
            "Entries committed per audit transaction",
            self.batch_entries.clone(),
        );
        r.register(
            "audit_queue_depth",
            "Audit entries waiting for the writer",
            self.queue_depth.clone(),
        );
        r.register(
            "audit_entries_since_checkpoint",
            "Committed audit entries no signed checkpoint covers yet",
            self.since_checkpoint.clone(),
        );
    }
}

/// What the fleet shipper records (entries copied to the shared PostgreSQL store). The default
/// records into series no registry exposes.
#[derive(Clone, Debug, Default)]
pub struct FleetMetrics {
    shipped: Counter,
    lag: Gauge,
    conflicts: Counter,
    failures: Counter,
}

impl FleetMetrics {
    /// `entries` more entries are acknowledged by the store.
    pub fn shipped(&self, entries: u64) {
        self.shipped.inc_by(entries);
    }

    /// Committed local entries the store had not acknowledged when the shipper last looked.
    pub fn lag(&self, entries: u64) {
        self.lag.set(i64::try_from(entries).unwrap_or(i64::MAX));
    }

    /// The store holds an entry or checkpoint of this gateway that differs from the local one.
    pub fn conflict(&self) {
        self.conflicts.inc();
    }

    /// A connection or a batch failed (it is retried).
    pub fn failed(&self) {
        self.failures.inc();
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "fleet_shipped_entries",
            "Audit entries the fleet's PostgreSQL store acknowledged",
            self.shipped.clone(),
        );
        r.register(
            "fleet_lag_entries",
            "Committed audit entries not yet acknowledged by the fleet's store, as of the shipper's last look",
            self.lag.clone(),
        );
        r.register(
            "fleet_conflicts",
            "Entries or checkpoints the fleet's store holds with other content than the local log (an alarm)",
            self.conflicts.clone(),
        );
        r.register(
            "fleet_failures",
            "Failed connections or batches to the fleet's store (retried)",
            self.failures.clone(),
        );
    }
}

/// What the policy store records. The default records into series no registry exposes.
#[derive(Clone, Debug, Default)]
pub struct PolicyMetrics {
    revision: Family<RevisionLabel, Gauge>,
    reloads: Family<ReloadLabels, Counter>,
}

impl PolicyMetrics {
    /// The bundle of `revision` serves from now on.
    pub fn serving(&self, revision: &str) {
        let label = RevisionLabel {
            revision: revision.to_owned(),
        };
        if self.revision.get(&label).is_none() {
            self.revision.clear();
            self.revision.get_or_create(&label).set(1);
        }
    }

    /// Counts a reload of the bundle (`ok` also when the bundle was unchanged).
    pub fn reloaded(&self, ok: bool) {
        count_reload(&self.reloads, "policy", ok);
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "policy_revision_info",
            "The revision of the policy bundle serving now (value 1)",
            self.revision.clone(),
        );
    }
}

/// What the trace exporter records: every finished span is either exported or dropped.
#[derive(Clone, Debug, Default)]
pub struct TraceMetrics {
    exported: Counter,
    dropped: Family<ReasonLabel, Counter>,
}

impl TraceMetrics {
    /// Why a span was dropped: the export queue was full.
    pub const QUEUE_FULL: &'static str = "queue_full";
    /// Why a span was dropped: the collector did not take its batch.
    pub const EXPORT_FAILED: &'static str = "export_failed";

    /// A collector took `spans` spans.
    pub fn exported(&self, spans: usize) {
        self.exported.inc_by(spans as u64);
    }

    /// `spans` spans were dropped for `reason` ([`Self::QUEUE_FULL`], [`Self::EXPORT_FAILED`]).
    pub fn dropped(&self, reason: &'static str, spans: usize) {
        self.dropped
            .get_or_create(&ReasonLabel { reason })
            .inc_by(spans as u64);
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            "trace_spans_exported",
            "Spans an OTLP collector accepted",
            self.exported.clone(),
        );
        r.register(
            "trace_spans_dropped",
            "Spans dropped instead of exported, by reason (queue_full, export_failed)",
            self.dropped.clone(),
        );
    }
}

fn count_reload(reloads: &Family<ReloadLabels, Counter>, what: &'static str, ok: bool) {
    let result = if ok { "ok" } else { "failed" };
    reloads.get_or_create(&ReloadLabels { what, result }).inc();
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(text: &'a str, series: &str) -> Option<&'a str> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
    }

    #[test]
    fn records_are_exposed_with_their_labels() {
        let metrics = Metrics::new();
        let running = metrics.call_started();
        metrics.decided("call", false, "echo_say", Duration::from_micros(40));
        metrics.call_finished(CallMeasure {
            tool: Some("echo_say"),
            verdict: "deny",
            outcome: "denied",
            took: Duration::from_millis(2),
            ran_for: None,
        });
        metrics.call_finished(CallMeasure {
            tool: None,
            verdict: "none",
            outcome: "unknown_tool",
            took: Duration::from_micros(3),
            ran_for: None,
        });
        metrics.policy().serving("sha256:aa");
        metrics.policy().serving("sha256:bb");
        metrics.audit().committed(3, Duration::from_millis(1));
        metrics.traces().exported(5);
        metrics.traces().dropped(TraceMetrics::EXPORT_FAILED, 2);
        let text = metrics.encode();
        assert_eq!(sample(&text, "gatehouse_calls_in_flight"), Some("1"));
        drop(running);
        let text_after = metrics.encode();
        assert_eq!(sample(&text_after, "gatehouse_calls_in_flight"), Some("0"));
        for (series, value) in [
            (
                r#"gatehouse_calls_total{tool="echo_say",verdict="deny",outcome="denied"}"#,
                "1",
            ),
            (
                r#"gatehouse_calls_total{tool="(unknown)",verdict="none",outcome="unknown_tool"}"#,
                "1",
            ),
            (
                r#"gatehouse_decisions_total{phase="call",verdict="deny"}"#,
                "1",
            ),
            (
                r#"gatehouse_denials_total{phase="call",tool="echo_say"}"#,
                "1",
            ),
            (
                r#"gatehouse_policy_evaluation_seconds_count{phase="call"}"#,
                "1",
            ),
            (
                r#"gatehouse_policy_revision_info{revision="sha256:bb"}"#,
                "1",
            ),
            ("gatehouse_audit_batch_entries_sum", "3.0"),
            ("gatehouse_audit_commit_seconds_count", "1"),
            ("gatehouse_trace_spans_exported_total", "5"),
            (
                r#"gatehouse_trace_spans_dropped_total{reason="export_failed"}"#,
                "2",
            ),
        ] {
            assert_eq!(sample(&text, series), Some(value), "{series} in\n{text}");
        }
        assert!(
            !text.contains("sha256:aa"),
            "the old revision is gone:\n{text}"
        );
    }

    #[test]
    fn approvals_are_counted_by_phase_answer_and_who_answered() {
        let metrics = Metrics::new();
        metrics.approval_answered("call", "approve", "client", Duration::from_secs(3));
        metrics.approval_answered("http", "deny", "timeout", Duration::from_secs(120));
        let text = metrics.encode();
        for line in [
            r#"gatehouse_approvals_total{phase="call",answer="approve",by="client"} 1"#,
            r#"gatehouse_approvals_total{phase="http",answer="deny",by="timeout"} 1"#,
            "gatehouse_approval_wait_seconds_count 2",
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.verdict("call", false, "a\"b\\c\nd");
        let text = metrics.encode();
        assert!(
            text.contains(r#"tool="a\"b\\c\nd""#),
            "label not escaped:\n{text}"
        );
    }
}
