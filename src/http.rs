//! The HTTP surface: GraphQL over HTTP on `/graphql`, the WebSocket upgrade
//! there (served by `live` once its origin and rate are checked), the
//! probes, and the web client. An HTTP request is authenticated here, once,
//! into the [`Credentials`] the resolvers read; so are the checks that
//! belong to the transport: origins, sizes, batches, connection rates.

mod web;

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use async_graphql::{BatchRequest, BatchResponse, Request as GraphQLOperation, Response};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse};
use axum::{
    Json, Router,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware,
    response::{IntoResponse, Response as HttpResponse},
    routing::get,
};
use serde_json::json;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
};

use crate::{
    app::App,
    auth::{Credentials, Tokens, sessions},
    connections::Peer,
    error::{Error, Lang},
    graphql::{self, ClientAddress, Schemas},
    live,
    rate_limit::Action,
    telemetry,
};

#[derive(Clone)]
struct HttpState {
    app: Arc<App>,
    schemas: Schemas,
}

pub fn router(app: Arc<App>) -> Router {
    let schemas = graphql::schemas(&app);
    let max_body = app.config.limits.max_body_bytes;
    let cors = {
        let allowed = app.config.allowed_origins.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(
                move |origin: &HeaderValue, parts: &Parts| {
                    origin_allowed(origin, &parts.headers, &allowed)
                },
            ))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT_LANGUAGE,
            ])
    };
    let metrics = app.metrics.clone();
    let routes = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(telemetry::scrape).with_state(metrics.clone()),
        )
        .merge(web::router())
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(cors)
        .layer(middleware::from_fn_with_state(app.clone(), within_capacity))
        .with_state(HttpState { app, schemas });
    telemetry::observe(routes, metrics)
}

/// Whether a page from `origin` may use the API: the server's own origin,
/// localhost (development), or one of `CHATROOM_ALLOWED_ORIGINS`.
fn origin_allowed(origin: &HeaderValue, headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = origin.to_str().ok().and_then(|o| url::Url::parse(o).ok()) else {
        return false;
    };
    let Some(host) = origin.host_str() else {
        return false;
    };
    if matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
        return true;
    }
    let authority = match origin.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let same_origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case(&authority));
    same_origin
        || allowed
            .iter()
            .filter_map(|a| url::Url::parse(a).ok())
            .any(|a| a.origin() == origin.origin())
}

fn lang_of(headers: &HeaderMap) -> Lang {
    headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|value| value.to_str().ok())
        .map_or(Lang::En, Lang::from_accept_language)
}

fn credentials_of(tokens: &Tokens, headers: &HeaderMap) -> Credentials {
    match headers.get(header::AUTHORIZATION) {
        None => Credentials::Anonymous,
        Some(value) => match value.to_str() {
            Ok(value) => tokens.from_authorization(Some(value)),
            Err(_) => Credentials::Invalid,
        },
    }
}

const FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address: the peer, or (only when the proxy in front is
/// trusted to set it) the last address in `X-Forwarded-For`.
fn client_of(app: &App, headers: &HeaderMap, peer: Option<SocketAddr>) -> IpAddr {
    let forwarded = app
        .config
        .trust_forwarded_for
        .then(|| {
            headers
                .get(FORWARDED_FOR)?
                .to_str()
                .ok()?
                .rsplit(',')
                .next()
        })
        .flatten()
        .and_then(|last| IpAddr::from_str(last.trim()).ok());
    forwarded
        .or(peer.map(|p| p.ip()))
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Gives an operation its parsed document, once its cost is within bounds
/// (`graphql::parsed`), and what its resolvers read: who asks, from where,
/// and a loader to batch its store reads.
fn prepare(
    app: &Arc<App>,
    mut operation: GraphQLOperation,
    credentials: &Credentials,
    client: IpAddr,
    lang: Lang,
) -> Result<GraphQLOperation, Error> {
    operation
        .data
        .insert(graphql::loader(app.clone(), credentials));
    Ok(
        graphql::parsed(operation, app.config.limits.max_complexity)?
            .data(credentials.clone())
            .data(ClientAddress(client))
            .data(lang),
    )
}

/// Runs one operation, or answers why it may not run.
async fn run(state: &HttpState, operation: Result<GraphQLOperation, Error>) -> Response {
    match operation {
        Ok(operation) => state.schemas.serving.execute(operation).await,
        Err(error) => graphql::error_response(error),
    }
}

async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    batch: BatchRequest,
) -> GraphQLResponse {
    let lang = lang_of(headers);
    let max = state.app.config.limits.max_batch;
    if let BatchRequest::Batch(operations) = &batch
        && operations.len() > max
    {
        let response = graphql::error_response(Error::BatchTooLarge { max });
        return graphql::finish(response, lang, &state.app).into();
    }
    let credentials =
        sessions::checked(&state.app, credentials_of(&state.app.tokens, headers)).await;
    let client = client_of(&state.app, headers, peer);
    let app = &state.app;
    match batch {
        BatchRequest::Single(operation) => {
            let response = run(state, prepare(app, operation, &credentials, client, lang)).await;
            graphql::finish(response, lang, app).into()
        }
        // One after another, as the engine runs a batch.
        BatchRequest::Batch(operations) => {
            let mut responses = Vec::with_capacity(operations.len());
            for operation in operations {
                let response =
                    run(state, prepare(app, operation, &credentials, client, lang)).await;
                responses.push(graphql::finish(response, lang, app));
            }
            BatchResponse::Batch(responses).into()
        }
    }
}

fn peer_of(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<Peer>>()
        .map(|info| info.0.0)
}

/// Reads a GraphQL request (one operation or a batch) from an HTTP request and answers it.
async fn answer(state: &HttpState, request: Request) -> HttpResponse {
    let (parts, body) = request.into_parts();
    let (headers, peer) = (parts.headers.clone(), peer_of(&parts));
    let read =
        GraphQLBatchRequest::<async_graphql_axum::rejection::GraphQLRejection>::from_request(
            Request::from_parts(parts, body),
            state,
        )
        .await;
    match read {
        Ok(batch) => execute(state, &headers, peer, batch.into_inner())
            .await
            .into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

async fn graphql_post(State(state): State<HttpState>, request: Request) -> HttpResponse {
    answer(&state, request).await
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL.
async fn graphql_get(State(state): State<HttpState>, request: Request) -> HttpResponse {
    let (mut parts, body) = request.into_parts();
    let peer = peer_of(&parts);
    let wants_socket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if wants_socket {
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => websocket(state, &parts.headers, peer, upgrade).await,
            Err(rejection) => rejection.into_response(),
        };
    }
    answer(&state, Request::from_parts(parts, body)).await
}

/// Hands a GraphQL socket over to `live`, after the checks a browser cannot
/// be trusted to make: a page of a foreign origin may not open a socket in
/// its visitor's name (cross-site WebSocket hijacking), and one address may
/// not open sockets without bound.
async fn websocket(
    state: HttpState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    upgrade: WebSocketUpgrade,
) -> HttpResponse {
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin_allowed(origin, headers, &state.app.config.allowed_origins)
    {
        return (StatusCode::FORBIDDEN, "this origin may not open a socket").into_response();
    }
    let client = client_of(&state.app, headers, peer);
    let Some(seat) = state.app.connections.seat(client) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            "too many open sockets from this address",
        )
            .into_response();
    };
    if let Err(Error::RateLimited { retry_after }) =
        state.app.limiter.check(Action::Connect(client)).await
    {
        let retry = [(header::RETRY_AFTER, retry_after.to_string())];
        return (
            StatusCode::TOO_MANY_REQUESTS,
            retry,
            "too many new connections",
        )
            .into_response();
    }
    let handshake = live::Handshake {
        lang: lang_of(headers),
        client,
        seat,
    };
    live::accept(state.app, state.schemas, headers, handshake, upgrade)
}

/// HTTP 503 on a connection over the instance's capacity, which the
/// client closes: the descriptors it would keep belong to the store, Redis
/// and the probes. A load balancer sends the client elsewhere.
async fn within_capacity(
    State(app): State<Arc<App>>,
    request: Request,
    next: middleware::Next,
) -> HttpResponse {
    if app.connections.over_capacity() {
        let close = [(header::CONNECTION, "close"), (header::RETRY_AFTER, "1")];
        return (StatusCode::SERVICE_UNAVAILABLE, close, "server at capacity").into_response();
    }
    next.run(request).await
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the store and (if configured) Redis answer; else 503 naming the failed one.
async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let store = state.app.store.ping().await;
    let redis = match &state.app.shared_kv {
        Some(kv) => Some(kv.ping().await),
        None => None,
    };
    let status = |result: &crate::error::Result<()>| if result.is_ok() { "ok" } else { "down" };
    let ready = store.is_ok() && redis.as_ref().is_none_or(|r| r.is_ok());
    let mut body = json!({ "store": status(&store) });
    if let Some(redis) = &redis {
        body["redis"] = json!(status(redis));
    }
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}
