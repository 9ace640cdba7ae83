//! MongoDB at its own speed (issue 19): how many messages a second the
//! MongoDB store takes from many senders into one room, against what the
//! same server takes as plain single-document inserts, in one run.
//!
//!     CHATROOM_BENCH_MONGODB_URI='mongodb://127.0.0.1:27017/?directConnection=true' \
//!         cargo bench --bench mongo_send
//!
//! Both halves run on the same server, with the same number of concurrent
//! tasks (`CHATROOM_BENCH_SENDERS`, default 32), each for
//! `CHATROOM_BENCH_SECONDS` (default 10), each in a database of its own
//! made for the run and dropped after it:
//!
//! - **raw**: every task `insert_one`s a document shaped like a stored
//!   message (the same fields, about the same size) into a scratch
//!   collection with no index but `_id`: the server's own rate, the most a
//!   store could hope for with one write per message.
//! - **send**: every task is a member of one GROUP room and calls
//!   `Store::send_message`, the store call `sendMessage` makes (the checks
//!   of a send and the insert with the room's next seq), one message in
//!   flight each. Measured at the store, not through GraphQL: the server's
//!   own work per request (tokens, rate limits, rendering) is the same
//!   whichever store is used, and here it would share the machine's cores
//!   with the database being measured.
//!
//! With `CHATROOM_BENCH_HALVES=raw`, only the raw half runs:
//! `scripts/bench mongo` runs it beside `sendMessage` through the server.
//!
//! Afterwards the room is read back: its seqs must run 1..=n without a hole
//! and n must be the number of sends that succeeded. The last line prints
//! both rates and their ratio; issue 19 asks for at least 0.5.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chatroom::store::{
    HistoryRange, MongoStore, NewMessage, Profile, RoomRecord, RoomType, Sex, Store, UserRecord,
    now,
};
use mongodb::{Client, bson::doc};
use uuid::Uuid;

/// What a sender writes: about the length people write.
const CONTENT: &str = "a message of about the length people write, give or take";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Runs `tasks` copies of `work` until `seconds` are over; how many calls
/// succeeded, how many failed, and how long it took.
async fn run<F, Fut>(tasks: u64, seconds: u64, work: F) -> (u64, u64, Duration)
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let work = Arc::new(work);
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let (work, stop) = (work.clone(), stop.clone());
            let (done, failed) = (done.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let counter = if work(task).await { &done } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        handle.await.expect("a task ends");
    }
    let took = started.elapsed();
    (
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        took,
    )
}

/// The raw half: message-sized documents, one `insert_one` each.
async fn raw(uri: &str, tasks: u64, seconds: u64) -> f64 {
    let client = Client::with_uri_str(uri)
        .await
        .expect("the server is there");
    let database = client.database(&format!("chatroom_bench_raw_{}", Uuid::new_v4().simple()));
    let scratch = database.collection::<mongodb::bson::Document>("scratch");
    let room = Uuid::new_v4().to_string();
    let (done, failed, took) = run(tasks, seconds, move |task| {
        let (scratch, room) = (scratch.clone(), room.clone());
        async move {
            let at = mongodb::bson::DateTime::now();
            let document = doc! {
                "identity": Uuid::now_v7().to_string(),
                "room_identity": room,
                "seq": i64::try_from(task).unwrap_or(0),
                "sender_identity": Uuid::new_v4().to_string(),
                "content": CONTENT,
                "created_at": at,
                "edited_at": null,
                "deleted_at": null,
                "posted_rev": 1_i64,
                "rev": 1_i64,
                "change": "POSTED",
                "search_terms": ["a", "message", "of", "about", "the", "length"],
            };
            scratch.insert_one(document).await.is_ok()
        }
    })
    .await;
    database
        .drop()
        .await
        .expect("the scratch database is dropped");
    let rate = done as f64 / took.as_secs_f64();
    println!("raw insert_one:  {done} in {took:.1?} ({failed} failed): {rate:.0}/s");
    rate
}

