//! A GraphQL request from a client, through the schema, as `http.rs` runs it.
//!
//! One app is built per process (SQLite in a temporary data dir, a fixed JWT
//! secret) and seeded with three users and three rooms; every input is run
//! as the signed-in alice, who can reach every resolver. The input is a
//! request body (`{"query": ..., "variables": ...}`), or else the query text.
//!
//! The property, from API.md: no panic; every error carries one of the
//! contract's codes; no message leaks the store's internals. And, since the
//! store here is healthy, no input may end in `INTERNAL`: that would be the
//! server failing on something it should have refused.

#![no_main]

use std::sync::{Arc, LazyLock};

use async_graphql::{Request, Value};
use chatroom::{
    Config,
    app::App,
    auth::{Credentials, Viewer},
    chat::{messages, rooms, social},
    config::RateLimits,
    error::Lang,
    graphql::{self, ChatSchema},
    store::{Profile, RoomRecord, RoomType, Sex, UserRecord, now, pair_key},
};
use libfuzzer_sys::fuzz_target;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// Fixed identities, so the seed corpus can name them.
const ALICE: Uuid = Uuid::from_u128(0xa11ce);
const BOB: Uuid = Uuid::from_u128(0xb0b);
const CAROL: Uuid = Uuid::from_u128(0xca201);
/// alice and bob's group.
const GROUP: Uuid = Uuid::from_u128(0x6201);
/// alice and bob's PRIVATE room.
const PRIVATE: Uuid = Uuid::from_u128(0x9201);
/// bob and carol's group: alice is not in it (FORBIDDEN paths).
const OTHERS: Uuid = Uuid::from_u128(0x0743);

const PASSWORD: &str = "fuzzing-password";

/// API.md's error codes.
const CODES: [&str; 8] = [
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "BAD_USER_INPUT",
    "CONFLICT",
    "INVALID_CODE",
    "RATE_LIMITED",
    "INTERNAL",
];

struct World {
    runtime: Runtime,
    app: Arc<App>,
    schema: ChatSchema,
    alice: Credentials,
    _data_dir: TempDir,
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    // Current-thread: the same input runs the same way each time.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let config = Config {
        data_dir: data_dir.path().to_owned(),
        jwt_secret: Some("fuzz-secret-fuzz-secret-fuzz-secret!".into()),
        // One viewer runs thousands of mutations a second: the write rates
        // would refuse nearly all of them, and hide their paths from the
        // fuzzer. Logins keep their limits.
        rates: RateLimits {
            messages_per_second: u32::MAX,
            message_burst: u32::MAX,
            writes_per_second: u32::MAX,
            write_burst: u32::MAX,
            address_writes_per_second: u32::MAX,
            address_write_burst: u32::MAX,
            registrations_per_address: u32::MAX,
            ..RateLimits::default()
        },
        ..Config::default()
    };
    let (app, alice) = runtime.block_on(async {
        let app = Arc::new(App::open(config).await.expect("the app opens"));
        seed(&app).await;
        let alice = app
            .store
            .login_record(&user(&app, ALICE).await.username)
            .await
            .expect("the store answers")
            .expect("a seeded user");
        let fingerprint = app.tokens.fingerprint(&alice.password_hash);
        let (token, _) = app
            .tokens
            .issue(&alice.profile, Uuid::new_v4(), &fingerprint)
            .expect("a token");
        (app.clone(), app.tokens.credentials(&token))
    });
    assert!(matches!(alice, Credentials::Valid(..)));
    let schema = graphql::schemas(&app).serving;
    World {
        runtime,
        app,
        schema,
        alice,
        _data_dir: data_dir,
    }
});

async fn user(app: &App, identity: Uuid) -> Profile {
    app.store
        .user_by_identity(identity)
        .await
        .expect("the store answers")
        .expect("a seeded user")
}

fn viewer(identity: Uuid, username: &str) -> Viewer {
    Viewer {
        identity,
        username: username.into(),
    }
}

fn room(identity: Uuid, creator: Uuid, room_type: RoomType, name: &str) -> RoomRecord {
    let mut room = rooms::new_room(creator, room_type, name.into(), String::new(), None);
    room.identity = identity;
    room
}

fn private_room() -> RoomRecord {
    let mut room = room(PRIVATE, ALICE, RoomType::Private, "");
    room.pair_key = Some(pair_key(ALICE, BOB));
    room
}

