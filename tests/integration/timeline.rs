//! Version 2 of a room's timeline: who may edit, delete, react, reply, read,
//! type and manage a group (API.md, "Who may do what"), and `roomEvents`
//! replaying and following every change, over every backend.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chatroom::{
    app::App,
    auth::Viewer,
    chat::{
        delivery::{self, RoomEvent},
        messages, rooms, timeline,
    },
    store::{MessageRecord, Role, Stored},
};
use futures_util::StreamExt;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    accounts::api_suite,
    helpers::{Account, Backends, Socket, TestApp, error_code, error_field},
    security::{bare_app, member},
};

const EDIT: &str = "mutation($m: ID!, $c: String!) { editMessage(messageIdentity: $m, content: $c) \
                    { content editedAt deletedAt } }";
const DELETE: &str = "mutation($m: ID!) { deleteMessage(messageIdentity: $m) { content deletedAt \
                      reactions { emoji } } }";
const REACT: &str = "mutation($m: ID!, $e: String!) { addReaction(messageIdentity: $m, emoji: $e) \
                     { reactions { emoji count byViewer } } }";
const UNREACT: &str = "mutation($m: ID!, $e: String!) { removeReaction(messageIdentity: $m, emoji: $e) \
                       { reactions { emoji count byViewer } } }";
const REPLY: &str = "mutation($r: ID!, $c: String!, $to: ID) { sendMessage(roomIdentity: $r, \
                     content: $c, replyTo: $to) { identity cursor replyTo { identity content } } }";
const MARK: &str = "mutation($r: ID!, $up: String) { markRoomRead(roomIdentity: $r, upTo: $up) \
                    { memberships { user { username } lastReadCursor } } }";
const ROLES: &str =
    "query($r: ID!) { room(identity: $r) { viewerRole memberships { user { username } role } } }";
const SET_ROLE: &str = "mutation($r: ID!, $u: String!, $role: MemberRole!) { setMemberRole(roomIdentity: $r, \
                        username: $u, role: $role) { identity } }";
const REMOVE: &str = "mutation($r: ID!, $u: String!) { removeMember(roomIdentity: $r, username: $u) \
                      { identity } }";
const UPDATE: &str = "mutation($r: ID!, $n: String) { updateRoom(roomIdentity: $r, input: { name: $n }) \
                      { name } }";
const EVENTS: &str = "subscription($r: ID!, $after: String) { roomEvents(roomIdentity: $r, after: $after) { \
    __typename \
    ... on MessagePosted { cursor message { identity content } } \
    ... on MessageEdited { cursor message { identity content } } \
    ... on MessageDeleted { cursor message { identity content deletedAt } } \
    ... on ReactionsChanged { cursor message { identity reactions { emoji count } } } \
    ... on MemberJoined { cursor membership { user { username } role } } \
    ... on MemberLeft { cursor user { username } removedBy { username } } \
    ... on MemberRoleChanged { cursor membership { user { username } role } } \
    ... on RoomUpdated { cursor room { name } } \
    ... on ReadReceipt { cursor membership { user { username } lastReadCursor } } \
    ... on Typing { user { username } typing } } }";

/// Sends `content` to `room` as `sender`; the message's identity and cursor.
async fn sent(app: &TestApp, sender: &Account, room: &str, content: &str) -> (String, String) {
    let answer = app.send(sender, room, content).await;
    let message = &answer["data"]["sendMessage"];
    let identity = message["identity"].as_str();
    let cursor = message["cursor"].as_str();
    match (identity, cursor) {
        (Some(identity), Some(cursor)) => (identity.to_owned(), cursor.to_owned()),
        _ => panic!("sendMessage failed: {answer}"),
    }
}

async fn call(app: &TestApp, who: &Account, query: &str, variables: Value) -> Value {
    app.as_user(who, query, variables).await
}

/// Three people in a group owned by the first.
async fn group_of_three(backends: Backends, test: &str) -> (TestApp, [Account; 3], String) {
    let app = TestApp::spawn(backends, test).await;
    let (ann, bob, cat) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cat").await,
    );
    let room = app.group(&ann, "tea", &[&bob, &cat]).await;
    (app, [ann, bob, cat], room)
}

