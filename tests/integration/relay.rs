//! Relay's global object identification (issue 18): every user, room and
//! message has an `id` that `node` and `nodes` refetch it by, showing no
//! more than `userProfile`, `room` and `message` show the viewer.

use std::sync::atomic::Ordering;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Account, Backends, TestApp, WatchedStore, error_code, error_field},
};

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id
    ... on User { identity username email }
    ... on Room { identity name }
    ... on Message { identity content } } }";

const NODES: &str = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }";

async fn node(app: &TestApp, viewer: &Account, id: &Value) -> Value {
    let answer = app.as_user(viewer, NODE, json!({ "id": id })).await;
    assert!(answer["errors"].is_null(), "{answer}");
    answer["data"]["node"].clone()
}

/// What `nodes` answers `viewer` for `ids`, each as its id or null.
async fn nodes(app: &TestApp, viewer: &Account, ids: &[Value]) -> Vec<Value> {
    let answer = app.as_user(viewer, NODES, json!({ "ids": ids })).await;
    answer["data"]["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|node| node["id"].clone())
        .collect()
}

async fn user_id(app: &TestApp, viewer: &Account, user: &Account) -> Value {
    let answer = app
        .as_user(
            viewer,
            "query($u: String!) { userProfile(username: $u) { user { id } } }",
            json!({ "u": user.username }),
        )
        .await;
    answer["data"]["userProfile"]["user"]["id"].clone()
}

async fn room_id(app: &TestApp, member: &Account, room: &str) -> Value {
    let answer = app
        .as_user(
            member,
            "query($r: ID!) { room(identity: $r) { id } }",
            json!({ "r": room }),
        )
        .await;
    answer["data"]["room"]["id"].clone()
}

/// Sends `content` to `room` as `sender`; the message's id.
async fn send(app: &TestApp, sender: &Account, room: &str, content: &str) -> Value {
    let answer = app
        .as_user(
            sender,
            "mutation($r: ID!, $c: String!) { sendMessage(roomIdentity: $r, content: $c) { id } }",
            json!({ "r": room, "c": content }),
        )
        .await;
    let id = answer["data"]["sendMessage"]["id"].clone();
    assert!(id.is_string(), "{answer}");
    id
}

/// An id as this server spells them, of something that does not exist.
fn unknown(kind: &str) -> Value {
    json!(URL_SAFE_NO_PAD.encode(format!("{kind}:{}", uuid::Uuid::new_v4())))
}

async fn each_kind_of_object_is_refetched_by_its_id(backends: Backends) {
    let app = TestApp::spawn(backends, "relay_refetch").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.group(&ann, "tea", &[&bob]).await;
    let message = send(&app, &bob, &room, "green or black?").await;

    let user = node(&app, &ann, &user_id(&app, &ann, &bob).await).await;
    assert_eq!(user["__typename"], "User", "{user}");
    assert_eq!(user["identity"], bob.identity.as_str());
    assert_eq!(user["username"], "bob");

    let found = node(&app, &bob, &room_id(&app, &ann, &room).await).await;
    assert_eq!(found["__typename"], "Room", "{found}");
    assert_eq!(found["identity"], room.as_str());
    assert_eq!(found["name"], "tea");

    let found = node(&app, &ann, &message).await;
    assert_eq!(found["__typename"], "Message", "{found}");
    assert_eq!(found["id"], message);
    assert_eq!(found["content"], "green or black?");
}

async fn nodes_keep_their_order_and_give_null_for_what_the_viewer_may_not_see(backends: Backends) {
    let app = TestApp::spawn(backends, "relay_nodes").await;
    let [ann, bob, cyd] = [
        app.register("ann").await,
        app.register("bob").await,
        app.register("cyd").await,
    ];
    let ours = app.befriend(&ann, &bob).await;
    let theirs = app.befriend(&bob, &cyd).await;
    let mine = send(&app, &bob, &ours, "for ann").await;
    let not_mine = send(&app, &bob, &theirs, "not for ann").await;
    let (our_room, their_room) = (
        room_id(&app, &ann, &ours).await,
        room_id(&app, &cyd, &theirs).await,
    );
    let cyd_id = user_id(&app, &ann, &cyd).await;

    // Each id, and whether ann is shown its object.
    let asked = [
        (mine, true),
        (not_mine, false),
        (json!("not an id"), false),
        (
            json!(URL_SAFE_NO_PAD.encode(format!("Lobby:{}", ann.identity))),
            false,
        ),
        (cyd_id, true),
        (their_room, false),
        (unknown("Message"), false),
        (our_room, true),
        (json!(ann.identity), false),
    ];
    let ids: Vec<Value> = asked.iter().map(|(id, _)| id.clone()).collect();
    let found = nodes(&app, &ann, &ids).await;

    let shown: Vec<Value> = asked
        .into_iter()
        .map(|(id, shown)| if shown { id } else { Value::Null })
        .collect();
    assert_eq!(found, shown);
}

async fn a_message_is_null_to_who_left_its_room_or_never_joined(backends: Backends) {
    let app = TestApp::spawn(backends, "relay_left").await;
    let [ann, bob, dan] = [
        app.register("ann").await,
        app.register("bob").await,
        app.register("dan").await,
    ];
    let room = app.group(&ann, "tea", &[&bob]).await;
    let message = send(&app, &ann, &room, "before bob leaves").await;
    let group = room_id(&app, &ann, &room).await;
    assert_eq!(node(&app, &bob, &message).await["id"], message);

    let left = app
        .as_user(
            &bob,
            "mutation($r: ID!) { leaveRoom(roomIdentity: $r) }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!(left["data"]["leaveRoom"], true, "{left}");

    assert_eq!(node(&app, &bob, &message).await, Value::Null);
    assert_eq!(node(&app, &bob, &group).await, Value::Null);
    assert_eq!(node(&app, &dan, &message).await, Value::Null);
    assert_eq!(node(&app, &dan, &group).await, Value::Null);
    assert_eq!(
        nodes(&app, &ann, &[message.clone(), group.clone()]).await,
        [message, group]
    );
}

async fn a_strangers_user_shows_what_user_profile_shows_and_no_more(backends: Backends) {
    let app = TestApp::spawn(backends, "relay_stranger").await;
    let (ann, dan) = (app.register("ann").await, app.register("dan").await);
    let _anns_socket = app.connect(&ann).await;
    let fields = "id identity username email emailDigest presence { online }";
    let profile = app
        .as_user(
            &dan,
            &format!(
                "query($u: String!) {{ userProfile(username: $u) {{ user {{ {fields} }} }} }}"
            ),
            json!({ "u": "ann" }),
        )
        .await;
    let seen_by_profile = &profile["data"]["userProfile"]["user"];
    let refetch = format!("query($id: ID!) {{ node(id: $id) {{ ... on User {{ {fields} }} }} }}");

    let by_dan = app
        .as_user(&dan, &refetch, json!({ "id": seen_by_profile["id"] }))
        .await;
    let by_ann = app
        .as_user(&ann, &refetch, json!({ "id": seen_by_profile["id"] }))
        .await;

    assert_eq!(&by_dan["data"]["node"], seen_by_profile, "{by_dan}");
    assert_eq!(by_dan["data"]["node"]["email"], Value::Null);
    assert_eq!(by_dan["data"]["node"]["emailDigest"], Value::Null);
    assert_eq!(by_dan["data"]["node"]["presence"], Value::Null);
    assert_eq!(
        by_ann["data"]["node"]["email"],
        ann.email.as_str(),
        "{by_ann}"
    );
}

async fn nodes_takes_at_most_100_ids_and_both_need_a_viewer(backends: Backends) {
    let app = TestApp::spawn(backends, "relay_bounds").await;
    let ann = app.register("ann").await;
    let hundred: Vec<Value> = (0..100).map(|_| unknown("Room")).collect();
    let one_more: Vec<Value> = (0..101).map(|_| unknown("Room")).collect();

    assert_eq!(nodes(&app, &ann, &hundred).await, vec![Value::Null; 100]);
    let refused = app.as_user(&ann, NODES, json!({ "ids": one_more })).await;
    assert_eq!(error_code(&refused), "BAD_USER_INPUT", "{refused}");
    assert_eq!(error_field(&refused), "ids");

    let anonymous = app.anonymous(NODE, json!({ "id": unknown("User") })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    let anonymous = app.anonymous(NODES, json!({ "ids": hundred })).await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
}

async fn ids_selected_in_subscriptions_arrive(backends: Backends) {
    let app = TestApp::spawn(backends, "relay_live").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.group(&ann, "tea", &[&bob]).await;
    let messages = "subscription($r: ID!) { messages(roomIdentity: $r) {
        id content sender { id } } }";
    let mut socket = app.watch_room_with(&ann, &room, messages, &app, &bob).await;
    let read = app
        .as_user(
            &ann,
            "query($r: ID!) { room(identity: $r) { id eventCursor } }",
            json!({ "r": room }),
        )
        .await;
    let (group, cursor) = (
        &read["data"]["room"]["id"],
        &read["data"]["room"]["eventCursor"],
    );

    let sent = send(&app, &bob, &room, "with an id").await;
    let arrived = socket.next_message("room", "messages").await;
    let renamed = app
        .as_user(
            &ann,
            "mutation($r: ID!) { updateRoom(roomIdentity: $r, input: { name: \"coffee\" }) { id } }",
            json!({ "r": room }),
        )
        .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    socket
        .subscribe(
            "events",
            "subscription($r: ID!, $after: String) { roomEvents(roomIdentity: $r, after: $after) {
                __typename ... on MessagePosted { message { id } } ... on RoomUpdated { room { id name } } } }",
            json!({ "r": room, "after": cursor }),
        )
        .await;
    let posted = socket.next_message("events", "roomEvents").await;
    let updated = socket.next_message("events", "roomEvents").await;

    assert_eq!(arrived["content"], "with an id", "{arrived}");
    assert_eq!(arrived["id"], sent);
    assert_eq!(arrived["sender"]["id"], user_id(&app, &ann, &bob).await);
    assert_eq!(posted["message"]["id"], sent, "{posted}");
    assert_eq!(updated["__typename"], "RoomUpdated", "{updated}");
    assert_eq!(&updated["room"]["id"], group);
    assert_eq!(updated["room"]["name"], "coffee");
}