async fn seed(app: &Arc<App>) {
    let hash = app.hasher.hash(PASSWORD.into()).await.expect("a hash");
    for (identity, username) in [(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")] {
        let created_at = now();
        let record = UserRecord {
            profile: Profile {
                identity,
                username: username.into(),
                nickname: username.into(),
                sex: Sex::Unknown,
                email: format!("{username}@example.com"),
                avatar: None,
                created_at,
                updated_at: created_at,
            },
            password_hash: hash.clone(),
        };
        app.store.create_user(&record).await.expect("a seeded user");
    }
    let group = room(GROUP, ALICE, RoomType::Group, "fuzzers");
    rooms::create_room(app, group, &[ALICE, BOB])
        .await
        .expect("the group");
    rooms::create_room(app, private_room(), &[ALICE, BOB])
        .await
        .expect("the private room");
    let others = room(OTHERS, BOB, RoomType::Group, "others");
    rooms::create_room(app, others, &[BOB, CAROL])
        .await
        .expect("the others' group");
    let (alice, bob) = (viewer(ALICE, "alice"), viewer(BOB, "bob"));
    for (sender, content) in [(&alice, "hello"), (&bob, "hi alice"), (&alice, "你好")] {
        messages::send(app, sender, &GROUP.to_string(), content, None, None)
            .await
            .expect("a seeded message");
    }
}

/// Undoes what an input did to alice's rooms, so that every input starts
/// from the seeded rooms and their number does not grow with the run.
async fn restore(app: &Arc<App>) {
    let (alice, bob) = (viewer(ALICE, "alice"), viewer(BOB, "bob"));
    let seeded = [GROUP, PRIVATE];
    let member = app
        .store
        .member(GROUP, ALICE)
        .await
        .expect("the store answers");
    if member.is_none() {
        rooms::add_members(app, &bob, &GROUP.to_string(), &["alice".into()])
            .await
            .expect("alice back in the group");
    }
    if app
        .store
        .room(PRIVATE)
        .await
        .expect("the store answers")
        .is_none()
    {
        social::remove_friend(app, &alice, "bob")
            .await
            .expect("a new pair room gone");
        rooms::create_room(app, private_room(), &[ALICE, BOB])
            .await
            .expect("the private room again");
    }
    let rooms_of_alice = app
        .store
        .rooms_of_user(ALICE)
        .await
        .expect("the store answers");
    for room in rooms_of_alice
        .iter()
        .filter(|room| !seeded.contains(&room.identity))
    {
        match room.room_type {
            RoomType::Group => {
                rooms::leave_room(app, &alice, &room.identity.to_string())
                    .await
                    .expect("alice left a new group");
            }
            RoomType::Private => {
                let friend = if room.pair_key == Some(pair_key(ALICE, CAROL)) {
                    "carol"
                } else {
                    panic!("an unexpected PRIVATE room {room:?}")
                };
                social::remove_friend(app, &alice, friend)
                    .await
                    .expect("a new friend removed");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let request = match serde_json::from_slice::<Request>(data) {
        Ok(request) => request,
        Err(_) => match std::str::from_utf8(data) {
            Ok(query) => Request::new(query),
            Err(_) => return,
        },
    };
    let world = &*WORLD;
    let response = world.runtime.block_on(async {
        // As http/mod.rs: the document measured and parsed, then the
        // credentials and this request's loader in its data; after, the
        // nulls propagated.
        let loader = graphql::loader(world.app.clone(), &world.alice);
        let max_fields = world.app.config.limits.max_complexity;
        let executed = graphql::Executed::of(&request);
        let response = match graphql::parsed(request, max_fields) {
            Ok(request) => {
                let request = request.data(world.alice.clone()).data(loader);
                world.schema.execute(request).await
            }
            Err(error) => graphql::error_response(error),
        };
        let response = graphql::finish(executed.mend(response), Lang::En, &world.app);
        restore(&world.app).await;
        response
    });

    // The client may write "sqlite" itself (an unknown field echoed back).
    let input_names_sqlite = String::from_utf8_lossy(data)
        .to_lowercase()
        .contains("sqlite");
    for error in &response.errors {
        let code = error.extensions.as_ref().and_then(|e| e.get("code"));
        let code = match code {
            Some(Value::String(code)) if CODES.contains(&code.as_str()) => code.as_str(),
            other => panic!("error {:?} has code {other:?}", error.message),
        };
        assert_ne!(code, "INTERNAL", "INTERNAL on a healthy store: {error:?}");
        assert!(
            input_names_sqlite || !error.message.to_lowercase().contains("sqlite"),
            "error message leaks the store: {:?}",
            error.message
        );
    }
    let body = serde_json::to_string(&response).expect("the response serializes");
    // When reproducing one input: `CHATROOM_FUZZ_PRINT=1 cargo fuzz run graphql <file>`.
    if std::env::var_os("CHATROOM_FUZZ_PRINT").is_some() {
        eprintln!("{body}");
    }
});