async fn only_the_sender_edits_and_a_deleted_message_is_a_conflict(backends: Backends) {
    let (app, [ann, bob, _], room) = group_of_three(backends, "timeline_edit").await;
    let (message, _) = sent(&app, &bob, &room, "helo").await;

    let by_other = call(&app, &ann, EDIT, json!({ "m": message, "c": "x" })).await;
    assert_eq!(error_code(&by_other), "FORBIDDEN", "{by_other}");
    let blank = call(&app, &bob, EDIT, json!({ "m": message, "c": "  " })).await;
    assert_eq!(error_field(&blank), "content", "{blank}");

    let edited = call(&app, &bob, EDIT, json!({ "m": message, "c": "hello" })).await;
    assert_eq!(
        edited["data"]["editMessage"]["content"], "hello",
        "{edited}"
    );
    assert!(edited["data"]["editMessage"]["editedAt"].is_string());

    call(&app, &bob, DELETE, json!({ "m": message })).await;
    let after_delete = call(&app, &bob, EDIT, json!({ "m": message, "c": "again" })).await;
    assert_eq!(error_code(&after_delete), "CONFLICT", "{after_delete}");
    let unknown = json!({ "m": uuid::Uuid::new_v4().to_string(), "c": "x" });
    assert_eq!(
        error_code(&call(&app, &bob, EDIT, unknown).await),
        "NOT_FOUND"
    );
}

async fn owners_and_admins_delete_others_messages_members_do_not(backends: Backends) {
    let (app, [ann, bob, cat], room) = group_of_three(backends, "timeline_delete").await;
    let (by_cat, _) = sent(&app, &cat, &room, "from cat").await;
    let (by_ann, _) = sent(&app, &ann, &room, "from ann").await;
    call(&app, &cat, REACT, json!({ "m": by_cat, "e": "👍" })).await;

    let by_member = call(&app, &bob, DELETE, json!({ "m": by_cat })).await;
    assert_eq!(error_code(&by_member), "FORBIDDEN", "{by_member}");
    let promoted = call(
        &app,
        &ann,
        SET_ROLE,
        json!({ "r": room, "u": "bob", "role": "ADMIN" }),
    )
    .await;
    assert!(promoted["errors"].is_null(), "{promoted}");
    let by_admin = call(&app, &bob, DELETE, json!({ "m": by_cat })).await;
    let tombstone = &by_admin["data"]["deleteMessage"];
    assert_eq!(tombstone["content"], "", "{by_admin}");
    assert!(tombstone["deletedAt"].is_string());
    assert_eq!(tombstone["reactions"], json!([]));
    let again = call(&app, &bob, DELETE, json!({ "m": by_cat })).await;
    assert_eq!(
        again["data"]["deleteMessage"]["deletedAt"],
        tombstone["deletedAt"]
    );
    let by_owner = call(&app, &ann, DELETE, json!({ "m": by_ann })).await;
    assert!(by_owner["errors"].is_null(), "{by_owner}");
}

async fn reactions_count_once_per_user_up_to_twenty_emoji(backends: Backends) {
    let (app, [ann, bob, _], room) = group_of_three(backends, "timeline_react").await;
    let (message, _) = sent(&app, &ann, &room, "react to me").await;

    call(&app, &bob, REACT, json!({ "m": message, "e": "🎉" })).await;
    call(&app, &ann, REACT, json!({ "m": message, "e": "👍" })).await;
    let twice = call(&app, &bob, REACT, json!({ "m": message, "e": "👍" })).await;
    call(&app, &bob, REACT, json!({ "m": message, "e": "👍" })).await;
    assert_eq!(
        twice["data"]["addReaction"]["reactions"],
        json!([
            { "emoji": "👍", "count": 2, "byViewer": true },
            { "emoji": "🎉", "count": 1, "byViewer": true },
        ]),
        "{twice}"
    );
    let seen_by_ann = call(&app, &ann, UNREACT, json!({ "m": message, "e": "🎉" })).await;
    assert_eq!(
        seen_by_ann["data"]["removeReaction"]["reactions"],
        json!([
            { "emoji": "👍", "count": 2, "byViewer": true },
            { "emoji": "🎉", "count": 1, "byViewer": false },
        ])
    );
    for bad in ["♥", "1", "ab", "👍👍"] {
        let answer = call(&app, &ann, REACT, json!({ "m": message, "e": bad })).await;
        assert_eq!(error_field(&answer), "emoji", "{bad}: {answer}");
    }
    let more = [
        "😀", "😃", "😄", "😁", "😆", "😅", "🤣", "😂", "🙂", "🙃", "😉", "😊", "😇", "🥰", "😍",
        "🤩", "😘", "😗",
    ];
    for emoji in more {
        let answer = call(&app, &ann, REACT, json!({ "m": message, "e": emoji })).await;
        assert!(answer["errors"].is_null(), "{emoji}: {answer}");
    }
    let twenty_first = call(&app, &ann, REACT, json!({ "m": message, "e": "🤔" })).await;
    assert_eq!(error_field(&twenty_first), "emoji", "{twenty_first}");
}

