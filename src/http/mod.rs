//! The HTTP surface: GraphQL over HTTP on `/graphql`, the WebSocket upgrade
//! there (served by `live` once its origin and rate are checked), the
//! probes, and the web client. An HTTP request is authenticated here, once,
//! into the [`Credentials`] the resolvers read; so are the checks that
//! belong to the transport: origins, sizes, batches, connection rates.

mod over_http;
mod web;

use std::{
    net::{IpAddr, SocketAddr},
    str::FromStr,
    sync::Arc,
};

use async_graphql::{Request as GraphQLOperation, Response, parser::types::OperationType};
use axum::{
    Json, Router,
    extract::{ConnectInfo, FromRequestParts, Request, State, WebSocketUpgrade},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header, request::Parts},
    middleware,
    response::{IntoResponse, Response as HttpResponse},
    routing::get,
};
use serde::Serialize;
use serde_json::json;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
};

use crate::{
    app::App,
    auth::{Credentials, Tokens, sessions},
    connections::{Peer, Seat},
    error::{Error, Lang, Malformed},
    graphql::{self, ClientAddress, Executed, Schemas},
    live,
    rate_limit::Action,
    telemetry,
};
use over_http::{Accepted, MediaType, Operations, Wire};

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
    asker: &Asker,
) -> Result<GraphQLOperation, Error> {
    operation
        .data
        .insert(graphql::loader(app.clone(), &asker.credentials));
    Ok(
        graphql::parsed(operation, app.config.limits.max_complexity)?
            .data(asker.credentials.clone())
            .data(ClientAddress(asker.client))
            .data(asker.lang),
    )
}

/// Who sends a request, and what they read.
struct Asker {
    credentials: Credentials,
    client: IpAddr,
    lang: Lang,
    accepted: Accepted,
}

impl Asker {
    async fn of(state: &HttpState, parts: &Parts) -> Self {
        let headers = &parts.headers;
        Self {
            credentials: sessions::checked(&state.app, credentials_of(&state.app.tokens, headers))
                .await,
            client: client_of(&state.app, headers, peer_of(parts)),
            lang: lang_of(headers),
            accepted: Accepted::of(headers),
        }
    }
}

/// An operation let in: with its document, or answered already.
enum Admitted {
    Run(GraphQLOperation),
    Answered(Response),
}

/// Resolves an operation's persisted query (`graphql::persisted`), or
/// refuses it: a GET may only query.
async fn admit(
    state: &HttpState,
    asker: &Asker,
    operation: GraphQLOperation,
    method: &Method,
) -> Result<Admitted, Error> {
    let app = &state.app;
    let operation = match app.persisted.resolve(app, operation, asker.client).await {
        Ok(operation) => operation,
        Err(Error::PersistedQueryNotFound) => {
            let response = graphql::error_response(Error::PersistedQueryNotFound);
            return Ok(Admitted::Answered(response));
        }
        Err(error) => return Err(error),
    };
    if method == Method::GET && graphql::operation_type(&operation) == Some(OperationType::Mutation)
    {
        return Err(Error::Malformed(Malformed::MutationOverGet));
    }
    Ok(Admitted::Run(operation))
}

/// Runs an operation let in, to its finished response.
async fn run(state: &HttpState, asker: &Asker, admitted: Admitted) -> Response {
    let response = match admitted {
        Admitted::Answered(response) => response,
        Admitted::Run(operation) => {
            let executed = Executed::of(&operation);
            let response = match prepare(&state.app, operation, asker) {
                Ok(operation) => state.schemas.serving.execute(operation).await,
                Err(error) => graphql::error_response(error),
            };
            executed.mend(response)
        }
    };
    graphql::finish(response, asker.lang, &state.app)
}

/// Whether an operation is answered with an event stream: when the client
/// prefers one, or accepts one for a subscription, which JSON cannot carry.
fn streams(media: MediaType, accepted: &Accepted, admitted: &Admitted) -> bool {
    media == MediaType::EventStream
        || (accepted.event_stream()
            && matches!(admitted, Admitted::Run(operation)
                if graphql::operation_type(operation) == Some(OperationType::Subscription)))
}

/// The event stream of an operation (`live::sse`), once its address may
/// hold one more, at its connection rate: a stream is a socket to both.
async fn event_stream(state: &HttpState, asker: Asker, admitted: Admitted) -> HttpResponse {
    let app = &state.app;
    let seat = match seated(app, asker.client).await {
        Ok(seat) => seat,
        Err(refused) => return refused,
    };
    let listener = live::sse::Listener {
        credentials: asker.credentials,
        client: asker.client,
        lang: asker.lang,
        seat,
    };
    let operation = match admitted {
        Admitted::Run(operation) => Ok(operation),
        Admitted::Answered(response) => Err(response),
    };
    live::sse::respond(app.clone(), state.schemas.clone(), listener, operation)
}

