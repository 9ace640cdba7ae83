//! What `searchMessages` costs the store (docs/perf.md, "Issue 17: search"),
//! in a store holding one room of `CHATROOM_BENCH_SEARCH_ROOM` messages
//! (default 1,000,000) and 999 smaller rooms, all of one viewer's:
//!
//! - p50 and p99 of single searches of each kind of query: a rare word, a
//!   common one, a two-letter prefix, two words, two Chinese characters,
//!   two common words that are never in one message, ten one-letter words,
//!   and a common word in all 1,000 rooms; each for the first page and for
//!   a page far down (after the room's middle message);
//! - on SQLite, the index's size on disk (`dbstat`), and what indexing
//!   costs: the store's `send_message` with the search trigger and with it
//!   dropped, and an import of 50,000 messages the same two ways.
//!
//!     cargo bench --bench search
//!
//! On SQLite always; on MongoDB too when `CHATROOM_BENCH_MONGODB_URI` names
//! one, with a room of `CHATROOM_BENCH_MONGODB_ROOM` messages (default
//! 100,000: a slow stand-in server takes minutes to take them).
//!
//! The text is generated, the same in every run: English words drawn by a
//! Zipf law (rank r is drawn in proportion to 1/r) from 100 common words and
//! 20,000 made-up ones, one message in ten in Chinese, and the words some
//! queries need planted: `quixotic` in one message of the big room in
//! 10,000, `north` and `south` in a tenth of them each, never together.
//! Searches run back to back, so the store's pages are in memory.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use chatroom::{
    chat::values::SearchQuery,
    store::{
        MemberRecord, MessageSearch, MongoStore, NewMessage, Profile, Record, Role, RoomRecord,
        RoomType, Sex, SqliteStore, Store, UserRecord,
        search::{self, Term},
    },
};
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng, rngs::StdRng};
use uuid::Uuid;

/// The kinds of query measured: what the case is called, what is typed,
/// and whether it searches all the viewer's rooms (else the big room).
const CASES: &[(&str, &str, bool)] = &[
    ("a rare word", "quixotic", false),
    ("a common word", "have", false),
    ("a common 3-letter word", "the", false),
    ("a two-letter prefix", "th", false),
    ("two words", "good time", false),
    ("two Chinese characters", "中文", false),
    (
        "worst: two common words never in one message",
        "north south",
        false,
    ),
    ("ten one-letter words", "a b c d e f g h i j", false),
    ("a common word in 1,000 rooms", "have", true),
];

/// The page `searchMessages` asks the store for by default: 20, and one
/// more to tell whether there is a next page.
const PAGE: usize = 21;

/// The viewer's rooms: the big one and the others.
const ROOMS: u128 = 1000;

/// The 100 commonest English words, commonest first: the head of the law.
const COMMON_WORDS: &str = "the be to of and a in that have i it for not on with he as you do \
    at this but his by from they we say her she or an will my one all would there their what so \
    up out if about who get which go me when make can like time no just him know take people \
    into year your good some could them see other than then now look only come its over think \
    also back after use two how our work first well way even new want because any these give \
    day most us";

/// Made-up words after the common ones: the long tail of rare words.
const MADE_UP_WORDS: usize = 20_000;

/// Chinese words and characters, commonest first.
const CHINESE_WORDS: &str = "的 了 是 我们 在 你们 中文 今天 他们 明天 时间 朋友 问题 工作 没有 \
    知道 什么 可以 一个 这个 那个 现在 已经 开始 觉得 喜欢 学习 电话 地方 东西 事情 孩子 晚上 早上 \
    公司 学校 老师 同学 电脑 手机 吃饭 睡觉 回家 上班 下班 周末 天气 下雨 中国 北京 上海 世界 文化 \
    也 都 很 和 就 不 吗 呢 吧 啊";

/// Draws ranks 0.. in proportion to 1/(rank + 1).
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(words: usize) -> Self {
        let mut total = 0.0;
        Self(
            (1..=words)
                .map(|rank| {
                    total += 1.0 / rank as f64;
                    total
                })
                .collect(),
        )
    }

    fn draw(&self, rng: &mut StdRng) -> usize {
        let at = rng.gen_range(0.0..self.0[self.0.len() - 1]);
        self.0.partition_point(|&total| total < at)
    }
}

