//! `chatroom-loadtest`: the fan-out of a chatroom deployment, measured as its clients
//! see it.
//!
//! # Phases
//!
//! 1. `setup`: tokens and a room, given by the operator or registered
//!    through the dev outbox (`outbox`) with one new GROUP room, on the
//!    first `--url`.
//! 2. One warm-up message before anyone listens, so state a server builds
//!    per room on first use is not charged to the connections' memory.
//! 3. `subscribers`: C graphql-transport-ws connections on
//!    `messages(roomIdentity:)`, taking turns over the WebSocket URLs. The
//!    protocol does not acknowledge a subscribe, so probe messages go out
//!    until every connection got one. The silent few (`--silent`) then
//!    stop reading, as clients too slow to keep up do.
//! 4. `senders`: S senders, one request in flight each, open loop at R
//!    messages a second or closed loop, taking turns over the `--url`s;
//!    first a warm-up whose messages are not counted, then the measured
//!    seconds.
//! 5. Drain, then the [`report`]. Each message carries its `stamp`, so the
//!    receivers measure latency and notice loss, duplicates and reordering.
//!    The silent read what their sockets hold, briefly, to learn whether
//!    the server closed them and with what code.
//!
//! `servers` reads the servers' memory and CPU when they run on this
//! machine, through `process`, which reads the load test's own CPU too.
//!
//! On loopback, subscribers past the first 10,000 connect from 127.0.0.2,
//! 127.0.0.3, ... (`subscribers::SOCKETS_PER_SOURCE_ADDRESS`): one machine
//! then holds more sockets toward one server than one source address has
//! ports for.

mod client;
mod outbox;
mod process;
pub mod report;
mod senders;
mod servers;
mod setup;
mod stamp;
mod subscribers;

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use tokio::time::Instant;
use url::Url;

use client::{GraphQl, SEND_MESSAGE};
use report::{
    ConfigFigures, DeliveryFigures, Percentiles, Phases, Report, SendFigures, SubscriberFigures,
    TargetFigures, round,
};
use senders::{Schedule, Sent};
use servers::Servers;
use stamp::Run;
use subscribers::{Connections, Listener, Plan, SOCKETS_PER_SOURCE_ADDRESS};

/// What to load and how hard. Nothing is refused by address: operators
/// point this at their own deployments, wherever they are.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "chatroom-loadtest",
    version,
    about = "Measure a chatroom deployment's fan-out: C subscribers, S senders; print the figures.",
    long_about = "Measure a chatroom deployment's fan-out: C subscribers, S senders; print \
                  the figures.\n\nThe last line of the output is the whole report as JSON."
)]
pub struct Options {
    /// The deployment's GraphQL endpoints, repeated or comma-separated:
    /// senders take turns, so that messages come in on every instance.
    /// Setup and probes use the first.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080/graphql"
    )]
    pub url: Vec<Url>,
    /// Its WebSocket endpoints, repeated or comma-separated: subscribers
    /// take turns, so that they spread over instances. By default every
    /// `--url` with ws:// (or wss:// for https://).
    #[arg(long, value_delimiter = ',')]
    pub ws_url: Vec<Url>,
    /// Tokens to connect and send with, repeated or comma-separated;
    /// connections and senders take turns. Needs `--room`.
    #[arg(long, value_delimiter = ',', requires = "room")]
    pub token: Vec<String>,
    /// A room every token's user is a member of. Needs `--token`.
    #[arg(long, requires = "token")]
    pub room: Option<String>,
    /// Without tokens: users to register (each a password hash on the server).
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Without tokens: the server's dev outbox, where it writes the codes
    /// that registering needs (`CHATROOM_MAIL_OUTBOX`).
    #[arg(long, conflicts_with = "token")]
    pub outbox: Option<PathBuf>,
    /// Subscribed WebSocket connections.
    #[arg(long, short = 'c', default_value_t = 100)]
    pub connections: usize,
    /// Of the connections, how many stop reading after their probe, as
    /// clients too slow to keep up do: their sockets stay open and unread
    /// to the end, left out of the delivery figures; the report counts how
    /// many the server closed, and with which codes. Spread evenly over
    /// the connections, and so over the WebSocket URLs.
    #[arg(long, default_value_t = 0)]
    pub silent: usize,
    /// Senders, each with its own keep-alive connection and one request in flight.
    #[arg(long, short = 's', default_value_t = 4)]
    pub senders: usize,
    /// Messages a second from all senders together; 0 sends as fast as answers come back.
    #[arg(long, short = 'r', default_value_t = 200.0, value_parser = rate)]
    pub rate: f64,
    /// Seconds of measured sending.
    #[arg(long, short = 'd', default_value = "10", value_parser = seconds)]
    pub duration: Duration,
    /// Seconds of sending before the measured ones, not counted.
    #[arg(long, default_value = "2", value_parser = seconds)]
    pub warmup: Duration,
    /// Longest wait for outstanding deliveries after sending.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub drain: Duration,
    /// The drain also ends when nothing arrived for this long.
    #[arg(long, default_value = "2", value_parser = seconds)]
    pub drain_idle: Duration,
    /// Longest time to register users and create the room.
    #[arg(long, default_value = "120", value_parser = seconds)]
    pub setup_timeout: Duration,
    /// Longest time for every connection to subscribe and receive a probe.
    #[arg(long, default_value = "60", value_parser = seconds)]
    pub ready_timeout: Duration,
    /// Longest wait for one `sendMessage` answer.
    #[arg(long, default_value = "10", value_parser = seconds)]
    pub request_timeout: Duration,
    /// WebSocket handshakes at once while connecting.
    #[arg(long, default_value_t = 64)]
    pub connect_concurrency: usize,
    /// Extra characters in each message.
    #[arg(long, default_value_t = 0)]
    pub pad: usize,
    /// The servers' pids, repeated or comma-separated, when they run on
    /// this machine: memory per connection and CPU of each and of all
    /// together come from /proc. With one pid for each WebSocket URL, in
    /// the same order, each server's memory per connection counts the
    /// subscribers of its URL.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// What the connections subscribe to: new messages (`messages`), or
    /// every change of the room (`room-events`, which `--mix` needs).
    #[arg(long, value_enum, default_value_t = Feed::Messages)]
    pub subscription: Feed,
    /// The share of measured changes that are not new messages: half of
    /// them edits of the sender's last message (a new stamp, measured like
    /// a message), half reactions to it (added, then taken back; counted).
    #[arg(long, default_value_t = 0.0, value_parser = share)]
    pub mix: f64,
    /// Subscriber sockets from one loopback source address before the next
    /// takes over; hidden, since only tests have reason to make it small.
    #[arg(long, hide = true, default_value_t = SOCKETS_PER_SOURCE_ADDRESS, value_parser = positive)]
    pub sockets_per_source: usize,
}

