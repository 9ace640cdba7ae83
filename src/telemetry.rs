//! Logs and metrics around the HTTP surface: a request id on every request,
//! a span per request and per WebSocket connection (so every line logged
//! while serving one names it), request latencies, and `/metrics`.
//!
//! Spans and events name the method, path, status, latency and ids only:
//! never a header (`Authorization` holds a token), a query string (a GraphQL
//! GET carries its variables there) or a body (passwords, codes).

use std::{sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{MatchedPath, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tokio::time::Instant;
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use tracing::{Instrument, Span};
use uuid::Uuid;

use crate::metrics::Metrics;

/// The header carrying the request id: taken from the client (or a proxy in
/// front) when present, else a fresh UUID; always echoed in the response.
const REQUEST_ID: &str = "x-request-id";

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Wraps every route of `router` (and its fallback) in the request id, the
/// request span and the latency histogram.
pub fn observe(router: Router, metrics: Arc<Metrics>) -> Router {
    router
        .layer(middleware::from_fn_with_state(metrics, record_latency))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(|response: &Response, latency: Duration, _: &Span| {
                    tracing::info!(
                        status = response.status().as_u16(),
                        latency_ms = latency.as_secs_f64() * 1000.0,
                        "answered"
                    );
                }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Created in this crate (not tower-http), so the default `chatroom=info`
/// filter keeps it, and with it the id on every line logged inside.
fn request_span(request: &Request) -> Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    )
}

async fn record_latency(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|route| route.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.http_request(route.as_deref(), response.status(), started.elapsed());
    response
}

/// What a WebSocket about to be served is observed by: its span, with an id
/// of its own, and the gauge it is counted in.
pub struct SocketTelemetry {
    span: Span,
    metrics: Arc<Metrics>,
}

impl SocketTelemetry {
    /// Made while the upgrade request is served, so the span sits inside that
    /// request's span: a connection's lines also name the request that opened it.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            span: tracing::info_span!("websocket", connection = %Uuid::new_v4()),
            metrics,
        }
    }

    /// Runs `serving` (the whole connection) inside the span, counted as open
    /// until it returns. Not an `async fn`, which would keep its arguments
    /// twice for as long as the socket lives.
    pub fn serve(self, serving: impl Future<Output = ()>) -> impl Future<Output = ()> {
        let open = self.metrics.websocket_opened();
        let started = Instant::now();
        async move {
            tracing::info!("connection opened");
            serving.await;
            tracing::info!(seconds = started.elapsed().as_secs(), "connection closed");
            drop(open);
        }
        .instrument(self.span)
    }
}

/// `GET /metrics`.
pub async fn scrape(State(metrics): State<Arc<Metrics>>) -> Response {
    match metrics.encode() {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS))],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics did not encode");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