async fn replies_stay_in_their_room_and_reads_never_move_back(backends: Backends) {
    let (app, [ann, bob, _], room) = group_of_three(backends, "timeline_reply").await;
    let other = app.group(&ann, "elsewhere", &[]).await;
    let (first, first_cursor) = sent(&app, &ann, &room, "first").await;
    let (elsewhere, elsewhere_cursor) = sent(&app, &ann, &other, "elsewhere").await;

    let reply = call(
        &app,
        &bob,
        REPLY,
        json!({ "r": room, "c": "re", "to": first }),
    )
    .await;
    assert_eq!(
        reply["data"]["sendMessage"]["replyTo"]["content"], "first",
        "{reply}"
    );
    let foreign = call(
        &app,
        &bob,
        REPLY,
        json!({ "r": room, "c": "re", "to": elsewhere }),
    )
    .await;
    assert_eq!(error_field(&foreign), "replyTo", "{foreign}");

    let newest = reply["data"]["sendMessage"]["cursor"].clone();
    call(&app, &bob, MARK, json!({ "r": room, "up": newest })).await;
    let back = call(&app, &bob, MARK, json!({ "r": room, "up": first_cursor })).await;
    let bobs = back["data"]["markRoomRead"]["memberships"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["user"]["username"] == "bob"))
        .cloned();
    assert_eq!(
        bobs.map(|m| m["lastReadCursor"].clone()),
        Some(newest),
        "{back}"
    );
    let wrong_room = call(
        &app,
        &bob,
        MARK,
        json!({ "r": room, "up": elsewhere_cursor }),
    )
    .await;
    assert_eq!(error_field(&wrong_room), "upTo", "{wrong_room}");
}

async fn roles_decide_who_manages_a_group_and_ownership_passes_on(backends: Backends) {
    let (app, [ann, bob, cat], room) = group_of_three(backends, "timeline_roles").await;
    let renamed = call(&app, &bob, UPDATE, json!({ "r": room, "n": "mine" })).await;
    assert_eq!(error_code(&renamed), "FORBIDDEN");
    let by_member = call(
        &app,
        &bob,
        SET_ROLE,
        json!({ "r": room, "u": "cat", "role": "ADMIN" }),
    )
    .await;
    assert_eq!(error_code(&by_member), "FORBIDDEN");
    let yourself = call(&app, &ann, REMOVE, json!({ "r": room, "u": "ann" })).await;
    assert_eq!(error_field(&yourself), "username");

    call(
        &app,
        &ann,
        SET_ROLE,
        json!({ "r": room, "u": "bob", "role": "ADMIN" }),
    )
    .await;
    call(
        &app,
        &ann,
        SET_ROLE,
        json!({ "r": room, "u": "cat", "role": "ADMIN" }),
    )
    .await;
    let renamed = call(&app, &bob, UPDATE, json!({ "r": room, "n": "ours" })).await;
    assert_eq!(renamed["data"]["updateRoom"]["name"], "ours", "{renamed}");
    let admin_removes_admin = call(&app, &bob, REMOVE, json!({ "r": room, "u": "cat" })).await;
    assert_eq!(error_code(&admin_removes_admin), "FORBIDDEN");

    let left = call(
        &app,
        &ann,
        "mutation($r: ID!) { leaveRoom(roomIdentity: $r) }",
        json!({ "r": room }),
    )
    .await;
    assert_eq!(left["data"]["leaveRoom"], true, "{left}");
    let roles = call(&app, &bob, ROLES, json!({ "r": room })).await;
    assert_eq!(
        roles["data"]["room"],
        json!({ "viewerRole": "OWNER", "memberships": [
            { "user": { "username": "bob" }, "role": "OWNER" },
            { "user": { "username": "cat" }, "role": "ADMIN" },
        ] }),
        "{roles}"
    );
    let handed = call(
        &app,
        &bob,
        SET_ROLE,
        json!({ "r": room, "u": "cat", "role": "OWNER" }),
    )
    .await;
    assert!(handed["errors"].is_null(), "{handed}");
    let roles = call(&app, &cat, ROLES, json!({ "r": room })).await;
    assert_eq!(
        roles["data"]["room"]["memberships"][0]["role"], "ADMIN",
        "{roles}"
    );
    assert_eq!(roles["data"]["room"]["viewerRole"], "OWNER");
}