/// The subscription each connection holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Feed {
    Messages,
    RoomEvents,
}

fn share(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("a share from 0 to 1".into()),
    }
}

fn positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(count) if count > 0 => Ok(count),
        _ => Err("a count, 1 or more".into()),
    }
}

fn seconds(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{e}"))
}

fn rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err("a number of messages a second, 0 or more".into()),
    }
}

impl Options {
    /// The WebSocket endpoints: given, or the HTTP ones with their scheme swapped.
    pub fn ws_urls(&self) -> anyhow::Result<Vec<Url>> {
        if !self.ws_url.is_empty() {
            return Ok(self.ws_url.clone());
        }
        self.url.iter().map(web_socket).collect()
    }

    /// The endpoint setup, the warm-up message and the probes go to.
    fn first_url(&self) -> anyhow::Result<&Url> {
        self.url.first().context("no --url to load")
    }
}

/// `url` with ws:// for http://, wss:// for https://.
fn web_socket(url: &Url) -> anyhow::Result<Url> {
    let scheme = match url.scheme() {
        "http" => "ws",
        "https" => "wss",
        other => bail!("--url must be http:// or https://, not {other}://"),
    };
    let mut ws = url.clone();
    ws.set_scheme(scheme)
        .map_err(|_| anyhow!("no WebSocket URL for {url}"))?;
    Ok(ws)
}

/// URLs as the options take them: comma-separated.
fn shown(urls: &[Url]) -> String {
    urls.iter().map(Url::as_str).collect::<Vec<_>>().join(",")
}

