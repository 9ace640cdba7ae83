//! The web chat client at `/` and GraphiQL at `/graphiql`, both built from
//! `playground/` by Vite.
//!
//! A release build carries the built files inside the binary, so one file
//! deploys the API and its clients, and nothing is fetched from the internet.
//! A debug build reads them from `playground/dist` at each request, so a
//! rebuilt client shows without recompiling the server. Without a build of
//! the client the server still runs, and `/` says how to build it.

use axum::{
    Router,
    extract::Path,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use rust_embed::Embed;
use tower_http::compression::CompressionLayer;

#[derive(Embed)]
#[folder = "playground/dist"]
#[allow_missing = true]
struct Built;

/// Vite names every file under `assets/` after a hash of its content, so a
/// name never changes meaning and may be cached for good; the pages that
/// name them must be checked on every visit instead.
const ASSET_CACHE: &str = "public, max-age=31536000, immutable";
const PAGE_CACHE: &str = "no-cache";

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>chatroom</title>\
<p>This server was built without its web client. \
Run <code>scripts/run</code> from the repository, or build the client with \
<code>npm --prefix playground ci &amp;&amp; npm --prefix playground run build</code> \
and build the server again.</p>\
<p>The GraphQL API is at <a href=/graphql>/graphql</a> either way.</p>";

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|headers: HeaderMap| file("index.html", headers)))
        .route(
            "/graphiql",
            get(|headers: HeaderMap| file("graphiql.html", headers)),
        )
        .route(
            "/assets/{*name}",
            get(|Path(name): Path<String>, headers: HeaderMap| async move {
                file(&format!("assets/{name}"), headers).await
            }),
        )
        // The editor behind GraphiQL is megabytes of JavaScript; compressed, a
        // quarter of that crosses the wire.
        .layer(CompressionLayer::new())
}

async fn file(path: &str, headers: HeaderMap) -> Response {
    let Some(found) = Built::get(path) else {
        return if path.ends_with(".html") {
            (StatusCode::NOT_FOUND, Html(NOT_BUILT)).into_response()
        } else {
            StatusCode::NOT_FOUND.into_response()
        };
    };
    let etag = etag_of(&found.metadata.sha256_hash());
    let cache = if path.starts_with("assets/") {
        ASSET_CACHE
    } else {
        PAGE_CACHE
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|given| given.as_bytes() == etag.as_bytes());
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        found.data.into_owned().into_response()
    };
    let response_headers = response.headers_mut();
    if let Ok(mime) = HeaderValue::from_str(found.metadata.mimetype()) {
        response_headers.insert(header::CONTENT_TYPE, mime);
    }
    response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        response_headers.insert(header::ETAG, etag);
    }
    response
}

fn etag_of(hash: &[u8; 32]) -> String {
    let hex: String = hash[..16]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("\"{hex}\"")
}
