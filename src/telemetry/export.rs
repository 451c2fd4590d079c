//! Sending the spans of [`super::trace`] to an OTLP/HTTP collector (`[telemetry]
//! otlp_endpoint`), so that a call never waits for the collector and never fails because of it.
//!
//! A finished span goes into a bounded queue and the call moves on; the OpenTelemetry SDK's
//! batch processor sends the queue from a thread of its own, as protobuf over the blocking
//! reqwest client. While the collector is slow or down, spans beyond the bound are dropped.
//! Every span is counted once, as exported or as dropped with its reason
//! ([`TraceMetrics`]): the SDK's processor counts its own drops only into an OpenTelemetry
//! meter, so the bound is kept here, in front of it ([`Bounded`]), and what each export did is
//! counted behind it ([`Counted`]); its own queue is as large as the bound, so it never drops
//! a span the bound let through.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::{Layer, Registry};

use super::MAX_QUEUED_SPANS;
use super::TelemetrySettings;
use super::metrics::TraceMetrics;
use super::trace::TARGET;

/// How long stopping may wait for the last batch to reach the collector.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why traces cannot be exported as configured.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("[telemetry] max_queued_spans = {0}: give 1 to {MAX_QUEUED_SPANS}")]
    QueueSize(usize),
    #[error("[telemetry] otlp_endpoint = \"{endpoint}\" cannot be used: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// The running export of traces; [`Traces::shutdown`] sends what is queued.
pub struct Traces {
    provider: SdkTracerProvider,
}

/// A layer for the global subscriber (`support::logging`).
pub type TraceLayer = Box<dyn Layer<Registry> + Send + Sync>;

impl Traces {
    /// Starts exporting if `settings` name a collector; `None` (traces off) otherwise.
    pub fn start(
        settings: &TelemetrySettings,
        metrics: TraceMetrics,
    ) -> Result<Option<Traces>, ExportError> {
        let Some(endpoint) = &settings.otlp_endpoint else {
            return Ok(None);
        };
        let limit = settings.max_queued_spans;
        if !(1..=MAX_QUEUED_SPANS).contains(&limit) {
            return Err(ExportError::QueueSize(limit));
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(endpoint.traces_url())
            .build()
            .map_err(|error| ExportError::Exporter {
                endpoint: endpoint.as_str().to_owned(),
                reason: error.to_string(),
            })?;
        let backlog = Arc::new(Backlog {
            queued: AtomicUsize::new(0),
            limit,
            metrics,
        });
        let counted = Counted {
            inner: exporter,
            backlog: backlog.clone(),
            endpoint: endpoint.as_str().to_owned(),
            failing: AtomicBool::new(false),
        };
        // The defaults (and `OTEL_BSP_*`) for the batch size and delay; the queue is ours.
        let config = BatchConfigBuilder::default()
            .with_max_queue_size(limit)
            .build();
        let processor = Bounded {
            inner: BatchSpanProcessor::new(counted, config),
            backlog,
        };
        // `OTEL_SERVICE_NAME`, when set, names the service (the SDK's resource reads it).
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name("gatehouse");
        }
        let resource = resource.build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        Ok(Some(Traces { provider }))
    }

    /// The layer that turns the spans of [`TARGET`] (and only those: never a log line) into
    /// OpenTelemetry spans for this export.
    pub fn layer(&self) -> TraceLayer {
        let tracer = self.provider.tracer("gatehouse");
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(TARGET, LevelFilter::INFO))
            .boxed()
    }

    /// Sends the spans still queued (waiting at most [`SHUTDOWN_TIMEOUT`]) and stops. Call it
    /// outside the async runtime: it blocks.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(%error, "the last traces may not have been exported");
        }
    }
}

/// Spans accepted for export and not yet exported or dropped.
#[derive(Debug)]
struct Backlog {
    queued: AtomicUsize,
    limit: usize,
    metrics: TraceMetrics,
}

impl Backlog {
    /// Takes a place in the queue, if one is free.
    fn admit(&self) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, spans: usize) {
        self.queued.fetch_sub(spans, Ordering::AcqRel);
    }
}

/// In front of the SDK's batch processor: drops (and counts) a span when the queue is full.
#[derive(Debug)]
struct Bounded<P> {
    inner: P,
    backlog: Arc<Backlog>,
}