/// Runs a whole load test; its figures. An error means there were none to
/// take: setup failed, or no connection subscribed.
pub async fn run(options: &Options) -> anyhow::Result<Report> {
    let ws_urls = options.ws_urls()?;
    let (url_shown, ws_shown) = (shown(&options.url), shown(&ws_urls));
    if options.mix > 0.0 && options.subscription != Feed::RoomEvents {
        bail!("--mix needs --subscription room-events: `messages` carries new messages only");
    }
    if options.silent > options.connections {
        bail!(
            "--silent {} of {} connections: no more than there are",
            options.silent,
            options.connections
        );
    }
    tracing::info!(url = %url_shown, ws = %ws_shown, "load testing");
    let run = Arc::new(Run::new());
    let api = GraphQl::new(options.first_url()?.clone(), options.request_timeout)?;

    let started = Instant::now();
    let audience = setup::prepare(&api, options, &run)
        .await
        .context("setting up users and a room")?;
    let token = audience.tokens.first().map(String::as_str);
    api.call(
        token,
        SEND_MESSAGE,
        json!({ "room": audience.room, "content": run.warmup(0, 0) }),
    )
    .await
    .map_err(|e| anyhow!("the first sendMessage failed: {e}"))?;
    let setup_s = started.elapsed();
    tracing::info!(room = %audience.room, tokens = audience.tokens.len(), "set up");

    let mut servers = Servers::before(&options.server_pid);
    let epoch = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let ready_deadline = epoch + options.ready_timeout;
    let connections = Connections::open(Plan {
        silent: subscribers::silent_connections(options.connections, options.silent, ws_urls.len()),
        ws_urls: ws_urls.clone(),
        tokens: audience.tokens.clone(),
        room: audience.room.clone(),
        run: run.clone(),
        epoch,
        issued: issued.clone(),
        connections: options.connections,
        at_once: options.connect_concurrency,
        deadline: ready_deadline,
        feed: options.subscription,
        sockets_per_source: options.sockets_per_source,
    })?;
    connections.settled(ready_deadline).await;
    let connect_s = epoch.elapsed();
    let counters = connections.counters();
    let subscribed = counters.subscribed.load(Relaxed);
    tracing::info!(
        subscribed,
        failed = counters.failed.load(Relaxed),
        "connected"
    );
    if subscribed == 0 {
        let why = counters.first_failure().unwrap_or_default();
        connections.close().await?;
        bail!("no connection subscribed: {why}");
    }

    let probing = Instant::now();
    probe_until_ready(
        &api,
        token,
        &audience.room,
        &run,
        &connections,
        ready_deadline,
    )
    .await;
    let probe_s = probing.elapsed();
    tracing::info!(ready = counters.ready.load(Relaxed), "subscriptions live");
    // The probes' own deliveries settle before memory is read and the clock starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    servers.connected();

    let warm_until = Instant::now() + options.warmup;
    let schedule = Schedule {
        senders: options.senders,
        rate: options.rate,
        warm_until,
        until: warm_until + options.duration,
        pad: options.pad,
        mix: options.mix,
    };
    let target = senders::Target {
        urls: options.url.clone(),
        request_timeout: options.request_timeout,
        tokens: audience.tokens.clone(),
        room: audience.room.clone(),
        run: run.clone(),
        epoch,
        issued,
    };
    let sending = tokio::spawn(senders::send(target, schedule));
    tokio::time::sleep_until(warm_until).await;
    servers.start_clock();
    let own_cpu_before = process::cpu_seconds("self");
    let measuring = Instant::now();
    let sent = sending.await??;
    let send_s = measuring.elapsed();

    let draining = Instant::now();
    // The silent owe nothing: they read no more after their probe.
    let listening = subscribed.saturating_sub(counters.silent.load(Relaxed));
    let owed = (sent.ok_count + sent.reactions_ok) * listening as u64;
    drain(&connections, owed, options).await;
    servers.drained();
    let drain_s = draining.elapsed();
    let measured = measuring.elapsed();
    let own_cpu = own_cpu_before.and_then(|before| {
        let now = process::cpu_seconds("self")?;
        Some(process::percent_of_a_core(now - before, measured))
    });
    tracing::info!("sending done; closing the connections");

    let (failed, ready, closed) = (
        counters.failed.load(Relaxed),
        counters.ready.load(Relaxed),
        counters.closed.load(Relaxed),
    );
    let (first_failure, first_close) = (counters.first_failure(), counters.first_close());
    let (listeners, end_to_end) = connections.close().await?;
    let silent: Vec<&Listener> = listeners
        .iter()
        .filter(|l| l.subscribed && l.silent)
        .collect();
    let mut silent_close_codes = BTreeMap::new();
    for how in silent.iter().filter_map(|l| l.closed_by_server.as_ref()) {
        *silent_close_codes.entry(how.clone()).or_default() += 1;
    }
    let subscribers = SubscriberFigures {
        requested: options.connections,
        subscribed,
        failed,
        first_failure,
        ready,
        closed,
        first_close,
        silent: silent.len(),
        silent_closed_by_server: silent
            .iter()
            .filter(|l| l.closed_by_server.is_some())
            .count(),
        silent_close_codes,
    };
    let held = held_by_server(&listeners, options.server_pid.len(), ws_urls.len());
    let (server, each_server) = servers.figures(&held, subscribed, measured);
    Ok(Report {
        target: TargetFigures {
            url: url_shown,
            ws_url: ws_shown,
            room: audience.room,
            tokens: audience.tokens.len(),
            registered: audience.registered,
        },
        config: ConfigFigures {
            connections: options.connections,
            senders: options.senders,
            rate: options.rate,
            duration_s: options.duration.as_secs_f64(),
            warmup_s: options.warmup.as_secs_f64(),
            subscription: options.subscription,
            mix: options.mix,
        },
        phases_s: Phases {
            setup: round(setup_s.as_secs_f64(), 2),
            connect: round(connect_s.as_secs_f64(), 2),
            probe: round(probe_s.as_secs_f64(), 2),
            send: round(send_s.as_secs_f64(), 2),
            drain: round(drain_s.as_secs_f64(), 2),
        },
        subscribers,
        delivery: delivery(&listeners, &sent, listening, &end_to_end),
        send: send_figures(&sent),
        server,
        servers: each_server,
        loadtest_cpu_pct: own_cpu,
    })
}

