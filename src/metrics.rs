//! What `/metrics` reports, in the Prometheus (OpenMetrics) text format.
//!
//! Each [`App`](crate::app::App) owns its [`Metrics`] and registry rather than
//! using a process-wide one, so several apps in one process (the tests, or
//! two instances side by side) never mix their counts. Recording is a few
//! atomic operations; the registry is only read when scraped.

use std::{borrow::Cow, time::Duration};

use axum::http::StatusCode;
use prometheus_client::{
    encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder, text},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

/// The live feeds a client can subscribe to, as the schema names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    Messages,
    Inbox,
    Lobby,
    RoomEvents,
}

impl Feed {
    const ALL: [Feed; 4] = [Feed::Messages, Feed::Inbox, Feed::Lobby, Feed::RoomEvents];

    fn as_str(self) -> &'static str {
        match self {
            Feed::Messages => "messages",
            Feed::Inbox => "inbox",
            Feed::RoomEvents => "room_events",
            Feed::Lobby => "lobby",
        }
    }
}

/// Written as the field name (`messages`), not the variant (`Messages`) the derive would give.
impl EncodeLabelValue for Feed {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FeedLabels {
    kind: Feed,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    /// The matched route, never the raw path: a client choosing paths must not
    /// be able to create series without bound.
    route: Cow<'static, str>,
    /// The class (`2xx`, `4xx`, …): the exact status adds series without adding insight.
    status: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ErrorLabels {
    code: String,
}

type Latencies = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// From 1 ms (answered from memory) to about 16 s (past a store timing out).
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric the app records, and the registry they are encoded from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    request_duration: Latencies,
    websocket_connections: Gauge,
    websocket_connections_opened: Counter,
    subscriptions_active: Family<FeedLabels, Gauge>,
    messages_stored: Counter,
    presence_writes: Counter,
    deliveries: Family<FeedLabels, Counter>,
    subscription_renders: Counter,
    gap_fills: Counter,
    gap_fill_messages: Counter,
    errors: Family<ErrorLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("chatroom");
        let request_duration = Latencies::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request's arrival to its response's head, by route and status class; \
             for a WebSocket, until the upgrade",
            Unit::Seconds,
            request_duration.clone(),
        );
        let websocket_connections = Gauge::default();
        registry.register(
            "websocket_connections",
            "GraphQL WebSocket connections open now",
            websocket_connections.clone(),
        );
        let websocket_connections_opened = Counter::default();
        registry.register(
            "websocket_connections_opened",
            "GraphQL WebSocket connections opened",
            websocket_connections_opened.clone(),
        );
        let subscriptions_active = Family::<FeedLabels, Gauge>::default();
        registry.register(
            "subscriptions_active",
            "Subscriptions running now, by kind (messages, inbox, lobby)",
            subscriptions_active.clone(),
        );
        let messages_stored = Counter::default();
        registry.register(
            "messages_stored",
            "Messages stored by sendMessage; a retry with a known clientId stores nothing",
            messages_stored.clone(),
        );
        let presence_writes = Counter::default();
        registry.register(
            "presence_store_writes",
            "Store writes of users coming online and going: one per tick with a change, \
             however many sockets opened and closed",
            presence_writes.clone(),
        );
        let deliveries = Family::<FeedLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Messages and lobby events handed to subscribers, by subscription kind",
            deliveries.clone(),
        );
        let subscription_renders = Counter::default();
        registry.register(
            "subscription_renders",
            "Messages executed and serialized for room and inbox subscriptions: one per \
             message and kind of subscription, shared by every subscriber on this instance",
            subscription_renders.clone(),
        );
        let gap_fills = Counter::default();
        registry.register(
            "gap_fills",
            "Reads from the store by room subscriptions catching up: the replay when one \
             starts, and each gap, lag or resync after it",
            gap_fills.clone(),
        );
        let gap_fill_messages = Counter::default();
        registry.register(
            "gap_fill_messages",
            "Messages those catch-up reads returned: delivered from the store, not live",
            gap_fill_messages.clone(),
        );
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "errors",
            "GraphQL errors answered, by extensions.code",
            errors.clone(),
        );
        // Every kind is reported from the start, at zero, so a dashboard's
        // rate() sees the first subscription rather than a new series.
        for kind in Feed::ALL {
            subscriptions_active.get_or_create_owned(&FeedLabels { kind });
            deliveries.get_or_create_owned(&FeedLabels { kind });
        }
        Self {
            registry,
            request_duration,
            websocket_connections,
            websocket_connections_opened,
            subscriptions_active,
            messages_stored,
            presence_writes,
            deliveries,
            subscription_renders,
            gap_fills,
            gap_fill_messages,
            errors,
        }
    }
}

