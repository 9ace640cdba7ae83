//! The HTTP surface: GraphQL over HTTP and WebSocket on `/graphql`, and the
//! probes. Authentication happens here, once per request or socket, into the
//! [`Credentials`] the resolvers read.

use std::{
    str::FromStr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use async_graphql::{
    Data,
    http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket as GraphQLWebSocket, WebSocketProtocols, WsMessage},
};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::{
    Json, Router,
    extract::{
        FromRequest, FromRequestParts, Request, State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use futures_util::{SinkExt, StreamExt, future};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;

use crate::{
    app::App,
    auth::{Credentials, Tokens},
    error::Lang,
    graphql::{self, ChatSchema, Localized},
    telemetry::{self, Connection},
};

/// graphql-transport-ws close code for a refused `connection_init`.
const CLOSE_FORBIDDEN: u16 = 4403;

#[derive(Clone)]
struct HttpState {
    app: Arc<App>,
    schema: ChatSchema,
}

pub fn router(app: Arc<App>) -> Router {
    let schema = graphql::schema(app.clone(), &app.config);
    let max_body = app.config.max_body_bytes;
    let metrics = app.metrics.clone();
    let routes = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/metrics",
            get(telemetry::scrape).with_state(metrics.clone()),
        )
        .layer(RequestBodyLimitLayer::new(max_body))
        .with_state(HttpState { app, schema });
    telemetry::observe(routes, metrics)
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

async fn execute(
    state: &HttpState,
    headers: &HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    let credentials = credentials_of(&state.app.tokens, headers);
    let loader = graphql::loader(state.app.clone(), &credentials);
    let request = request.into_inner().data(credentials).data(loader);
    let response = state.schema.execute(request).await;
    graphql::finish(response, lang_of(headers), &state.app.metrics).into()
}

async fn graphql_post(
    State(state): State<HttpState>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> GraphQLResponse {
    execute(&state, &headers, request).await
}

/// `GET /graphql`: a WebSocket upgrade, or a query in the URL.
async fn graphql_get(State(state): State<HttpState>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    let wants_socket = parts
        .headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if wants_socket {
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => websocket(state, &parts.headers, upgrade),
            Err(rejection) => rejection.into_response(),
        };
    }
    let headers = parts.headers.clone();
    match GraphQLRequest::from_request(Request::from_parts(parts, body), &state).await {
        Ok(request) => execute(&state, &headers, request).await.into_response(),
        Err(rejection) => rejection.into_response(),
    }
}

/// The first subprotocol offered that we speak: `graphql-transport-ws` or the
/// legacy `graphql-ws`.
fn protocol_of(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|offered| WebSocketProtocols::from_str(offered.trim()).ok())
}

fn websocket(state: HttpState, headers: &HeaderMap, upgrade: WebSocketUpgrade) -> Response {
    let Some(protocol) = protocol_of(headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "offer the graphql-transport-ws or graphql-ws subprotocol",
        )
            .into_response();
    };
    let executor = Localized {
        schema: state.schema.clone(),
        lang: lang_of(headers),
        metrics: state.app.metrics.clone(),
    };
    let connection = Connection::new(state.app.metrics.clone());
    let tokens = state.app.clone();
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            connection.serve(serve_socket(socket, executor, protocol, tokens))
        })
}

/// Credentials from a `connection_init` payload: `{"token": T}` or
/// `{"Authorization": "Bearer T"}`; neither is an anonymous connection.
fn credentials_of_payload(tokens: &Tokens, payload: &serde_json::Value) -> Credentials {
    let field = |name: &str| {
        payload
            .as_object()?
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    };
    match (field("token"), field("authorization")) {
        (Some(Some(token)), _) => tokens.credentials(token),
        (None, Some(Some(value))) => tokens.from_authorization(Some(value)),
        (None, None) => Credentials::Anonymous,
        _ => Credentials::Invalid,
    }
}

/// Runs one GraphQL socket. async-graphql speaks both protocols; what we add
/// is authentication at `connection_init`, and the close code 4403 when it
/// fails (async-graphql would close with a generic 1002).
async fn serve_socket(
    socket: WebSocket,
    executor: Localized,
    protocol: WebSocketProtocols,
    app: Arc<App>,
) {
    let refused = Arc::new(AtomicBool::new(false));
    let on_init = {
        let refused = refused.clone();
        move |payload: serde_json::Value| async move {
            match credentials_of_payload(&app.tokens, &payload) {
                Credentials::Invalid => {
                    refused.store(true, Ordering::Relaxed);
                    Err(async_graphql::Error::new(
                        "Forbidden: invalid or expired token",
                    ))
                }
                credentials => {
                    let mut data = Data::default();
                    data.insert(graphql::loader(app.clone(), &credentials));
                    data.insert(credentials);
                    Ok(data)
                }
            }
        }
    };
    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|message| future::ready(message.is_ok()))
        .filter_map(|message| {
            future::ready(match message {
                Ok(message @ (Message::Text(_) | Message::Binary(_))) => Some(message.into_data()),
                _ => None,
            })
        });
    let mut output = GraphQLWebSocket::new(executor, input, protocol)
        .on_connection_init(on_init)
        .map(|message| match message {
            WsMessage::Text(text) => Message::Text(text.into()),
            WsMessage::Close(code, reason) => {
                let code = if refused.load(Ordering::Relaxed) {
                    CLOSE_FORBIDDEN
                } else {
                    code
                };
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }))
            }
        });
    while let Some(message) = output.next().await {
        if sink.send(message).await.is_err() {
            break;
        }
    }
}

async fn healthz() -> &'static str {
    "ok"
}

/// 200 when the store and (if configured) Redis answer; else 503 naming the failed one.
async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    let store = state.app.store.ping().await;
    let redis = match state.app.config.redis_url {
        Some(_) => Some(state.app.kv.ping().await),
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