/// Makes up message texts.
struct Texts {
    rng: StdRng,
    english: Vec<String>,
    english_law: Zipf,
    chinese: Vec<&'static str>,
    chinese_law: Zipf,
}

impl Texts {
    fn new() -> Self {
        let mut rng = StdRng::seed_from_u64(17);
        let mut english: Vec<String> = COMMON_WORDS.split_whitespace().map(String::from).collect();
        // Consonant-vowel syllables: never `th`, `north`, `south` or `quixotic`.
        let (consonants, vowels) = (b"bcdfgjklmnprstvz", b"aeiou");
        english.extend((0..MADE_UP_WORDS).map(|_| {
            (0..rng.gen_range(2..=4))
                .flat_map(|_| {
                    [
                        consonants[rng.gen_range(0..consonants.len())] as char,
                        vowels[rng.gen_range(0..vowels.len())] as char,
                    ]
                })
                .collect()
        }));
        let chinese: Vec<&str> = CHINESE_WORDS.split_whitespace().collect();
        Self {
            rng,
            english_law: Zipf::new(english.len()),
            english,
            chinese_law: Zipf::new(chinese.len()),
            chinese,
        }
    }

    /// One message: 3 to 20 English words, or one time in ten 4 to 15
    /// Chinese words in one or two sentences.
    fn message(&mut self) -> String {
        if self.rng.gen_bool(0.1) {
            let mut text = String::new();
            for i in 0..self.rng.gen_range(4..=15) {
                if i == 6 && self.rng.gen_bool(0.5) {
                    text.push('，');
                }
                text.push_str(self.chinese[self.chinese_law.draw(&mut self.rng)]);
            }
            text.push('。');
            return text;
        }
        let words: Vec<&str> = (0..self.rng.gen_range(3..=20))
            .map(|_| self.english[self.english_law.draw(&mut self.rng)].as_str())
            .collect();
        let mut text = words.join(" ");
        text.push(if self.rng.gen_bool(0.2) { '?' } else { '.' });
        text
    }
}

/// The store's contents, named so that any message can be found again.
struct World {
    /// Messages of the big room.
    big: i64,
    /// Messages of each of the other rooms.
    small: i64,
    viewer: Uuid,
    /// The big room first.
    rooms: Vec<Uuid>,
}

/// When the big room's first message was sent; its messages are 50 ms apart.
fn start() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_767_225_600_000).expect("a time")
}

/// The sampled messages a case's query matches (see [`World::fill`]).
struct Matches {
    sampled: u64,
    matching: Vec<u64>,
}

/// One message in this many is checked with `store::search::matches`, to
/// say what share of the messages each query matches.
const SAMPLE_EVERY: i64 = 7;

impl World {
    fn new(big: i64) -> Self {
        Self {
            big,
            small: (big / 10_000).max(1),
            viewer: Uuid::from_u128(0x7573_6572 << 96),
            rooms: (0..ROOMS)
                .map(|room| Uuid::from_u128(0x726f_6f6d << 96 | room))
                .collect(),
        }
    }

    /// A room of `messages` of its own, for the import figures.
    fn extra_room(&self, messages: i64, tag: u128) -> Self {
        Self {
            big: messages,
            small: 0,
            viewer: self.viewer,
            rooms: vec![Uuid::from_u128(0x726f_6f6d << 96 | (ROOMS + tag))],
        }
    }

    /// Message `seq` of the `room`th room.
    fn message_identity(&self, room: usize, seq: i64) -> Uuid {
        let room = self.rooms[room].as_u128() & 0xffff_ffff;
        Uuid::from_u128(0x6d65_7373 << 96 | room << 64 | seq as u128)
    }

    /// The big room's middle message: the cursor of the pages far down.
    fn middle(&self) -> Uuid {
        self.message_identity(0, self.big / 2)
    }

    fn message(&self, room: usize, seq: i64, content: String, at: DateTime<Utc>) -> Record {
        Record::Message(
            NewMessage {
                identity: self.message_identity(room, seq),
                room_identity: self.rooms[room],
                sender_identity: self.viewer,
                content,
                client_id: None,
                created_at: at,
                reply_to: None,
            }
            .at(seq, seq),
        )
    }

