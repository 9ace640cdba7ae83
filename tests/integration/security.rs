//! What one request, socket, user or address can make the server do: every
//! cost bounded before the work, and refused with API.md's codes.

use serde_json::{Value, json};

use crate::helpers::{Backends, TestApp, error_code};

/// `query{...F0}` where each of `levels` fragments spreads the next twice:
/// a kilobyte that expands to 2^levels fields.
fn fragment_bomb(root: &str, levels: usize) -> String {
    let mut text = format!("{root}{{...F0}}");
    for level in 0..levels {
        let next = level + 1;
        text.push_str(&format!(
            " fragment F{level} on Query{{...F{next} ...F{next}}}"
        ));
    }
    text.push_str(&format!(" fragment F{levels} on Query{{__typename}}"));
    text
}

fn error_message(answer: &Value) -> &str {
    answer["errors"][0]["message"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_fragment_bomb_is_refused_by_its_expanded_size_over_http_and_websocket() {
    let app = TestApp::spawn(Backends::Embedded, "fragment_bomb").await;
    let bomb = fragment_bomb("query", 30);
    assert!(bomb.len() < 1500, "the bomb is small: {} bytes", bomb.len());

    let answer = app.anonymous(&bomb, json!({})).await;
    assert_eq!(error_code(&answer), "BAD_USER_INPUT", "{answer}");
    assert!(
        error_message(&answer).contains("expands to more than 2000 fields"),
        "{answer}"
    );

    let mut socket = app.socket("graphql-transport-ws").await;
    socket.init_ok(json!({})).await;
    socket.subscribe("1", &bomb, json!({})).await;
    let refused = socket.next_of("1").await.expect("an answer");
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    assert!(
        error_message(&refused).contains("expands to more than"),
        "{refused}"
    );

    let fine = app.anonymous("{ __typename }", json!({})).await;
    assert_eq!(fine["data"]["__typename"], "Query");
}

#[tokio::test]
async fn aliases_of_large_pages_count_each_item_of_each_page() {
    let app = TestApp::spawn(Backends::Embedded, "page_complexity").await;
    let ann = app.register("ann").await;
    let room = app.group(&ann, "g", &[]).await;
    let page = "messages(roomIdentity: $r, last: 100) { edges { node { content } } }";
    let aliases: String = (0..100).map(|i| format!(" a{i}: {page}")).collect();
    let amplified = app
        .as_user(
            &ann,
            &format!("query($r: ID!) {{{aliases} }}"),
            json!({ "r": room }),
        )
        .await;
    assert_eq!(error_code(&amplified), "BAD_USER_INPUT", "{amplified}");
    assert!(error_message(&amplified).contains("complex"), "{amplified}");

    // One full page with every field the web client shows passes.
    let history = app
        .as_user(
            &ann,
            "query($r: ID!) { messages(roomIdentity: $r, last: 100) {
                pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
                edges { cursor node { identity content createdAt cursor clientId
                    sender { identity username nickname avatar } } } } }",
            json!({ "r": room }),
        )
        .await;
    assert!(history["errors"].is_null(), "{history}");
}

#[tokio::test]
async fn a_response_larger_than_its_bound_is_only_an_error() {
    let app = TestApp::spawn_with(Backends::Embedded, "response_bound", |c| {
        c.limits.max_response_bytes = 4096;
    })
    .await;
    let ann = app.register("ann").await;
    let room = app.group(&ann, "g", &[]).await;
    for _ in 0..3 {
        let sent = app.send(&ann, &room, &"x".repeat(2000)).await;
        assert!(sent["errors"].is_null(), "{sent}");
    }
    let page = app
        .as_user(
            &ann,
            "query($r: ID!) { messages(roomIdentity: $r) { edges { node { content } } } }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!(error_code(&page), "BAD_USER_INPUT", "{page}");
    assert!(page["data"].is_null(), "{page}");
    assert!(error_message(&page).contains("4096 bytes"), "{page}");
}
