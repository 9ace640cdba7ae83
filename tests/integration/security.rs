//! What one request, socket, user or address can make the server do: every
//! cost bounded before the work, and refused with API.md's codes.

use std::{sync::Arc, time::Duration};

use chatroom::{
    app::App,
    auth::Viewer,
    broker::{Event, Subscription, Topic},
    chat::{
        accounts::{self, NewAccount},
        delivery, messages, rooms, social,
    },
};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Backends, TestApp, WatchedStore, error_code};

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

/// Answers of `field` in an aliased request: how many were done (no error
/// at their alias; `data` itself tells nothing, since one failed non-null
/// field makes it null), and how many refused with RATE_LIMITED.
fn done_and_limited(answer: &Value, aliases: usize) -> (usize, usize) {
    let errors = answer["errors"].as_array().cloned().unwrap_or_default();
    let done = (0..aliases)
        .filter(|i| !errors.iter().any(|e| e["path"][0] == format!("a{i}")))
        .count();
    let limited = errors
        .iter()
        .filter(|e| e["extensions"]["code"] == "RATE_LIMITED")
        .count();
    (done, limited)
}

/// A request of `aliases` aliased `field`s.
fn aliased(signature: &str, field: &str, aliases: usize) -> String {
    let fields: String = (0..aliases).map(|i| format!(" a{i}: {field}")).collect();
    format!("mutation{signature} {{{fields} }}")
}

/// Runs 200 aliases of `field` as `account` in one request: some are done,
/// at most one burst's worth (50 at most by default), and the rest are
/// RATE_LIMITED. How many were done.
async fn at_most_one_burst(app: &TestApp, account: &crate::helpers::Account, field: &str) -> usize {
    let answer = app
        .as_user(account, &aliased("", field, 200), json!({}))
        .await;
    let (done, limited) = done_and_limited(&answer, 200);
    assert!((1..=50).contains(&done), "{field}: {done} done");
    assert_eq!(done + limited, 200, "{answer}");
    done
}

async fn aliases_of_a_writing_mutation_count_one_each(backends: Backends) {
    let app = TestApp::spawn_with(backends, "aliased_writes", |c| {
        let defaults = chatroom::config::RateLimits::default();
        c.rates.write_burst = defaults.write_burst;
        c.rates.writes_per_second = defaults.writes_per_second;
        c.rates.message_burst = defaults.message_burst;
        c.rates.messages_per_second = defaults.messages_per_second;
    })
    .await;
    let ann = app.register("ann").await;
    let mut lobby = app.connect(&ann).await;
    lobby
        .subscribe("lobby", "subscription { lobby { content } }", json!({}))
        .await;

    let created = at_most_one_burst(
        &app,
        &ann,
        r#"createGroup(input: { name: "g" }) { identity }"#,
    )
    .await;
    let stored = app.as_user(&ann, "{ rooms { identity } }", json!({})).await;
    assert_eq!(
        stored["data"]["rooms"].as_array().map(Vec::len),
        Some(created)
    );

    let sent = at_most_one_burst(
        &app,
        &ann,
        r#"sendLobbyMessage(content: "hi") { createdAt }"#,
    )
    .await;
    for _ in 0..sent {
        assert!(lobby.next_of("lobby").await.is_some());
    }
    assert_eq!(
        lobby
            .next_of_within("lobby", std::time::Duration::from_millis(300))
            .await,
        None,
        "only the messages sent were broadcast"
    );
}

