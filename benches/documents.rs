//! What a document costs to measure before the engine sees it
//! (`graphql::cost::expanded_fields`, docs/security.md): the fragment bomb
//! of issue 15, and a document of the web client's size.

use async_graphql::parser::parse_query;
use chatroom::graphql::cost::expanded_fields;
use criterion::{Criterion, criterion_group, criterion_main};

/// `query{...F0}` where each of `levels` fragments spreads the next twice.
fn bomb(levels: usize) -> String {
    let mut text = String::from("query{...F0}");
    for level in 0..levels {
        let next = level + 1;
        text.push_str(&format!(
            " fragment F{level} on Query{{...F{next} ...F{next}}}"
        ));
    }
    text.push_str(&format!(" fragment F{levels} on Query{{__typename}}"));
    text
}

const HISTORY: &str = "query History($roomIdentity: ID!, $last: Int!, $before: String) {
  messages(roomIdentity: $roomIdentity, last: $last, before: $before) {
    edges { node { ...MessageFields } }
    pageInfo { hasPreviousPage startCursor endCursor }
  }
}
fragment UserFields on User { identity username nickname sex avatar }
fragment MessageFields on Message {
  identity roomIdentity content clientId createdAt cursor sender { ...UserFields }
}";

fn documents(c: &mut Criterion) {
    let bomb = parse_query(bomb(30)).expect("the bomb parses");
    assert_eq!(expanded_fields(&bomb), Some(1 << 30));
    c.bench_function("measure a 30-level fragment bomb", |b| {
        b.iter(|| expanded_fields(&bomb))
    });
    let history = parse_query(HISTORY).expect("the web client's History parses");
    c.bench_function("measure the web client's History", |b| {
        b.iter(|| expanded_fields(&history))
    });
}

criterion_group!(benches, documents);
criterion_main!(benches);
