//! A document's cost, measured before the engine sees it
//! (`graphql::cost::expanded_fields`).
//!
//! The input is query text. The properties: the measure ends at once on
//! any document (libFuzzer's timeout catches one that does not: a fragment
//! bomb of thirty levels took seconds, then all the memory, before), and
//! it counts what a naive expansion counts, wherever that expansion is
//! small enough to finish and the document has no cycle of spreads (which
//! validation refuses anyway).

#![no_main]

use std::collections::HashSet;

use async_graphql::{
    Name,
    parser::{
        parse_query,
        types::{ExecutableDocument, Selection, SelectionSet},
    },
};
use chatroom::graphql::cost::{MAX_NESTING, expanded_fields};
use libfuzzer_sys::fuzz_target;

/// Selections a naive expansion may visit before it gives up.
const BUDGET: u64 = 200_000;

/// Why a naive expansion gave up.
enum GaveUp {
    Budget,
    Cycle,
    Nesting,
}

struct Naive<'a> {
    document: &'a ExecutableDocument,
    path: HashSet<&'a Name>,
    visited: u64,
}

impl<'a> Naive<'a> {
    fn fields(&mut self, set: &'a SelectionSet, nesting: usize) -> Result<u64, GaveUp> {
        if nesting > MAX_NESTING {
            return Err(GaveUp::Nesting);
        }
        let mut total = 0u64;
        for selection in &set.items {
            self.visited += 1;
            if self.visited > BUDGET {
                return Err(GaveUp::Budget);
            }
            total += match &selection.node {
                Selection::Field(field) => {
                    1 + self.fields(&field.node.selection_set.node, nesting + 1)?
                }
                Selection::InlineFragment(inline) => {
                    self.fields(&inline.node.selection_set.node, nesting + 1)?
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    let Some(fragment) = self.document.fragments.get(name) else {
                        continue;
                    };
                    if !self.path.insert(name) {
                        return Err(GaveUp::Cycle);
                    }
                    let fields = self.fields(&fragment.node.selection_set.node, nesting + 1);
                    self.path.remove(name);
                    fields?
                }
            };
        }
        Ok(total)
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(document) = parse_query(text) else {
        return;
    };
    let measured = expanded_fields(&document);
    let mut naive = Naive {
        document: &document,
        path: HashSet::new(),
        visited: 0,
    };
    let mut largest = 0;
    for (_, operation) in document.operations.iter() {
        match naive.fields(&operation.node.selection_set.node, 0) {
            Ok(fields) => largest = largest.max(fields),
            Err(GaveUp::Budget | GaveUp::Cycle) => return,
            // The measure reuses a fragment measured where it nested less.
            Err(GaveUp::Nesting) => return,
        }
    }
    assert_eq!(measured, Some(largest), "{text}");
});
