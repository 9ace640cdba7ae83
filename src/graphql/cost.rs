//! What one document may make the server do, bounded before the work.
//!
//! async-graphql walks a document's fragment spreads anew wherever they are
//! spread, in its depth check, its validation and its complexity count: a
//! kilobyte of fragments that each spread the next twice expands to billions
//! of fields, and one anonymous request took a core for seconds and then all
//! the memory there was. [`expanded_fields`] measures a document's expanded
//! size with each fragment counted once (memoized), as it is parsed
//! (`documents::parsed`, which both transports call before the engine sees
//! a request), and one that could not pass the complexity limit anyway is
//! refused. Not an engine extension: with any extension installed, the
//! engine resolves every field through a slower path (docs/perf.md). The complexity itself counts the
//! children of a paged field once per item of the page ([`page`]), so that
//! aliases of large pages cannot multiply a response; [`bound_response`]
//! caps what is left.

use std::collections::HashMap;

use async_graphql::{
    Name, Response, Value,
    parser::types::{ExecutableDocument, Selection, SelectionSet},
};

use super::errors;
use crate::error::{Cost, Error};

/// Deeper than any document the depth limits let through (the parser allows
/// 64 nested selection sets, the engine 32 levels of spreads): a chain of
/// spreads past this is refused rather than followed.
pub const MAX_NESTING: usize = 128;

/// The fields `document`'s largest operation expands to, each fragment
/// measured once however often it is spread; `None` when its spreads nest
/// deeper than [`MAX_NESTING`]. A spread of a fragment that spreads itself
/// counts nothing here: validation refuses the cycle.
pub fn expanded_fields(document: &ExecutableDocument) -> Option<u64> {
    let mut measure = Measure {
        document,
        fragments: HashMap::new(),
    };
    document
        .operations
        .iter()
        .try_fold(0, |largest: u64, (_, operation)| {
            Some(largest.max(measure.fields(&operation.node.selection_set.node, 0)?))
        })
}

struct Measure<'a> {
    document: &'a ExecutableDocument,
    fragments: HashMap<&'a Name, u64>,
}

impl<'a> Measure<'a> {
    fn fields(&mut self, set: &'a SelectionSet, nesting: usize) -> Option<u64> {
        if nesting > MAX_NESTING {
            return None;
        }
        set.items.iter().try_fold(0u64, |total, selection| {
            let fields = match &selection.node {
                Selection::Field(field) => {
                    1u64.saturating_add(self.fields(&field.node.selection_set.node, nesting + 1)?)
                }
                Selection::InlineFragment(inline) => {
                    self.fields(&inline.node.selection_set.node, nesting + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    match self.fragments.get(name) {
                        Some(&known) => known,
                        None => {
                            self.fragments.insert(name, 0);
                            let fields = match self.document.fragments.get(name) {
                                Some(fragment) => {
                                    self.fields(&fragment.node.selection_set.node, nesting + 1)?
                                }
                                None => 0,
                            };
                            self.fragments.insert(name, fields);
                            fields
                        }
                    }
                }
            };
            Some(total.saturating_add(fields))
        })
    }
}

/// The complexity of a field that returns a page: itself, and its children
/// once per item the page may hold (`first` or `last`, else `default`), as
/// GitHub's API counts. A size below one counts one: the resolver refuses
/// it before any work, with the field named.
pub fn page(
    first: Option<i32>,
    last: Option<i32>,
    default: usize,
    child_complexity: usize,
) -> usize {
    let size = match (first, last) {
        (None, None) => default,
        (first, last) => usize::try_from(first.unwrap_or(0).max(last.unwrap_or(0)))
            .unwrap_or(0)
            .max(1),
    };
    each(size, child_complexity)
}

/// The complexity of a field that returns an object for each of `items`
/// (a page, or `nodes(ids:)`'s ids): itself, and its children once per item.
pub fn each(items: usize, child_complexity: usize) -> usize {
    items.saturating_mul(child_complexity).saturating_add(1)
}

/// The JSON size of `value`, give or take its white space, counted no
/// further than `limit`.
fn json_bytes(value: &Value, limit: usize) -> usize {
    let mut total = 0usize;
    let mut pending = vec![value];
    while let Some(value) = pending.pop() {
        total = total.saturating_add(match value {
            Value::Null => 4,
            Value::Boolean(_) => 5,
            Value::Number(number) => number.to_string().len(),
            Value::String(text) => text.len() + 2,
            Value::Enum(name) => name.len() + 2,
            Value::Binary(bytes) => bytes.len().saturating_mul(4),
            Value::List(items) => {
                pending.extend(items.iter());
                items.len() + 1
            }
            Value::Object(fields) => {
                pending.extend(fields.values());
                fields.keys().map(|key| key.len() + 4).sum::<usize>() + 1
            }
        });
        if total > limit {
            break;
        }
    }
    total
}

/// `response`, or only an error in its stead when its data would serialize
/// to more than `max_bytes`: a bound on what one request can make the server
/// build and send, whatever the counts above let through.
pub fn bound_response(response: Response, max_bytes: usize) -> Response {
    if json_bytes(&response.data, max_bytes) <= max_bytes {
        return response;
    }
    errors::error_response(Error::TooCostly(Cost::ResponseBytes { max: max_bytes }))
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    /// `query{...F0}` where each of `levels` fragments spreads the next twice.
    fn bomb(levels: usize) -> String {
        let mut text = String::from("query{...F0}");
        for level in 0..levels {
            text.push_str(&format!(
                " fragment F{level} on Query{{...F{next} ...F{next}}}",
                next = level + 1
            ));
        }
        text.push_str(&format!(" fragment F{levels} on Query{{__typename}}"));
        text
    }

    #[test]
    fn a_fragment_is_measured_once_however_often_it_is_spread() {
        let document = parse_query(bomb(30)).expect("the bomb parses");
        assert_eq!(expanded_fields(&document), Some(1 << 30));
    }

    #[test]
    fn fields_of_inline_fragments_and_nested_selections_count_once_each() {
        let document = parse_query(
            "query Me { me { username ... on User { nickname } } }
             query Other { rooms { name } }",
        )
        .expect("parses");
        assert_eq!(expanded_fields(&document), Some(3));
    }

    #[test]
    fn a_chain_of_spreads_deeper_than_any_limit_is_refused_unmeasured() {
        let mut text = String::from("query{...F0}");
        for level in 0..=MAX_NESTING {
            text.push_str(&format!(" fragment F{level} on Query{{...F{}}}", level + 1));
        }
        let document = parse_query(text).expect("parses");
        assert_eq!(expanded_fields(&document), None);
    }

    #[test]
    fn a_page_counts_its_children_once_per_item() {
        assert_eq!(page(None, Some(100), 50, 3), 301);
        assert_eq!(page(Some(10), None, 50, 3), 31);
        assert_eq!(page(None, None, 50, 3), 151);
        assert_eq!(page(Some(-5), None, 50, 3), 4);
        assert_eq!(page(Some(i32::MAX), None, 50, usize::MAX), usize::MAX);
    }

    #[test]
    fn a_response_over_the_bound_is_only_an_error() {
        let big = Value::List(vec![Value::String("x".repeat(100)); 100]);
        let response = bound_response(Response::new(big.clone()), 5_000);
        assert_eq!(response.data, Value::Null);
        assert!(response.errors[0].source::<Error>().is_some());
        let kept = bound_response(Response::new(big), 20_000);
        assert_ne!(kept.data, Value::Null);
    }
}
