//! Where a domain [`Error`] becomes a GraphQL error, once for both transports.
//!
//! Resolvers return `Error`; async-graphql's blanket `From` keeps it as the
//! error's source. Before a
//! response leaves, [`finish`] writes each error's message in the client's
//! language and its `extensions` (`code`, `field`, `retryAfter`). Errors the
//! engine raises itself (syntax, unknown fields, wrong argument types, depth
//! and complexity limits) are the client's input too: `BAD_USER_INPUT`.

use async_graphql::{Pos, Response, ServerError, Value};

use crate::{
    app::App,
    error::{Error, Lang},
};

fn finish_error(error: &mut ServerError, lang: Lang) {
    let domain = error.source::<Error>().map(|domain| {
        let retry_after = match domain {
            Error::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        };
        (
            domain.message(lang),
            domain.code(),
            domain.field(),
            retry_after,
        )
    });
    let extensions = error.extensions.get_or_insert_with(Default::default);
    match domain {
        Some((message, code, field, retry_after)) => {
            extensions.set("code", code);
            if let Some(field) = field {
                extensions.set("field", field);
            }
            if let Some(seconds) = retry_after {
                extensions.set("retryAfter", Value::from(seconds));
            }
            error.message = message;
        }
        None => {
            if extensions.get("code").is_none() {
                extensions.set("code", "BAD_USER_INPUT");
            }
        }
    }
}

/// Bounds a response's size ([`super::cost::bound_response`]), gives every
/// error its code, fields and message in `lang`, and counts it by that code.
pub fn finish(response: Response, lang: Lang, app: &App) -> Response {
    let mut response = super::cost::bound_response(response, app.config.limits.max_response_bytes);
    let metrics = &app.metrics;
    for error in &mut response.errors {
        finish_error(error, lang);
        if let Some(Value::String(code)) = error.extensions.as_ref().and_then(|e| e.get("code")) {
            metrics.error(code);
        }
    }
    response
}

/// A response that is only `error`, as the engine would give it had a
/// resolver returned it; [`finish`] it like any other.
pub fn error_response(error: Error) -> Response {
    Response::from_errors(vec![server_error(error)])
}

/// `error` as the engine carries a resolver's.
pub fn server_error(error: Error) -> ServerError {
    async_graphql::Error::from(error).into_server_error(Pos::default())
}
