//! Two instances behind one MongoDB and one Redis, as behind a load balancer.

use std::collections::HashSet;

use serde_json::json;

use crate::helpers::{Backends, MESSAGE_FIELDS, Probe, TestApp};

/// Two instances on `backends`.
async fn two_instances(backends: Backends, test: &str) -> (TestApp, TestApp) {
    let a = TestApp::spawn(backends, test).await;
    let b = a.sibling().await;
    (a, b)
}

async fn a_subscriber_on_one_instance_gets_messages_sent_through_both_once_and_in_order(
    backends: Backends,
) {
    let (a, b) = two_instances(backends, "cross_messages").await;
    let mut members = Vec::new();
    for i in 0..4 {
        members.push(a.register(&format!("xin{i}")).await);
    }
    let others: Vec<_> = members[1..].iter().collect();
    let room = a.group(&members[0], "across", &others).await;

    let mut socket = b.watch_room(&members[3], &room, &a, &members[0]).await;

    let senders = (0..4).map(|s| {
        let (instance, sender, room) = (if s % 2 == 0 { &a } else { &b }, &members[s], &room);
        async move {
            for n in 0..25 {
                let sent = instance.send(sender, room, &format!("s{s}:{n}")).await;
                assert!(sent["errors"].is_null(), "{sent}");
            }
        }
    });
    futures_util::future::join_all(senders).await;

    let mut received = Vec::new();
    let mut cursors = Vec::new();
    while received.len() < 100 {
        let message = socket.next_message("room", "messages").await;
        let content = message["content"].as_str().unwrap().to_owned();
        if !content.starts_with("probe:") {
            received.push(content);
            cursors.push(message["cursor"].as_str().unwrap().to_owned());
        }
    }
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), 100, "exactly once");
    for s in 0..4 {
        let own: Vec<usize> = received
            .iter()
            .filter_map(|c| c.strip_prefix(&format!("s{s}:")))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(own, (0..25).collect::<Vec<_>>(), "sender {s} in order");
    }
    let history = b
        .as_user(
            &members[3],
            "query($r: ID!) { messages(roomIdentity: $r, last: 100) { edges { cursor } } }",
            json!({ "r": room }),
        )
        .await;
    let stored: Vec<String> = history["data"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cursor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(cursors, stored, "delivered in the order of the store");
}

async fn inbox_and_lobby_cross_instances(backends: Backends) {
    let (a, b) = two_instances(backends, "cross_inbox").await;
    let (kim, lee) = (a.register("kim").await, a.register("lee").await);
    let room = a.befriend(&kim, &lee).await;

    let mut inbox = b.connect(&lee).await;
    a.subscribe_ok(
        &mut inbox,
        ("inbox", "inbox"),
        &format!("subscription {{ inbox {{ {MESSAGE_FIELDS} }} }}"),
        json!({}),
        &Probe::message(&kim, &room),
    )
    .await;
    a.send(&kim, &room, "through a").await;
    assert_eq!(
        inbox.next_message("inbox", "inbox").await["content"],
        "through a"
    );

    let group = a.group(&kim, "later", &[]).await;
    a.as_user(
        &kim,
        "mutation($r: ID!) { addMembers(roomIdentity: $r, usernames: [\"lee\"]) { identity } }",
        json!({ "r": group }),
    )
    .await;
    a.send(&kim, &group, "joined on a").await;
    assert_eq!(
        inbox.next_message("inbox", "inbox").await["content"],
        "joined on a"
    );

    let mut lobby = b.connect(&lee).await;
    let shout = Probe::lobby(&kim);
    a.subscribe_ok(
        &mut lobby,
        ("lobby", "lobby"),
        "subscription { lobby { content } }",
        json!({}),
        &shout,
    )
    .await;
    a.as_user(&kim, shout.mutation, json!({ "content": "hello b" }))
        .await;
    assert_eq!(
        lobby.next_message("lobby", "lobby").await["content"],
        "hello b"
    );
}

async fn a_code_mailed_through_one_instance_registers_on_the_other(backends: Backends) {
    let (a, b) = two_instances(backends, "cross_code").await;
    a.send_email_code("mia@example.com").await;
    let again = b.send_email_code("mia@example.com").await;
    assert_eq!(
        again["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "the resend limit holds across instances"
    );
    let code = a.read_code("mia@example.com");
    let registered = b
        .anonymous(
            crate::helpers::REGISTER,
            json!({ "input": {
                "username": "mia", "password": "a long password", "email": "mia@example.com", "code": code
            }}),
        )
        .await;
    assert!(registered["errors"].is_null(), "{registered}");
    let token = registered["data"]["register"]["token"].as_str().unwrap();
    let me = a
        .request(Some(token), &[], "{ me { username } }", json!({}))
        .await;
    assert_eq!(
        me["data"]["me"]["username"], "mia",
        "a token from b works on a"
    );
}

async fn removing_a_friend_on_one_instance_ends_the_subscription_on_the_other(backends: Backends) {
    let (a, b) = two_instances(backends, "cross_unfriend").await;
    let (ned, ola) = (a.register("ned").await, a.register("ola").await);
    let room = a.befriend(&ned, &ola).await;
    let mut socket = b.watch_room(&ola, &room, &a, &ned).await;

    a.as_user(
        &ned,
        "mutation { removeFriend(username: \"ola\") }",
        json!({}),
    )
    .await;
    assert_eq!(
        socket.next_of("room").await,
        None,
        "the subscription on b ended"
    );
}

crate::accounts::shared_suite!(
    a_subscriber_on_one_instance_gets_messages_sent_through_both_once_and_in_order,
    inbox_and_lobby_cross_instances,
    a_code_mailed_through_one_instance_registers_on_the_other,
    removing_a_friend_on_one_instance_ends_the_subscription_on_the_other,
);
