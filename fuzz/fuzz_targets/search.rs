//! `searchMessages`' `query` and `after` come from clients. Any text is a
//! query that parses, or `BAD_USER_INPUT` on `query`; a parsed query never
//! makes the store fail, and finds exactly the messages that
//! `store::search::matches` says it matches, newest first. Any text is a
//! search cursor this server gives out (it encodes back to itself), or
//! `BAD_USER_INPUT` on `after`.
//!
//! The input's first line is the query (and the cursor); each further line,
//! up to four, is a message. One SQLite store per process holds a fixed
//! room of messages in several scripts; each input's messages go to a new
//! room of their own, and the query searches both rooms.

#![no_main]

use std::{
    sync::{
        LazyLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chatroom::{
    chat::{
        search::{decode_cursor, encode_cursor},
        values::SearchQuery,
    },
    store::{
        MemberRecord, MessageSearch, NewMessage, Profile, Record, Role, RoomRecord, RoomType, Sex,
        SqliteStore, Store, UserRecord, now, search,
    },
};
use libfuzzer_sys::fuzz_target;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use uuid::Uuid;

const USER: Uuid = Uuid::from_u128(0x5ea2c4);
const FIXED_ROOM: Uuid = Uuid::from_u128(0xf1ed);

/// The fixed room's messages: words, prefixes of each other, the
/// unspaced scripts, full-width and composed letters, FTS5's syntax.
const FIXED: &[&str] = &[
    "Hello world, hello again",
    "help is on the way: AND OR NOT NEAR(a b)",
    "我们说中文吧，中文很好",
    "東京タワーへ行こう ｶﾀｶﾅ",
    "안녕 하세요",
    "Ｈｅｌｌｏ Straße ÉCOLE café",
    "\"quoted\" * ^ col:umn (x) +y -z",
    "ﬁsh ½ ℡ ⑴ e\u{301}cole",
    "2024年 12月",
    "中文abc文字",
];

struct World {
    runtime: Runtime,
    store: SqliteStore,
    /// Rooms of the inputs' messages, numbered.
    rooms: AtomicU64,
    _data_dir: TempDir,
}

fn room(identity: Uuid, number: String) -> Vec<Record> {
    let at = now();
    vec![
        Record::Room(RoomRecord {
            identity,
            number,
            name: "search".into(),
            info: String::new(),
            creator_identity: USER,
            room_type: RoomType::Group,
            pair_key: None,
            seq: 0,
            rev: 0,
            updated_rev: 0,
            last_message_at: None,
            created_at: at,
            updated_at: at,
        }),
        Record::Member(MemberRecord::joining(identity, USER, Role::Owner, 0, 0, at)),
    ]
}

fn message(room: Uuid, seq: i64, content: &str) -> Record {
    Record::Message(
        NewMessage {
            identity: Uuid::new_v4(),
            room_identity: room,
            sender_identity: USER,
            content: content.into(),
            client_id: None,
            created_at: now(),
            reply_to: None,
        }
        .at(seq, seq),
    )
}

static WORLD: LazyLock<World> = LazyLock::new(|| {
    // Current-thread: the same input runs the same way each time.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let data_dir = tempfile::tempdir().expect("a temporary data dir");
    let store = runtime.block_on(async {
        let store = SqliteStore::open(&data_dir.path().join("search.db"), Duration::from_secs(5))
            .await
            .expect("SQLite opens");
        let at = now();
        let mut records = vec![Record::User(UserRecord {
            profile: Profile {
                identity: USER,
                username: "searcher".into(),
                nickname: "searcher".into(),
                sex: Sex::Unknown,
                email: "searcher@example.com".into(),
                avatar: None,
                created_at: at,
                updated_at: at,
            },
            password_hash: String::new(),
        })];
        records.extend(room(FIXED_ROOM, "fixed".into()));
        records.extend(
            FIXED
                .iter()
                .zip(1..)
                .map(|(content, seq)| message(FIXED_ROOM, seq, content)),
        );
        store.import(&records, false).await.expect("seeded");
        store
    });
    World {
        runtime,
        store,
        rooms: AtomicU64::new(0),
        _data_dir: data_dir,
    }
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let query = lines.next().unwrap_or_default();
    let contents: Vec<&str> = lines.take(4).collect();

    match decode_cursor(query) {
        Ok(message) => assert_eq!(encode_cursor(message), query),
        Err(error) => {
            assert_eq!(error.code(), "BAD_USER_INPUT", "{query:?}");
            assert_eq!(error.field(), Some("after"), "{query:?}");
        }
    }

    let terms = match SearchQuery::parse(query) {
        Ok(parsed) => parsed.into_terms(),
        Err(error) => {
            assert_eq!(error.code(), "BAD_USER_INPUT", "{query:?}");
            assert_eq!(error.field(), Some("query"), "{query:?}");
            return;
        }
    };
    let world = &*WORLD;
    let number = world.rooms.fetch_add(1, Ordering::Relaxed);
    let input_room = Uuid::from_u128((u128::from(number) + 1) << 64);
    let mut records = room(input_room, format!("input {number}"));
    records.extend(
        contents
            .iter()
            .zip(1..)
            .map(|(content, seq)| message(input_room, seq, content)),
    );
    let found = world.runtime.block_on(async {
        world.store.import(&records, false).await.expect("stored");
        world
            .store
            .search_messages(&MessageSearch {
                terms: terms.clone(),
                rooms: vec![FIXED_ROOM, input_room],
                after: None,
                limit: FIXED.len() + contents.len() + 1,
            })
            .await
    });
    let found: Vec<String> = found
        .unwrap_or_else(|error| panic!("{query:?} failed: {error:?}"))
        .into_iter()
        .map(|message| message.content)
        .collect();
    // Newest first: the input's messages, then the fixed room's.
    let expected: Vec<&str> = FIXED
        .iter()
        .chain(&contents)
        .rev()
        .copied()
        .filter(|content| search::matches(content, &terms))
        .collect();
    assert_eq!(found, expected, "{query:?}, terms {terms:?}");
});
