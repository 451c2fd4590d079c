//! What operators watch the gateway with: Prometheus metrics ([`metrics`]), served at
//! `GET /metrics` ([`endpoint`]), and OpenTelemetry traces of every call ([`trace`]), sent to
//! an OTLP collector ([`export`]).
//!
//! A leaf, like `support`: the layers that measure something (`gateway`, `policy`, `audit`)
//! import it, and it imports none of them. It knows the metrics' names, help texts and labels
//! and the spans' names and attributes, not what is measured.

#[cfg(feature = "full")]
pub mod endpoint;
#[cfg(feature = "full")]
pub mod export;
pub mod metrics;
mod settings;
#[cfg(feature = "full")]
pub mod trace;

pub use metrics::{AuditMetrics, FleetMetrics, Metrics, PolicyMetrics, TraceMetrics, UNKNOWN_TOOL};
pub use settings::{MAX_QUEUED_SPANS, MetricsSettings, OtlpEndpoint, TelemetrySettings};