    fn user(&self) -> Record {
        let at = start();
        Record::User(UserRecord {
            profile: Profile {
                identity: self.viewer,
                username: "searcher".into(),
                nickname: "searcher".into(),
                sex: Sex::Unknown,
                email: "searcher@example.com".into(),
                avatar: None,
                created_at: at,
                updated_at: at,
            },
            password_hash: String::new(),
        })
    }

    /// The rooms, each with the viewer as its one member.
    fn room_records(&self) -> Vec<Record> {
        let at = start();
        let mut records = Vec::new();
        for (place, &room) in self.rooms.iter().enumerate() {
            let seq = if place == 0 { self.big } else { self.small };
            records.push(Record::Room(RoomRecord {
                identity: room,
                number: room.simple().to_string(),
                name: format!("room {place}"),
                info: String::new(),
                creator_identity: self.viewer,
                room_type: RoomType::Group,
                pair_key: None,
                seq,
                rev: seq,
                updated_rev: 0,
                last_message_at: None,
                created_at: at,
                updated_at: at,
            }));
            records.push(Record::Member(MemberRecord::joining(
                room,
                self.viewer,
                Role::Owner,
                0,
                0,
                at,
            )));
        }
        records
    }

    /// Imports everything, `chunk` big-room messages a call, in the order
    /// of their times (the order a live store indexes them in); how long
    /// it took, and how many of the messages sampled each case matches.
    async fn fill(&self, store: &dyn Store, chunk: i64) -> (Duration, Matches) {
        let started = Instant::now();
        let mut people = vec![self.user()];
        people.extend(self.room_records());
        store
            .import(&people, false)
            .await
            .expect("the rooms are stored");
        let terms: Vec<Vec<Term>> = CASES
            .iter()
            .map(|(_, query, _)| SearchQuery::parse(query).expect("a query").into_terms())
            .collect();
        let mut matches = Matches {
            sampled: 0,
            matching: vec![0; CASES.len()],
        };
        let mut texts = Texts::new();
        // Every this many messages of the big room, each other room gets one.
        let every = self.big / self.small;
        let mut seq = 0;
        while seq < self.big {
            let end = (seq + chunk).min(self.big);
            let mut records = Vec::new();
            for seq in seq + 1..=end {
                let at = start() + chrono::Duration::milliseconds(seq * 50);
                let mut content = texts.message();
                if seq % (self.big / 100).max(1) == 0 {
                    content.push_str(" quixotic");
                }
                match seq % 10 {
                    3 => content.push_str(" north"),
                    7 => content.push_str(" south"),
                    _ => {}
                }
                if seq % SAMPLE_EVERY == 0 {
                    matches.sampled += 1;
                    for (case, terms) in terms.iter().enumerate() {
                        matches.matching[case] += u64::from(search::matches(&content, terms));
                    }
                }
                records.push(self.message(0, seq, content, at));
                if seq % every == 0 && seq / every <= self.small {
                    for room in 1..self.rooms.len() {
                        let at = at + chrono::Duration::milliseconds(room as i64 % 50);
                        records.push(self.message(room, seq / every, texts.message(), at));
                    }
                }
            }
            store
                .import(&records, false)
                .await
                .expect("the messages are stored");
            seq = end;
            if seq % (chunk * 10) == 0 {
                println!("  {seq} messages of the big room, {:?}", started.elapsed());
            }
        }
        (started.elapsed(), matches)
    }

    fn total_messages(&self) -> i64 {
        self.big + self.small * (self.rooms.len() as i64 - 1)
    }
}

/// How many runs to time each case, and for how long at most.
struct Runs {
    least: usize,
    most: usize,
    budget: Duration,
}

