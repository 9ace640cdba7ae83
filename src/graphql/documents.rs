//! Parsed documents, by their text.
//!
//! An app sends the same few documents over and over, and parsing one costs
//! more than executing a `sendMessage` (docs/perf.md): every request and
//! every shared render takes its document from here instead. A parsed
//! document depends on its text alone, so one cache serves every schema in
//! the process. Each is kept with its expanded size (`cost`), measured
//! once.

use std::{
    num::NonZeroUsize,
    sync::{LazyLock, Mutex},
};

use async_graphql::{
    Request,
    parser::{
        parse_query,
        types::{DocumentOperations, ExecutableDocument, OperationDefinition, OperationType},
    },
};
use lru::LruCache;

use super::cost;
use crate::error::{Cost, Error};

/// Documents kept: far more than an app's operations.
const CAPACITY: NonZeroUsize = NonZeroUsize::new(256).unwrap();

/// Longer documents are parsed each time: they are rare, and a client
/// could otherwise fill the cache with large ones.
const MAX_CACHED_BYTES: usize = 4096;

/// A parsed document and the fields it expands to (`None`: too deep to measure).
type Measured = (ExecutableDocument, Option<u64>);

static DOCUMENTS: LazyLock<Mutex<LruCache<String, Measured>>> =
    LazyLock::new(|| Mutex::new(LruCache::new(CAPACITY)));

fn cached<T>(f: impl FnOnce(&mut LruCache<String, Measured>) -> T) -> T {
    f(&mut crate::lock(&DOCUMENTS))
}

fn measured(query: &str) -> Option<Measured> {
    let measure = |document: ExecutableDocument| {
        let fields = cost::expanded_fields(&document);
        (document, fields)
    };
    if query.len() > MAX_CACHED_BYTES {
        return parse_query(query).ok().map(measure);
    }
    if let Some(found) = cached(|documents| documents.get(query).cloned()) {
        return Some(found);
    }
    let found = measure(parse_query(query).ok()?);
    cached(|documents| documents.put(query.to_owned(), found.clone()));
    Some(found)
}

/// The parsed document of `query`, from the cache when its text was seen
/// before; `None` when it does not parse.
pub fn document(query: &str) -> Option<ExecutableDocument> {
    measured(query).map(|(document, _)| document)
}

/// The operation of `document` that `name` picks, as the engine picks it:
/// the only one when no name is given.
pub fn operation_of<'d>(
    document: &'d ExecutableDocument,
    name: Option<&str>,
) -> Option<&'d OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(operation), _) => Some(&operation.node),
        (DocumentOperations::Multiple(operations), Some(name)) => {
            operations.get(name).map(|operation| &operation.node)
        }
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().map(|operation| &operation.node)
        }
        _ => None,
    }
}

/// Whether `request` queries, mutates or subscribes; `None` when its
/// document does not parse or names no such operation.
pub fn operation_type(request: &Request) -> Option<OperationType> {
    let document = document(&request.query)?;
    operation_of(&document, request.operation_name.as_deref()).map(|operation| operation.ty)
}

/// `request` with its document parsed (see [`document`]), or the error for
/// a document that expands to more fields than `max_fields` (the complexity
/// limit: every field counts at least one there). Both transports run every
/// request through here before the engine sees it. A document that does not
/// parse is left to the schema to report.
pub fn parsed(mut request: Request, max_fields: usize) -> Result<Request, Error> {
    if let Some((document, fields)) = measured(&request.query) {
        let max = u64::try_from(max_fields).unwrap_or(u64::MAX);
        if fields.is_none_or(|fields| fields > max) {
            return Err(Error::TooCostly(Cost::Fields { max }));
        }
        request.set_parsed_query(document);
    }
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_that_parses_is_kept_for_the_next_request() {
        let query = "query KeptForNext { me { username } }";
        parsed(Request::new(query), 100).expect("small");
        assert!(cached(|documents| documents.contains(query)));
    }

    #[test]
    fn broken_and_oversized_documents_are_left_to_the_schema() {
        let broken = "query { me { ";
        parsed(Request::new(broken), 100).expect("left to the schema");
        assert!(!cached(|documents| documents.contains(broken)));

        let huge = format!("{{ me {{ username }} }} # {}", "x".repeat(MAX_CACHED_BYTES));
        parsed(Request::new(huge.clone()), 100).expect("small");
        assert!(!cached(|documents| documents.contains(&huge)));
    }
}
