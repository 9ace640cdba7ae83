//! `chatroom-loadtest` against a server in this process: on a healthy
//! server its figures show every message reaching every subscriber once and
//! in order, whether it registers its own users or is given tokens, whether
//! the server is chatroom or the floor it is measured against, and whether
//! it is one instance or several; silent subscribers are counted apart.

use std::sync::Arc;

use chatroom_floor::Floor;
use chatroom_loadtest::{self as loadtest, Options, report::Report};
use clap::Parser;

use crate::helpers::{Backends, TestApp};

const SUBSCRIBERS: u64 = 20;

/// The options an operator would type, after `chatroom-loadtest`.
fn options(arguments: &[&str]) -> Options {
    Options::parse_from(std::iter::once("chatroom-loadtest").chain(arguments.iter().copied()))
}

/// Two users and a GROUP room of both: their tokens as `--token` takes
/// them, and the room.
async fn two_members_and_their_room(app: &TestApp) -> (String, String) {
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let room = app.group(&ann, "Load", &[&bob]).await;
    (format!("{},{}", ann.token, bob.token), room)
}

/// A `--subscription room-events --mix` run: every message reached every
/// subscriber, and edits and reactions were sent and every reaction seen.
fn assert_a_mixed_run_counted_edits_and_reactions(report: &Report) {
    assert_every_message_reached_every_subscriber_once_in_order(report);
    assert!(report.send.edits > 0, "{report}");
    assert!(report.send.reactions > 0, "{report}");
    assert_eq!(
        report.delivery.reactions_received, report.delivery.reactions_expected,
        "{report}"
    );
}

/// Every subscriber subscribed and took its probe, and every one that
/// listens (the silent aside) received every message once and in order.
fn assert_every_message_reached_every_subscriber_once_in_order(report: &Report) {
    assert_eq!(
        report.subscribers.subscribed as u64, SUBSCRIBERS,
        "{report}"
    );
    assert_eq!(report.subscribers.ready as u64, SUBSCRIBERS, "{report}");
    assert!(report.send.ok > 0, "{report}");
    assert_eq!(report.send.errors, 0, "{report}");
    let listening = SUBSCRIBERS - report.subscribers.silent as u64;
    assert_eq!(
        report.delivery.expected,
        report.send.ok * listening,
        "{report}"
    );
    assert_eq!(
        report.delivery.received,
        report.send.ok * listening,
        "{report}"
    );
    assert_eq!(report.delivery.lost, 0, "{report}");
    assert_eq!(report.delivery.duplicates, 0, "{report}");
    assert_eq!(report.delivery.out_of_order, 0, "{report}");
    assert_eq!(
        report.delivery.latency.count, report.delivery.received,
        "{report}"
    );
}

#[tokio::test]
async fn loadtest_registers_users_through_the_outbox_and_counts_every_delivery() {
    let app = TestApp::spawn(Backends::Embedded, "loadtest_registers").await;
    let url = app.url("/graphql");
    let outbox = app.outbox.display().to_string();

    let report = loadtest::run(&options(&[
        "--url", &url, "--outbox", &outbox, "--users", "3", "-c", "20", "-s", "2", "-r", "0", "-d",
        "2", "--warmup", "0.5",
    ]))
    .await
    .expect("a report");

    assert_eq!(report.target.registered, 3);
    assert_every_message_reached_every_subscriber_once_in_order(&report);
    let json: serde_json::Value =
        serde_json::from_str(&report.json_line()).expect("the report as one JSON line");
    assert_eq!(json["delivery"]["lost"], 0);
}

#[tokio::test]
async fn loadtest_on_room_events_with_a_mix_counts_edits_and_reactions_too() {
    let app = TestApp::spawn(Backends::Embedded, "loadtest_mix").await;
    let url = app.url("/graphql");
    let outbox = app.outbox.display().to_string();

    let report = loadtest::run(&options(&[
        "--url",
        &url,
        "--outbox",
        &outbox,
        "--users",
        "3",
        "-c",
        "20",
        "-s",
        "2",
        "-r",
        "100",
        "-d",
        "2",
        "--warmup",
        "0.5",
        "--subscription",
        "room-events",
        "--mix",
        "0.2",
    ]))
    .await
    .expect("a report");

    assert_a_mixed_run_counted_edits_and_reactions(&report);
    let refused = loadtest::run(&options(&[
        "--url", &url, "--outbox", &outbox, "--mix", "0.1",
    ]))
    .await;
    assert!(refused.is_err(), "a mix needs room events");
}

