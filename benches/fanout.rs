//! The hot path of fan-out, a piece at a time: what one `sendMessage` costs
//! once, and what it costs per subscriber. `cargo bench --bench fanout`.
//!
//! - `render`: executing and serializing one message under a room
//!   subscription's document: paid once per message (and kind of
//!   subscription), shared by every subscriber on the instance.
//! - `frame`: wrapping that render in one subscriber's `next` frame: paid
//!   per subscriber.
//! - `encode`/`decode`: an event as it crosses Redis between instances.

use std::sync::Arc;

use async_graphql::Request;
use chatroom::{
    Config,
    app::App,
    auth::{Credentials, Grant, Viewer},
    broker::{Event, MessageEvent},
    graphql::{self, Rendered},
    live::protocol::{FrameId, Protocol},
    store::{MessageRecord, Profile, Sex},
};
use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt;
use uuid::Uuid;

const SUBSCRIPTION: &str = "subscription($r: ID!) {
    messages(roomIdentity: $r) { identity content createdAt cursor sender { username nickname avatar } }
}";

fn event() -> Arc<MessageEvent> {
    let sender = Profile {
        identity: Uuid::new_v4(),
        username: "ann".into(),
        nickname: "Ann".into(),
        sex: Sex::Unknown,
        email: "ann@example.com".into(),
        avatar: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    };
    let message = MessageRecord {
        identity: Uuid::new_v4(),
        room_identity: Uuid::new_v4(),
        seq: 42,
        sender_identity: sender.identity,
        content: "lgm:1:2:3:1234567890:".repeat(3),
        client_id: None,
        created_at: Utc::now(),
        reply_to: None,
        edited_at: None,
        deleted_at: None,
        reactions: Vec::new(),
        posted_rev: 42,
        rev: 42,
        change: chatroom::store::MessageChange::Posted,
    };
    Arc::new(MessageEvent::new(message, sender))
}

fn fanout(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let data = tempfile::tempdir().expect("a temp dir");
    let config = Config {
        data_dir: data.path().to_owned(),
        ..Config::default()
    };
    let app = Arc::new(runtime.block_on(App::open(config)).expect("the app"));
    let schema = graphql::schemas(&app).rendering;
    let event = event();
    let viewer = Credentials::Valid(
        Viewer {
            identity: Uuid::new_v4(),
            username: "bob".into(),
        },
        Grant {
            session: Uuid::new_v4(),
            password: String::new(),
            expires_at: chrono::Utc::now(),
        },
    );
    let render = || {
        let request = Request::new(SUBSCRIPTION)
            .variables(async_graphql::Variables::from_json(
                serde_json::json!({ "r": event.message.room_identity }),
            ))
            .data(Rendered::Message(event.clone()))
            .data(viewer.clone())
            .data(graphql::loader(app.clone(), &viewer));
        let schema = schema.clone();
        async move {
            let response = schema
                .execute_stream(request)
                .next()
                .await
                .expect("a render");
            serde_json::to_string(&response).expect("JSON")
        }
    };
    let payload = runtime.block_on(render());
    assert!(payload.contains("\"username\":\"ann\""), "{payload}");

    c.bench_function("render one message for a subscription", |b| {
        b.to_async(&runtime).iter(render)
    });
    let id = FrameId::new("1", Protocol::GraphqlTransportWs);
    c.bench_function("frame a shared render for one subscriber", |b| {
        b.iter(|| id.next(&payload))
    });
    let envelope = Event::Message(event.clone());
    c.bench_function("encode an event for Redis", |b| {
        b.iter(|| serde_json::to_vec(&envelope).expect("JSON"))
    });
    let encoded = serde_json::to_vec(&envelope).expect("JSON");
    c.bench_function("decode an event from Redis", |b| {
        b.iter(|| serde_json::from_slice::<Event>(&encoded).expect("an event"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(2));
    targets = fanout
}
criterion_main!(benches);
