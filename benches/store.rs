//! Micro-benchmarks of the embedded (SQLite) store's two hot paths: storing a
//! message as `sendMessage` does (checks and insert), and reading the newest
//! page of a room's history.
//!
//!     cargo bench --bench store                  # everything
//!     cargo bench --bench store -- history       # one group
//!
//! History is read from a room of 1,000 messages and from one of
//! `CHATROOM_BENCH_BIG_ROOM` (default 1,000,000): the page must cost about
//! the same however long the room is. Besides criterion's figures, each
//! history case prints its p50 and p99 over many single reads, since it is
//! the tail that a long room would hurt.
//!
//! Sample sizes are small so that a run takes about a minute, most of it
//! filling the big room.

use std::{sync::Arc, time::Duration};

use chatroom::store::{
    HistoryRange, MessageRecord, NewMessage, Profile, Record, RoomRecord, RoomType, Sex,
    SqliteStore, Store, UserRecord, now,
};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::future::join_all;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// The newest page, as `messages(last: 50)` asks the store for it (one more
/// than the page, to know whether there is an earlier one).
const LAST_50: HistoryRange = HistoryRange {
    after: None,
    before: None,
    limit: 51,
    newest: true,
};

/// Messages written per `import` call while filling a room: one transaction each.
const FILL_CHUNK: i64 = 50_000;

/// Single reads timed for the percentiles.
const PERCENTILE_READS: usize = 2_000;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A store in a temporary dir (which must outlive it) with one GROUP room
/// and its creator.
async fn store_with_room() -> (Arc<dyn Store>, TempDir, RoomRecord) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let store = SqliteStore::open(&dir.path().join("bench.db"), Duration::from_secs(5))
        .await
        .expect("SQLite opens");
    let at = now();
    let creator = Uuid::new_v4();
    let user = UserRecord {
        profile: Profile {
            identity: creator,
            username: "bench".into(),
            nickname: "bench".into(),
            sex: Sex::Unknown,
            email: "bench@example.com".into(),
            avatar: None,
            created_at: at,
            updated_at: at,
        },
        password_hash: String::new(),
    };
    store.create_user(&user).await.expect("the user is stored");
    let room = RoomRecord {
        identity: Uuid::new_v4(),
        number: Uuid::new_v4().simple().to_string()[..10].to_owned(),
        name: "bench".into(),
        info: String::new(),
        creator_identity: creator,
        room_type: RoomType::Group,
        pair_key: None,
        seq: 0,
        rev: 0,
        updated_rev: 0,
        last_message_at: None,
        created_at: at,
        updated_at: at,
    };
    store
        .create_room(&room, &[creator])
        .await
        .expect("the room is stored");
    (Arc::new(store), dir, room)
}

fn new_message(room: &RoomRecord) -> NewMessage {
    NewMessage {
        identity: Uuid::new_v4(),
        room_identity: room.identity,
        sender_identity: room.creator_identity,
        content: "a message of about the length people write".into(),
        client_id: None,
        created_at: now(),
        reply_to: None,
    }
}

/// Writes messages 1..=count into `room` in bulk, as an import does.
async fn fill(store: &dyn Store, room: &RoomRecord, count: i64) {
    let at = now();
    let mut seq = 0;
    while seq < count {
        let end = (seq + FILL_CHUNK).min(count);
        let records: Vec<Record> = (seq + 1..=end)
            .map(|seq| {
                Record::Message(MessageRecord {
                    content: format!("message {seq}"),
                    created_at: at,
                    ..new_message(room).at(seq, seq)
                })
            })
            .collect();
        store
            .import(&records, false)
            .await
            .expect("the messages are stored");
        seq = end;
    }
}

fn send(c: &mut Criterion) {
    let rt = runtime();
    let (store, _dir, room) = rt.block_on(store_with_room());
    let mut group = c.benchmark_group("send_message");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(3));
    // One sender at a time: each message waits for its own commit.
    group.throughput(Throughput::Elements(1));
    group.bench_function("one_at_a_time", |b| {
        b.to_async(&rt)
            .iter(|| async { store.send_message(&new_message(&room)).await })
    });
    // Many senders at once: what the writer's group commit is for.
    for senders in [16_u64, 64] {
        group.throughput(Throughput::Elements(senders));
        group.bench_with_input(
            BenchmarkId::new("concurrent", senders),
            &senders,
            |b, &senders| {
                b.to_async(&rt).iter(|| {
                    join_all((0..senders).map(|_| {
                        let store = store.clone();
                        let message = new_message(&room);
                        async move { store.send_message(&message).await }
                    }))
                })
            },
        );
    }
    group.finish();
}

/// The p50 and p99 of single `LAST_50` reads, in microseconds.
async fn percentiles(store: &dyn Store, room: Uuid) -> (f64, f64) {
    let mut times = Vec::with_capacity(PERCENTILE_READS);
    for _ in 0..PERCENTILE_READS {
        let start = std::time::Instant::now();
        let page = store.history(room, LAST_50).await.expect("history reads");
        times.push(start.elapsed());
        assert_eq!(page.len(), 51);
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

fn history(c: &mut Criterion) {
    let big: i64 = std::env::var("CHATROOM_BENCH_BIG_ROOM")
        .ok()
        .and_then(|count| count.parse().ok())
        .unwrap_or(1_000_000);
    let rt = runtime();
    let mut group = c.benchmark_group("history_last_50");
    group.sample_size(30);
    group.measurement_time(Duration::from_secs(3));
    for count in [1_000, big] {
        let (store, _dir, room) = rt.block_on(store_with_room());
        rt.block_on(fill(store.as_ref(), &room, count));
        let (p50, p99) = rt.block_on(percentiles(store.as_ref(), room.identity));
        println!("history_last_50/{count}: p50 {p50:.1} µs, p99 {p99:.1} µs");
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, _| {
            b.to_async(&rt)
                .iter(|| async { store.history(room.identity, LAST_50).await })
        });
    }
    group.finish();
}

criterion_group!(benches, send, history);
criterion_main!(benches);
