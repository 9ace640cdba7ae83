//! GraphQL over HTTP, as the GraphQL Foundation's spec has it: which media
//! type a response goes out as, how a request's parameters are read from a
//! GET's query string or a POST's JSON body, and which status a response
//! gets. Every check here is made before the schema sees the request, and
//! answered with an [`Error::Malformed`].

use async_graphql::{Request as Operation, Response, ServerError, Variables};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value};

use crate::error::{Error, Malformed};

/// The media types a GraphQL response goes out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaType {
    /// `application/graphql-response+json`: the spec's own, whose status
    /// codes tell a request error (400) from an executed one (200).
    GraphQLResponse,
    /// `application/json`: every GraphQL response is a 200.
    Json,
    /// `text/event-stream`: the graphql-sse protocol's distinct connections.
    EventStream,
}

impl MediaType {
    pub fn content_type(self) -> &'static str {
        match self {
            MediaType::GraphQLResponse => "application/graphql-response+json; charset=utf-8",
            MediaType::Json => "application/json; charset=utf-8",
            MediaType::EventStream => "text/event-stream; charset=utf-8",
        }
    }

    fn of_range(range: &mime::Mime) -> Option<Self> {
        match range.essence_str() {
            "application/graphql-response+json" => Some(MediaType::GraphQLResponse),
            // A client that takes anything reads JSON best: the spec's audit
            // asks for `application/json` here.
            "application/json" | "application/*" | "*/*" => Some(MediaType::Json),
            "text/event-stream" => Some(MediaType::EventStream),
            _ => None,
        }
    }
}

/// The media types a client accepts, best first, from its `Accept` header
/// (RFC 9110 §12.5.1): by quality, then in the order given. No header is
/// `application/json`, as the spec has it; a range that does not parse, or
/// has a quality outside 0..=1 or of 0, is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted(Vec<MediaType>);

impl Accepted {
    pub fn of(headers: &HeaderMap) -> Self {
        let mut header = headers.get_all(header::ACCEPT).iter().peekable();
        if header.peek().is_none() {
            return Self(vec![MediaType::Json]);
        }
        let mut ranked: Vec<(MediaType, u16)> = header
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|range| {
                let range: mime::Mime = range.trim().parse().ok()?;
                let media = MediaType::of_range(&range)?;
                let quality = match range.get_param("q") {
                    None => 1000,
                    Some(q) => {
                        let q: f32 = q.as_str().parse().ok()?;
                        if !(0.0..=1.0).contains(&q) {
                            return None;
                        }
                        (q * 1000.0).round() as u16
                    }
                };
                (quality > 0).then_some((media, quality))
            })
            .collect();
        ranked.sort_by_key(|(_, quality)| std::cmp::Reverse(*quality));
        let mut best = Vec::with_capacity(ranked.len());
        for (media, _) in ranked {
            if !best.contains(&media) {
                best.push(media);
            }
        }
        Self(best)
    }

    /// What a query or mutation is answered as, or `Malformed::Accept`.
    pub fn best(&self) -> Result<MediaType, Error> {
        self.0
            .first()
            .copied()
            .ok_or(Error::Malformed(Malformed::Accept))
    }

    pub fn event_stream(&self) -> bool {
        self.0.contains(&MediaType::EventStream)
    }
}

/// The operations of a request: one, or a batch (a JSON list).
pub enum Operations {
    Single(Box<Operation>),
    Batch(Vec<Operation>),
}

/// A POST's body must be `application/json` (in UTF-8, the only charset
/// JSON has): a form or a text body is how a page of another origin sends
/// a request a browser does not check first (CSRF).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), Error> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<mime::Mime>().ok())
        .is_some_and(|media| {
            media.essence_str() == "application/json"
                && media
                    .get_param(mime::CHARSET)
                    .is_none_or(|charset| charset == mime::UTF_8)
        });
    match json {
        true => Ok(()),
        false => Err(Error::Malformed(Malformed::ContentType)),
    }
}

/// The operations of a POST's JSON body.
pub fn from_body(body: &[u8]) -> Result<Operations, Error> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(params)) => Ok(Operations::Single(Box::new(operation(
            params,
            Encoding::Json,
        )?))),
        Ok(Value::Array(batch)) => batch
            .into_iter()
            .map(|params| match params {
                Value::Object(params) => operation(params, Encoding::Json),
                _ => Err(Error::Malformed(Malformed::Body)),
            })
            .collect::<Result<_, _>>()
            .map(Operations::Batch),
        _ => Err(Error::Malformed(Malformed::Body)),
    }
}

/// The operation of a GET's query string.
pub fn from_query_string(query: Option<&str>) -> Result<Operation, Error> {
    let params = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .map(|(name, value)| (name.into_owned(), Value::String(value.into_owned())))
        .collect();
    operation(params, Encoding::Url)
}

/// How parameters come: a URL's are all strings, the maps among them JSON.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Url,
}

