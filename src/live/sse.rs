//! GraphQL over Server-Sent Events, as the graphql-sse protocol has it in
//! its "distinct connections" mode, on `/graphql` itself (as GraphQL Yoga
//! serves it): one HTTP response per operation, an `event: next` per
//! result and an `event: complete` at the end. For networks that break
//! WebSockets.
//!
//! An operation runs exactly as on a socket ([`Executor`]): a room's
//! subscription is served from the shared renders, replays from `after:`,
//! and ends with an error when delivery cannot go on. What a socket does
//! for itself, a stream does too: it holds a seat of its address (a stream
//! is a socket to `CHATROOM_MAX_SOCKETS_PER_ADDRESS`), ends when its token
//! expires or stops counting (a password change) with an `UNAUTHENTICATED`
//! result, ends at shutdown, and sends a comment now and then so that
//! proxies keep it open.

use std::{convert::Infallible, sync::Arc, time::Duration};

use async_graphql::{Request, Response};
use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response as HttpResponse},
};
use futures_util::StreamExt;
use tokio::sync::Notify;

use super::{
    plan::Plan,
    render::{Executor, Payloads},
    socket::SHARED_DOCUMENT_BYTES,
};
use crate::{
    app::App,
    auth::{Credentials, sessions},
    connections::Seat,
    error::{Error, Lang},
    graphql::Schemas,
};

/// How often an idle stream says it is alive: under the 30 s or 60 s at
/// which proxies commonly drop a silent response.
const KEEP_ALIVE: Duration = Duration::from_secs(12);

/// Who a stream is for, as `http` learnt it.
pub struct Listener {
    pub credentials: Credentials,
    pub client: std::net::IpAddr,
    pub lang: Lang,
    pub seat: Seat,
}

/// The event stream of `operation`; of `answered` when the request was
/// answered before it could run (its persisted query is not known).
pub fn respond(
    app: Arc<App>,
    schemas: Schemas,
    listener: Listener,
    operation: Result<Request, Response>,
) -> HttpResponse {
    let executor = Executor {
        app: app.clone(),
        schemas,
        credentials: listener.credentials.clone(),
        client: listener.client,
        lang: listener.lang,
    };
    let payloads = match operation {
        Err(answered) => executor.answered(answered),
        Ok(request) => {
            let payload = serde_json::json!({
                "query": request.query,
                "variables": request.variables,
                "operationName": request.operation_name,
            });
            match Plan::of(&payload).filter(|plan| plan.key.len() <= SHARED_DOCUMENT_BYTES) {
                Some(plan) => executor.clone().start(plan),
                None => executor.execute(request),
            }
        }
    };
    let body = events(app, executor, listener, payloads);
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx would otherwise hold the events back in its buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn next(payload: &str) -> String {
    format!("event: next\ndata: {payload}\n\n")
}

/// The text of the stream: a first comment (some browsers show nothing of
/// a response before its first bytes), the results, keep-alive comments,
/// and `complete`.
fn events(
    app: Arc<App>,
    executor: Executor,
    listener: Listener,
    mut payloads: Payloads,
) -> impl futures_util::Stream<Item = Result<String, Infallible>> + Send {
    async_stream::stream! {
        let _seat = listener.seat;
        yield Ok(":\n\n".to_owned());
        let ended = token_ended(app.clone(), listener.credentials);
        tokio::pin!(ended);
        let shutdown = app.shutdown.clone().cancelled_owned();
        tokio::pin!(shutdown);
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.reset();
        loop {
            tokio::select! {
                payload = payloads.next() => match payload {
                    Some(payload) => yield Ok(next(&payload)),
                    None => break,
                },
                () = &mut ended => {
                    let mut ended = executor.failed(Error::Unauthenticated);
                    if let Some(payload) = ended.next().await {
                        yield Ok(next(&payload));
                    }
                    break;
                }
                () = &mut shutdown => break,
                _ = keep_alive.tick() => yield Ok(":\n\n".to_owned()),
            }
        }
        yield Ok("event: complete\ndata:\n\n".to_owned());
    }
}

/// Resolves when the token of `credentials` stops counting: it expires,
/// or a change of password voids it. Never for a request without one.
async fn token_ended(app: Arc<App>, credentials: Credentials) {
    let Credentials::Valid(viewer, grant) = credentials else {
        return std::future::pending().await;
    };
    let left = (grant.expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    let expiry = tokio::time::sleep(left);
    tokio::pin!(expiry);
    let changed = Arc::new(Notify::new());
    app.sessions.watch(viewer.identity, &changed);
    loop {
        tokio::select! {
            () = &mut expiry => return,
            () = changed.notified() => {
                if !sessions::admits(&app, &viewer, &grant).await.unwrap_or(false) {
                    return;
                }
            }
        }
    }
}