#[tokio::test]
async fn loadtest_with_given_tokens_and_room_sends_at_the_asked_rate() {
    let app = TestApp::spawn(Backends::Embedded, "loadtest_given_tokens").await;
    let (tokens, room) = two_members_and_their_room(&app).await;

    let report = loadtest::run(&options(&[
        "--url",
        &app.url("/graphql"),
        "--token",
        &tokens,
        "--room",
        &room,
        "-c",
        "20",
        "-s",
        "2",
        "-r",
        "50",
        "-d",
        "2",
        "--warmup",
        "0.5",
    ]))
    .await
    .expect("a report");

    assert_eq!(report.target.registered, 0);
    assert_every_message_reached_every_subscriber_once_in_order(&report);
    assert!(
        (80..=101).contains(&report.send.ok),
        "50 a second for 2 seconds: {report}"
    );
}

/// Subscribers spread over two instances (`--ws-url` twice), the senders
/// on one: every message reaches every subscriber through Redis.
#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn loadtest_spreads_subscribers_over_the_instances_it_is_given() {
    let one = TestApp::spawn(Backends::MongoRedis, "loadtest_instances").await;
    let two = one.sibling().await;
    let (tokens, room) = two_members_and_their_room(&one).await;
    let ws = |app: &TestApp| app.url("/graphql").replacen("http://", "ws://", 1);
    let ws_urls = format!("{},{}", ws(&one), ws(&two));

    let report = loadtest::run(&options(&[
        "--url",
        &one.url("/graphql"),
        "--ws-url",
        &ws_urls,
        "--token",
        &tokens,
        "--room",
        &room,
        "-c",
        "20",
        "-s",
        "2",
        "-r",
        "20",
        "-d",
        "2",
        "--warmup",
        "0.5",
    ]))
    .await
    .expect("a report");

    assert_eq!(report.target.ws_url, ws_urls);
    assert_every_message_reached_every_subscriber_once_in_order(&report);
    // Half of the subscribers went to the second instance.
    let sockets = two
        .metric("chatroom_websocket_connections_opened_total")
        .await;
    assert!(sockets >= 10.0, "{sockets} sockets on the second instance");
}

/// `--url` twice alone: senders take turns over both instances and so do
/// the subscribers (their WebSocket URLs follow), and every message,
/// whichever instance took it, reaches every subscriber on either.
#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn loadtest_sends_through_every_instance_it_is_given_and_subscribes_on_each() {
    let one = TestApp::spawn(Backends::MongoRedis, "loadtest_urls").await;
    let two = one.sibling().await;
    let (tokens, room) = two_members_and_their_room(&one).await;
    let urls = format!("{},{}", one.url("/graphql"), two.url("/graphql"));
    // Both instances run in this process: its pid once for each.
    let pid = std::process::id();

    let report = loadtest::run(&options(&[
        "--url",
        &urls,
        "--token",
        &tokens,
        "--room",
        &room,
        "-c",
        "20",
        "-s",
        "2",
        "-r",
        "20",
        "-d",
        "2",
        "--warmup",
        "0.5",
        "--server-pid",
        &format!("{pid},{pid}"),
    ]))
    .await
    .expect("a report");

    assert_eq!(report.target.url, urls);
    assert_eq!(report.target.ws_url, urls.replace("http://", "ws://"));
    assert_every_message_reached_every_subscriber_once_in_order(&report);
    for instance in [&one, &two] {
        let stored = instance.metric("chatroom_messages_stored_total").await;
        assert!(stored > 0.0, "no message sent through {}", instance.address);
        let sockets = instance
            .metric("chatroom_websocket_connections_opened_total")
            .await;
        assert!(sockets >= 10.0, "{sockets} sockets on {}", instance.address);
    }
    let all = report.server.as_ref().expect("the servers' figures");
    assert_eq!(all.pid, None, "a sum: {report}");
    assert!(
        all.rss_kib_drained.is_some(),
        "read after the drain: {report}"
    );
    assert_eq!(report.servers.len(), 2, "{report}");
    // One pid for each WebSocket URL: each server's memory per connection
    // counts the subscribers of its URL.
    assert!(
        report
            .servers
            .iter()
            .all(|s| s.kib_per_connection.is_some()),
        "{report}"
    );
    assert!(
        report.servers.iter().all(|s| s.pid == Some(pid)),
        "{report}"
    );
}