async fn every_writing_mutation_is_limited_per_user(backends: Backends) {
    let app = TestApp::spawn_with(backends, "writes_per_user", |c| {
        c.rates.write_burst = 1;
        c.rates.writes_per_second = 1;
    })
    .await;
    let (ann, bob, cat) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cat").await,
    );
    let room = app.group(&bob, "g", &[&ann]).await;
    let writes = [
        (
            "",
            r#"updateProfile(input: { nickname: "A" }) { nickname }"#.to_owned(),
        ),
        (
            "",
            format!(r#"addFriend(username: "{}") {{ identity }}"#, cat.username),
        ),
        ("", format!(r#"removeFriend(username: "{}")"#, cat.username)),
        (
            "",
            r#"createGroup(input: { name: "h" }) { identity }"#.to_owned(),
        ),
        (
            "($r: ID!)",
            r#"addMembers(roomIdentity: $r, usernames: ["cat"]) { identity }"#.to_owned(),
        ),
        (
            "($r: ID!)",
            "markRoomRead(roomIdentity: $r) { identity }".to_owned(),
        ),
        ("($r: ID!)", "leaveRoom(roomIdentity: $r)".to_owned()),
    ];
    for (signature, field) in writes {
        let answer = app
            .as_user(&ann, &aliased(signature, &field, 2), json!({ "r": room }))
            .await;
        // The first may do its work or fail on its own; the second waits.
        let (_, limited) = done_and_limited(&answer, 2);
        assert_eq!(limited, 1, "{field}: {answer}");
        assert!(answer["data"]["a1"].is_null(), "{field}: {answer}");
        // The bucket refills at one a second: wait for the next mutation.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
    let other = app
        .as_user(
            &bob,
            r#"mutation { updateProfile(input: { nickname: "B" }) { nickname } }"#,
            json!({}),
        )
        .await;
    assert!(other["errors"].is_null(), "bob is not limited: {other}");
}

async fn mutations_are_limited_per_client_address_and_registrations_too(backends: Backends) {
    let app = TestApp::spawn_with(backends, "writes_per_address", |c| {
        c.rates.registrations_per_address = 2;
    })
    .await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let email = "cat@example.com";
    assert!(app.send_email_code(email).await["errors"].is_null());
    let code = app.read_code(email);
    let third = app
        .anonymous(
            "mutation($input: RegisterInput!) { register(input: $input) { token } }",
            json!({ "input": { "username": "cat", "password": "password-cat", "email": email, "code": code } }),
        )
        .await;
    assert_eq!(error_code(&third), "RATE_LIMITED", "{third}");

    let app = TestApp::spawn_with(backends, "writes_per_address_any_user", |c| {
        c.rates.address_write_burst = 3;
        c.rates.address_writes_per_second = 1;
    })
    .await;
    let _ = (ann, bob);
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.group(&ann, "g", &[&bob]).await;
    let mut outcomes = Vec::new();
    for account in [&ann, &bob, &ann, &bob] {
        outcomes.push(error_code(&app.send(account, &room, "hi").await).to_owned());
    }
    assert!(
        outcomes.iter().any(|code| code == "RATE_LIMITED"),
        "two users from one address share its rate: {outcomes:?}"
    );
}

async fn rooms_per_user_group_members_and_named_users_are_capped(backends: Backends) {
    let app = TestApp::spawn_with(backends, "room_caps", |c| {
        c.limits.max_rooms_per_user = 2;
        c.limits.max_group_members = 3;
        c.limits.max_usernames_per_request = 2;
    })
    .await;
    let (ann, bob, cat, dan) = (
        app.register("ann").await,
        app.register("bob").await,
        app.register("cat").await,
        app.register("dan").await,
    );
    let create = |members: &[&str]| json!({ "input": { "name": "g", "members": members } });
    const CREATE: &str =
        "mutation($input: CreateGroupInput!) { createGroup(input: $input) { identity } }";

    let three = app
        .as_user(&ann, CREATE, create(&["bob", "cat", "dan"]))
        .await;
    assert_eq!(error_code(&three), "BAD_USER_INPUT", "{three}");
    assert_eq!(crate::helpers::error_field(&three), "members");

    let room = app.group(&ann, "g", &[&bob, &cat]).await;
    let add = app
        .as_user(
            &ann,
            "mutation($r: ID!, $u: [String!]!) { addMembers(roomIdentity: $r, usernames: $u) { identity } }",
            json!({ "r": room, "u": ["dan"] }),
        )
        .await;
    assert_eq!(error_code(&add), "BAD_USER_INPUT", "a fourth member: {add}");
    assert_eq!(crate::helpers::error_field(&add), "usernames");
    let many = app
        .as_user(
            &ann,
            "mutation($r: ID!, $u: [String!]!) { addMembers(roomIdentity: $r, usernames: $u) { identity } }",
            json!({ "r": room, "u": ["bob", "cat", "dan"] }),
        )
        .await;
    assert_eq!(error_code(&many), "BAD_USER_INPUT", "three names: {many}");

    app.group(&ann, "second", &[]).await;
    let third_room = app.as_user(&ann, CREATE, create(&[])).await;
    assert_eq!(error_code(&third_room), "BAD_USER_INPUT", "{third_room}");
    let friend = app
        .as_user(
            &dan,
            "mutation($u: String!) { addFriend(username: $u) { identity } }",
            json!({ "u": ann.username }),
        )
        .await;
    assert_eq!(
        error_code(&friend),
        "BAD_USER_INPUT",
        "ann is full: {friend}"
    );
    assert_eq!(crate::helpers::error_field(&friend), "username");
    let rooms = app.as_user(&ann, "{ rooms { identity } }", json!({})).await;
    assert_eq!(rooms["data"]["rooms"].as_array().map(Vec::len), Some(2));
}

async fn concurrent_wrong_passwords_are_counted_before_they_are_checked(backends: Backends) {
    let app = TestApp::spawn_with(backends, "login_race", |c| {
        c.rates.login_failures_per_username = 5;
    })
    .await;
    let ann = app.register("ann").await;
    let tries = (0..40).map(|_| app.login("ann", "not-the-password"));
    let answers = futures_util::future::join_all(tries).await;
    let checked = answers
        .iter()
        .filter(|answer| error_code(answer) == "UNAUTHENTICATED")
        .count();
    let refused = answers
        .iter()
        .filter(|answer| error_code(answer) == "RATE_LIMITED")
        .count();
    assert_eq!((checked, refused), (5, 35), "{answers:?}");
    let right = app.login("ann", &ann.password).await;
    assert_eq!(error_code(&right), "RATE_LIMITED", "locked: {right}");
}

/// A kv that counts the reads of email codes: each read is a comparison.
struct CodeReads {
    inner: std::sync::Arc<dyn chatroom::kv::Kv>,
    reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl chatroom::kv::Kv for CodeReads {
    async fn ping(&self) -> chatroom::error::Result<()> {
        self.inner.ping().await
    }
    async fn get(&self, key: &str) -> chatroom::error::Result<Option<String>> {
        if key.starts_with("code:") && !key.starts_with("code:tries:") {
            self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.get(key).await
    }
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> chatroom::error::Result<()> {
        self.inner.set(key, value, ttl).await
    }
    async fn increment(&self, key: &str, ttl: Duration) -> chatroom::error::Result<u64> {
        self.inner.increment(key, ttl).await
    }
    async fn decrement(&self, key: &str) -> chatroom::error::Result<()> {
        self.inner.decrement(key).await
    }
    async fn remove(&self, key: &str) -> chatroom::error::Result<bool> {
        self.inner.remove(key).await
    }
    async fn time_to_live(&self, key: &str) -> chatroom::error::Result<Option<Duration>> {
        self.inner.time_to_live(key).await
    }
    async fn mark(&self, key: &str, member: &str, ttl: Duration) -> chatroom::error::Result<()> {
        self.inner.mark(key, member, ttl).await
    }
    async fn unmark(&self, key: &str, member: &str) -> chatroom::error::Result<bool> {
        self.inner.unmark(key, member).await
    }
    async fn marked(&self, key: &str) -> chatroom::error::Result<Vec<String>> {
        self.inner.marked(key).await
    }
    async fn hold_many(
        &self,
        roster: &str,
        entries: &[String],
        holder: &str,
        ttl: Duration,
    ) -> chatroom::error::Result<Vec<String>> {
        self.inner.hold_many(roster, entries, holder, ttl).await
    }
    async fn release(
        &self,
        roster: &str,
        entries: &[String],
        holder: &str,
        after: Duration,
    ) -> chatroom::error::Result<()> {
        self.inner.release(roster, entries, holder, after).await
    }
    async fn take_lapsed(
        &self,
        roster: &str,
        limit: usize,
    ) -> chatroom::error::Result<Vec<(String, i64)>> {
        self.inner.take_lapsed(roster, limit).await
    }
    async fn held(&self, roster: &str, entries: &[String]) -> chatroom::error::Result<Vec<bool>> {
        self.inner.held(roster, entries).await
    }
}

async fn concurrent_wrong_codes_are_counted_before_they_are_compared(backends: Backends) {
    use chatroom::chat::accounts::Registration;
    let dir = tempfile::tempdir().expect("a data dir");
    let mut app = chatroom::app::App::open(backends.config("code_race", &dir))
        .await
        .expect("the app");
    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    app.kv = std::sync::Arc::new(CodeReads {
        inner: app.kv.clone(),
        reads: reads.clone(),
    });
    let client = std::net::IpAddr::from([127, 0, 0, 1]);
    let email = "race@example.com";
    accounts::send_email_code(&app, email, client)
        .await
        .expect("a code is mailed");
    let right = app
        .kv
        .get(&format!("code:{{{email}}}"))
        .await
        .unwrap()
        .expect("the code");
    let wrong = if right == "000000" {
        "000001"
    } else {
        "000000"
    };
    let registration = |code: &str| Registration {
        account: NewAccount {
            username: "racer".into(),
            password: "password-racer".into(),
            email: email.into(),
            nickname: None,
            sex: chatroom::store::Sex::Unknown,
            avatar: None,
        },
        code: code.into(),
    };
    reads.store(0, std::sync::atomic::Ordering::SeqCst);
    let guesses = (0..40).map(|_| accounts::register(&app, registration(wrong)));
    let answers = futures_util::future::join_all(guesses).await;
    assert!(
        answers
            .iter()
            .all(|answer| matches!(answer, Err(chatroom::error::Error::InvalidCode)))
    );
    let compared = reads.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        compared <= 5,
        "{compared} guesses were compared with the code"
    );
    let late = accounts::register(&app, registration(&right)).await;
    assert!(
        matches!(late, Err(chatroom::error::Error::InvalidCode)),
        "five wrong tries voided the code: {late:?}"
    );
}

async fn register_tells_nothing_of_taken_emails_without_the_code(backends: Backends) {
    let app = TestApp::spawn(backends, "register_probe").await;
    let ann = app.register("ann").await;
    let probe = app
        .anonymous(
            "mutation($input: RegisterInput!) { register(input: $input) { token } }",
            json!({ "input": { "username": "other", "password": "password-other",
                               "email": ann.email, "code": "123456" } }),
        )
        .await;
    assert_eq!(error_code(&probe), "INVALID_CODE", "{probe}");
}

async fn a_name_that_is_no_username_is_counted_against_the_address_only(backends: Backends) {
    let app = TestApp::spawn(backends, "login_long_name").await;
    let long = "x".repeat(50_000);
    for _ in 0..7 {
        let answer = app.login(&long, "whatever-password").await;
        assert_eq!(
            error_code(&answer),
            "UNAUTHENTICATED",
            "no lock on a name: {answer}"
        );
    }
}

async fn a_follower_that_may_have_lost_events_asks_the_store_about_membership(backends: Backends) {
    let (app, _dir) = bare_app(backends, "catch_up_membership").await;
    let (ann, bob) = (member(&app, "ann").await, member(&app, "bob").await);
    let room = rooms::create_group(&app, &ann, "g", "", &["bob".to_owned()])
        .await
        .expect("a group");
    let identity = room.identity.to_string();
    let mut followed = delivery::room_messages(app.clone(), &bob, &identity, None)
        .await
        .expect("subscribed");
    let mut inbox = delivery::inbox(app.clone(), &bob)
        .await
        .expect("subscribed");
    messages::send(&app, &ann, &identity, "before", None, None)
        .await
        .expect("sent");
    for live in [&mut followed, &mut inbox] {
        let first = tokio::time::timeout(Duration::from_secs(5), live.next()).await;
        assert!(matches!(first, Ok(Some(Ok(_)))), "live: {first:?}");
    }

    // bob is removed, and the broker loses the event that says so: only
    // the store knows. Then the broker tells every subscriber it lost events.
    let gone = bob.identity;
    let rule = move |_: &chatroom::store::RoomScene| {
        Ok(vec![chatroom::store::RoomEdit::Remove {
            user: gone,
            by: None,
            at: chatroom::store::now(),
        }])
    };
    app.store
        .change_room(room.identity, Arc::new(rule))
        .await
        .expect("removed");
    app.broker
        .publish(Topic::Room(room.identity), Event::Resync)
        .await;
    app.broker
        .publish(Topic::User(bob.identity), Event::Resync)
        .await;
    messages::send(&app, &ann, &identity, "after bob left", None, None)
        .await
        .expect("sent");

    let next = tokio::time::timeout(Duration::from_secs(5), followed.next()).await;
    assert!(
        matches!(next, Ok(None)),
        "the room's subscription ends: {next:?}"
    );
    let next = tokio::time::timeout(Duration::from_secs(1), inbox.next()).await;
    assert!(next.is_err(), "the inbox leaves the room out: {next:?}");
}

/// A socket whose token must be checked again (a password changed, or the
/// broker may have lost word of one) goes on delivering while the store
/// takes its time to answer: the check runs beside the operations. Were it
/// in their way, their own store reads would also run out of time while
/// not polled, and end the subscriptions with an error.
#[tokio::test]
async fn a_socket_goes_on_delivering_while_its_token_is_checked_again() {
    let (inner, _dir) = crate::helpers::sqlite_store().await;
    let (holding, gate) = tokio::sync::watch::channel(false);
    let held = Arc::new(tokio::sync::Notify::new());
    let told = held.clone();
    let store = WatchedStore::new(inner, move |call| {
        let (mut gate, told) = (gate.clone(), told.clone());
        Box::pin(async move {
            if call == "login_record" && *gate.borrow_and_update() {
                told.notify_one();
                let _ = gate.wait_for(|holding| !holding).await;
            }
            Ok(())
        })
    });
    let app = TestApp::spawn_on(Backends::Embedded, "slow_recheck", |_| {}, Some(store)).await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let room = app.befriend(&ann, &bob).await;
    let mut socket = app.watch_room(&bob, &room, &app, &ann).await;
    let sender = Viewer {
        identity: ann.identity.parse().expect("a UUID"),
        username: ann.username.clone(),
    };

    holding.send_replace(true);
    app.app.broker.publish(Topic::Sessions, Event::Resync).await;
    tokio::time::timeout(Duration::from_secs(10), held.notified())
        .await
        .expect("the socket asks the store about its token");
    messages::send(&app.app, &sender, &room, "while checking", None, None)
        .await
        .expect("sent");
    let delivered = socket.next_message("room", "messages").await;
    assert_eq!(delivered["content"], "while checking");

    holding.send_replace(false);
    messages::send(&app.app, &sender, &room, "checked", None, None)
        .await
        .expect("sent");
    let delivered = socket.next_message("room", "messages").await;
    assert_eq!(
        delivered["content"], "checked",
        "the token still counts: the socket goes on"
    );
}

const CHANGE_PASSWORD: &str = "mutation($old: String!, $new: String!) { changePassword(oldPassword: $old, newPassword: $new) }";
const ME: &str = "{ me { username } }";

fn with_token(account: &crate::helpers::Account, token: &str) -> crate::helpers::Account {
    crate::helpers::Account {
        token: token.to_owned(),
        ..account.clone()
    }
}

/// A second session of `account`: a login of its own.
async fn another_session(
    app: &TestApp,
    account: &crate::helpers::Account,
) -> crate::helpers::Account {
    let login = app.login(&account.username, &account.password).await;
    let token = login["data"]["login"]["token"].as_str().expect("a token");
    with_token(account, token)
}

async fn a_password_change_ends_every_other_session_on_every_instance(backends: Backends) {
    let one = TestApp::spawn(backends, "password_change").await;
    // With Redis, a second instance on the same store: what it accepts and
    // the sockets it holds must end too.
    let two = match backends {
        Backends::MongoRedis | Backends::MongoRedisCluster => Some(one.sibling().await),
        Backends::Embedded => None,
    };
    let ann = one.register("ann").await;
    let phone = another_session(&one, &ann).await;
    let laptop = another_session(&one, &ann).await;
    let mut phone_socket = one.connect(&phone).await;
    let mut remote_socket = match &two {
        Some(two) => Some(two.connect(&laptop).await),
        None => None,
    };

    let changed = one
        .as_user(
            &ann,
            CHANGE_PASSWORD,
            json!({ "old": ann.password, "new": "a-new-password" }),
        )
        .await;
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");

    assert!(matches!(
        phone_socket.next().await,
        crate::helpers::Frame::Closed(Some(4403))
    ));
    if let Some(socket) = &mut remote_socket {
        assert!(matches!(
            socket.next().await,
            crate::helpers::Frame::Closed(Some(4403))
        ));
    }
    for stale in [&phone, &laptop] {
        let answer = one.as_user(stale, ME, json!({})).await;
        assert_eq!(error_code(&answer), "UNAUTHENTICATED", "{answer}");
        if let Some(two) = &two {
            let answer = two.as_user(stale, ME, json!({})).await;
            assert_eq!(
                error_code(&answer),
                "UNAUTHENTICATED",
                "on the other instance: {answer}"
            );
        }
        let mut socket = one.socket("graphql-transport-ws").await;
        let refused = socket.init(json!({ "token": stale.token })).await;
        assert!(
            matches!(refused, crate::helpers::Frame::Closed(Some(4403))),
            "{refused:?}"
        );
    }
    let kept = one.as_user(&ann, ME, json!({})).await;
    assert_eq!(
        kept["data"]["me"]["username"], "ann",
        "the changing session goes on: {kept}"
    );
    let old = one.login("ann", &ann.password).await;
    assert_eq!(error_code(&old), "UNAUTHENTICATED");
    let new = one.login("ann", "a-new-password").await;
    assert!(new["errors"].is_null(), "{new}");
}

async fn a_wrong_old_password_is_a_failed_login_and_a_short_new_one_bad_input(backends: Backends) {
    let app = TestApp::spawn_with(backends, "password_change_refused", |c| {
        c.rates.login_failures_per_username = 2;
    })
    .await;
    let ann = app.register("ann").await;
    let short = app
        .as_user(
            &ann,
            CHANGE_PASSWORD,
            json!({ "old": ann.password, "new": "short" }),
        )
        .await;
    assert_eq!(error_code(&short), "BAD_USER_INPUT", "{short}");
    assert_eq!(crate::helpers::error_field(&short), "newPassword");
    for _ in 0..2 {
        let wrong = app
            .as_user(
                &ann,
                CHANGE_PASSWORD,
                json!({ "old": "not-the-password", "new": "a-new-password" }),
            )
            .await;
        assert_eq!(error_code(&wrong), "UNAUTHENTICATED", "{wrong}");
    }
    let locked = app.login("ann", &ann.password).await;
    assert_eq!(
        error_code(&locked),
        "RATE_LIMITED",
        "two failures lock the username: {locked}"
    );
}

async fn a_refreshed_token_lives_on_and_keeps_its_session(backends: Backends) {
    let app = TestApp::spawn(backends, "refresh_token").await;
    let ann = app.register("ann").await;
    let refreshed = app
        .as_user(
            &ann,
            "mutation { refreshToken { token expiresAt user { username } } }",
            json!({}),
        )
        .await;
    let token = refreshed["data"]["refreshToken"]["token"]
        .as_str()
        .expect("a token");
    let renewed = with_token(&ann, token);
    let changed = app
        .as_user(
            &ann,
            CHANGE_PASSWORD,
            json!({ "old": ann.password, "new": "a-new-password" }),
        )
        .await;
    assert_eq!(changed["data"]["changePassword"], true, "{changed}");
    let me = app.as_user(&renewed, ME, json!({})).await;
    assert_eq!(me["data"]["me"]["username"], "ann", "same session: {me}");
    let anonymous = app
        .anonymous("mutation { refreshToken { token } }", json!({}))
        .await;
    assert_eq!(error_code(&anonymous), "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_socket_closes_when_its_token_expires() {
    let app = TestApp::spawn_with(Backends::Embedded, "token_expiry", |c| c.jwt_ttl_secs = 2).await;
    let ann = app.register("ann").await;
    let mut socket = app.connect(&ann).await;
    socket
        .subscribe("inbox", "subscription { inbox { content } }", json!({}))
        .await;
    let started = std::time::Instant::now();
    assert!(matches!(
        socket.next().await,
        crate::helpers::Frame::Closed(Some(4403))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_socket_without_connection_init_in_time_is_closed_4408() {
    let app = TestApp::spawn_with(Backends::Embedded, "init_timeout", |c| {
        c.limits.init_timeout_secs = 1;
    })
    .await;
    let mut socket = app.socket("graphql-transport-ws").await;
    assert!(matches!(
        socket.next().await,
        crate::helpers::Frame::Closed(Some(4408))
    ));
}

#[tokio::test]
async fn a_silent_socket_is_pinged_then_reaped() {
    let app = TestApp::spawn_with(Backends::Embedded, "idle_timeout", |c| {
        c.limits.ping_secs = 1;
        c.limits.idle_timeout_secs = 3;
    })
    .await;
    let ann = app.register("ann").await;
    // This one reads, so its client answers the pings: it stays.
    let mut answering = app.connect(&ann).await;
    // This one never reads again: a half-open peer.
    let silent = app.connect(&ann).await;
    let open = "chatroom_websocket_connections";
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while app.metric(open).await > 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the silent socket was kept"
        );
        assert!(
            answering
                .next_of_within("none", Duration::from_millis(500))
                .await
                .is_none()
        );
    }
    drop(silent);
    answering.subscribe("me", ME, json!({})).await;
    assert_eq!(answering.next_message("me", "me").await["username"], "ann");
}

#[tokio::test]
async fn open_sockets_per_client_address_are_bounded() {
    let app = TestApp::spawn_with(Backends::Embedded, "sockets_per_address", |c| {
        c.limits.max_sockets_per_address = 2;
    })
    .await;
    let first = app.socket("graphql-transport-ws").await;
    let _second = app.socket("graphql-transport-ws").await;
    let third = app.try_socket("graphql-transport-ws", &[]).await;
    assert_eq!(third.err(), Some(429));
    drop(first);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while app.try_socket("graphql-transport-ws", &[]).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "a closed socket frees its seat"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn connections_over_the_instance_cap_get_503_and_the_rest_go_on() {
    let app = TestApp::spawn_with(Backends::Embedded, "connection_cap", |c| {
        c.limits.max_connections = Some(3);
    })
    .await;
    let post = || async {
        // A client of its own: a new connection each time.
        reqwest::Client::new()
            .post(app.url("/graphql"))
            .json(&json!({ "query": "{ __typename }" }))
            .send()
            .await
            .expect("an answer")
            .status()
            .as_u16()
    };
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(app.socket("graphql-transport-ws").await);
    }
    assert_eq!(post().await, 503);
    let mut socket = open.pop().expect("a socket");
    socket.init_ok(json!({})).await;
    drop(socket);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while post().await != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "a closed connection frees its place"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut kept = open.pop().expect("a socket");
    kept.init_ok(json!({})).await;
}

#[tokio::test]
async fn one_socket_shares_renders_of_a_bounded_number_of_documents() {
    let app = TestApp::spawn(Backends::Embedded, "shared_documents").await;
    let ann = app.register("ann").await;
    let room = app.group(&ann, "g", &[]).await;
    let mut socket = app.connect(&ann).await;
    // Twenty documents that differ only in a comment: twenty render keys.
    for n in 0..20 {
        let query =
            format!("subscription($r: ID!) {{ messages(roomIdentity: $r) {{ content }} }} # {n}");
        socket
            .subscribe(&format!("s{n}"), &query, json!({ "r": room }))
            .await;
    }
    // The subscriptions are live once a probe reaches the last of them.
    let mut probes = 0;
    loop {
        app.send(&ann, &room, &format!("probe {probes}")).await;
        probes += 1;
        if socket
            .next_of_within("s19", Duration::from_millis(300))
            .await
            .is_some()
        {
            break;
        }
        assert!(probes < 50, "the subscriptions never went live");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let renders = "chatroom_subscription_renders_total";
    let before = app.metric(renders).await;
    app.send(&ann, &room, "counted").await;
    let mut delivered = 0;
    while delivered < 20 {
        let frame = socket.next_json().await;
        if frame["payload"]["data"]["messages"]["content"] == "counted" {
            delivered += 1;
        }
    }
    assert_eq!(
        app.metric(renders).await - before,
        8.0,
        "eight shared, twelve on their own"
    );
}

fn cursor_of(room: &str, seq: i64) -> String {
    let room = uuid::Uuid::parse_str(room).expect("a room identity");
    chatroom::chat::messages::encode_cursor(room, seq)
}

async fn the_largest_cursor_is_followed_without_overflow(backends: Backends) {
    let app = TestApp::spawn(backends, "cursor_max").await;
    let ann = app.register("ann").await;
    let room = app.group(&ann, "g", &[]).await;
    let mut socket = app.connect(&ann).await;
    socket
        .subscribe(
            "room",
            "subscription($r: ID!, $a: String) { messages(roomIdentity: $r, after: $a) { content } }",
            json!({ "r": room, "a": cursor_of(&room, i64::MAX) }),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = app.send(&ann, &room, "after the end").await;
    assert!(sent["errors"].is_null(), "{sent}");
    assert_eq!(
        socket
            .next_of_within("room", Duration::from_millis(700))
            .await,
        None
    );
    socket.subscribe("me", ME, json!({})).await;
    assert_eq!(
        socket.next_message("me", "me").await["username"],
        "ann",
        "the socket lives"
    );
}

async fn a_subscription_takes_the_default_of_a_variable_left_out(backends: Backends) {
    let app = TestApp::spawn(backends, "variable_default").await;
    let ann = app.register("ann").await;
    let room = app.group(&ann, "g", &[]).await;
    let first = app.send(&ann, &room, "first").await;
    app.send(&ann, &room, "second").await;
    let cursor = first["data"]["sendMessage"]["cursor"]
        .as_str()
        .expect("a cursor");
    let mut socket = app.connect(&ann).await;
    let query = format!(
        "subscription($r: ID!, $after: String = \"{cursor}\") {{
            messages(roomIdentity: $r, after: $after) {{ content }} }}"
    );
    socket.subscribe("room", &query, json!({ "r": room })).await;
    assert_eq!(
        socket.next_message("room", "messages").await["content"],
        "second"
    );
}

crate::accounts::api_suite!(
    the_largest_cursor_is_followed_without_overflow,
    a_subscription_takes_the_default_of_a_variable_left_out,
    a_password_change_ends_every_other_session_on_every_instance,
    a_wrong_old_password_is_a_failed_login_and_a_short_new_one_bad_input,
    a_refreshed_token_lives_on_and_keeps_its_session,
    a_follower_that_may_have_lost_events_asks_the_store_about_membership,
    a_departure_is_announced_however_early_the_client_goes_away,
    a_new_member_is_announced_however_early_the_client_goes_away,
    register_tells_nothing_of_taken_emails_without_the_code,
    a_name_that_is_no_username_is_counted_against_the_address_only,
    concurrent_wrong_passwords_are_counted_before_they_are_checked,
    concurrent_wrong_codes_are_counted_before_they_are_compared,
    aliases_of_a_writing_mutation_count_one_each,
    every_writing_mutation_is_limited_per_user,
    mutations_are_limited_per_client_address_and_registrations_too,
    rooms_per_user_group_members_and_named_users_are_capped,
);

/// The app's services without a server: the tests below drive the chat's
/// functions themselves, to drop them at chosen points.
pub(crate) async fn bare_app(backends: Backends, test: &str) -> (Arc<App>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a data dir");
    let app = App::open(backends.config(test, &dir))
        .await
        .expect("the app");
    (Arc::new(app), dir)
}

pub(crate) async fn member(app: &App, name: &str) -> Viewer {
    let profile = accounts::create_account(
        app,
        NewAccount {
            username: name.into(),
            password: format!("password-{name}"),
            email: format!("{name}@example.com"),
            nickname: None,
            sex: chatroom::store::Sex::Unknown,
            avatar: None,
        },
    )
    .await
    .expect("an account");
    Viewer {
        identity: profile.identity,
        username: profile.username,
    }
}

/// The 40 points at which the tests below drop a request: 100 µs to 27 ms
/// apart by a factor 1.15, from before its first store call to after its
/// last on either store.
fn cancellation_points() -> impl Iterator<Item = u64> {
    (0..40).map(|point| (100.0 * 1.15f64.powi(point)) as u64)
}

/// Runs `work` for `micros` µs and drops it there, as a client going away does.
async fn cancelled_after<T>(micros: u64, work: impl std::future::Future<Output = T>) {
    let _ = tokio::time::timeout(Duration::from_micros(micros), work).await;
}

/// Whether `subscription` gets an event `wanted` picks within a while.
async fn announced(subscription: &mut Subscription, wanted: impl Fn(&Event) -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, subscription.recv()).await {
        if wanted(&event) {
            return true;
        }
    }
    false
}

async fn a_departure_is_announced_however_early_the_client_goes_away(backends: Backends) {
    let (app, _dir) = bare_app(backends, "leave_cancelled").await;
    let (ann, bob) = (member(&app, "ann").await, member(&app, "bob").await);
    let mut stored_without_event = Vec::new();
    for micros in cancellation_points() {
        let room = rooms::create_group(&app, &ann, "g", "", &["bob".to_owned()])
            .await
            .expect("a group");
        let mut events = app
            .broker
            .subscribe(Topic::Room(room.identity))
            .await
            .expect("subscribed");
        cancelled_after(
            micros,
            rooms::leave_room(&app, &bob, &room.identity.to_string()),
        )
        .await;
        // The work may still be running: wait for the store to settle.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let left = app
            .store
            .member(room.identity, bob.identity)
            .await
            .expect("read")
            .is_none();
        if left
            && !announced(&mut events, |event| {
                matches!(
                    event,
                    Event::Change(change) if matches!(
                        &change.change,
                        chatroom::store::Stored::Departure(departure)
                            if departure.user_identity == bob.identity
                    )
                )
            })
            .await
        {
            stored_without_event.push(micros);
        }
    }
    assert!(
        stored_without_event.is_empty(),
        "left without an event when cancelled after {stored_without_event:?} µs"
    );

    let mut unannounced = Vec::new();
    for (point, micros) in cancellation_points().enumerate() {
        let cat = member(&app, &format!("cat{point}")).await;
        let room = social::add_friend(&app, &ann, &cat.username)
            .await
            .expect("friends");
        let mut events = app
            .broker
            .subscribe(Topic::Room(room.identity))
            .await
            .expect("subscribed");
        cancelled_after(micros, social::remove_friend(&app, &ann, &cat.username)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let deleted = app.store.room(room.identity).await.expect("read").is_none();
        if deleted && !announced(&mut events, |event| matches!(event, Event::RoomDeleted)).await {
            unannounced.push(micros);
        }
    }
    assert!(
        unannounced.is_empty(),
        "deleted without an event when cancelled after {unannounced:?} µs"
    );
}

async fn a_new_member_is_announced_however_early_the_client_goes_away(backends: Backends) {
    let (app, _dir) = bare_app(backends, "join_cancelled").await;
    let ann = member(&app, "ann").await;
    let mut unannounced = Vec::new();
    for (point, micros) in cancellation_points().enumerate() {
        let dan = member(&app, &format!("dan{point}")).await;
        let mut inbox = app
            .broker
            .subscribe(Topic::User(dan.identity))
            .await
            .expect("subscribed");
        cancelled_after(
            micros,
            rooms::create_group(&app, &ann, "g", "", std::slice::from_ref(&dan.username)),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let joined = !app
            .store
            .rooms_of_user(dan.identity)
            .await
            .expect("read")
            .is_empty();
        if joined && !announced(&mut inbox, |event| matches!(event, Event::Joined { .. })).await {
            unannounced.push(micros);
        }
    }
    assert!(
        unannounced.is_empty(),
        "joined without an event when cancelled after {unannounced:?} µs"
    );
}

crate::accounts::cluster_suite!(a_password_change_ends_every_other_session_on_every_instance);
