//! Where a domain [`Error`] becomes a GraphQL error, once for both transports.
//!
//! Resolvers return `Error`; async-graphql's blanket `From` keeps it as the
//! error's source. Before a
//! response leaves, [`finish`] writes each error's message in the client's
//! language and its `extensions` (`code`, `field`, `retryAfter`). Errors the
//! engine raises itself (syntax, unknown fields, wrong argument types, depth
//! and complexity limits) are the client's input too: `BAD_USER_INPUT`.

use std::sync::Arc;

use async_graphql::{
    BatchRequest, BatchResponse, Data, Executor, Request, Response, ServerError, Value,
    futures_util::stream::{BoxStream, StreamExt},
};

use super::ChatSchema;
use crate::{
    error::{Error, Lang},
    metrics::Metrics,
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

/// Gives every error of a response its code, fields and message in `lang`,
/// and counts it by that code.
pub fn finish(mut response: Response, lang: Lang, metrics: &Metrics) -> Response {
    for error in &mut response.errors {
        finish_error(error, lang);
        if let Some(Value::String(code)) = error.extensions.as_ref().and_then(|e| e.get("code")) {
            metrics.error(code);
        }
    }
    response
}

/// The schema as the WebSocket transport sees it: every response it streams
/// is [`finish`]ed in the language of the socket's upgrade request.
#[derive(Clone)]
pub struct Localized {
    pub schema: ChatSchema,
    pub lang: Lang,
    pub metrics: Arc<Metrics>,
}

impl Executor for Localized {
    async fn execute(&self, request: Request) -> Response {
        finish(self.schema.execute(request).await, self.lang, &self.metrics)
    }

    async fn execute_batch(&self, batch: BatchRequest) -> BatchResponse {
        match self.schema.execute_batch(batch).await {
            BatchResponse::Single(response) => {
                BatchResponse::Single(finish(response, self.lang, &self.metrics))
            }
            BatchResponse::Batch(responses) => BatchResponse::Batch(
                responses
                    .into_iter()
                    .map(|response| finish(response, self.lang, &self.metrics))
                    .collect(),
            ),
        }
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        let (lang, metrics) = (self.lang, self.metrics.clone());
        Executor::execute_stream(&self.schema, request, session_data)
            .map(move |response| finish(response, lang, &metrics))
            .boxed()
    }
}