/// An HTTP response of `body` as `media`.
fn sent(status: StatusCode, media: MediaType, body: impl Serialize) -> HttpResponse {
    match serde_json::to_vec(&body) {
        Ok(body) => (status, [(header::CONTENT_TYPE, media.content_type())], body).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Error::internal(error).to_string(),
        )
            .into_response(),
    }
}

/// The answer to a request refused before its operations ran.
fn refused(state: &HttpState, lang: Lang, media: MediaType, error: Error) -> HttpResponse {
    let status = match &error {
        Error::Malformed(malformed) => over_http::status_of_malformed(*malformed),
        _ => StatusCode::BAD_REQUEST,
    };
    let response = graphql::finish(graphql::error_response(error), lang, &state.app);
    let mut answer = sent(status, media, Wire(&response));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        answer
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
    }
    answer
}

/// Answers the operations of a request (see [`over_http`]).
async fn answer(
    state: &HttpState,
    parts: &Parts,
    operations: Result<Operations, Error>,
) -> HttpResponse {
    let asker = Asker::of(state, parts).await;
    let media = match asker.accepted.best() {
        Ok(media) => media,
        Err(error) => return refused(state, asker.lang, MediaType::Json, error),
    };
    let operations = match operations {
        Ok(operations) => operations,
        Err(error) => return refused(state, asker.lang, media, error),
    };
    match operations {
        Operations::Single(operation) => {
            let admitted = match admit(state, &asker, *operation, &parts.method).await {
                Ok(admitted) => admitted,
                Err(error) => return refused(state, asker.lang, media, error),
            };
            if streams(media, &asker.accepted, &admitted) {
                return event_stream(state, asker, admitted).await;
            }
            let response = run(state, &asker, admitted).await;
            sent(over_http::status(media, &response), media, Wire(&response))
        }
        Operations::Batch(operations) => {
            let max = state.app.config.limits.max_batch;
            if operations.len() > max {
                return refused(state, asker.lang, media, Error::BatchTooLarge { max });
            }
            // One after another, as the engine runs a batch.
            let mut responses = Vec::with_capacity(operations.len());
            for operation in operations {
                let response = match admit(state, &asker, operation, &parts.method).await {
                    Ok(admitted) => run(state, &asker, admitted).await,
                    Err(error) => {
                        graphql::finish(graphql::error_response(error), asker.lang, &state.app)
                    }
                };
                responses.push(response);
            }
            let wire: Vec<Wire> = responses.iter().map(Wire).collect();
            // A batch is one JSON list, whatever else the client takes.
            let media = match media {
                MediaType::EventStream => MediaType::Json,
                media => media,
            };
            sent(StatusCode::OK, media, wire)
        }
    }
}

fn peer_of(parts: &Parts) -> Option<SocketAddr> {
    parts
        .extensions
        .get::<ConnectInfo<Peer>>()
        .map(|info| info.0.0)
}

/// `POST /graphql`: one operation or a batch, in a JSON body.
async fn graphql_post(State(state): State<HttpState>, request: Request) -> HttpResponse {
    let (parts, body) = request.into_parts();
    if let Err(error) = over_http::check_content_type(&parts.headers) {
        return answer(&state, &parts, Err(error)).await;
    }
    // Over the body limit: the limit layer's 413.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(_) => {
            return (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large",
            )
                .into_response();
        }
    };
    let operations = over_http::from_body(&body);
    answer(&state, &parts, operations).await
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL.
async fn graphql_get(State(state): State<HttpState>, request: Request) -> HttpResponse {
    let (mut parts, _) = request.into_parts();
    let wants_socket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if wants_socket {
        let peer = peer_of(&parts);
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => websocket(state, &parts.headers, peer, upgrade).await,
            Err(rejection) => rejection.into_response(),
        };
    }
    let operation = over_http::from_query_string(parts.uri.query())
        .map(|operation| Operations::Single(Box::new(operation)));
    answer(&state, &parts, operation).await
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
    let seat = match seated(&state.app, client).await {
        Ok(seat) => seat,
        Err(refused) => return refused,
    };
    let handshake = live::Handshake {
        lang: lang_of(headers),
        client,
        seat,
    };
    live::accept(state.app, state.schemas, headers, handshake, upgrade)
}

/// A seat for one more socket or event stream of `client`, within its
/// share of the instance and its rate of new connections; else the 429
/// that says which.
async fn seated(app: &App, client: IpAddr) -> Result<Seat, HttpResponse> {
    let Some(seat) = app.connections.seat(client) else {
        let refused = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many open sockets and streams from this address",
        );
        return Err(refused.into_response());
    };
    if let Err(Error::RateLimited { retry_after }) =
        app.limiter.check(Action::Connect(client)).await
    {
        let retry = [(header::RETRY_AFTER, retry_after.to_string())];
        let refused = (
            StatusCode::TOO_MANY_REQUESTS,
            retry,
            "too many new connections",
        );
        return Err(refused.into_response());
    }
    Ok(seat)
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
