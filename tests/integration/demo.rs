//! `chatroom demo`'s seeding, seen through the API as a newcomer would see it.

use chatroom::demo::{self, Seeding};
use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Backends, TestApp, error_code},
};

const ROOMS: &str = "{ rooms { identity roomType name info memberCount unreadCount
                              members { username } lastMessage { content } } }";

const HISTORY: &str = "query($r: ID!) {
    messages(roomIdentity: $r) { edges { node { content sender { username } } } }
}";

async fn log_in(app: &TestApp, username: &str, password: &str) -> Value {
    app.login(username, password).await
}

/// A demo user's token, logged in with the demo password.
async fn demo_token(app: &TestApp, username: &str) -> String {
    let answer = log_in(app, username, demo::PASSWORD).await;
    answer["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{username} cannot log in: {answer}"))
        .to_owned()
}

async fn every_demo_user_logs_in_with_the_demo_password(backends: Backends) {
    let app = TestApp::spawn(backends, "demo_login").await;

    let seeding = demo::seed(&app.app).await.expect("seeding succeeds");

    assert_eq!(seeding, Seeding::Seeded);
    for &(username, nickname, _) in demo::USERS {
        let token = demo_token(&app, username).await;
        let me = app
            .request(Some(&token), &[], "{ me { username nickname } }", json!({}))
            .await;
        assert_eq!(
            me["data"]["me"],
            json!({ "username": username, "nickname": nickname })
        );
    }
}

async fn a_demo_user_finds_the_group_and_private_rooms_with_history_and_unread_messages(
    backends: Backends,
) {
    let app = TestApp::spawn(backends, "demo_rooms").await;
    demo::seed(&app.app).await.expect("seeding succeeds");
    let token = demo_token(&app, demo::FIRST_LOGIN).await;

    let answer = app.request(Some(&token), &[], ROOMS, json!({})).await;

    let rooms = answer["data"]["rooms"]
        .as_array()
        .unwrap_or_else(|| panic!("no rooms: {answer}"));
    let (_, group_name, group_info) = demo::GROUP;
    let groups: Vec<&Value> = rooms.iter().filter(|r| r["roomType"] == "GROUP").collect();
    assert_eq!(groups.len(), 1, "{answer}");
    assert_eq!(groups[0]["name"], group_name);
    assert_eq!(groups[0]["info"], group_info);
    assert_eq!(groups[0]["memberCount"], demo::USERS.len());
    let mut friends: Vec<&str> = demo::FRIENDS
        .iter()
        .filter_map(|&(a, b)| match demo::FIRST_LOGIN {
            name if name == a => Some(b),
            name if name == b => Some(a),
            _ => None,
        })
        .collect();
    friends.sort_unstable();
    let mut private_partners: Vec<&str> = rooms
        .iter()
        .filter(|r| r["roomType"] == "PRIVATE")
        .flat_map(|r| r["members"].as_array().into_iter().flatten())
        .filter_map(|m| m["username"].as_str())
        .filter(|&username| username != demo::FIRST_LOGIN)
        .collect();
    private_partners.sort_unstable();
    assert_eq!(private_partners, friends, "one PRIVATE room per friend");
    assert!(
        rooms
            .iter()
            .any(|r| r["unreadCount"].as_u64().is_some_and(|n| n > 0)),
        "something waits unread: {answer}"
    );
    for room in rooms {
        assert!(room["lastMessage"]["content"].is_string(), "{room}");
        let history = app
            .request(Some(&token), &[], HISTORY, json!({ "r": room["identity"] }))
            .await;
        let edges = history["data"]["messages"]["edges"]
            .as_array()
            .unwrap_or_else(|| panic!("no history: {history}"));
        assert!(edges.len() > 1, "a conversation, not a line: {history}");
    }
}

async fn seeding_a_store_that_holds_users_changes_nothing(backends: Backends) {
    let app = TestApp::spawn(backends, "demo_not_empty").await;
    let zoe = app.register("zoe").await;

    let seeding = demo::seed(&app.app).await.expect("seeding answers");

    assert_eq!(seeding, Seeding::AlreadyHeldUsers);
    for &(username, _, _) in demo::USERS {
        let refused = log_in(&app, username, demo::PASSWORD).await;
        assert_eq!(error_code(&refused), "UNAUTHENTICATED", "{username}");
    }
    let seen = app
        .as_user(
            &zoe,
            "{ searchUsers(query: \"\") { username } rooms { identity } }",
            json!({}),
        )
        .await;
    assert_eq!(
        seen["data"],
        json!({ "searchUsers": [], "rooms": [] }),
        "zoe is still alone"
    );
}

async fn seeding_twice_leaves_the_first_demo_as_it_was(backends: Backends) {
    let app = TestApp::spawn(backends, "demo_twice").await;
    demo::seed(&app.app).await.expect("seeding succeeds");
    let token = demo_token(&app, demo::FIRST_LOGIN).await;
    let before = app.request(Some(&token), &[], ROOMS, json!({})).await;

    let seeding = demo::seed(&app.app).await.expect("seeding answers");

    assert_eq!(seeding, Seeding::AlreadyHeldUsers);
    let after = app.request(Some(&token), &[], ROOMS, json!({})).await;
    assert_eq!(after, before);
}

api_suite!(
    every_demo_user_logs_in_with_the_demo_password,
    a_demo_user_finds_the_group_and_private_rooms_with_history_and_unread_messages,
    seeding_a_store_that_holds_users_changes_nothing,
    seeding_twice_leaves_the_first_demo_as_it_was,
);
