//! What operators watch the gateway with: Prometheus metrics ([`metrics`]), served at
//! `GET /metrics` ([`endpoint`]).
//!
//! A leaf, like `support`: the layers that measure something (`gateway`, `policy`, `audit`)
//! import it, and it imports none of them. It knows the metrics' names, help texts and labels,
//! not what is measured.

#[cfg(feature = "full")]
pub mod endpoint;
pub mod metrics;
mod settings;

pub use metrics::{AuditMetrics, Metrics, PolicyMetrics, UNKNOWN_TOOL};
pub use settings::MetricsSettings;
