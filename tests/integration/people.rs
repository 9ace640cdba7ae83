//! Version 2's people: blocking (API.md, "Blocking"), presence ("Presence")
//! and digest mail ("Digest mail"), over every backend and across
//! instances.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{
    accounts::api_suite,
    helpers::{Account, Backends, Mail, Socket, TestApp, error_code, error_field},
};

const BLOCK: &str = "mutation($u: String!) { blockUser(username: $u) }";
const UNBLOCK: &str = "mutation($u: String!) { unblockUser(username: $u) }";
const SEND_TO: &str =
    "mutation($r: ID!, $c: String!) { sendMessage(roomIdentity: $r, content: $c) { identity } }";
const PRESENCE_OF: &str =
    "query($u: String!) { userProfile(username: $u) { user { presence { online lastSeenAt } } } }";
const PRESENCE_FEED: &str =
    "subscription { presence { user { username } presence { online lastSeenAt } } }";

async fn call(app: &TestApp, account: &Account, query: &str, variables: Value) -> Value {
    app.as_user(account, query, variables).await
}

async fn presence_of(app: &TestApp, viewer: &Account, user: &Account) -> Value {
    let answer = call(app, viewer, PRESENCE_OF, json!({ "u": user.username })).await;
    answer["data"]["userProfile"]["user"]["presence"].clone()
}

/// The usernames `viewer` finds by `prefix`.
async fn found(app: &TestApp, viewer: &Account, prefix: &str) -> Vec<String> {
    found_first(app, viewer, prefix, None).await
}