/// The next `roomEvents` payload of operation `id`, its event.
async fn next_event(socket: &mut crate::helpers::Socket, id: &str) -> Value {
    let payload = socket
        .next_of_within(id, Duration::from_secs(8))
        .await
        .expect("an event in time");
    assert!(payload["errors"].is_null(), "{payload}");
    payload["data"]["roomEvents"].clone()
}

async fn room_events_follow_every_change_and_a_replay_ends_in_the_same_state(backends: Backends) {
    let (app, [ann, bob, cat], room) = group_of_three(backends, "timeline_events").await;
    let mut socket = live_events(&app, &bob, &ann, &room).await;

    let (message, cursor) = sent(&app, &ann, &room, "hello").await;
    call(&app, &ann, EDIT, json!({ "m": message, "c": "hello!" })).await;
    call(&app, &cat, REACT, json!({ "m": message, "e": "👍" })).await;
    call(&app, &ann, UPDATE, json!({ "r": room, "n": "renamed" })).await;
    call(&app, &cat, MARK, json!({ "r": room })).await;
    call(&app, &ann, REMOVE, json!({ "r": room, "u": "cat" })).await;
    call(&app, &ann, DELETE, json!({ "m": message })).await;

    let mut kinds = Vec::new();
    for _ in 0..7 {
        kinds.push(next_event(&mut socket, "events").await);
    }
    let names: Vec<&str> = kinds
        .iter()
        .map(|e| e["__typename"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "MessagePosted",
            "MessageEdited",
            "ReactionsChanged",
            "RoomUpdated",
            "ReadReceipt",
            "MemberLeft",
            "MessageDeleted"
        ],
        "{kinds:?}"
    );
    assert_eq!(
        kinds[0]["cursor"],
        json!(cursor),
        "a post's cursor is its message's"
    );
    assert_eq!(kinds[5]["removedBy"]["username"], "ann");

    // Replayed from the message's own cursor: folded, newest state, same order.
    let mut replay = app.connect(&bob).await;
    replay
        .subscribe("replay", EVENTS, json!({ "r": room, "after": cursor }))
        .await;
    let mut replayed = Vec::new();
    for _ in 0..3 {
        replayed.push(next_event(&mut replay, "replay").await);
    }
    // cat's read receipt went with cat's membership.
    let names: Vec<&str> = replayed
        .iter()
        .map(|e| e["__typename"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        ["RoomUpdated", "MemberLeft", "MessageDeleted"],
        "{replayed:?}"
    );
    assert_eq!(replayed[2]["cursor"], kinds[6]["cursor"]);

    // The removed member's own subscription ends after the event that says so.
    let mut gone = app.connect(&cat).await;
    let refused = {
        gone.subscribe("gone", EVENTS, json!({ "r": room })).await;
        gone.next_of_within("gone", Duration::from_secs(5)).await
    };
    assert!(refused.is_some_and(|payload| !payload["errors"].is_null()));
}

async fn outsiders_are_forbidden_and_private_rooms_have_no_roles(backends: Backends) {
    let (app, [ann, bob, _], room) = group_of_three(backends, "timeline_outsiders").await;
    let eve = app.register("eve").await;
    let pair = app.befriend(&ann, &bob).await;
    let (message, _) = sent(&app, &ann, &room, "members only").await;
    let typing = "mutation($r: ID!) { setTyping(roomIdentity: $r, typing: true) }";
    let one = "query($m: ID!) { message(identity: $m) { content deletedAt } }";

    let attempts = [
        call(&app, &eve, EDIT, json!({ "m": message, "c": "x" })).await,
        call(&app, &eve, DELETE, json!({ "m": message })).await,
        call(&app, &eve, REACT, json!({ "m": message, "e": "👍" })).await,
        call(&app, &eve, typing, json!({ "r": room })).await,
        call(&app, &ann, UPDATE, json!({ "r": pair, "n": "ours" })).await,
        call(
            &app,
            &ann,
            SET_ROLE,
            json!({ "r": pair, "u": "bob", "role": "ADMIN" }),
        )
        .await,
        call(&app, &ann, REMOVE, json!({ "r": pair, "u": "bob" })).await,
    ];
    for answer in &attempts {
        assert_eq!(error_code(answer), "FORBIDDEN", "{answer}");
    }
    let roles = call(&app, &ann, ROLES, json!({ "r": pair })).await;
    assert_eq!(roles["data"]["room"]["viewerRole"], "MEMBER", "{roles}");
    assert_eq!(
        call(&app, &eve, one, json!({ "m": message })).await["data"]["message"],
        Value::Null
    );

    call(&app, &ann, DELETE, json!({ "m": message })).await;
    let tombstone = call(&app, &bob, one, json!({ "m": message })).await;
    assert_eq!(tombstone["data"]["message"]["content"], "", "{tombstone}");
    assert!(tombstone["data"]["message"]["deletedAt"].is_string());
    let on_deleted = call(&app, &bob, REACT, json!({ "m": message, "e": "👍" })).await;
    assert_eq!(error_code(&on_deleted), "CONFLICT", "{on_deleted}");
}

/// A subscription of `account` to the room's events, live.
async fn live_events(app: &TestApp, account: &Account, sender: &Account, room: &str) -> Socket {
    let mut socket = app.connect(account).await;
    socket
        .subscribe("events", EVENTS, json!({ "r": room }))
        .await;
    for attempt in 0..50 {
        sent(app, sender, room, &format!("probe {attempt}")).await;
        if let Some(payload) = socket
            .next_of_within("events", Duration::from_millis(300))
            .await
        {
            let probe = &payload["data"]["roomEvents"]["__typename"];
            assert_eq!(probe, "MessagePosted", "{payload}");
            while socket
                .next_of_within("events", Duration::from_millis(300))
                .await
                .is_some()
            {}
            return socket;
        }
    }
    panic!("roomEvents never became live");
}

async fn a_rooms_event_cursor_follows_every_change_after_it_was_read(backends: Backends) {
    let (app, [ann, bob, _], room) = group_of_three(backends, "timeline_event_cursor").await;
    let read = call(
        &app,
        &bob,
        "query($r: ID!) { room(identity: $r) { eventCursor } }",
        json!({ "r": room }),
    )
    .await;
    let cursor = read["data"]["room"]["eventCursor"].clone();
    assert!(cursor.is_string(), "{read}");
    call(
        &app,
        &ann,
        SET_ROLE,
        json!({ "r": room, "u": "bob", "role": "ADMIN" }),
    )
    .await;

    let mut socket = app.connect(&bob).await;
    socket
        .subscribe("events", EVENTS, json!({ "r": room, "after": cursor }))
        .await;
    let first = next_event(&mut socket, "events").await;
    assert_eq!(first["__typename"], "MemberRoleChanged", "{first}");
    assert_eq!(first["membership"]["role"], "ADMIN");
}

/// The next event of `socket` other than a message posted (the probes of
/// making subscriptions live may still be arriving).
async fn next_change(socket: &mut Socket) -> Value {
    loop {
        let event = next_event(socket, "events").await;
        if event["__typename"] != "MessagePosted" {
            return event;
        }
    }
}

async fn removal_and_leaving_end_room_events_after_the_event_that_says_so(backends: Backends) {
    let (app, [ann, bob, cat], room) = group_of_three(backends, "timeline_ends").await;
    let mut cats = live_events(&app, &cat, &ann, &room).await;
    let mut bobs = live_events(&app, &bob, &ann, &room).await;

    call(&app, &ann, REMOVE, json!({ "r": room, "u": "cat" })).await;
    let told = next_change(&mut cats).await;
    assert_eq!(told["__typename"], "MemberLeft", "{told}");
    assert_eq!(told["user"]["username"], "cat");
    assert_eq!(cats.next_of("events").await, None, "then it completes");

    let leave = "mutation($r: ID!) { leaveRoom(roomIdentity: $r) }";
    let seen_by_bob = next_change(&mut bobs).await;
    assert_eq!(seen_by_bob["__typename"], "MemberLeft");
    call(&app, &ann, leave, json!({ "r": room })).await;
    let owner_left = next_change(&mut bobs).await;
    assert_eq!(owner_left["user"]["username"], "ann", "{owner_left}");
    let heir = next_change(&mut bobs).await;
    assert_eq!(heir["__typename"], "MemberRoleChanged", "{heir}");
    assert_eq!(heir["membership"]["role"], "OWNER");
    call(&app, &bob, leave, json!({ "r": room })).await;
    let last = next_change(&mut bobs).await;
    assert_eq!(last["__typename"], "MemberLeft");
    assert_eq!(bobs.next_of("events").await, None, "the room is gone");
}

async fn a_change_that_changes_nothing_makes_no_event(backends: Backends) {
    let (app, [ann, bob, _], room) = group_of_three(backends, "timeline_no_change").await;
    let (message, cursor) = sent(&app, &ann, &room, "same").await;
    call(&app, &bob, REACT, json!({ "m": message, "e": "👍" })).await;
    call(&app, &bob, MARK, json!({ "r": room })).await;
    let mut socket = live_events(&app, &bob, &ann, &room).await;
    call(&app, &bob, MARK, json!({ "r": room, "up": cursor })).await;

    call(&app, &ann, EDIT, json!({ "m": message, "c": "same" })).await;
    call(&app, &bob, REACT, json!({ "m": message, "e": "👍" })).await;
    call(&app, &bob, UNREACT, json!({ "m": message, "e": "🎉" })).await;
    call(&app, &bob, MARK, json!({ "r": room, "up": cursor })).await;
    call(&app, &ann, UPDATE, json!({ "r": room, "n": "tea" })).await;
    call(&app, &ann, DELETE, json!({ "m": message })).await;

    let next = next_event(&mut socket, "events").await;
    assert_eq!(
        next["__typename"], "MessageDeleted",
        "nothing before it: {next}"
    );
}

async fn typing_reaches_the_room_at_most_once_a_second_per_member(backends: Backends) {
    let (app, [ann, bob, _], room) = group_of_three(backends, "timeline_typing_throttle").await;
    let mut socket = live_events(&app, &bob, &ann, &room).await;
    let typing = "mutation($r: ID!, $t: Boolean!) { setTyping(roomIdentity: $r, typing: $t) }";

    let started = std::time::Instant::now();
    for state in [true, false, true, false] {
        let answer = call(&app, &ann, typing, json!({ "r": room, "t": state })).await;
        assert_eq!(answer["data"]["setTyping"], true, "{answer}");
    }
    let first = next_change(&mut socket).await;
    assert_eq!(first["typing"], true, "the first goes out at once: {first}");
    let held = next_change(&mut socket).await;
    assert_eq!(
        held["typing"], false,
        "the last of the second, at its end: {held}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "held for the rest of the second: {:?}",
        started.elapsed()
    );
    let more = socket
        .next_of_within("events", Duration::from_millis(1500))
        .await;
    assert_eq!(more, None, "nothing else: the changes between were held");
}

async fn typing_reaches_the_room_and_lapses(backends: Backends) {
    let (app, [ann, bob, _], room) = group_of_three(backends, "timeline_typing").await;
    let mut socket = live_events(&app, &bob, &ann, &room).await;
    let typing = "mutation($r: ID!, $t: Boolean!) { setTyping(roomIdentity: $r, typing: $t) }";
    let answer = call(&app, &ann, typing, json!({ "r": room, "t": true })).await;
    assert_eq!(answer["data"]["setTyping"], true, "{answer}");
    let event = next_event(&mut socket, "events").await;
    assert_eq!(
        event,
        json!({ "__typename": "Typing", "user": { "username": "ann" }, "typing": true })
    );
    let who = call(
        &app,
        &bob,
        "query($r: ID!) { room(identity: $r) { typing { username } } }",
        json!({ "r": room }),
    )
    .await;
    assert_eq!(
        who["data"]["room"]["typing"],
        json!([{ "username": "ann" }]),
        "{who}"
    );
    let lapsed = next_event(&mut socket, "events").await;
    assert_eq!(lapsed["typing"], false, "a lapse says so: {lapsed}");
}

api_suite!(
    only_the_sender_edits_and_a_deleted_message_is_a_conflict,
    owners_and_admins_delete_others_messages_members_do_not,
    reactions_count_once_per_user_up_to_twenty_emoji,
    replies_stay_in_their_room_and_reads_never_move_back,
    roles_decide_who_manages_a_group_and_ownership_passes_on,
    room_events_follow_every_change_and_a_replay_ends_in_the_same_state,
    typing_reaches_the_room_and_lapses,
    a_subscriber_back_from_any_cursor_ends_in_the_state_of_one_that_never_left,
    removal_and_leaving_end_room_events_after_the_event_that_says_so,
    a_change_that_changes_nothing_makes_no_event,
    outsiders_are_forbidden_and_private_rooms_have_no_roles,
    typing_reaches_the_room_at_most_once_a_second_per_member,
    a_rooms_event_cursor_follows_every_change_after_it_was_read,
);

/// A message as shown: its content, whether deleted, its reactions counted.
type Shown = (String, bool, Vec<(String, usize)>);

/// A room as a subscriber of `roomEvents` knows it: each message's content,
/// deletion and reactions, and each member's role and read position.
#[derive(Debug, Default, Clone, PartialEq)]
struct Known {
    messages: BTreeMap<Uuid, Shown>,
    members: BTreeMap<Uuid, (Role, i64)>,
}

impl Known {
    fn apply(&mut self, event: &RoomEvent) {
        let mut message = |m: &MessageRecord| {
            let reactions = m
                .reactions
                .iter()
                .map(|r| (r.emoji.clone(), r.users.len()))
                .collect();
            self.messages.insert(
                m.identity,
                (m.content.clone(), m.deleted_at.is_some(), reactions),
            );
        };
        match event {
            RoomEvent::Posted(posted) => message(&posted.message),
            RoomEvent::Typing(_) => {}
            RoomEvent::Changed(changed) => match &changed.change {
                Stored::Message(m) => message(m),
                Stored::Member(m) => {
                    self.members
                        .insert(m.user_identity, (m.role, m.last_read_seq));
                }
                Stored::Departure(d) => {
                    self.members.remove(&d.user_identity);
                }
                Stored::Room(_) => {}
            },
        }
    }
}

/// An event's position, as a cursor of `room` names it after the event:
/// a posted message by its own cursor, anything else by its revision.
fn cursor_after(room: Uuid, event: &RoomEvent) -> Option<String> {
    match event {
        RoomEvent::Posted(posted) => Some(messages::encode_cursor(room, posted.message.seq)),
        RoomEvent::Changed(changed) => {
            Some(messages::encode_event_cursor(room, changed.change.rev()))
        }
        RoomEvent::Typing(_) => None,
    }
}

/// One random change by one of `people` in `room`; errors (a message
/// deleted meanwhile, someone else's message) are part of the game.
async fn random_change(
    app: &Arc<App>,
    people: &[Viewer],
    room: &str,
    sent: &[Uuid],
    rng: &mut StdRng,
) -> Option<Uuid> {
    let who = &people[rng.gen_range(0..people.len())];
    let target = (!sent.is_empty()).then(|| sent[rng.gen_range(0..sent.len())].to_string());
    let emoji = ["👍", "🎉", "❤️"][rng.gen_range(0..3)];
    match (rng.gen_range(0..10), target) {
        (0..=3, _) | (_, None) => {
            let content = format!("post {}", rng.r#gen::<u16>());
            let posted = messages::send(app, who, room, &content, None, None).await;
            return posted.ok().map(|event| event.message.identity);
        }
        (4, Some(target)) => {
            let content = format!("edit {}", rng.r#gen::<u16>());
            timeline::edit(app, who, &target, &content).await.ok();
        }
        (5, Some(target)) => {
            timeline::delete(app, who, &target).await.ok();
        }
        (6..=7, Some(target)) => {
            timeline::react(app, who, &target, emoji, true).await.ok();
        }
        (8, Some(target)) => {
            timeline::react(app, who, &target, emoji, false).await.ok();
        }
        (_, Some(_)) => {
            rooms::mark_read(app, who, room, None).await.ok();
        }
    }
    None
}

/// The revision of the room's state right after `event`.
fn rev_of(event: &RoomEvent) -> Option<i64> {
    match event {
        RoomEvent::Posted(posted) => Some(posted.message.rev),
        RoomEvent::Changed(changed) => Some(changed.change.rev()),
        RoomEvent::Typing(_) => None,
    }
}

/// The events of `events` up to the one that brings the room to revision
/// `newest`, each within a few seconds.
async fn take(
    events: &mut futures_util::stream::BoxStream<'static, chatroom::error::Result<RoomEvent>>,
    newest: i64,
) -> Vec<RoomEvent> {
    let mut taken = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("an event in time")
            .expect("the stream goes on")
            .expect("no error");
        let last = rev_of(&next) == Some(newest);
        taken.push(next);
        if last {
            return taken;
        }
    }
}

async fn a_subscriber_back_from_any_cursor_ends_in_the_state_of_one_that_never_left(
    backends: Backends,
) {
    for seed in [1_u64, 2, 3] {
        let (app, _dir) = bare_app(backends, &format!("replay_{seed}")).await;
        let people = [
            member(&app, "ann").await,
            member(&app, "bob").await,
            member(&app, "cat").await,
        ];
        let names = ["bob".to_owned(), "cat".to_owned()];
        let room = rooms::create_group(&app, &people[0], "g", "", &names)
            .await
            .expect("a group");
        let (identity, room_text) = (room.identity, room.identity.to_string());
        let mut never_left = delivery::room_events(app.clone(), &people[1], &room_text, None)
            .await
            .expect("subscribed");

        // Random changes, two people at a time.
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sent = Vec::new();
        for _ in 0..30 {
            let (mut first, mut second) = (
                StdRng::seed_from_u64(rng.r#gen()),
                StdRng::seed_from_u64(rng.r#gen()),
            );
            let (a, b) = tokio::join!(
                random_change(&app, &people, &room_text, &sent, &mut first),
                random_change(&app, &people, &room_text, &sent, &mut second),
            );
            sent.extend(a.into_iter().chain(b));
        }
        let newest = app
            .store
            .room(identity)
            .await
            .expect("read")
            .expect("room")
            .rev;
        let seen = take(&mut never_left, newest).await;
        let mut whole = Known::default();
        for event in &seen {
            whole.apply(event);
        }

        // Back from every cursor seen: what was known then, plus the replay.
        let mut replays = 0;
        for (place, event) in seen.iter().enumerate() {
            let Some(cursor) = cursor_after(identity, event) else {
                continue;
            };
            if rev_of(event) == Some(newest) {
                continue;
            }
            let mut known = Known::default();
            for earlier in &seen[..=place] {
                known.apply(earlier);
            }
            let mut back =
                delivery::room_events(app.clone(), &people[1], &room_text, Some(&cursor))
                    .await
                    .expect("subscribed again");
            for replayed in take(&mut back, newest).await {
                known.apply(&replayed);
            }
            assert_eq!(known, whole, "seed {seed}, back from event {place}");
            replays += 1;
        }
        assert!(
            replays >= 20,
            "seed {seed}: only {replays} cursors to come back from"
        );
    }
}
