//! `GET /metrics`: the route the MCP listener mounts, and the listener of its own
//! (`[metrics] listen`).

use axum::Router;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use super::metrics::CONTENT_TYPE;

/// Where the metrics are served.
pub const PATH: &str = "/metrics";

/// A router serving `GET /metrics` from `metrics`, without authentication.
pub fn router(metrics: Metrics) -> Router {
    Router::new().route(
        PATH,
        axum::routing::get(move || {
            let text = metrics.encode();
            async move { ([(http::header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response() }
        }),
    )
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    metrics: Metrics,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let router = router(metrics).fallback(|| async {
        (
            http::StatusCode::NOT_FOUND,
            "not found: this listener serves only /metrics",
        )
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