/// Times `search` back to back: p50, p99, runs, and the page's length.
async fn percentiles(
    store: &dyn Store,
    search: &MessageSearch,
    runs: &Runs,
) -> (Duration, Duration, usize, usize) {
    let mut times = Vec::new();
    let mut found = 0;
    let started = Instant::now();
    while times.len() < runs.least || (times.len() < runs.most && started.elapsed() < runs.budget) {
        let start = Instant::now();
        found = store
            .search_messages(search)
            .await
            .expect("the search answers")
            .len();
        times.push(start.elapsed());
    }
    times.sort_unstable();
    // Nearest rank: with fewer than 100 runs, the p99 is the slowest.
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).max(1) - 1];
    (at(0.50), at(0.99), times.len(), found)
}

fn millis(time: Duration) -> String {
    format!("{:.3} ms", time.as_secs_f64() * 1e3)
}

/// Every case, first page and far down, as the rows of a table.
async fn searches(name: &str, store: &dyn Store, world: &World, matches: &Matches, runs: &Runs) {
    println!("\n{name}: {} messages in the big room\n", world.big);
    println!("| query | matches (of the big room) | page | p50 | p99 | runs | found |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for (&(case, query, everywhere), matching) in CASES.iter().zip(&matches.matching) {
        let share = 100.0 * *matching as f64 / matches.sampled as f64;
        let terms = SearchQuery::parse(query)
            .expect("a valid query")
            .into_terms();
        let rooms = match everywhere {
            true => world.rooms.clone(),
            false => vec![world.rooms[0]],
        };
        for (page, after) in [("first", None), ("far down", Some(world.middle()))] {
            let search = MessageSearch {
                terms: terms.clone(),
                rooms: rooms.clone(),
                after,
                limit: PAGE,
            };
            let (p50, p99, count, found) = percentiles(store, &search, runs).await;
            println!(
                "| {case}: `{query}` | {share:.3} % | {page} | {} | {} | {count} | {found} |",
                millis(p50),
                millis(p99)
            );
        }
    }
}

/// Concurrent senders in the send-rate figure, and messages each sends.
const SENDERS: usize = 64;
const SENDS_EACH: usize = 600;

/// Messages sent one at a time for the latency figure.
const SENDS_ONE_BY_ONE: usize = 2_000;

/// The send rate with `SENDERS` at once, and the p50 and p99 of single
/// sends.
async fn send_figures(
    store: &Arc<dyn Store>,
    room: Uuid,
    sender: Uuid,
) -> (f64, Duration, Duration) {
    let message = move || NewMessage {
        identity: Uuid::new_v4(),
        room_identity: room,
        sender_identity: sender,
        content: "a message of about the length people write".into(),
        client_id: None,
        created_at: chatroom::store::now(),
        reply_to: None,
    };
    let started = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..SENDS_EACH {
                    store.send_message(&message()).await.expect("sent");
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await.expect("a sender");
    }
    let rate = (SENDERS * SENDS_EACH) as f64 / started.elapsed().as_secs_f64();
    let mut times = Vec::with_capacity(SENDS_ONE_BY_ONE);
    for _ in 0..SENDS_ONE_BY_ONE {
        let start = Instant::now();
        store.send_message(&message()).await.expect("sent");
        times.push(start.elapsed());
    }
    times.sort_unstable();
    // The writer indexes what waits once senders are quiet: let it, so
    // that the next figure does not pay for this one's.
    tokio::time::sleep(Duration::from_millis(500)).await;
    (rate, times[times.len() / 2], times[times.len() * 99 / 100])
}

/// The trigger that queues each new message for the index. Without it
/// messages are stored as they were before search.
const TRIGGER: &str = "messages_search_insert";

/// Drops the trigger, or makes it again from `sql`.
fn set_indexing(path: &Path, sql: &str, on: bool) {
    let conn = rusqlite::Connection::open(path).expect("the database opens");
    conn.busy_timeout(Duration::from_secs(30))
        .expect("a busy timeout");
    let change = match on {
        true => format!("DROP TRIGGER IF EXISTS {TRIGGER}; {sql}"),
        false => format!("DROP TRIGGER IF EXISTS {TRIGGER}"),
    };
    conn.execute_batch(&change).expect("the trigger changes");
}

/// Bytes of each table and index, by `dbstat`.
fn sizes(path: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(path).expect("the database opens");
    conn.prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect()
        })
        .expect("dbstat answers")
}

