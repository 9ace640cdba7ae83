//! Profiles, search and friendship through the real endpoint.

use serde_json::json;

use crate::{
    accounts::api_suite,
    helpers::{Backends, TestApp, error_code, error_field},
};

const PROFILE: &str = "query($u: String!) {
    userProfile(username: $u) { isFriend privateRoom { identity roomType name info memberCount } user { username email } }
}";

async fn a_profile_shows_public_fields_and_friendship(backends: Backends) {
    let app = TestApp::spawn(backends, "profiles").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);

    let before = app.as_user(&ann, PROFILE, json!({ "u": "BOB" })).await;
    let profile = &before["data"]["userProfile"];
    assert_eq!(profile["user"], json!({ "username": "bob", "email": null }));
    assert_eq!(profile["isFriend"], false);
    assert_eq!(profile["privateRoom"], json!(null));

    let room = app.befriend(&ann, &bob).await;
    let after = app.as_user(&bob, PROFILE, json!({ "u": "ann" })).await;
    let profile = &after["data"]["userProfile"];
    assert_eq!(profile["isFriend"], true);
    assert_eq!(
        profile["privateRoom"],
        json!({ "identity": room, "roomType": "PRIVATE", "name": "", "info": "", "memberCount": 2 })
    );

    let unknown = app.as_user(&ann, PROFILE, json!({ "u": "nobody" })).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
}

async fn search_finds_username_and_nickname_prefixes_without_the_viewer(backends: Backends) {
    let app = TestApp::spawn(backends, "search").await;
    let alice = app.register("alice").await;
    for name in ["Alfred", "al_x", "bob", "alvin"] {
        app.register(name).await;
    }
    app.as_user(
        &app.register("zed").await,
        "mutation { updateProfile(input: { nickname: \"Alan the Zed\" }) { nickname } }",
        json!({}),
    )
    .await;
    let search = "query($q: String!, $n: Int) { searchUsers(query: $q, first: $n) { username } }";

    let found = app.as_user(&alice, search, json!({ "q": "AL" })).await;
    let names: Vec<&str> = found["data"]["searchUsers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["al_x", "Alfred", "alvin", "zed"]);

    let literal = app.as_user(&alice, search, json!({ "q": "al_" })).await;
    assert_eq!(
        literal["data"]["searchUsers"],
        json!([{ "username": "al_x" }])
    );

    let limited = app
        .as_user(&alice, search, json!({ "q": "al", "n": 2 }))
        .await;
    assert_eq!(limited["data"]["searchUsers"].as_array().unwrap().len(), 2);

    for size in [0, 101, -1] {
        let bad = app
            .as_user(&alice, search, json!({ "q": "al", "n": size }))
            .await;
        assert_eq!(error_code(&bad), "BAD_USER_INPUT");
        assert_eq!(error_field(&bad), "first");
    }
}

async fn both_sides_adding_each_other_at_once_get_one_room(backends: Backends) {
    let app = TestApp::spawn(backends, "friend_race").await;
    let (cat, dan) = (app.register("cat").await, app.register("dan").await);

    let calls = (0..10).map(|i| {
        let (from, to) = if i % 2 == 0 {
            (&cat, &dan)
        } else {
            (&dan, &cat)
        };
        app.befriend(from, to)
    });
    let rooms = futures_util::future::join_all(calls).await;
    assert!(rooms.iter().all(|room| room == &rooms[0]), "{rooms:?}");

    let friends = app
        .as_user(&cat, "{ friends { username } }", json!({}))
        .await;
    assert_eq!(friends["data"]["friends"], json!([{ "username": "dan" }]));
    let rooms = app.as_user(&dan, "{ rooms { identity } }", json!({})).await;
    assert_eq!(rooms["data"]["rooms"].as_array().unwrap().len(), 1);
}

async fn adding_oneself_or_an_unknown_user_is_an_error(backends: Backends) {
    let app = TestApp::spawn(backends, "friend_errors").await;
    let eve = app.register("eve").await;
    let add = "mutation($u: String!) { addFriend(username: $u) { identity } }";

    let yourself = app.as_user(&eve, add, json!({ "u": "EVE" })).await;
    assert_eq!(error_code(&yourself), "BAD_USER_INPUT");
    assert_eq!(error_field(&yourself), "username");

    let unknown = app.as_user(&eve, add, json!({ "u": "nobody" })).await;
    assert_eq!(error_code(&unknown), "NOT_FOUND");
}

async fn removing_a_friend_deletes_the_room_and_ends_live_subscriptions(backends: Backends) {
    let app = TestApp::spawn(backends, "unfriend").await;
    let (fay, gil) = (app.register("fay").await, app.register("gil").await);
    let room = app.befriend(&fay, &gil).await;
    app.send(&fay, &room, "hello").await;

    let mut socket = app.watch_room(&gil, &room, &app, &fay).await;

    let removed = app
        .as_user(
            &fay,
            "mutation { removeFriend(username: \"gil\") }",
            json!({}),
        )
        .await;
    assert_eq!(removed["data"]["removeFriend"], true);
    assert_eq!(
        socket.next_of("room").await,
        None,
        "gil's subscription ended"
    );

    let history = app
        .as_user(
            &gil,
            "query($r: ID!) { messages(roomIdentity: $r) { edges { cursor } } }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!(error_code(&history), "NOT_FOUND");
    let again = app
        .as_user(
            &gil,
            "mutation { removeFriend(username: \"fay\") }",
            json!({}),
        )
        .await;
    assert_eq!(again["data"]["removeFriend"], false);
    let friends = app
        .as_user(&fay, "{ friends { username } }", json!({}))
        .await;
    assert_eq!(friends["data"]["friends"], json!([]));
}

api_suite!(
    a_profile_shows_public_fields_and_friendship,
    search_finds_username_and_nickname_prefixes_without_the_viewer,
    both_sides_adding_each_other_at_once_get_one_room,
    adding_oneself_or_an_unknown_user_is_an_error,
    removing_a_friend_deletes_the_room_and_ends_live_subscriptions,
);