fn user(identity: Uuid, name: &str) -> UserRecord {
    let at = now();
    UserRecord {
        profile: Profile {
            identity,
            username: name.into(),
            nickname: name.into(),
            sex: Sex::Unknown,
            email: format!("{name}@example.com"),
            avatar: None,
            created_at: at,
            updated_at: at,
        },
        password_hash: String::new(),
    }
}

/// The send half: `tasks` members of one room, each sending in a loop.
async fn send(uri: &str, tasks: u64, seconds: u64) -> f64 {
    let name = format!("chatroom_bench_send_{}", Uuid::new_v4().simple());
    let store = MongoStore::connect(uri, &name, Duration::from_secs(10))
        .await
        .expect("the store connects");
    let senders: Vec<Uuid> = (0..tasks).map(|_| Uuid::new_v4()).collect();
    for (place, &sender) in senders.iter().enumerate() {
        store
            .create_user(&user(sender, &format!("sender{place}")))
            .await
            .expect("a sender is stored");
    }
    let at = now();
    let room = RoomRecord {
        identity: Uuid::new_v4(),
        number: Uuid::new_v4().simple().to_string()[..10].to_owned(),
        name: "bench".into(),
        info: String::new(),
        creator_identity: senders[0],
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
        .create_room(&room, &senders)
        .await
        .expect("the room is stored");
    let store = Arc::new(store);
    let room_identity = room.identity;
    let (done, failed, took) = run(tasks, seconds, {
        let (store, senders) = (store.clone(), senders.clone());
        move |task| {
            let store = store.clone();
            let message = NewMessage {
                identity: Uuid::now_v7(),
                room_identity,
                sender_identity: senders[usize::try_from(task).unwrap_or(0)],
                content: CONTENT.into(),
                client_id: Some(Uuid::new_v4().simple().to_string()),
                created_at: now(),
                reply_to: None,
            };
            async move {
                match store.send_message(&message).await {
                    Ok(_) => true,
                    Err(error) => {
                        eprintln!("send failed: {error:?}");
                        false
                    }
                }
            }
        }
    })
    .await;
    check_seqs(store.as_ref(), room_identity, done).await;
    Client::with_uri_str(uri)
        .await
        .expect("the server is there")
        .database(&name)
        .drop()
        .await
        .expect("the bench database is dropped");
    let rate = done as f64 / took.as_secs_f64();
    println!("send_message:    {done} in {took:.1?} ({failed} failed): {rate:.0}/s");
    rate
}

/// The room's seqs run 1..=sent, each once.
async fn check_seqs(store: &dyn Store, room: Uuid, sent: u64) {
    let mut after = 0;
    loop {
        let range = HistoryRange {
            after: Some(after),
            before: None,
            limit: 1000,
            newest: false,
        };
        let page = store.history(room, range).await.expect("history reads");
        for message in &page {
            assert_eq!(message.seq, after + 1, "seqs without holes");
            after = message.seq;
        }
        if page.is_empty() {
            break;
        }
    }
    assert_eq!(
        u64::try_from(after).ok(),
        Some(sent),
        "every send stored once"
    );
}

fn main() {
    let Ok(uri) = std::env::var("CHATROOM_BENCH_MONGODB_URI") else {
        println!("mongo_send: set CHATROOM_BENCH_MONGODB_URI to a MongoDB to measure");
        return;
    };
    let tasks = setting("CHATROOM_BENCH_SENDERS", 32);
    let seconds = setting("CHATROOM_BENCH_SECONDS", 10);
    // `raw` alone: `scripts/bench mongo` measures the sends through the
    // server itself, beside this.
    let raw_only = std::env::var("CHATROOM_BENCH_HALVES").is_ok_and(|halves| halves == "raw");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        println!("mongo_send: {tasks} tasks, {seconds} s each");
        let raw = raw(&uri, tasks, seconds).await;
        if raw_only {
            return;
        }
        let send = send(&uri, tasks, seconds).await;
        println!(
            "mongo_send: raw {raw:.0}/s, send_message {send:.0}/s, ratio {:.2}",
            send / raw
        );
    });
}