api_suite!(
    each_kind_of_object_is_refetched_by_its_id,
    nodes_keep_their_order_and_give_null_for_what_the_viewer_may_not_see,
    a_message_is_null_to_who_left_its_room_or_never_joined,
    a_strangers_user_shows_what_user_profile_shows_and_no_more,
    nodes_takes_at_most_100_ids_and_both_need_a_viewer,
    ids_selected_in_subscriptions_arrive,
);

#[tokio::test]
async fn refetching_100_objects_costs_a_bounded_number_of_store_calls() {
    let (inner, _dir) = crate::helpers::sqlite_store().await;
    let (store, calls) = WatchedStore::counting(inner);
    let app = TestApp::spawn_on(Backends::Embedded, "relay_batched", |_| {}, Some(store)).await;
    let (xia, yan) = (app.register("xia").await, app.register("yan").await);
    let mut ids = Vec::new();
    for i in 0..34 {
        let room = app.group(&xia, &format!("room {i}"), &[&yan]).await;
        ids.push(room_id(&app, &xia, &room).await);
        ids.push(send(&app, &yan, &room, "hi").await);
        ids.push(user_id(&app, &xia, &yan).await);
    }
    ids.truncate(100);

    calls.store(0, Ordering::SeqCst);
    let found = nodes(&app, &xia, &ids).await;

    assert_eq!(found, ids);
    // Users; the memberships and then the rooms; the messages and then the
    // memberships of their rooms: one call each, where one per id would be
    // 160. A batch may split in two when its keys arrive across the
    // loader's batching window.
    let used = calls.load(Ordering::SeqCst);
    assert!(used <= 10, "refetching 100 objects took {used} store calls");
}
