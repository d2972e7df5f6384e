//! Admin HTTP: `/healthz` (liveness), `/readyz` (readiness), `/metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use metrics::gauge;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Status;
use crate::state::Store;
use crate::telemetry as t;

/// The consumer loop polls every 100 ms; a minute of silence means it is wedged.
const MAX_POLL_SILENCE: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct AppState {
    status: Arc<Status>,
    metrics: PrometheusHandle,
    store: Store,
    data_dir: std::path::PathBuf,
}

/// Serves the admin endpoints until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    status: Arc<Status>,
    metrics: PrometheusHandle,
    store: Store,
    data_dir: std::path::PathBuf,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .with_state(AppState {
            status,
            metrics,
            store,
            data_dir,
        });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "Admin server listening.");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    if s.status.is_live(MAX_POLL_SILENCE) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "consumer loop stalled\n")
    }
}

async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    if s.status.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn render_metrics(State(s): State<AppState>) -> impl IntoResponse {
    // Gauges that are cheap to sample at scrape time.
    if let Some(rss) = t::resident_memory_bytes() {
        gauge!(t::RESIDENT_MEMORY).set(rss as f64);
    }
    if let Some(free) = t::free_bytes(&s.data_dir) {
        gauge!(t::DATA_DIR_FREE).set(free as f64);
    }
    if let Some(size) = s.store.live_size() {
        gauge!(t::STATE_SIZE).set(size as f64);
    }
    gauge!(t::READY).set(if s.status.is_ready() { 1.0 } else { 0.0 });
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

/// `pynomaly healthcheck`: GET `/healthz` on the local admin port; true on 200.
pub fn healthcheck(port: u16, path: &str, timeout: Duration) -> bool {
    use std::io::{Read, Write};
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = std::net::TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if stream.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let n = stream.read(&mut buf).unwrap_or(0);
    let head = String::from_utf8_lossy(&buf[..n]);
    head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200")
}