/// The first `first` usernames (the server's default without) `viewer`
/// finds by `prefix`.
async fn found_first(
    app: &TestApp,
    viewer: &Account,
    prefix: &str,
    first: Option<i32>,
) -> Vec<String> {
    let answer = call(
        app,
        viewer,
        "query($q: String!, $first: Int) { searchUsers(query: $q, first: $first) { username } }",
        json!({ "q": prefix, "first": first }),
    )
    .await;
    answer["data"]["searchUsers"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .iter()
        .map(|user| user["username"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn blocking_follows_every_rule_until_unblocked(backends: Backends) {
    let app = TestApp::spawn(backends, "blocking_rules").await;
    let [ann, bob, cyd] = [
        app.register("ann").await,
        app.register("bob").await,
        app.register("cyd").await,
    ];
    let private = app.befriend(&ann, &bob).await;
    let group = app.group(&cyd, "three", &[&ann, &bob]).await;
    let hers = app.send(&ann, &private, "before the block").await;
    let hers = hers["data"]["sendMessage"]["identity"].clone();
    let react = "mutation($m: ID!, $e: String!) { addReaction(messageIdentity: $m, emoji: $e) \
                 { identity } }";
    let unreact = "mutation($m: ID!, $e: String!) { removeReaction(messageIdentity: $m, emoji: $e) \
                   { identity } }";
    let reacted = call(&app, &bob, react, json!({ "m": hers, "e": "👍" })).await;
    assert!(reacted["errors"].is_null(), "{reacted}");

    let blocked = call(&app, &ann, BLOCK, json!({ "u": "bob" })).await;
    assert_eq!(blocked["data"]["blockUser"], true, "{blocked}");
    let again = call(&app, &ann, BLOCK, json!({ "u": "bob" })).await;
    assert_eq!(
        again["data"]["blockUser"], false,
        "already blocked: {again}"
    );
    let listed = call(&app, &ann, "{ blockedUsers { username } }", json!({})).await;
    assert_eq!(
        listed["data"]["blockedUsers"],
        json!([{ "username": "bob" }])
    );
    let herself = call(&app, &ann, BLOCK, json!({ "u": "ann" })).await;
    assert_eq!(error_code(&herself), "BAD_USER_INPUT", "{herself}");
    assert_eq!(error_field(&herself), "username");
    let nobody = call(&app, &ann, BLOCK, json!({ "u": "nobody" })).await;
    assert_eq!(error_code(&nobody), "NOT_FOUND", "{nobody}");

    // Their PRIVATE room: bob may not speak in it, ann may; it stays.
    let sent = call(&app, &bob, SEND_TO, json!({ "r": private, "c": "hello?" })).await;
    assert_eq!(error_code(&sent), "FORBIDDEN", "{sent}");
    let typing = "mutation($r: ID!) { setTyping(roomIdentity: $r, typing: true) }";
    let typed = call(&app, &bob, typing, json!({ "r": private })).await;
    assert_eq!(error_code(&typed), "FORBIDDEN", "{typed}");
    let reacted = call(&app, &bob, react, json!({ "m": hers, "e": "😀" })).await;
    assert_eq!(error_code(&reacted), "FORBIDDEN", "{reacted}");
    let taken_back = call(&app, &bob, unreact, json!({ "m": hers, "e": "👍" })).await;
    assert!(
        taken_back["errors"].is_null(),
        "one's own reaction goes: {taken_back}"
    );
    let sent = call(
        &app,
        &ann,
        SEND_TO,
        json!({ "r": private, "c": "still mine" }),
    )
    .await;
    assert!(sent["errors"].is_null(), "the blocker still writes: {sent}");
    let history = call(
        &app,
        &bob,
        "query($r: ID!) { messages(roomIdentity: $r) { edges { node { content } } } }",
        json!({ "r": private }),
    )
    .await;
    assert_eq!(
        history["data"]["messages"]["edges"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "the friendship and its history stay: {history}"
    );

    // A group both are in goes on as before.
    let sent = call(&app, &bob, SEND_TO, json!({ "r": group, "c": "hi all" })).await;
    assert!(sent["errors"].is_null(), "{sent}");

    // Neither befriends nor adds the other, either way round.
    let add_friend = "mutation($u: String!) { addFriend(username: $u) { identity } }";
    for (who, whom) in [(&ann, "bob"), (&bob, "ann")] {
        let befriended = call(&app, who, add_friend, json!({ "u": whom })).await;
        assert_eq!(error_code(&befriended), "FORBIDDEN", "{befriended}");
        let grouped = call(
            &app,
            who,
            "mutation($m: [String!]!) { createGroup(input: { name: \"g\", members: $m }) \
             { identity } }",
            json!({ "m": [whom] }),
        )
        .await;
        assert_eq!(error_code(&grouped), "FORBIDDEN", "{grouped}");
    }
    let own = app.group(&ann, "ann's", &[&cyd]).await;
    let added = call(
        &app,
        &ann,
        "mutation($r: ID!, $u: [String!]!) { addMembers(roomIdentity: $r, usernames: $u) \
         { identity } }",
        json!({ "r": own, "u": ["bob"] }),
    )
    .await;
    assert_eq!(error_code(&added), "FORBIDDEN", "{added}");
    let by_third = app.group(&cyd, "cyd adds both", &[&ann, &bob]).await;
    assert!(!by_third.is_empty(), "a third user may put both in a group");

    // Neither finds the other, nor sees their presence; others do.
    assert_eq!(found(&app, &ann, "b").await, Vec::<String>::new());
    assert_eq!(found(&app, &bob, "a").await, Vec::<String>::new());
    assert_eq!(found(&app, &cyd, "b").await, ["bob"]);
    assert_eq!(presence_of(&app, &ann, &bob).await, Value::Null);
    assert_eq!(presence_of(&app, &bob, &ann).await, Value::Null);
    assert_eq!(presence_of(&app, &cyd, &bob).await["online"], false);

    let unblocked = call(&app, &ann, UNBLOCK, json!({ "u": "bob" })).await;
    assert_eq!(unblocked["data"]["unblockUser"], true, "{unblocked}");
    let again = call(&app, &ann, UNBLOCK, json!({ "u": "bob" })).await;
    assert_eq!(again["data"]["unblockUser"], false, "{again}");
    let sent = call(&app, &bob, SEND_TO, json!({ "r": private, "c": "thanks" })).await;
    assert!(sent["errors"].is_null(), "{sent}");
    assert_eq!(found(&app, &ann, "b").await, ["bob"]);
    assert_eq!(presence_of(&app, &ann, &bob).await["online"], false);
}

/// The next presence change `socket` gets on `id`, within a few seconds.
async fn next_change(socket: &mut Socket, id: &str) -> Value {
    let payload = socket
        .next_of_within(id, Duration::from_secs(15))
        .await
        .unwrap_or_else(|| panic!("no presence change on {id}"));
    assert!(payload["errors"].is_null(), "{payload}");
    payload["data"]["presence"].clone()
}

async fn presence_follows_sockets_and_is_seen_only_by_contacts(backends: Backends) {
    let app = TestApp::spawn(backends, "presence_sockets").await;
    let [ann, bob, cyd] = [
        app.register("ann").await,
        app.register("bob").await,
        app.register("cyd").await,
    ];
    app.befriend(&ann, &bob).await;
    assert_eq!(
        presence_of(&app, &bob, &ann).await,
        json!({ "online": false, "lastSeenAt": null }),
        "never seen"
    );
    let mut watching = app.connect(&bob).await;
    watching.subscribe("p", PRESENCE_FEED, json!({})).await;
    // Bob's own socket is no change he hears of; ann's first is.
    let mut hers = app.connect(&ann).await;
    let change = next_change(&mut watching, "p").await;
    assert_eq!(
        change,
        json!({ "user": { "username": "ann" }, "presence": { "online": true, "lastSeenAt": null } })
    );
    assert_eq!(presence_of(&app, &bob, &ann).await["online"], true);
    assert_eq!(
        presence_of(&app, &ann, &ann).await["online"],
        true,
        "oneself"
    );
    assert_eq!(
        presence_of(&app, &cyd, &ann).await,
        Value::Null,
        "a stranger"
    );

    // A second socket, and closing one of two, change nothing.
    let second = app.connect(&ann).await;
    drop(second);
    hers.send(json!({ "type": "ping" })).await;
    let closed_at = chrono::Utc::now();
    drop(hers);
    let change = next_change(&mut watching, "p").await;
    assert_eq!(change["user"]["username"], "ann", "{change}");
    assert_eq!(change["presence"]["online"], false, "{change}");
    let last_seen = change["presence"]["lastSeenAt"]
        .as_str()
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
        .unwrap_or_else(|| panic!("a time it was last seen: {change}"));
    let off = (last_seen.with_timezone(&chrono::Utc) - closed_at)
        .num_milliseconds()
        .abs();
    assert!(off < 1500, "last seen when the socket closed: {off} ms off");
    let queried = presence_of(&app, &bob, &ann).await;
    assert_eq!(queried["online"], false, "{queried}");
    assert_eq!(queried["lastSeenAt"], change["presence"]["lastSeenAt"]);
}

async fn a_reconnect_storm_costs_a_store_write_per_tick_not_per_socket(backends: Backends) {
    let app = TestApp::spawn(backends, "presence_storm").await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    app.befriend(&ann, &bob).await;
    let mut watching = app.connect(&bob).await;
    watching.subscribe("p", PRESENCE_FEED, json!({})).await;
    let series = "chatroom_presence_store_writes_total";
    // Bob's own coming is written in a tick of its own.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before = app.metric(series).await;
    let started = Instant::now();
    const CYCLES: usize = 2000;
    for _ in 0..CYCLES {
        let socket = app.connect(&ann).await;
        drop(socket);
    }
    let elapsed = started.elapsed();
    let change = next_change(&mut watching, "p").await;
    assert_eq!(change["presence"]["online"], true, "{change}");
    let change = next_change(&mut watching, "p").await;
    assert_eq!(change["presence"]["online"], false, "{change}");
    let writes = app.metric(series).await - before;
    assert_eq!(
        writes, 2.0,
        "{CYCLES} sockets in {elapsed:?}: one coming and one going written"
    );
    assert!(
        watching
            .next_of_within("p", Duration::from_millis(500))
            .await
            .is_none(),
        "no other change"
    );
}

/// `count` users coming online at once: their comings are written together.
async fn many_users_coming_at_once_are_written_together(backends: Backends) {
    let app = TestApp::spawn(backends, "presence_many").await;
    let mut users = Vec::new();
    for i in 0..30 {
        users.push(app.register(&format!("user{i}")).await);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let series = "chatroom_presence_store_writes_total";
    let before = app.metric(series).await;
    // All at once: one after another, on a loaded machine, they would come
    // over more ticks than the bound allows (7 writes were seen).
    let _sockets = futures_util::future::join_all(users.iter().map(|user| app.connect(user))).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let writes = app.metric(series).await - before;
    assert!(
        (1.0..=5.0).contains(&writes),
        "30 users came in {writes} writes"
    );
}

/// Waits until `ready` holds of the digests to `email` (polling the outbox),
/// then a while longer, and returns them.
async fn digests_once(app: &TestApp, email: &str, ready: impl Fn(&[Mail]) -> bool) -> Vec<Mail> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready(&app.digests_to(email)) {
        assert!(
            Instant::now() < deadline,
            "no digest to {email}: {:?}",
            app.digests_to(email)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Long enough for every instance to have had a round or two more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    app.digests_to(email)
}

async fn one_digest_per_absence_in_the_users_language(backends: Backends) {
    let app = TestApp::spawn_with(backends, "digest", |c| {
        c.digest_after_secs = 1;
        c.public_url = Some("https://chat.example.com/".into());
    })
    .await;
    // With Redis, a second instance looks for digests too: still one each.
    let _other = match backends {
        Backends::MongoRedis | Backends::MongoRedisCluster => Some(app.sibling().await),
        Backends::Embedded => None,
    };
    let [ann, bob, cyd, dan] = [
        app.register("ann").await,
        app.register("bob").await,
        app.register("cyd").await,
        app.register("dan").await,
    ];
    let turned_off = call(
        &app,
        &cyd,
        "mutation { updateProfile(input: { emailDigest: false }) { emailDigest } }",
        json!({}),
    )
    .await;
    assert_eq!(
        turned_off["data"]["updateProfile"]["emailDigest"], false,
        "{turned_off}"
    );
    let theirs = call(
        &app,
        &bob,
        "query { userProfile(username: \"cyd\") { user { emailDigest } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        theirs["data"]["userProfile"]["user"]["emailDigest"],
        Value::Null,
        "{theirs}"
    );
    let mine = call(&app, &ann, "{ me { emailDigest } }", json!({})).await;
    assert_eq!(
        mine["data"]["me"]["emailDigest"], true,
        "on for a new user: {mine}"
    );
    let chinese = app
        .request(
            None,
            &[("Accept-Language", "zh-CN,zh;q=0.9")],
            crate::helpers::LOGIN,
            json!({ "username": "dan", "password": dan.password }),
        )
        .await;
    assert!(chinese["errors"].is_null(), "{chinese}");

    // Online while their messages come, so each absence starts after all
    // of them and its digest holds them all.
    let mut online = Vec::new();
    for user in [&ann, &cyd, &dan] {
        online.push(app.connect(user).await);
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let with_ann = app.befriend(&bob, &ann).await;
    let with_cyd = app.befriend(&bob, &cyd).await;
    let with_dan = app.befriend(&bob, &dan).await;
    let group = app.group(&bob, "book club", &[&ann]).await;
    app.send(&bob, &with_ann, "first").await;
    app.send(&bob, &with_ann, "<b>are you there?</b> & more")
        .await;
    app.send(&bob, &group, "chapter two tonight").await;
    app.send(&bob, &with_cyd, "hi cyd").await;
    app.send(&bob, &with_dan, "你好").await;
    drop(online);

    let to_ann = digests_once(&app, "ann@example.com", |mails| !mails.is_empty()).await;
    assert_eq!(to_ann.len(), 1, "one digest per absence: {to_ann:?}");
    let digest = &to_ann[0];
    assert_eq!(digest.subject, "chatroom: 3 unread messages");
    assert!(
        digest.text.contains("bob (2 unread messages)"),
        "{}",
        digest.text
    );
    assert!(
        digest.text.contains("bob: <b>are you there?</b> & more"),
        "{}",
        digest.text
    );
    assert!(
        digest.text.contains("book club (1 unread message)"),
        "{}",
        digest.text
    );
    assert!(
        digest.text.contains("https://chat.example.com/?room="),
        "{}",
        digest.text
    );
    assert!(
        digest
            .html
            .contains("&lt;b&gt;are you there?&lt;/b&gt; &amp; more"),
        "what users wrote is escaped in HTML: {}",
        digest.html
    );
    let to_dan = digests_once(&app, "dan@example.com", |mails| !mails.is_empty()).await;
    assert_eq!(to_dan.len(), 1, "{to_dan:?}");
    assert!(
        to_dan[0].subject.contains("未读"),
        "in dan's language: {}",
        to_dan[0].subject
    );
    assert!(to_dan[0].text.contains("你好"), "{}", to_dan[0].text);
    assert!(
        app.digests_to("cyd@example.com").is_empty(),
        "cyd turned digests off"
    );
    assert!(
        app.digests_to("bob@example.com").is_empty(),
        "bob has nothing from others"
    );

    // Online again, then away again: a new absence, a new digest.
    let socket = app.connect(&ann).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    drop(socket);
    let to_ann = digests_once(&app, "ann@example.com", |mails| mails.len() >= 2).await;
    assert_eq!(to_ann.len(), 2, "{to_ann:?}");
}

async fn digests_stop_at_the_users_daily_limit(backends: Backends) {
    let app = TestApp::spawn_with(backends, "digest_limit", |c| {
        c.digest_after_secs = 1;
        c.digests_per_day = 1;
    })
    .await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    let away = async |app: &TestApp| {
        let socket = app.connect(&ann).await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        drop(socket);
    };
    let socket = app.connect(&ann).await;
    let room = app.befriend(&bob, &ann).await;
    app.send(&bob, &room, "are you there?").await;
    drop(socket);
    let first = digests_once(&app, "ann@example.com", |mails| !mails.is_empty()).await;
    assert_eq!(first.len(), 1, "{first:?}");

    away(&app).await;
    // Long enough for the second absence's digest to be due twice over.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        app.digests_to("ann@example.com").len(),
        1,
        "one digest a day at most, however often ann comes and goes"
    );
}

async fn an_instance_shut_down_takes_its_users_offline_within_the_grace(backends: Backends) {
    let mut app = TestApp::spawn(backends, "presence_shutdown").await;
    let other = app.sibling().await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    app.befriend(&ann, &bob).await;
    let mut watching = other.connect(&bob).await;
    watching.subscribe("p", PRESENCE_FEED, json!({})).await;
    let _hers = app.connect(&ann).await;
    let change = next_change(&mut watching, "p").await;
    assert_eq!(change["presence"]["online"], true, "{change}");

    app.shut_down().await;
    let stopped = Instant::now();
    let change = next_change(&mut watching, "p").await;
    assert_eq!(change["presence"]["online"], false, "{change}");
    assert!(
        stopped.elapsed() < Duration::from_secs(10),
        "offline {:?} after the shutdown: within the grace, not the 60 s timeout",
        stopped.elapsed()
    );
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn an_instance_killed_takes_its_users_offline_on_the_others() {
    let app = TestApp::spawn_with(Backends::MongoRedis, "presence_kill", |c| {
        c.presence_timeout_secs = 3;
    })
    .await;
    let (ann, bob) = (app.register("ann").await, app.register("bob").await);
    app.befriend(&ann, &bob).await;
    let dir = tempfile::tempdir().expect("a data dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let config = &app.config;
    let mut other = std::process::Command::new(env!("CARGO_BIN_EXE_chatroom"))
        .env("CHATROOM_LISTEN", format!("127.0.0.1:{port}"))
        .env("CHATROOM_DATA_DIR", dir.path())
        .env(
            "CHATROOM_MONGODB_URI",
            config.mongodb_uri.clone().unwrap_or_default(),
        )
        .env("CHATROOM_MONGODB_DATABASE", &config.mongodb_database)
        .env(
            "CHATROOM_REDIS_URL",
            config.redis_url.clone().unwrap_or_default(),
        )
        .env("CHATROOM_REDIS_PREFIX", &config.redis_prefix)
        .env("CHATROOM_JWT_SECRET", crate::helpers::TEST_JWT_SECRET)
        .env("CHATROOM_PRESENCE_TIMEOUT", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("a second instance starts");
    let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let ready = Instant::now() + Duration::from_secs(30);
    while app
        .http
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .is_err()
    {
        assert!(Instant::now() < ready, "the second instance never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut watching = app.connect(&bob).await;
    watching.subscribe("p", PRESENCE_FEED, json!({})).await;
    let _hers = Socket::connect_to(address, &ann).await;
    let change = next_change(&mut watching, "p").await;
    assert_eq!(
        change["presence"]["online"], true,
        "seen across instances: {change}"
    );
    assert_eq!(presence_of(&app, &bob, &ann).await["online"], true);

    other.kill().expect("SIGKILL");
    let killed = Instant::now();
    other.wait().ok();
    let change = next_change(&mut watching, "p").await;
    let took = killed.elapsed();
    assert_eq!(change["user"]["username"], "ann", "{change}");
    assert_eq!(change["presence"]["online"], false, "{change}");
    assert!(
        took < Duration::from_secs(8),
        "offline {took:?} after the kill, with a presence timeout of 3 s"
    );
}

/// Who blocked a user may be anyone, however many: a search still finds
/// the others of the prefix, and never reads the blockers all up front.
async fn a_user_blocked_by_many_still_finds_the_others(backends: Backends) {
    let app = TestApp::spawn(backends, "blocked_by_many").await;
    let star = app.register("star").await;
    for n in 0..15 {
        let fan = app.register(&format!("fan{n:02}")).await;
        if n < 12 {
            let blocked = call(&app, &fan, BLOCK, json!({ "u": star.username })).await;
            assert_eq!(blocked["data"]["blockUser"], true, "{blocked}");
        }
    }
    assert_eq!(
        found_first(&app, &star, "fan", Some(3)).await,
        ["fan12", "fan13", "fan14"]
    );
}

/// A `presence` subscriber that may have missed changes (the broker says
/// so after losing events, or the subscriber fell behind) is told the
/// status of everyone it may see as it is now, not left with stale ones.
async fn a_presence_subscriber_that_missed_changes_is_told_how_things_are(backends: Backends) {
    let app = TestApp::spawn(backends, "presence_resync").await;
    let [ann, bob, cyd] = [
        app.register("ann").await,
        app.register("bob").await,
        app.register("cyd").await,
    ];
    app.befriend(&ann, &bob).await;
    app.befriend(&ann, &cyd).await;
    let mut watching = app.connect(&ann).await;
    watching.subscribe("p", PRESENCE_FEED, json!({})).await;
    let _bobs = app.connect(&bob).await;
    let change = next_change(&mut watching, "p").await;
    assert_eq!(change["user"]["username"], "bob", "{change}");

    // cyd comes online where no event tells of it: straight into the
    // roster, as an instance whose announcement was lost would have.
    app.app
        .kv
        .hold(
            chatroom::chat::presence::ROSTER,
            &cyd.identity,
            "elsewhere",
            Duration::from_secs(60),
        )
        .await
        .expect("held");
    app.app
        .broker
        .publish(
            chatroom::broker::Topic::Presence,
            chatroom::broker::Event::Resync,
        )
        .await;
    let mut now = Vec::new();
    for _ in 0..2 {
        let change = next_change(&mut watching, "p").await;
        let name = change["user"]["username"].as_str().unwrap_or_default();
        now.push((name.to_owned(), change["presence"]["online"] == true));
    }
    now.sort();
    assert_eq!(now, [("bob".to_owned(), true), ("cyd".to_owned(), true)]);
}

api_suite!(
    blocking_follows_every_rule_until_unblocked,
    a_user_blocked_by_many_still_finds_the_others,
    one_digest_per_absence_in_the_users_language,
    digests_stop_at_the_users_daily_limit,
    presence_follows_sockets_and_is_seen_only_by_contacts,
    a_presence_subscriber_that_missed_changes_is_told_how_things_are,
    a_reconnect_storm_costs_a_store_write_per_tick_not_per_socket,
    many_users_coming_at_once_are_written_together,
);

crate::accounts::cluster_suite!(
    presence_follows_sockets_and_is_seen_only_by_contacts,
    one_digest_per_absence_in_the_users_language,
);

/// What needs a second instance: over one Redis and over a cluster.
mod across {
    use super::*;

    crate::accounts::shared_suite!(an_instance_shut_down_takes_its_users_offline_within_the_grace);
}
