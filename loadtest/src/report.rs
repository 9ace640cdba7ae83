//! The figures of a run: a summary for people, one JSON line for scripts.

use std::{collections::BTreeMap, fmt};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Everything a run measured. Field names are the JSON line's keys.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: TargetFigures,
    pub config: ConfigFigures,
    pub phases_s: Phases,
    pub subscribers: SubscriberFigures,
    pub send: SendFigures,
    pub delivery: DeliveryFigures,
    /// Only when the operator gave the server's pid (and it runs here);
    /// with several pids, their sum (without a pid).
    pub server: Option<ServerFigures>,
    /// With several pids, each server's own figures, in the order given.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<ServerFigures>,
    /// CPU of the load test itself over the measured time, 100 = one core:
    /// near 100 per core it had, the figures are its limit, not the server's.
    pub loadtest_cpu_pct: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TargetFigures {
    /// The GraphQL endpoints, comma-separated, as `--url` takes them.
    pub url: String,
    pub ws_url: String,
    pub room: String,
    /// Tokens used; users registered by this run, when it registered any.
    pub tokens: usize,
    pub registered: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigFigures {
    pub connections: usize,
    pub senders: usize,
    /// Messages a second in total; 0 is closed loop.
    pub rate: f64,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub subscription: crate::Feed,
    /// The share of measured changes that are edits and reactions.
    pub mix: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub setup: f64,
    pub connect: f64,
    pub probe: f64,
    pub send: f64,
    pub drain: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SubscriberFigures {
    pub requested: usize,
    pub subscribed: usize,
    pub failed: usize,
    pub first_failure: Option<String>,
    /// Subscribers that received a probe before the clock started.
    pub ready: usize,
    /// Ended by the server during the run (silent connections aside).
    pub closed: usize,
    pub first_close: Option<String>,
    /// Of `subscribed`, connections that stopped reading after their probe
    /// (`--silent`): left out of the delivery figures.
    pub silent: usize,
    /// Of the silent, those the server had closed by the end of the run.
    pub silent_closed_by_server: usize,
    /// Those, counted by the code of their Close frame (1013: too slow to
    /// keep up; 1001: no pong for too long), "no code", or "no close
    /// frame": a server that gives up on a client too slow to read rarely
    /// gets its 1013 through the full buffers, and then just hangs up.
    pub silent_close_codes: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SendFigures {
    /// Successful changes that carry a stamp: messages sent and edits.
    pub ok: u64,
    /// Of `ok`, edits (with `--mix`).
    pub edits: u64,
    /// Reactions added or taken back (with `--mix`).
    pub reactions: u64,
    pub errors: u64,
    pub error_codes: BTreeMap<String, u64>,
    pub first_error: Option<String>,
    /// Successful sends over the time from the first send to the last answer.
    pub rate_per_s: f64,
    pub behind_schedule: u64,
    pub latency: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryFigures {
    /// Successful sends times subscribed connections, silent ones aside.
    pub expected: u64,
    /// Deliveries of successfully sent messages, each counted once.
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub min_per_subscriber: u64,
    /// With `--mix`: reactions sent times listening connections, and the
    /// reaction events received (not stamped: counted, not timed).
    pub reactions_expected: u64,
    pub reactions_received: u64,
    /// Deliveries (messages, edits and reactions) over the time from the
    /// first send to the last delivery.
    pub per_s: f64,
    /// From the start of `sendMessage` to the frame read by a subscriber.
    pub latency: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    /// None for the sum of several servers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    pub rss_kib_before: Option<u64>,
    pub rss_kib_connected: Option<u64>,
    /// Once the sends are drained, the sockets still open.
    pub rss_kib_drained: Option<u64>,
    /// (RSS with every subscriber live - RSS before) / the subscribers it
    /// held: all of them for one server or the sum; for one of several,
    /// those of its WebSocket URL when there is one URL for each pid,
    /// otherwise unknown.
    pub kib_per_connection: Option<f64>,
    /// Over send and drain, 100 = one core.
    pub cpu_pct: Option<f64>,
}

/// Memory and CPU, for a line that has said whose they are.
impl fmt::Display for ServerFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RSS {} KiB before, {} KiB connected, {} KiB per connection, {} KiB drained; CPU {}%",
            or_unknown(self.rss_kib_before),
            or_unknown(self.rss_kib_connected),
            or_unknown(self.kib_per_connection),
            or_unknown(self.rss_kib_drained),
            or_unknown(self.cpu_pct)
        )
    }
}

/// A latency distribution in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// From a histogram of microseconds.
    pub fn of(micros: &Histogram<u64>) -> Self {
        let ms = |us: u64| round(us as f64 / 1000.0, 3);
        let at = |q: f64| {
            if micros.is_empty() {
                0.0
            } else {
                ms(micros.value_at_quantile(q))
            }
        };
        Self {
            count: micros.len(),
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            max_ms: if micros.is_empty() {
                0.0
            } else {
                ms(micros.max())
            },
        }
    }
}

