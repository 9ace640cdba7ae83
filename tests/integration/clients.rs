//! The typed Rust client of `clients/rust` against the real server: what
//! its example does (register with a mailed code, open a room, send,
//! subscribe) works on every backend, and errors reach it with their codes.

use std::time::Duration;

use chatroom_client::{Client, Error, Registration};

use crate::{
    accounts::api_suite,
    helpers::{Backends, TestApp},
};

const PASSWORD: &str = "a long password";

/// How long a test waits for a message that should come at once.
const PROMPTLY: Duration = Duration::from_secs(10);

/// A typed client of `app`.
fn client(app: &TestApp) -> Client {
    Client::new(&app.url("/graphql")).expect("an http URL")
}

/// Registers `username` as a person does: asks for a code, reads it in
/// the mail (the outbox), registers with it.
async fn register(app: &TestApp, username: &str) -> Client {
    let mut client = client(app);
    let email = format!("{username}@example.com");
    let mailed = client.send_email_code(&email).await.expect("a code");
    assert!(mailed.expires_in > 0);
    let registration = Registration {
        username: username.into(),
        password: PASSWORD.into(),
        email: email.clone(),
        code: app.read_code(&email),
    };
    let session = client.register(registration).await.expect("registered");
    assert_eq!(session.user.username, username);
    assert_eq!(client.token(), Some(session.token.as_str()));
    client
}

fn api_code(error: Error) -> String {
    match error {
        Error::Api { code, .. } => code,
        other => panic!("expected an API error, got {other}"),
    }
}

async fn a_typed_client_registers_sends_and_receives_its_message_live(backends: Backends) {
    let app = TestApp::spawn(backends, "typed_client_chat").await;
    let ann = register(&app, "ann").await;
    let bob = register(&app, "bob").await;
    let room = ann.create_group("typed", &["bob"]).await.expect("a group");
    let before = ann
        .send_message(&room.identity, "before bob listens", None)
        .await
        .expect("sent");

    // From the last message bob has: what is sent while the subscription
    // starts is replayed, so the test need not wait for it to be live.
    let mut messages = bob
        .subscribe_messages(&room.identity, Some(&before.cursor))
        .await
        .expect("subscribed");
    let sent = bob
        .send_message(&room.identity, "hello from rust", Some("rust-1"))
        .await
        .expect("sent");
    let received = tokio::time::timeout(PROMPTLY, messages.next())
        .await
        .expect("the message in time")
        .expect("the subscription goes on")
        .expect("a message")
        .messages;

    assert_eq!(received.identity, sent.identity);
    assert_eq!(received.room_identity, room.identity);
    assert_eq!(received.content, "hello from rust");
    assert_eq!(received.sender.username, "bob");
    assert_eq!(received.cursor, sent.cursor);
    assert_eq!(received.client_id.as_deref(), Some("rust-1"));
    messages.stop().await.expect("stopped");
}

async fn a_typed_client_logs_in_and_chats_in_a_friends_private_room(backends: Backends) {
    let app = TestApp::spawn(backends, "typed_client_friend").await;
    let ann = register(&app, "ann").await;
    register(&app, "bob").await;
    let mut bob = client(&app);
    bob.login("BOB", PASSWORD)
        .await
        .expect("logged in, ignoring case");

    let room = bob.add_friend("ann").await.expect("befriended");
    let same = ann.add_friend("bob").await.expect("already friends");
    assert_eq!(same.identity, room.identity);
    let first = bob
        .send_message(&room.identity, "hi ann", None)
        .await
        .expect("sent");
    let mut messages = ann
        .subscribe_messages(&room.identity, Some(&first.cursor))
        .await
        .expect("subscribed");
    let second = bob
        .send_message(&room.identity, "still there?", None)
        .await
        .expect("sent");

    let next = tokio::time::timeout(PROMPTLY, messages.next())
        .await
        .expect("in time")
        .expect("a result")
        .expect("a message");
    assert_eq!(next.messages.identity, second.identity);
    assert_eq!(next.messages.sender.username, "bob");
}

async fn errors_reach_the_typed_client_with_their_codes(backends: Backends) {
    let app = TestApp::spawn(backends, "typed_client_errors").await;
    let ann = register(&app, "ann").await;
    let wes = register(&app, "wes").await;
    let room = ann.create_group("inner", &[]).await.expect("a group");

    let wrong = client(&app).login("ann", "not the password").await;
    assert_eq!(api_code(wrong.expect_err("refused")), "UNAUTHENTICATED");
    match ann.send_message(&room.identity, "   ", None).await {
        Err(Error::Api { code, field, .. }) => {
            assert_eq!(code, "BAD_USER_INPUT");
            assert_eq!(field.as_deref(), Some("content"));
        }
        other => panic!("expected BAD_USER_INPUT, got {other:?}"),
    }
    let outsider = wes.send_message(&room.identity, "let me in", None).await;
    assert_eq!(api_code(outsider.expect_err("refused")), "FORBIDDEN");
    let mut peek = wes
        .subscribe_messages(&room.identity, None)
        .await
        .expect("the socket opens");
    let refused = tokio::time::timeout(PROMPTLY, peek.next())
        .await
        .expect("in time")
        .expect("a result");
    assert_eq!(api_code(refused.expect_err("refused")), "FORBIDDEN");

    let anonymous = client(&app).create_group("mine", &[]).await;
    assert_eq!(api_code(anonymous.expect_err("refused")), "UNAUTHENTICATED");
    let forged = client(&app)
        .with_token("not a token")
        .subscribe_messages(&room.identity, None)
        .await;
    match forged {
        Err(Error::Closed { code, .. }) => assert_eq!(code, 4403),
        other => panic!(
            "expected the socket closed with 4403, got {:?}",
            other.err()
        ),
    }
}

api_suite!(
    a_typed_client_registers_sends_and_receives_its_message_live,
    a_typed_client_logs_in_and_chats_in_a_friends_private_room,
    errors_reach_the_typed_client_with_their_codes,
);
