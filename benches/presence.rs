//! What presence costs per connection (docs/perf.md, "Presence"):
//!
//! - the socket path: counting a socket in and out of its user's presence,
//!   which is all a connect and a disconnect do until the next tick;
//! - a tick carrying the comings of `USERS` users who connected since the
//!   last one (one kv round trip for all, one store write for all, each
//!   change's audience read and published), and the tick that takes their
//!   lapses after they left.
//!
//!     cargo bench --bench presence
//!
//! On the embedded backends (SQLite, in-process kv and broker) always; on
//! MongoDB and Redis too when `CHATROOM_BENCH_MONGODB_URI` and
//! `CHATROOM_BENCH_REDIS_URL` name them.

use std::{sync::Arc, time::Instant};

use chatroom::{
    Config,
    app::App,
    chat::{presence, rooms},
    store::{Profile, RoomType, Sex, UserRecord, now},
};
use uuid::Uuid;

/// Users coming online in one tick.
const USERS: usize = 1000;

/// Each user's group: its members are the audience of their changes.
const GROUP_SIZE: usize = 50;

/// Socket counts in and out, for the socket path's figure.
const SOCKET_CYCLES: usize = 1_000_000;

async fn users_in_groups(app: &App) -> Vec<Uuid> {
    let at = now();
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        let identity = Uuid::new_v4();
        let user = UserRecord {
            profile: Profile {
                identity,
                username: format!("user{i}"),
                nickname: format!("user{i}"),
                sex: Sex::Unknown,
                email: format!("user{i}@example.com"),
                avatar: None,
                created_at: at,
                updated_at: at,
            },
            password_hash: String::new(),
        };
        app.store
            .create_user(&user)
            .await
            .expect("a user is stored");
        users.push(identity);
    }
    for group in users.chunks(GROUP_SIZE) {
        let room = rooms::new_room(group[0], RoomType::Group, "g".into(), String::new(), None);
        app.store
            .create_room(&room, group)
            .await
            .expect("a group is stored");
    }
    users
}

async fn measure(name: &str, config: Config) {
    let app = Arc::new(App::open(config).await.expect("the app opens"));
    let users = users_in_groups(&app).await;

    let started = Instant::now();
    for i in 0..SOCKET_CYCLES {
        drop(presence::arrive(&app, users[i % USERS]));
    }
    let per_socket = started.elapsed() / u32::try_from(SOCKET_CYCLES).unwrap_or(u32::MAX);
    presence::tick(&app, false).await.expect("a tick");
    tokio::time::sleep(presence::GRACE * 2).await;
    presence::tick(&app, false).await.expect("a tick");

    let sockets: Vec<_> = users
        .iter()
        .map(|user| presence::arrive(&app, *user))
        .collect();
    let started = Instant::now();
    presence::tick(&app, false).await.expect("a tick");
    let coming = started.elapsed();
    drop(sockets);
    presence::tick(&app, false).await.expect("a tick");
    tokio::time::sleep(presence::GRACE * 2).await;
    let started = Instant::now();
    presence::tick(&app, false).await.expect("a tick");
    let going = started.elapsed();
    let per_user = |total: std::time::Duration| total / u32::try_from(USERS).unwrap_or(1);
    println!(
        "{name}: socket in and out {per_socket:?}; a tick of {USERS} users coming online \
         {coming:?} ({:?} a user), of their lapses {going:?} ({:?} a user)",
        per_user(coming),
        per_user(going),
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("a temporary dir");
        let embedded = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        measure("SQLite, in-process kv", embedded).await;
        if let (Ok(mongodb), Ok(redis)) = (
            std::env::var("CHATROOM_BENCH_MONGODB_URI"),
            std::env::var("CHATROOM_BENCH_REDIS_URL"),
        ) {
            let suffix = Uuid::new_v4().simple().to_string();
            let shared = Config {
                data_dir: dir.path().join("shared"),
                mongodb_uri: Some(mongodb),
                mongodb_database: format!("bench_presence_{suffix}"),
                redis_url: Some(redis),
                redis_prefix: format!("bench_presence_{suffix}:"),
                ..Config::default()
            };
            measure("MongoDB, Redis", shared).await;
        }
    });
}