/// `value` to `places` decimals, so the JSON line stays readable.
pub fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

impl Report {
    /// The whole report as one line of JSON.
    pub fn json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

fn or_unknown<T: fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "?".into(), |v| v.to_string())
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (t, c, s, m, d) = (
            &self.target,
            &self.config,
            &self.subscribers,
            &self.send,
            &self.delivery,
        );
        let pace = if c.rate > 0.0 {
            format!("open loop at {} msg/s", c.rate)
        } else {
            "closed loop".into()
        };
        writeln!(f, "target      {} (WebSocket {})", t.url, t.ws_url)?;
        writeln!(
            f,
            "run         room {}, {} tokens, C={} S={} {pace}, {}s after {}s warm-up; \
             {:?} subscriptions, {}% edits and reactions",
            t.room,
            t.tokens,
            c.connections,
            c.senders,
            c.duration_s,
            c.warmup_s,
            c.subscription,
            c.mix * 100.0
        )?;
        writeln!(
            f,
            "subscribers {}/{} subscribed, {} ready, {} failed, {} closed by the server",
            s.subscribed, s.requested, s.ready, s.failed, s.closed
        )?;
        if s.silent > 0 {
            writeln!(
                f,
                "            {} silent, not read after their probe: {} closed by the server \
                 by the end of the run {:?}",
                s.silent, s.silent_closed_by_server, s.silent_close_codes
            )?;
        }
        for (what, first) in [("failure", &s.first_failure), ("close", &s.first_close)] {
            if let Some(first) = first {
                writeln!(f, "            first {what}: {first}")?;
            }
        }
        writeln!(
            f,
            "send        {} ok ({} edits, and {} reactions), {} errors {:?}, {:.1} msg/s, \
             behind schedule {}; latency p50 {} ms p99 {} ms",
            m.ok,
            m.edits,
            m.reactions,
            m.errors,
            m.error_codes,
            m.rate_per_s,
            m.behind_schedule,
            m.latency.p50_ms,
            m.latency.p99_ms
        )?;
        if let Some(first) = &m.first_error {
            writeln!(f, "            first error: {first}")?;
        }
        writeln!(
            f,
            "delivery    {} of {} expected, {} lost, {} duplicates, {} out of order, \
             worst subscriber {}; reactions {} of {}; {:.0} deliveries/s",
            d.received,
            d.expected,
            d.lost,
            d.duplicates,
            d.out_of_order,
            d.min_per_subscriber,
            d.reactions_received,
            d.reactions_expected,
            d.per_s
        )?;
        writeln!(
            f,
            "end to end  p50 {} ms, p90 {} ms, p99 {} ms, max {} ms",
            d.latency.p50_ms, d.latency.p90_ms, d.latency.p99_ms, d.latency.max_ms
        )?;
        if let Some(server) = &self.server {
            let whose = match server.pid {
                Some(pid) => format!("pid {pid}"),
                None => format!("{} pids together", self.servers.len()),
            };
            writeln!(f, "server      {whose}: {server}")?;
        }
        for server in &self.servers {
            writeln!(f, "            pid {}: {server}", or_unknown(server.pid))?;
        }
        writeln!(
            f,
            "load test   CPU {}% (100 = one core)",
            or_unknown(self.loadtest_cpu_pct)
        )
    }
}