impl Metrics {
    /// Everything, as the OpenMetrics text a Prometheus scrape reads.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// `route` is the matched route; `None` when none matched.
    pub fn http_request(&self, route: Option<&str>, status: StatusCode, latency: Duration) {
        let labels = RequestLabels {
            route: route.map_or(Cow::Borrowed("unmatched"), |route| {
                Cow::Owned(route.to_owned())
            }),
            status: status_class(status),
        };
        self.request_duration
            .get_or_create(&labels)
            .observe(latency.as_secs_f64());
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub fn websocket_opened(&self) -> OpenConnection {
        self.websocket_connections_opened.inc();
        self.websocket_connections.inc();
        OpenConnection(self.websocket_connections.clone())
    }

    /// Counts a subscription of `kind` as running until the returned guard is
    /// dropped, which async-graphql does with the stream holding it: when the
    /// client completes it, the stream ends, or the socket closes.
    pub fn subscription_started(&self, kind: Feed) -> LiveSubscription {
        let labels = FeedLabels { kind };
        let active = self.subscriptions_active.get_or_create_owned(&labels);
        active.inc();
        LiveSubscription {
            active,
            deliveries: self.deliveries.get_or_create_owned(&labels),
        }
    }

    pub fn message_stored(&self) {
        self.messages_stored.inc();
    }

    /// One store write of the comings and goings of a presence tick.
    pub fn presence_recorded(&self) {
        self.presence_writes.inc();
    }

    /// One message executed and serialized for a kind of subscription.
    pub fn subscription_rendered(&self) {
        self.subscription_renders.inc();
    }

    /// One catch-up read from the store that returned `messages` messages.
    pub fn gap_filled(&self, messages: usize) {
        self.gap_fills.inc();
        self.gap_fill_messages
            .inc_by(u64::try_from(messages).unwrap_or(u64::MAX));
    }

    /// One error answered with `code` as its `extensions.code`.
    pub fn error(&self, code: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                code: code.to_owned(),
            })
            .inc();
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// An open WebSocket connection, counted in `websocket_connections` while it lives.
#[must_use = "the connection counts as open only while this lives"]
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A running subscription: counted in `subscriptions_active` while it lives,
/// and where its deliveries are counted.
#[must_use = "the subscription counts as running only while this lives"]
pub struct LiveSubscription {
    active: Gauge,
    deliveries: Counter,
}

impl LiveSubscription {
    pub fn delivered(&self) {
        self.deliveries.inc();
    }
}

impl Drop for LiveSubscription {
    fn drop(&mut self) {
        self.active.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_while_they_live() {
        let metrics = Metrics::default();
        let connection = metrics.websocket_opened();
        let subscription = metrics.subscription_started(Feed::Inbox);
        subscription.delivered();
        let open = metrics.encode().unwrap();
        assert!(
            open.contains("chatroom_websocket_connections 1\n"),
            "{open}"
        );
        assert!(open.contains("chatroom_subscriptions_active{kind=\"inbox\"} 1\n"));
        assert!(open.contains("chatroom_deliveries_total{kind=\"inbox\"} 1\n"));

        drop((connection, subscription));
        let closed = metrics.encode().unwrap();
        assert!(
            closed.contains("chatroom_websocket_connections 0\n"),
            "{closed}"
        );
        assert!(closed.contains("chatroom_websocket_connections_opened_total 1\n"));
        assert!(closed.contains("chatroom_subscriptions_active{kind=\"inbox\"} 0\n"));
    }

    #[test]
    fn requests_are_labelled_by_route_and_status_class() {
        let metrics = Metrics::default();
        metrics.http_request(Some("/graphql"), StatusCode::OK, Duration::from_millis(3));
        metrics.http_request(None, StatusCode::NOT_FOUND, Duration::from_millis(1));
        let text = metrics.encode().unwrap();
        assert!(
            text.contains(
                "chatroom_http_request_duration_seconds_count{route=\"/graphql\",status=\"2xx\"} 1\n"
            ),
            "{text}"
        );
        assert!(text.contains(
            "chatroom_http_request_duration_seconds_count{route=\"unmatched\",status=\"4xx\"} 1\n"
        ));
    }
}