fn operation(mut params: Map<String, Value>, encoding: Encoding) -> Result<Operation, Error> {
    let wrong = |name| Error::Malformed(Malformed::Parameter(name));
    let query = match params.remove("query") {
        None | Some(Value::Null) => None,
        Some(Value::String(query)) => Some(query),
        Some(_) => return Err(wrong("query")),
    };
    let operation_name = match params.remove("operationName") {
        None | Some(Value::Null) => None,
        Some(Value::String(name)) if encoding == Encoding::Url && name.is_empty() => None,
        Some(Value::String(name)) => Some(name),
        Some(_) => return Err(wrong("operationName")),
    };
    let map = |name: &'static str, value: Option<Value>| -> Result<Map<String, Value>, Error> {
        match (value, encoding) {
            (None | Some(Value::Null), _) => Ok(Map::new()),
            (Some(Value::Object(map)), Encoding::Json) => Ok(map),
            (Some(Value::String(text)), Encoding::Url) if text.is_empty() => Ok(Map::new()),
            (Some(Value::String(text)), Encoding::Url) => match serde_json::from_str(&text) {
                Ok(Value::Object(map)) => Ok(map),
                Ok(Value::Null) => Ok(Map::new()),
                _ => Err(wrong(name)),
            },
            _ => Err(wrong(name)),
        }
    };
    let variables = map("variables", params.remove("variables"))?;
    let extensions = map("extensions", params.remove("extensions"))?;
    if query.is_none() && !extensions.contains_key("persistedQuery") {
        return Err(Error::Malformed(Malformed::NoQuery));
    }
    let mut operation = Operation::new(query.unwrap_or_default())
        .variables(Variables::from_json(Value::Object(variables)));
    operation.operation_name = operation_name;
    for (name, value) in extensions {
        let value = async_graphql::Value::from_json(value).map_err(|_| wrong("extensions"))?;
        operation.extensions.insert(name, value);
    }
    Ok(operation)
}

/// Whether `response` answers a request that was never executed: refused
/// before execution (not parsed, not valid, over a limit), it has no data
/// and no error at a path.
fn never_executed(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|error| error.path.is_empty())
}

/// A response's status: under `application/graphql-response+json`, 400 for
/// a request that was never executed; 200 for everything else.
pub fn status(media: MediaType, response: &Response) -> StatusCode {
    match media {
        MediaType::GraphQLResponse if never_executed(response) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

/// The status of a request refused before it was read whole.
pub fn status_of_malformed(malformed: Malformed) -> StatusCode {
    match malformed {
        Malformed::ContentType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Malformed::Accept => StatusCode::NOT_ACCEPTABLE,
        Malformed::MutationOverGet => StatusCode::METHOD_NOT_ALLOWED,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A response as it goes on the wire: without the `data` entry when the
/// request was never executed, as the spec has it.
pub struct Wire<'r>(pub &'r Response);

impl Serialize for Wire<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let response = self.0;
        if !never_executed(response) {
            return response.serialize(serializer);
        }
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry::<str, [ServerError]>("errors", &response.errors)?;
        if !response.extensions.is_empty() {
            map.serialize_entry("extensions", &response.extensions)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn accepting(value: &str) -> Accepted {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).expect("valid"));
        Accepted::of(&headers)
    }

    #[test]
    fn the_best_accepted_media_type_wins_by_quality_then_order() {
        use MediaType::*;
        assert_eq!(Accepted::of(&HeaderMap::new()).best().ok(), Some(Json));
        assert_eq!(accepting("*/*").best().ok(), Some(Json));
        assert_eq!(
            accepting("application/graphql-response+json, application/json;q=0.9")
                .best()
                .ok(),
            Some(GraphQLResponse)
        );
        assert_eq!(
            accepting("application/json;q=0.5, application/graphql-response+json")
                .best()
                .ok(),
            Some(GraphQLResponse)
        );
        assert_eq!(
            accepting("text/event-stream").best().ok(),
            Some(EventStream)
        );
        assert!(accepting("text/html").best().is_err());
        assert!(accepting("application/json;q=0").best().is_err());
        assert!(accepting("application/json;q=nan, ;;, /").best().is_err());
    }

    #[test]
    fn parameters_of_the_wrong_type_are_refused_by_name() {
        let refused = |body: &str| match from_body(body.as_bytes()) {
            Err(Error::Malformed(malformed)) => Some(malformed),
            _ => None,
        };
        assert_eq!(
            refused("{\"query\": 1}"),
            Some(Malformed::Parameter("query"))
        );
        assert_eq!(
            refused("{\"query\": \"{a}\", \"variables\": \"x\"}"),
            Some(Malformed::Parameter("variables"))
        );
        assert_eq!(
            refused("{\"query\": \"{a}\", \"operationName\": []}"),
            Some(Malformed::Parameter("operationName"))
        );
        assert_eq!(refused("{\"qeury\": \"{a}\"}"), Some(Malformed::NoQuery));
        assert_eq!(refused("{ \"not JSON"), Some(Malformed::Body));
        assert_eq!(refused("[1]"), Some(Malformed::Body));
        assert_eq!(
            refused("{\"query\": \"{a}\", \"variables\": null, \"extensions\": null}"),
            None
        );
    }

    #[test]
    fn a_get_reads_its_maps_as_json() {
        let operation = from_query_string(Some(
            "query=query%20T(%24n%3A%20String!)%20%7B%20a%20%7D&variables=%7B%22n%22%3A%22x%22%7D&operationName=T",
        ))
        .expect("reads");
        assert_eq!(operation.operation_name.as_deref(), Some("T"));
        assert_eq!(
            operation.variables.get(&async_graphql::Name::new("n")),
            Some(&async_graphql::Value::from("x"))
        );
        assert!(from_query_string(Some("query=%7Ba%7D&variables=%5B%5D")).is_err());
        assert!(from_query_string(None).is_err());
    }
}