/// Two of the subscribers take their probe and then read nothing: they
/// count as subscribed and ready, and the deliveries are the others'.
#[tokio::test]
async fn loadtest_leaves_silent_subscribers_out_of_the_deliveries_and_counts_them() {
    let app = TestApp::spawn(Backends::Embedded, "loadtest_silent").await;
    let (tokens, room) = two_members_and_their_room(&app).await;

    let report = loadtest::run(&options(&[
        "--url",
        &app.url("/graphql"),
        "--token",
        &tokens,
        "--room",
        &room,
        "-c",
        "20",
        "--silent",
        "2",
        "-s",
        "2",
        "-r",
        "50",
        "-d",
        "2",
        "--warmup",
        "0.5",
    ]))
    .await
    .expect("a report");

    assert_eq!(report.subscribers.silent, 2, "{report}");
    assert_eq!(report.subscribers.silent_closed_by_server, 0, "{report}");
    assert_every_message_reached_every_subscriber_once_in_order(&report);
    assert_eq!(report.delivery.expected, report.send.ok * 18, "{report}");
    let json: serde_json::Value =
        serde_json::from_str(&report.json_line()).expect("the report as one JSON line");
    assert_eq!(json["subscribers"]["silent"], 2);
    assert!(report.to_string().contains("2 silent"), "{report}");
}

#[tokio::test]
async fn loadtest_against_an_address_where_nothing_listens_is_an_error_not_a_panic() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let address = free.local_addr().expect("its address");
    drop(free);

    let failed = loadtest::run(&options(&[
        "--url",
        &format!("http://{address}/graphql"),
        "--token",
        "t",
        "--room",
        "r",
        "-d",
        "1",
    ]))
    .await;

    let error = format!("{:#}", failed.expect_err("nothing to measure"));
    assert!(error.contains("sendMessage"), "{error}");
}

/// The floor on a port of its own, in this process: a test of another
/// package cannot count on that package's binary being built, and the
/// binary adds nothing to the library but its flags.
async fn spawn_floor(outbox: &std::path::Path) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("its address");
    let floor = Arc::new(Floor::new(Some(outbox.to_owned())));
    tokio::spawn(chatroom_floor::serve(listener, floor));
    format!("http://{address}/graphql")
}

#[tokio::test]
async fn loadtest_measures_the_floor_with_the_same_command_and_nothing_is_lost() {
    let outbox = tempfile::tempdir().expect("a temporary outbox");
    let url = spawn_floor(outbox.path()).await;
    let outbox = outbox.path().display().to_string();

    let report = loadtest::run(&options(&[
        "--url", &url, "--outbox", &outbox, "--users", "3", "-c", "20", "-s", "2", "-r", "0", "-d",
        "2", "--warmup", "0.5",
    ]))
    .await
    .expect("a report");

    assert_eq!(report.target.registered, 3);
    assert_every_message_reached_every_subscriber_once_in_order(&report);
}

#[tokio::test]
async fn loadtest_on_the_floors_room_events_with_a_mix_counts_edits_and_reactions_too() {
    let outbox = tempfile::tempdir().expect("a temporary outbox");
    let url = spawn_floor(outbox.path()).await;

    let report = loadtest::run(&options(&[
        "--url",
        &url,
        "--token",
        "any,token",
        "--room",
        "any-room",
        "-c",
        "20",
        "-s",
        "2",
        "-r",
        "100",
        "-d",
        "2",
        "--warmup",
        "0.5",
        "--subscription",
        "room-events",
        "--mix",
        "0.2",
    ]))
    .await
    .expect("a report");

    assert_a_mixed_run_counted_edits_and_reactions(&report);
}

/// chatroom seats 5 sockets an address here, so 20 subscribers can only
/// all subscribe from 4 addresses: 127.0.0.1 to 127.0.0.4, 5 each.
#[tokio::test]
async fn loadtest_spreads_sockets_over_loopback_source_addresses_past_one_addresss_share() {
    let app = TestApp::spawn_with(Backends::Embedded, "loadtest_sources", |c| {
        c.limits.max_sockets_per_address = 5;
    })
    .await;
    let (tokens, room) = two_members_and_their_room(&app).await;

    let report = loadtest::run(&options(&[
        "--url",
        &app.url("/graphql"),
        "--token",
        &tokens,
        "--room",
        &room,
        "-c",
        "20",
        "--sockets-per-source",
        "5",
        "-s",
        "2",
        "-r",
        "50",
        "-d",
        "2",
        "--warmup",
        "0.5",
        "--ready-timeout",
        "10",
    ]))
    .await
    .expect("a report");

    assert_eq!(report.subscribers.failed, 0, "{report}");
    assert_every_message_reached_every_subscriber_once_in_order(&report);
}