impl<P: SpanProcessor> SpanProcessor for Bounded<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if self.backlog.admit() {
            self.inner.on_end(span);
        } else {
            self.backlog.metrics.dropped(TraceMetrics::QUEUE_FULL, 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// Behind the batch processor: counts each batch as exported or dropped, frees its places in
/// the queue, and says in the log when the collector stops and starts taking spans.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    backlog: Arc<Backlog>,
    endpoint: String,
    /// Whether the last export failed, so a down collector is logged once, not per batch.
    failing: AtomicBool,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        self.backlog.release(spans);
        match &result {
            Ok(()) => {
                self.backlog.metrics.exported(spans);
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.endpoint, "exporting traces again");
                }
            }
            Err(error) => {
                self.backlog
                    .metrics
                    .dropped(TraceMetrics::EXPORT_FAILED, spans);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(endpoint = %self.endpoint, %error, "cannot export traces; dropping them until the collector takes them (gatehouse_trace_spans_dropped_total)");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::error::OTelSdkError;
    use opentelemetry_sdk::trace::SimpleSpanProcessor;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::Metrics;
    use crate::telemetry::trace::{
        HostTarget, TraceParent, call_span, commit_span, decision_span, host_decision_span,
        record_outcome, record_verdict,
    };

    /// Keeps what it is given, or refuses it while `down`.
    #[derive(Debug, Default, Clone)]
    struct Collector {
        spans: Arc<Mutex<Vec<SpanData>>>,
        down: bool,
    }

    impl SpanExporter for Collector {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            if self.down {
                return Err(OTelSdkError::InternalFailure("connection refused".into()));
            }
            self.spans.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn pipeline(collector: Collector, limit: usize, metrics: &Metrics) -> SdkTracerProvider {
        let backlog = Arc::new(Backlog {
            queued: AtomicUsize::new(0),
            limit,
            metrics: metrics.traces(),
        });
        let counted = Counted {
            inner: collector,
            backlog: backlog.clone(),
            endpoint: "test".into(),
            failing: AtomicBool::new(false),
        };
        SdkTracerProvider::builder()
            .with_span_processor(Bounded {
                inner: SimpleSpanProcessor::new(counted),
                backlog,
            })
            .build()
    }

    fn subscriber(provider: &SdkTracerProvider) -> impl tracing::Subscriber {
        tracing_subscriber::registry().with(
            Traces {
                provider: provider.clone(),
            }
            .layer(),
        )
    }

    fn attribute(span: &SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    #[test]
    fn a_call_joins_the_agents_trace_and_its_steps_are_its_children() {
        let collector = Collector::default();
        let metrics = Metrics::new();
        let provider = pipeline(collector.clone(), 64, &metrics);
        let agent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        tracing::subscriber::with_default(subscriber(&provider), || {
            let parent = TraceParent::from_w3c(agent, None);
            let call = call_span("echo_echo", "call-1", "alice", parent.as_ref());
            let decision = decision_span(&call, "call");
            record_verdict(&decision, "allow");
            drop(decision);
            drop(commit_span(&call, "verdict", 1));
            let host = host_decision_span(&call, "http", || HostTarget {
                method: Some("GET"),
                address: Some("example.com".into()),
                port: Some(443),
                ..HostTarget::default()
            });
            record_verdict(&host, "deny");
            drop(host);
            record_outcome(&call, "allow", "ok", false);
        });
        let spans = collector.spans.lock().unwrap().clone();
        let call = spans
            .iter()
            .find(|s| s.name == "tools/call echo_echo")
            .expect("the call span");
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(call.span_context.trace_id(), trace_id);
        assert_eq!(
            call.parent_span_id,
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert_eq!(
            attribute(call, "gatehouse.principal").as_deref(),
            Some("alice")
        );
        assert_eq!(attribute(call, "gatehouse.outcome").as_deref(), Some("ok"));
        let mut children: Vec<&str> = spans
            .iter()
            .filter(|s| s.parent_span_id == call.span_context.span_id())
            .inspect(|s| assert_eq!(s.span_context.trace_id(), trace_id))
            .map(|s| s.name.as_ref())
            .collect();
        children.sort_unstable();
        assert_eq!(children, ["audit verdict", "policy call", "policy http"]);
        let http = spans.iter().find(|s| s.name == "policy http").unwrap();
        assert_eq!(
            attribute(http, "gatehouse.verdict").as_deref(),
            Some("deny")
        );
        assert_eq!(
            attribute(http, "server.address").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            attribute(http, "http.request.method").as_deref(),
            Some("GET")
        );
        let port = http
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "server.port");
        assert_eq!(
            port.map(|kv| &kv.value),
            Some(&opentelemetry::Value::I64(443))
        );
        assert!(
            metrics
                .encode()
                .contains("gatehouse_trace_spans_exported_total 4")
        );
    }

    #[test]
    fn a_down_collector_costs_spans_not_calls() {
        let collector = Collector {
            down: true,
            ..Collector::default()
        };
        let metrics = Metrics::new();
        let provider = pipeline(collector, 64, &metrics);
        tracing::subscriber::with_default(subscriber(&provider), || {
            let call = call_span("echo_echo", "call-1", "alice", None);
            drop(decision_span(&call, "call"));
        });
        let text = metrics.encode();
        assert!(
            text.contains(r#"gatehouse_trace_spans_dropped_total{reason="export_failed"} 2"#),
            "{text}"
        );
    }

    #[test]
    fn spans_beyond_the_queue_are_dropped_and_counted() {
        let metrics = Metrics::new();
        let backlog = Backlog {
            queued: AtomicUsize::new(0),
            limit: 2,
            metrics: metrics.traces(),
        };
        assert!(backlog.admit() && backlog.admit());
        assert!(!backlog.admit(), "the third place is not free");
        backlog.release(1);
        assert!(backlog.admit());
        // Through the processor: a queue of one, held by a span not yet exported.
        let held = Arc::new(Backlog {
            queued: AtomicUsize::new(1),
            limit: 1,
            metrics: metrics.traces(),
        });
        let collector = Collector::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded {
                inner: SimpleSpanProcessor::new(collector.clone()),
                backlog: held,
            })
            .build();
        tracing::subscriber::with_default(subscriber(&provider), || {
            drop(call_span("echo_echo", "call-1", "alice", None));
        });
        assert!(collector.spans.lock().unwrap().is_empty());
        let text = metrics.encode();
        assert!(
            text.contains(r#"gatehouse_trace_spans_dropped_total{reason="queue_full"} 1"#),
            "{text}"
        );
    }
}
