//! Groups, membership, reading positions and access through the real endpoint.

use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Backends, MESSAGE_FIELDS, SEND, TestApp, WatchedStore, error_code},
};

const ROOM: &str = "query($r: ID!) {
    room(identity: $r) { identity number name info roomType memberCount unreadCount
                         creator { username } members { username } lastMessage { content } }
}";

fn usernames(users: &Value) -> Vec<&str> {
    users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect()
}

async fn a_group_has_its_creator_and_members_and_unknown_names_create_nothing(backends: Backends) {
    let app = TestApp::spawn(backends, "groups").await;
    let (hal, ivy, jon) = (
        app.register("hal").await,
        app.register("ivy").await,
        app.register("jon").await,
    );

    let room = app.group(&hal, "hikers", &[&ivy, &jon, &hal]).await;
    let answer = app.as_user(&ivy, ROOM, json!({ "r": room })).await;
    let group = &answer["data"]["room"];
    assert_eq!(group["roomType"], "GROUP");
    assert_eq!(group["name"], "hikers");
    assert_eq!(group["info"], "");
    assert_eq!(group["memberCount"], 3);
    assert_eq!(group["creator"]["username"], "hal");
    assert_eq!(usernames(&group["members"]), ["hal", "ivy", "jon"]);
    let number = group["number"].as_str().unwrap();
    assert!(
        number.len() == 8 && number.bytes().all(|b| b.is_ascii_digit()),
        "{number}"
    );

    let failed = app
        .as_user(
            &hal,
            "mutation { createGroup(input: { name: \"ghosts\", members: [\"ivy\", \"nobody\"] }) { identity } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&failed), "NOT_FOUND");
    let rooms = app.as_user(&ivy, "{ rooms { name } }", json!({})).await;
    assert_eq!(rooms["data"]["rooms"], json!([{ "name": "hikers" }]));
}

async fn any_member_adds_members_and_private_rooms_take_none(backends: Backends) {
    let app = TestApp::spawn(backends, "add_members").await;
    let (kai, lou, max) = (
        app.register("kai").await,
        app.register("lou").await,
        app.register("max").await,
    );
    let room = app.group(&kai, "band", &[&lou]).await;
    let add = "mutation($r: ID!, $u: [String!]!) { addMembers(roomIdentity: $r, usernames: $u) { memberCount members { username } } }";

    let added = app
        .as_user(&lou, add, json!({ "r": room, "u": ["max", "kai", "MAX"] }))
        .await;
    assert_eq!(added["data"]["addMembers"]["memberCount"], 3, "{added}");
    assert_eq!(
        usernames(&added["data"]["addMembers"]["members"]),
        ["kai", "lou", "max"]
    );

    let private = app.befriend(&kai, &max).await;
    let refused = app
        .as_user(&kai, add, json!({ "r": private, "u": ["lou"] }))
        .await;
    assert_eq!(error_code(&refused), "FORBIDDEN");
    let leave = app
        .as_user(
            &kai,
            "mutation($r: ID!) { leaveRoom(roomIdentity: $r) }",
            json!({ "r": private }),
        )
        .await;
    assert_eq!(error_code(&leave), "FORBIDDEN");
}

async fn the_last_member_leaving_deletes_the_group_and_its_history(backends: Backends) {
    let app = TestApp::spawn(backends, "leave").await;
    let (ned, oli) = (app.register("ned").await, app.register("oli").await);
    let room = app.group(&ned, "pair", &[&oli]).await;
    app.send(&ned, &room, "bye soon").await;
    let leave = "mutation($r: ID!) { leaveRoom(roomIdentity: $r) }";

    assert_eq!(
        app.as_user(&ned, leave, json!({ "r": room })).await["data"]["leaveRoom"],
        true
    );
    assert_eq!(
        app.as_user(&ned, ROOM, json!({ "r": room })).await["data"]["room"],
        json!(null)
    );
    let still = app.as_user(&oli, ROOM, json!({ "r": room })).await;
    assert_eq!(still["data"]["room"]["memberCount"], 1);

    assert_eq!(
        app.as_user(&oli, leave, json!({ "r": room })).await["data"]["leaveRoom"],
        true
    );
    let identity = uuid::Uuid::parse_str(&room).unwrap();
    assert_eq!(app.app.store.room(identity).await.unwrap(), None);
    let range = chatroom::store::HistoryRange {
        after: None,
        before: None,
        limit: 10,
        newest: false,
    };
    assert!(
        app.app
            .store
            .history(identity, range)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn unread_counts_follow_others_messages_and_mark_room_read(backends: Backends) {
    let app = TestApp::spawn(backends, "unread").await;
    let (pam, quinn, rex) = (
        app.register("pam").await,
        app.register("quinn").await,
        app.register("rex").await,
    );
    let room = app.group(&pam, "club", &[&quinn]).await;
    for text in ["one", "two", "three"] {
        app.send(&quinn, &room, text).await;
    }
    app.send(&pam, &room, "mine").await;
    let unread = |account| app.as_user(account, ROOM, json!({ "r": room }));

    assert_eq!(unread(&pam).await["data"]["room"]["unreadCount"], 3);
    assert_eq!(unread(&quinn).await["data"]["room"]["unreadCount"], 1);
    assert_eq!(
        unread(&pam).await["data"]["room"]["lastMessage"]["content"],
        "mine"
    );

    let marked = app
        .as_user(
            &pam,
            "mutation($r: ID!) { markRoomRead(roomIdentity: $r) { unreadCount } }",
            json!({ "r": room }),
        )
        .await;
    assert_eq!(marked["data"]["markRoomRead"]["unreadCount"], 0);
    app.send(&quinn, &room, "four").await;
    assert_eq!(unread(&pam).await["data"]["room"]["unreadCount"], 1);

    app.as_user(
        &pam,
        "mutation($r: ID!) { addMembers(roomIdentity: $r, usernames: [\"rex\"]) { identity } }",
        json!({ "r": room }),
    )
    .await;
    assert_eq!(
        unread(&rex).await["data"]["room"]["unreadCount"],
        0,
        "a new member starts read"
    );
}

async fn rooms_come_most_recently_active_first(backends: Backends) {
    let app = TestApp::spawn(backends, "room_order").await;
    let (sam, tia) = (app.register("sam").await, app.register("tia").await);
    let first = app.group(&sam, "first", &[&tia]).await;
    app.group(&sam, "second", &[]).await;
    app.befriend(&sam, &tia).await;
    let order = || app.as_user(&sam, "{ rooms { name roomType } }", json!({}));

    let names: Vec<Value> = order().await["data"]["rooms"].as_array().unwrap().clone();
    assert_eq!(names[0]["roomType"], "PRIVATE");
    assert_eq!(names[1]["name"], "second");

    app.send(&tia, &first, "bump").await;
    let names = order().await;
    assert_eq!(names["data"]["rooms"][0]["name"], "first");
}

async fn outsiders_are_forbidden_everywhere_and_unknown_rooms_not_found(backends: Backends) {
    let app = TestApp::spawn(backends, "outsiders").await;
    let (uma, vic, wes) = (
        app.register("uma").await,
        app.register("vic").await,
        app.register("wes").await,
    );
    let room = app.group(&uma, "inner", &[&vic]).await;
    app.send(&uma, &room, "secret").await;
    let missing = uuid::Uuid::new_v4().to_string();

    let operations = [
        "query($r: ID!) { messages(roomIdentity: $r) { edges { cursor } } }",
        "mutation($r: ID!) { markRoomRead(roomIdentity: $r) { identity } }",
        "mutation($r: ID!) { leaveRoom(roomIdentity: $r) }",
        "mutation($r: ID!) { addMembers(roomIdentity: $r, usernames: [\"wes\"]) { identity } }",
    ];
    for operation in operations {
        let outsider = app.as_user(&wes, operation, json!({ "r": room })).await;
        assert_eq!(error_code(&outsider), "FORBIDDEN", "{operation}");
        let unknown = app.as_user(&wes, operation, json!({ "r": missing })).await;
        assert_eq!(error_code(&unknown), "NOT_FOUND", "{operation}");
    }
    let send = app
        .as_user(&wes, SEND, json!({ "room": room, "content": "let me in" }))
        .await;
    assert_eq!(error_code(&send), "FORBIDDEN");
    let seen = app.as_user(&wes, ROOM, json!({ "r": room })).await;
    assert_eq!(seen["data"]["room"], json!(null));
    assert!(seen["errors"].is_null());

    let mut socket = app.connect(&wes).await;
    socket
        .subscribe(
            "peek",
            &format!(
                "subscription($r: ID!) {{ messages(roomIdentity: $r) {{ {MESSAGE_FIELDS} }} }}"
            ),
            json!({ "r": room }),
        )
        .await;
    let refused = socket.next_of("peek").await.expect("an error payload");
    assert_eq!(
        refused["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
}

api_suite!(
    a_group_has_its_creator_and_members_and_unknown_names_create_nothing,
    any_member_adds_members_and_private_rooms_take_none,
    the_last_member_leaving_deletes_the_group_and_its_history,
    unread_counts_follow_others_messages_and_mark_room_read,
    rooms_come_most_recently_active_first,
    outsiders_are_forbidden_everywhere_and_unknown_rooms_not_found,
);

#[tokio::test]
async fn listing_200_rooms_with_every_field_costs_a_bounded_number_of_store_calls() {
    let (inner, _dir) = crate::helpers::sqlite_store().await;
    let (store, calls) = WatchedStore::counting(inner);
    let app = TestApp::spawn_on(Backends::Embedded, "n_plus_one", |_| {}, Some(store)).await;
    let (xia, yan) = (app.register("xia").await, app.register("yan").await);
    for i in 0..200 {
        let room = app.group(&xia, &format!("room {i}"), &[&yan]).await;
        if i % 2 == 0 {
            app.send(&yan, &room, "hi").await;
        }
    }

    calls.store(0, Ordering::SeqCst);
    let listed = app
        .as_user(
            &xia,
            "{ rooms { identity name memberCount unreadCount creator { username } members { username }
                       lastMessage { content sender { username } } } }",
            json!({}),
        )
        .await;
    let rooms = listed["data"]["rooms"].as_array().expect("rooms");
    assert_eq!(rooms.len(), 200);
    assert!(rooms.iter().all(|r| r["memberCount"] == 2));
    assert_eq!(rooms.iter().filter(|r| r["unreadCount"] == 1).count(), 100);
    // About one call per kind of read (rooms, members, users, last messages,
    // memberships, unread counts); a batch may split in two when its keys
    // arrive across the loader's batching window. One per room would be 1000+.
    let used = calls.load(Ordering::SeqCst);
    assert!(used <= 16, "listing 200 rooms took {used} store calls");
}

#[tokio::test]
async fn a_page_of_replies_with_reactions_costs_a_bounded_number_of_store_calls() {
    let (inner, _dir) = crate::helpers::sqlite_store().await;
    let (store, calls) = WatchedStore::counting(inner);
    let app = TestApp::spawn_on(
        Backends::Embedded,
        "n_plus_one_replies",
        |_| {},
        Some(store),
    )
    .await;
    let (xia, yan) = (app.register("xia").await, app.register("yan").await);
    let room = app.befriend(&xia, &yan).await;
    let reply = "mutation($r: ID!, $c: String!, $to: ID) {
        sendMessage(roomIdentity: $r, content: $c, replyTo: $to) { identity } }";
    let react =
        "mutation($m: ID!) { addReaction(messageIdentity: $m, emoji: \"👍\") { identity } }";
    let mut previous = Value::Null;
    for i in 0..100 {
        let sender = if i % 2 == 0 { &xia } else { &yan };
        let sent = app
            .as_user(
                sender,
                reply,
                json!({ "r": room, "c": format!("m{i}"), "to": previous }),
            )
            .await;
        previous = sent["data"]["sendMessage"]["identity"].clone();
        app.as_user(sender, react, json!({ "m": previous })).await;
    }

    calls.store(0, Ordering::SeqCst);
    let page = app
        .as_user(
            &xia,
            "query($r: ID!) { messages(roomIdentity: $r, last: 100) { edges { node {
                content sender { username } reactions { emoji count byViewer }
                replyTo { content sender { username } reactions { count } } } } } }",
            json!({ "r": room }),
        )
        .await;
    let edges = page["data"]["messages"]["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 100, "{page}");
    assert_eq!(edges[99]["node"]["replyTo"]["content"], "m98");
    assert_eq!(edges[99]["node"]["reactions"][0]["count"], 1);
    // The room, the membership, the page, the replied messages, the
    // senders: one call each, not one per message (which would be 200 and
    // more); a batch may split in two when its keys arrive across the
    // loader's batching window.
    let used = calls.load(Ordering::SeqCst);
    assert!(used <= 12, "a page of 100 replies took {used} store calls");
}