async fn sqlite(world: &World) {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let path = dir.path().join("search.db");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&path, Duration::from_secs(30))
            .await
            .expect("SQLite opens"),
    );
    println!("SQLite: filling");
    let (filled, matches) = world.fill(store.as_ref(), 50_000).await;
    println!(
        "SQLite: {} messages imported and indexed in {filled:?} ({:.0} a second)",
        world.total_messages(),
        world.total_messages() as f64 / filled.as_secs_f64()
    );
    let runs = Runs {
        least: 20,
        most: 1000,
        budget: Duration::from_secs(3),
    };
    searches("SQLite", store.as_ref(), world, &matches, &runs).await;

    let per_million = |bytes: i64| bytes as f64 * 1e6 / world.total_messages() as f64 / 1048576.0;
    let sizes = sizes(&path);
    let total: i64 = sizes.iter().map(|(_, bytes)| bytes).sum();
    let index: i64 = sizes
        .iter()
        .filter(|(name, _)| name.starts_with("message_search"))
        .map(|(_, bytes)| bytes)
        .sum();
    println!(
        "\nSQLite size, MiB per 1,000,000 messages: the whole file {:.1}, the FTS5 index \
         (message_search*) {:.1}",
        per_million(total),
        per_million(index)
    );
    for (name, bytes) in sizes.iter().take(12) {
        println!("  {name}: {:.1}", per_million(*bytes));
    }

    let trigger: String = rusqlite::Connection::open(&path)
        .and_then(|conn| {
            conn.query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = ?1",
                [TRIGGER],
                |row| row.get(0),
            )
        })
        .expect("the trigger is there");
    println!(
        "\nSQLite send_message into the big room: {SENDERS} senders at once, and one at a time"
    );
    for on in [true, false, true, false, true, false] {
        set_indexing(&path, &trigger, on);
        let (rate, p50, p99) = send_figures(&store, world.rooms[0], world.viewer).await;
        println!(
            "  {}: {rate:.0} a second; one at a time, p50 {}, p99 {}",
            if on { "indexed" } else { "trigger dropped" },
            millis(p50),
            millis(p99)
        );
    }
    println!("\nSQLite import of 50,000 messages into a new room (one transaction)");
    for (round, on) in [true, false, true, false].into_iter().enumerate() {
        set_indexing(&path, &trigger, on);
        let room = world.extra_room(50_000, round as u128);
        store
            .import(&room.room_records(), false)
            .await
            .expect("the room is stored");
        let mut texts = Texts::new();
        let records: Vec<Record> = (1..=room.big)
            .map(|seq| room.message(0, seq, texts.message(), chatroom::store::now()))
            .collect();
        let started = Instant::now();
        store.import(&records, false).await.expect("imported");
        let took = started.elapsed();
        println!(
            "  {}: {took:?}, {:.1} µs a message",
            if on { "indexed" } else { "trigger dropped" },
            took.as_secs_f64() * 1e6 / room.big as f64
        );
    }
}

async fn mongodb(uri: &str, world: &World) {
    let database = format!("bench_search_{}", Uuid::new_v4().simple());
    let store = MongoStore::connect(uri, &database, Duration::from_secs(600))
        .await
        .expect("MongoDB answers");
    println!("\nMongoDB: filling");
    let (filled, matches) = world.fill(&store, 5_000).await;
    println!(
        "MongoDB: {} messages imported in {filled:?} ({:.0} a second)",
        world.total_messages(),
        world.total_messages() as f64 / filled.as_secs_f64()
    );
    let runs = Runs {
        least: 3,
        most: 200,
        budget: Duration::from_secs(5),
    };
    searches("MongoDB", &store, world, &matches, &runs).await;
}

fn main() {
    let count = |name: &str, default: i64| {
        std::env::var(name)
            .ok()
            .and_then(|count| count.parse().ok())
            .unwrap_or(default)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        sqlite(&World::new(count("CHATROOM_BENCH_SEARCH_ROOM", 1_000_000))).await;
        if let Ok(uri) = std::env::var("CHATROOM_BENCH_MONGODB_URI") {
            let world = World::new(count("CHATROOM_BENCH_MONGODB_ROOM", 100_000));
            mongodb(&uri, &world).await;
        }
    });
}