/// The subscribers each of `servers` held, when that is known: every one
/// with one server; with one server for each of `urls` (in the same
/// order), those connected to its URL; otherwise unknown. `listeners` are
/// in the order of the connections, which take turns over the URLs.
fn held_by_server(listeners: &[Listener], servers: usize, urls: usize) -> Vec<Option<usize>> {
    let subscribed = |url: Option<usize>| {
        listeners
            .iter()
            .enumerate()
            .filter(|(i, l)| l.subscribed && url.is_none_or(|url| i % urls == url))
            .count()
    };
    match servers {
        1 => vec![Some(subscribed(None))],
        _ if servers == urls => (0..urls).map(|url| Some(subscribed(Some(url)))).collect(),
        _ => vec![None; servers],
    }
}

/// Sends a probe every half second until every subscribed connection has
/// received one, or `deadline`.
async fn probe_until_ready(
    api: &GraphQl,
    token: Option<&str>,
    room: &str,
    run: &Run,
    connections: &Connections,
    deadline: Instant,
) {
    let counters = connections.counters();
    let all_ready = || {
        counters.ready.load(Relaxed)
            >= counters
                .subscribed
                .load(Relaxed)
                .saturating_sub(counters.closed.load(Relaxed))
    };
    for attempt in 0.. {
        if all_ready() || Instant::now() >= deadline {
            return;
        }
        let probe = json!({ "room": room, "content": run.probe(attempt) });
        if let Err(failure) = api.call(token, SEND_MESSAGE, probe).await {
            tracing::warn!(%failure, "a probe message failed");
        }
        let next = Instant::now() + Duration::from_millis(500);
        while !all_ready() && Instant::now() < next.min(deadline) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Waits until every owed delivery arrived, nothing arrived for the idle
/// time, or the drain time is over.
async fn drain(connections: &Connections, owed: u64, options: &Options) {
    let counters = connections.counters();
    let end = Instant::now() + options.drain;
    let mut last = counters.delivered.load(Relaxed);
    let mut last_change = Instant::now();
    while Instant::now() < end {
        let delivered = counters.delivered.load(Relaxed);
        if delivered >= owed {
            return;
        }
        if delivered != last {
            last = delivered;
            last_change = Instant::now();
        } else if last_change.elapsed() >= options.drain_idle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn send_figures(sent: &Sent) -> SendFigures {
    let window_us = sent
        .first_send_us
        .map_or(0, |first| sent.last_answer_us.saturating_sub(first));
    SendFigures {
        ok: sent.ok_count,
        edits: sent.edits_ok,
        reactions: sent.reactions_ok,
        errors: sent.error_count(),
        error_codes: sent.errors.clone(),
        first_error: sent.first_error.clone(),
        rate_per_s: per_second(sent.ok_count, window_us),
        behind_schedule: sent.behind_schedule,
        latency: Percentiles::of(&sent.latency),
    }
}

/// What the `listening` connections (subscribed, not silent) received.
fn delivery(
    listeners: &[Listener],
    sent: &Sent,
    listening: usize,
    end_to_end: &hdrhistogram::Histogram<u64>,
) -> DeliveryFigures {
    let counted = || listeners.iter().filter(|l| l.subscribed && !l.silent);
    let expected = sent.ok_count * listening as u64;
    let received: u64 = counted().map(|l| l.seen.common(&sent.ok)).sum();
    let reactions: u64 = counted().map(|l| l.reactions).sum();
    let all_received: u64 = counted().map(Listener::received).sum::<u64>() + reactions;
    let last_delivery_us = counted().map(|l| l.last_delivery_us).max().unwrap_or(0);
    let window_us = sent
        .first_send_us
        .map_or(0, |first| last_delivery_us.saturating_sub(first));
    DeliveryFigures {
        expected,
        received,
        lost: expected.saturating_sub(received),
        duplicates: counted().map(|l| l.duplicates).sum(),
        out_of_order: counted().map(|l| l.out_of_order).sum(),
        min_per_subscriber: counted()
            .map(|l| l.seen.common(&sent.ok))
            .min()
            .unwrap_or(0),
        reactions_expected: sent.reactions_ok * listening as u64,
        reactions_received: reactions,
        per_s: per_second(all_received, window_us),
        latency: Percentiles::of(end_to_end),
    }
}

fn per_second(count: u64, window_us: u64) -> f64 {
    if window_us == 0 {
        0.0
    } else {
        round(count as f64 * 1e6 / window_us as f64, 1)
    }
}
