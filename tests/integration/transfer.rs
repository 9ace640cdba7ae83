//! `chatroom export` and `chatroom import`: moving a whole store, checked
//! through the API of a server started on the result, and bad files refused
//! by line with the target left as it was.

use std::{io::Cursor, path::Path, sync::Arc, time::Duration};

use chatroom::{
    store::{
        MemberRecord, MessageRecord, Profile, Record, Role, RoomRecord, RoomType, Sex, Store,
        UserRecord, now,
    },
    transfer::{self, ImportError, ImportOptions, Imported, Progress},
};
use futures_util::TryStreamExt;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Account, Backends, SEND, TestApp, service, unique_name};

/// Users, two friendships, a group, 300 messages (some with a client id)
/// and read positions, all made through the API; the accounts.
async fn fill(app: &TestApp) -> Vec<Account> {
    let mut people = Vec::new();
    for name in ["ann", "bob", "cat", "dan"] {
        people.push(app.register(name).await);
    }
    let [ann, bob, cat, dan] = [0, 1, 2, 3].map(|i| &people[i]);
    let ann_bob = app.befriend(ann, bob).await;
    let bob_cat = app.befriend(bob, cat).await;
    let tea = app.group(ann, "Tea", &[bob, cat, dan]).await;
    let rooms = [
        (&ann_bob, [ann, bob]),
        (&bob_cat, [bob, cat]),
        (&tea, [dan, cat]),
    ];
    for i in 0..300 {
        let (room, senders) = &rooms[i % 3];
        let sender = senders[i / 3 % 2];
        let client_id = (i % 10 == 0).then(|| format!("client-{i}"));
        let sent = app
            .as_user(
                sender,
                SEND,
                json!({ "room": room, "content": format!("message {i}"), "clientId": client_id }),
            )
            .await;
        assert!(sent["errors"].is_null(), "{sent}");
        if i == 150 {
            mark_read(app, bob, &ann_bob).await;
            mark_read(app, cat, &tea).await;
        }
    }
    mark_read(app, ann, &tea).await;
    let blocked = app
        .as_user(dan, "mutation { blockUser(username: \"cat\") }", json!({}))
        .await;
    assert_eq!(blocked["data"]["blockUser"], true, "{blocked}");
    let turned_off = app
        .as_user(
            cat,
            "mutation { updateProfile(input: { emailDigest: false }) { emailDigest } }",
            json!({}),
        )
        .await;
    assert!(turned_off["errors"].is_null(), "{turned_off}");
    people
}

/// What fill adds beyond the counted records: dan's block and cat's settings.
const PEOPLE_RECORDS: u64 = 2;

async fn mark_read(app: &TestApp, account: &Account, room: &str) {
    let marked = app
        .as_user(
            account,
            "mutation($r: ID!) { markRoomRead(roomIdentity: $r) { identity } }",
            json!({ "r": room }),
        )
        .await;
    assert!(marked["errors"].is_null(), "{marked}");
}

/// Logs in with the password registered.
async fn log_in(app: &TestApp, account: &Account) -> Account {
    let answer = app.login(&account.username, &account.password).await;
    let token = answer["data"]["login"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{} cannot log in: {answer}", account.username));
    Account {
        token: token.to_owned(),
        ..account.clone()
    }
}

const ROOMS: &str = "{
    me { identity username nickname email sex avatar createdAt updatedAt }
    friends { username }
    rooms {
        identity number name info roomType creator { username } members { username }
        memberCount unreadCount createdAt updatedAt lastMessage { identity content cursor }
    }
}";

const HISTORY: &str = "query($r: ID!, $after: String) {
    messages(roomIdentity: $r, first: 100, after: $after) {
        edges { cursor node { identity content clientId createdAt sender { username } } }
        pageInfo { hasNextPage endCursor }
    }
}";

/// A room's whole history as `account` pages through it.
async fn history(app: &TestApp, account: &Account, room: &str) -> Vec<Value> {
    let mut edges = Vec::new();
    let mut after = Value::Null;
    loop {
        let answer = app
            .as_user(account, HISTORY, json!({ "r": room, "after": after }))
            .await;
        let page = &answer["data"]["messages"];
        edges.extend(
            page["edges"]
                .as_array()
                .unwrap_or_else(|| panic!("{answer}"))
                .iter()
                .cloned(),
        );
        if page["pageInfo"]["hasNextPage"] != true {
            return edges;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
}

const SEARCH: &str = "{ searchMessages(query: \"Message 12\", first: 100) {
    edges { node { identity content } }
} }";

/// What `account` finds searching: the messages 12 and 120 to 129 of the
/// rooms it is in, by identity (messages of one millisecond may come in
/// another order from another store).
async fn found(app: &TestApp, account: &Account) -> Vec<Value> {
    let answer = app.as_user(account, SEARCH, json!({})).await;
    let mut found = answer["data"]["searchMessages"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"))
        .clone();
    found.sort_by_key(|edge| edge["node"]["identity"].to_string());
    found
}

/// What each account sees after logging in: its profile, friends, rooms
/// (with unread counts and last messages), every room's history and what
/// a search finds.
async fn observe(app: &TestApp, accounts: &[Account]) -> Value {
    let mut seen = serde_json::Map::new();
    for account in accounts {
        let account = log_in(app, account).await;
        let overview = app.as_user(&account, ROOMS, json!({})).await;
        assert!(overview["errors"].is_null(), "{overview}");
        let found = found(app, &account).await;
        assert!(!found.is_empty(), "{} finds nothing", account.username);
        let mut histories = serde_json::Map::new();
        for room in overview["data"]["rooms"].as_array().into_iter().flatten() {
            let identity = room["identity"].as_str().unwrap_or_default();
            histories.insert(
                identity.to_owned(),
                Value::Array(history(app, &account, identity).await),
            );
        }
        let people = app
            .as_user(
                &account,
                "{ blockedUsers { username } me { emailDigest } }",
                json!({}),
            )
            .await;
        assert!(people["errors"].is_null(), "{people}");
        seen.insert(
            account.username.clone(),
            json!({ "overview": overview["data"], "histories": histories, "people": people["data"], "found": found }),
        );
    }
    Value::Object(seen)
}

/// The room of `account` whose name (or, for a PRIVATE one, other member) is `name`.
async fn room_named(app: &TestApp, account: &Account, group: &str) -> Value {
    let overview = app.as_user(account, ROOMS, json!({})).await;
    overview["data"]["rooms"]
        .as_array()
        .and_then(|rooms| rooms.iter().find(|room| room["name"] == group))
        .cloned()
        .unwrap_or_else(|| panic!("{} has no room {group}: {overview}", account.username))
}

/// After a move: new messages continue each room's seq (no collision, the
/// next page after the old last cursor is the new message), unread counts
/// move, and a retried client id still returns the first message.
async fn new_messages_carry_on(app: &TestApp, accounts: &[Account]) {
    let (ann, bob) = (
        log_in(app, &accounts[0]).await,
        log_in(app, &accounts[1]).await,
    );
    let tea = room_named(app, &bob, "Tea").await;
    let room = tea["identity"].as_str().unwrap_or_default();
    let old_last = tea["lastMessage"]["cursor"].clone();

    let sent = app.send(&ann, room, "after the move").await;

    assert!(sent["errors"].is_null(), "{sent}");
    let next = app
        .as_user(
            &bob,
            "query($r: ID!, $after: String) { messages(roomIdentity: $r, first: 5, after: $after) {
                edges { node { identity content } } } }",
            json!({ "r": room, "after": old_last }),
        )
        .await;
    assert_eq!(
        next["data"]["messages"]["edges"],
        json!([{ "node": { "identity": sent["data"]["sendMessage"]["identity"], "content": "after the move" } }]),
        "the new message takes the seq after the last one"
    );
    let tea_now = room_named(app, &bob, "Tea").await;
    assert_eq!(
        tea_now["unreadCount"].as_i64(),
        tea["unreadCount"].as_i64().map(|n| n + 1)
    );
    let dan = log_in(app, &accounts[3]).await;
    let first = history(app, &dan, room).await;
    let with_client_id = first
        .iter()
        .find(|edge| edge["node"]["clientId"] == "client-20")
        .unwrap_or_else(|| panic!("no message with client-20 in {first:?}"));
    let retried = app
        .as_user(
            &dan,
            SEND,
            json!({ "room": room, "content": "message 20", "clientId": "client-20" }),
        )
        .await;
    assert_eq!(
        retried["data"]["sendMessage"]["identity"], with_client_id["node"]["identity"],
        "a retry with a client id from before the move is the first message"
    );
}

/// Exports `store` into memory.
async fn export_to_memory(store: &dyn Store) -> Vec<u8> {
    let mut file = Vec::new();
    transfer::export(store, &mut file, &Progress::hidden())
        .await
        .expect("the export succeeds");
    file
}

async fn import_from_memory(
    store: &dyn Store,
    file: &[u8],
    merge: bool,
) -> Result<Imported, ImportError> {
    let options = ImportOptions {
        merge,
        ..ImportOptions::default()
    };
    transfer::import(store, Cursor::new(file), options, &Progress::hidden()).await
}

/// An empty SQLite store where a server with `data_dir` finds it.
async fn sqlite_in(data_dir: &Path) -> Arc<dyn Store> {
    let store =
        chatroom::store::SqliteStore::open(&data_dir.join("chatroom.db"), Duration::from_secs(5))
            .await
            .expect("SQLite opens");
    Arc::new(store)
}

/// An empty MongoDB store on a database of its own, and that database's name.
async fn mongo_target(test: &str) -> (Arc<dyn Store>, String) {
    let uri = service("CHATROOM_TEST_MONGODB_URI");
    let database = unique_name(test);
    let store = chatroom::store::MongoStore::connect(&uri, &database, Duration::from_secs(5))
        .await
        .expect("MongoDB connects");
    (Arc::new(store), database)
}

/// Fills a server on `from` through the API, moves its store into an empty
/// one of kind `to`, starts a server there and checks that everyone sees
/// what they saw before and that the rooms carry on.
async fn a_store_moves_whole(from: Backends, to: Backends, test: &str) {
    let source = TestApp::spawn(from, test).await;
    let accounts = fill(&source).await;
    let before = observe(&source, &accounts).await;
    let file = export_to_memory(source.app.store.as_ref()).await;

    let target_dir = tempfile::tempdir().expect("a temporary dir");
    let (target, mongodb_database) = match to {
        Backends::Embedded => (sqlite_in(target_dir.path()).await, None),
        Backends::MongoRedis | Backends::MongoRedisCluster => {
            let (store, database) = mongo_target(test).await;
            (store, Some(database))
        }
    };
    let imported = import_from_memory(target.as_ref(), &file, false)
        .await
        .expect("the import succeeds");
    let counts = source.app.store.counts().await.expect("counts");
    assert_eq!(
        imported,
        Imported {
            inserted: counts.total() + PEOPLE_RECORDS,
            skipped: 0
        }
    );
    assert_eq!(target.counts().await.expect("counts"), counts);

    let data_dir = target_dir.path().to_owned();
    let moved = TestApp::spawn_with(to, test, move |config| match mongodb_database {
        Some(database) => config.mongodb_database = database,
        None => config.data_dir = data_dir,
    })
    .await;
    assert_eq!(observe(&moved, &accounts).await, before);
    new_messages_carry_on(&moved, &accounts).await;
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_store_moves_from_sqlite_to_mongodb_and_everyone_sees_what_they_saw() {
    a_store_moves_whole(Backends::Embedded, Backends::MongoRedis, "sqlite_to_mongo").await;
}

#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_store_moves_from_mongodb_to_sqlite_and_everyone_sees_what_they_saw() {
    a_store_moves_whole(Backends::MongoRedis, Backends::Embedded, "mongo_to_sqlite").await;
}

/// Runs the `chatroom` binary; its output.
async fn chatroom(args: &[&str], stdin: Option<Vec<u8>>) -> std::process::Output {
    use tokio::io::AsyncWriteExt;
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatroom"));
    command
        .args(args)
        .env_remove("CHATROOM_MONGODB_URI")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("chatroom starts");
    let mut input = child.stdin.take().expect("a stdin pipe");
    if let Some(bytes) = stdin {
        input.write_all(&bytes).await.expect("stdin is written");
    }
    drop(input);
    child.wait_with_output().await.expect("chatroom runs")
}

#[tokio::test]
async fn a_store_moves_from_sqlite_to_sqlite_with_the_two_commands() {
    let source = TestApp::spawn(Backends::Embedded, "sqlite_to_sqlite").await;
    let accounts = fill(&source).await;
    let before = observe(&source, &accounts).await;
    let work = tempfile::tempdir().expect("a temporary dir");
    let file = work.path().join("chatroom.jsonl");
    let target = work.path().join("target");
    let (file, target) = (
        file.to_str().expect("a UTF-8 path"),
        target.to_str().expect("a UTF-8 path"),
    );
    let source_dir = source.config.data_dir.to_str().expect("a UTF-8 path");

    let exported = chatroom(&["export", "--data-dir", source_dir, "--out", file], None).await;
    let imported = chatroom(&["import", "--data-dir", target, "--in", file], None).await;

    let total = source.app.store.counts().await.expect("counts").total() + PEOPLE_RECORDS;
    assert!(exported.status.success(), "{exported:?}");
    assert!(imported.status.success(), "{imported:?}");
    assert_eq!(
        String::from_utf8_lossy(&exported.stderr),
        format!("exported {total} records\n"),
        "no progress when stderr is not a terminal, only the summary"
    );
    assert_eq!(
        String::from_utf8_lossy(&imported.stderr),
        format!("imported {total} records; 0 left out because the store had them already\n")
    );
    let target = target.to_owned();
    let moved = TestApp::spawn_with(Backends::Embedded, "sqlite_to_sqlite", move |config| {
        config.data_dir = target.into()
    })
    .await;
    assert_eq!(observe(&moved, &accounts).await, before);
    new_messages_carry_on(&moved, &accounts).await;
}

#[tokio::test]
async fn export_writes_to_stdout_and_import_reads_stdin_when_given_a_dash() {
    let source = tempfile::tempdir().expect("a temporary dir");
    let store = sqlite_in(source.path()).await;
    store
        .import(&small_store(), false)
        .await
        .expect("the records load");
    let target = tempfile::tempdir().expect("a temporary dir");
    let (source, target) = (
        source.path().to_str().expect("a UTF-8 path"),
        target.path().to_str().expect("a UTF-8 path"),
    );

    let exported = chatroom(&["export", "--data-dir", source], None).await;
    assert!(exported.status.success(), "{exported:?}");
    let imported = chatroom(
        &["import", "--data-dir", target, "--in", "-"],
        Some(exported.stdout.clone()),
    )
    .await;
    let again = chatroom(
        &["import", "--data-dir", target, "--merge"],
        Some(exported.stdout),
    )
    .await;

    assert!(imported.status.success(), "{imported:?}");
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        "imported 0 records; 7 left out because the store had them already\n"
    );
    let moved = sqlite_in(Path::new(target)).await;
    assert_eq!(
        records_of(moved.as_ref()).await,
        records_of(store.as_ref()).await,
        "the same records, in the same order"
    );
}

/// Everything `store` exports.
async fn records_of(store: &dyn Store) -> Vec<Record> {
    store
        .export()
        .try_collect()
        .await
        .expect("the export reads")
}

/// Two users sharing a private room with two messages: seven records, in
/// the order an export gives them.
fn small_store() -> Vec<Record> {
    let at = now();
    let mut users: Vec<UserRecord> = ["ann", "bob"]
        .map(|name| UserRecord {
            profile: Profile {
                identity: Uuid::new_v4(),
                username: name.into(),
                nickname: name.into(),
                sex: Sex::Unknown,
                email: format!("{name}@example.com"),
                avatar: None,
                created_at: at,
                updated_at: at,
            },
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        })
        .into();
    users.sort_by_key(|user| user.profile.identity);
    let (a, b) = (users[0].profile.identity, users[1].profile.identity);
    let room = RoomRecord {
        identity: Uuid::new_v4(),
        number: "4242424242".into(),
        name: String::new(),
        info: String::new(),
        creator_identity: a,
        room_type: RoomType::Private,
        pair_key: Some(chatroom::store::pair_key(a, b)),
        seq: 2,
        rev: 2,
        updated_rev: 0,
        last_message_at: Some(at),
        created_at: at,
        updated_at: at,
    };
    let mut records = vec![Record::Room(room.clone())];
    for (user, last_read_seq) in [(a, 2), (b, 1)] {
        records.push(Record::Member(MemberRecord::joining(
            room.identity,
            user,
            chatroom::store::Role::Member,
            last_read_seq,
            0,
            at,
        )));
    }
    for seq in 1..=2 {
        records.push(Record::Message(MessageRecord {
            identity: Uuid::new_v4(),
            room_identity: room.identity,
            seq,
            sender_identity: if seq == 1 { a } else { b },
            content: format!("hello {seq}"),
            client_id: None,
            created_at: at,
            ..posted(seq)
        }));
    }
    records.extend(users.into_iter().map(Record::User));
    records
}

/// An export of [`small_store`], one string a line: header, room, two
/// members, two messages, two users, end.
async fn small_file() -> Vec<String> {
    file_of(&small_store()).await
}

/// An export of a store holding `records`, one string a line.
async fn file_of(records: &[Record]) -> Vec<String> {
    let (store, _dir) = crate::helpers::sqlite_store().await;
    store
        .import(records, false)
        .await
        .expect("the records load");
    let file = export_to_memory(store.as_ref()).await;
    String::from_utf8(file)
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn joined(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|line| format!("{line}\n").into_bytes())
        .collect()
}

/// A store that already holds one user, so that "unchanged" means more
/// than "still empty".
async fn holding_one_user(store: &dyn Store) -> Vec<Record> {
    let mut records = small_store();
    records.retain(|record| matches!(record, Record::User(_)));
    let mut other = match records.pop() {
        Some(Record::User(user)) => user,
        _ => unreachable!("small_store has users"),
    };
    other.profile.identity = Uuid::new_v4();
    other.profile.username = "zed".into();
    other.profile.email = "zed@example.com".into();
    store
        .import(&[Record::User(other)], false)
        .await
        .expect("the user loads");
    records_of(store).await
}

/// Imports `file` with `--merge` into a store holding one user: refused at
/// `line` with a reason containing `reason`, the store as it was.
async fn refused_at_line(store: &dyn Store, file: Vec<u8>, line: u64, reason: &str) {
    let before = holding_one_user(store).await;

    let refused = import_from_memory(store, &file, true).await;

    match refused {
        Err(ImportError::BadLine {
            line: at,
            reason: why,
        }) => {
            assert_eq!(at, line, "{why}");
            assert!(why.contains(reason), "{why:?} should say {reason:?}");
        }
        other => panic!("expected line {line} refused, got {other:?}"),
    }
    assert_eq!(records_of(store).await, before, "the store is unchanged");
}

async fn a_file_cut_mid_line_is_refused_at_that_line(store: Arc<dyn Store>) {
    let lines = small_file().await;
    let mut file = joined(&lines[..4]);
    file.extend_from_slice(&lines[4].as_bytes()[..20]);

    refused_at_line(store.as_ref(), file, 5, "truncated").await;
}

async fn a_file_cut_between_lines_is_refused_where_its_end_line_is_missing(store: Arc<dyn Store>) {
    let lines = small_file().await;

    refused_at_line(
        store.as_ref(),
        joined(&lines[..6]),
        7,
        "without its end line",
    )
    .await;
}

async fn a_line_of_garbage_is_refused_by_its_number(store: Arc<dyn Store>) {
    let mut lines = small_file().await;
    lines[5] = "this is not JSON {".into();

    refused_at_line(store.as_ref(), joined(&lines), 6, "not a JSON record").await;
}

async fn a_repeated_identity_is_refused_naming_the_first_line_with_it(store: Arc<dyn Store>) {
    let mut lines = small_file().await;
    let user = lines[6].clone();
    lines.insert(8, user);

    refused_at_line(store.as_ref(), joined(&lines), 9, "is already on line 7").await;
}

async fn an_unknown_kind_of_record_is_refused_by_its_line(store: Arc<dyn Store>) {
    let mut lines = small_file().await;
    lines.insert(3, r#"{"kind":"reaction","emoji":"👍"}"#.into());

    refused_at_line(
        store.as_ref(),
        joined(&lines),
        4,
        "unknown record kind \"reaction\"",
    )
    .await;
}

async fn a_member_of_a_room_the_file_lacks_is_refused(store: Arc<dyn Store>) {
    let mut lines = small_file().await;
    lines.remove(1);

    refused_at_line(
        store.as_ref(),
        joined(&lines),
        2,
        "which no line before it has",
    )
    .await;
}

/// A `block` line of one user of `lines` blocking the other.
fn block_line(lines: &[String]) -> String {
    let user = |line: &String| -> String {
        let parsed: Value = serde_json::from_str(line).expect("a JSON line");
        parsed["identity"].as_str().unwrap_or_default().to_owned()
    };
    json!({
        "kind": "block",
        "blocker": user(&lines[6]),
        "blocked": user(&lines[7]),
        "created_at": { "$date": "2026-11-30T10:00:00Z" },
    })
    .to_string()
}

async fn a_block_given_twice_is_refused_at_the_second(store: Arc<dyn Store>) {
    let mut lines = small_file().await;
    let block = block_line(&lines);
    lines.insert(8, block.clone());
    lines.insert(9, block);
    lines[10] = json!({ "kind": "end", "records": 9 }).to_string();

    refused_at_line(store.as_ref(), joined(&lines), 10, "twice").await;
}

async fn a_block_before_the_users_is_refused(store: Arc<dyn Store>) {
    let mut lines = small_file().await;
    let block = block_line(&lines);
    lines.insert(6, block);

    refused_at_line(store.as_ref(), joined(&lines), 7, "after the users").await;
}

async fn an_import_into_a_store_with_records_is_refused_without_merge(store: Arc<dyn Store>) {
    let before = holding_one_user(store.as_ref()).await;

    let refused = import_from_memory(store.as_ref(), &joined(&small_file().await), false).await;

    assert!(
        matches!(refused, Err(ImportError::NotEmpty(1))),
        "{refused:?}"
    );
    assert_eq!(records_of(store.as_ref()).await, before);
}

async fn a_merge_leaves_out_what_the_store_has_and_says_how_many(store: Arc<dyn Store>) {
    let file = joined(&small_file().await);
    let first = import_from_memory(store.as_ref(), &file, false)
        .await
        .expect("the first import succeeds");
    let after_first = records_of(store.as_ref()).await;

    let again = import_from_memory(store.as_ref(), &file, true)
        .await
        .expect("the merge succeeds");

    assert_eq!(
        first,
        Imported {
            inserted: 7,
            skipped: 0
        }
    );
    assert_eq!(
        again,
        Imported {
            inserted: 0,
            skipped: 7
        }
    );
    assert_eq!(records_of(store.as_ref()).await, after_first);
}

async fn an_import_cut_short_is_finished_by_merging_the_same_file(store: Arc<dyn Store>) {
    let records = small_store();
    let file = joined(&file_of(&records).await);
    store
        .import(&records[..3], false)
        .await
        .expect("the first batch loads");

    let finished = import_from_memory(store.as_ref(), &file, true)
        .await
        .expect("the merge succeeds");

    assert_eq!(
        finished,
        Imported {
            inserted: 4,
            skipped: 3
        }
    );
    let (whole, _dir) = crate::helpers::sqlite_store().await;
    import_from_memory(whole.as_ref(), &file, false)
        .await
        .expect("the import succeeds");
    assert_eq!(
        records_of(store.as_ref()).await,
        records_of(whole.as_ref()).await
    );
}

async fn a_merge_refuses_a_username_another_user_has_naming_the_line(store: Arc<dyn Store>) {
    let lines = small_file().await;
    let mut taken: Value = serde_json::from_str(&lines[6]).expect("a JSON line");
    taken["identity"] = json!(Uuid::new_v4());
    taken["email"] = json!("someone.else@example.com");
    let user = transfer_user(&taken);
    store
        .import(&[Record::User(user)], false)
        .await
        .expect("the user loads");
    let before = records_of(store.as_ref()).await;

    let refused = import_from_memory(store.as_ref(), &joined(&lines), true).await;

    match refused {
        Err(ImportError::BadLine { line: 7, reason }) => {
            assert!(reason.contains("taken by another user"), "{reason}");
        }
        other => panic!("expected line 7 refused, got {other:?}"),
    }
    assert_eq!(records_of(store.as_ref()).await, before);
}

/// The version-2 fields of a message posted at `seq` and never changed
/// (what a version-1 file's message reads as); the rest is the caller's.
fn posted(seq: i64) -> MessageRecord {
    MessageRecord {
        identity: Uuid::nil(),
        room_identity: Uuid::nil(),
        seq,
        sender_identity: Uuid::nil(),
        content: String::new(),
        client_id: None,
        created_at: chatroom::store::now(),
        reply_to: None,
        edited_at: None,
        deleted_at: None,
        reactions: Vec::new(),
        posted_rev: seq,
        rev: seq,
        change: chatroom::store::MessageChange::Posted,
    }
}

/// The user a `user` line of the file stands for.
fn transfer_user(line: &Value) -> UserRecord {
    let parsed: transfer::format::Line = serde_json::from_value(line.clone()).expect("a user line");
    match parsed.into_record(false) {
        Some(Record::User(user)) => user,
        other => panic!("not a user line: {other:?}"),
    }
}

/// A file of version 1: an export of `records` without what version 2 added.
async fn version_1_file_of(records: &[Record]) -> Vec<u8> {
    const ADDED: [&str; 11] = [
        "rev",
        "updated_rev",
        "role",
        "last_read_at",
        "joined_rev",
        "change",
        "posted_rev",
        "reply_to",
        "edited_at",
        "deleted_at",
        "reactions",
    ];
    let lines: Vec<String> = file_of(records)
        .await
        .into_iter()
        .map(|line| {
            let mut line: Value = serde_json::from_str(&line).expect("JSON");
            if let Some(fields) = line.as_object_mut() {
                for added in ADDED {
                    fields.remove(added);
                }
                if fields.get("kind") == Some(&json!("header")) {
                    fields.insert("version".into(), json!(1));
                }
            }
            line.to_string()
        })
        .collect();
    joined(&lines)
}

async fn a_version_1_file_imports_with_each_groups_creator_as_its_owner(store: Arc<dyn Store>) {
    let mut records = small_store();
    let Some(Record::Room(room)) = records.first_mut() else {
        panic!("the room comes first");
    };
    room.room_type = RoomType::Group;
    room.pair_key = None;
    room.name = "tea".into();
    let (identity, creator) = (room.identity, room.creator_identity);
    let file = version_1_file_of(&records).await;

    import_from_memory(store.as_ref(), &file, false)
        .await
        .expect("a version-1 file imports");

    let members = store.members_of_rooms(&[identity]).await.expect("members");
    let roles: Vec<(bool, Role)> = members
        .iter()
        .map(|member| (member.user_identity == creator, member.role))
        .collect();
    assert_eq!(roles, [(true, Role::Owner), (false, Role::Member)]);
    let stored = store.room(identity).await.expect("read").expect("the room");
    assert_eq!(
        (stored.seq, stored.rev),
        (2, 2),
        "revisions go on from the seq"
    );
    let history = store
        .history(
            identity,
            chatroom::store::HistoryRange {
                after: None,
                before: None,
                limit: 10,
                newest: false,
            },
        )
        .await
        .expect("history");
    let revs: Vec<(i64, i64)> = history.iter().map(|m| (m.posted_rev, m.rev)).collect();
    assert_eq!(revs, [(1, 1), (2, 2)]);
}

crate::store::store_suite!(
    a_version_1_file_imports_with_each_groups_creator_as_its_owner,
    a_file_cut_mid_line_is_refused_at_that_line,
    a_file_cut_between_lines_is_refused_where_its_end_line_is_missing,
    a_line_of_garbage_is_refused_by_its_number,
    a_repeated_identity_is_refused_naming_the_first_line_with_it,
    an_unknown_kind_of_record_is_refused_by_its_line,
    a_member_of_a_room_the_file_lacks_is_refused,
    a_block_given_twice_is_refused_at_the_second,
    a_block_before_the_users_is_refused,
    an_import_into_a_store_with_records_is_refused_without_merge,
    a_merge_leaves_out_what_the_store_has_and_says_how_many,
    an_import_cut_short_is_finished_by_merging_the_same_file,
    a_merge_refuses_a_username_another_user_has_naming_the_line,
);

#[tokio::test]
async fn the_file_is_a_header_then_one_tagged_record_a_line_then_an_end_line() {
    let lines: Vec<Value> = small_file()
        .await
        .iter()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect();

    let kinds: Vec<&str> = lines
        .iter()
        .map(|line| line["kind"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        kinds,
        [
            "header", "room", "member", "member", "message", "message", "user", "user", "end"
        ]
    );
    assert_eq!(lines[0]["format"], "chatroom-export");
    assert_eq!(lines[0]["version"], 3);
    let date = lines[4]["created_at"]["$date"].as_str().unwrap_or_default();
    // bson writes the milliseconds only when there are some.
    assert!(
        date.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(date).is_ok(),
        "dates are relaxed Extended JSON: {}",
        lines[4]
    );
    assert_eq!(lines[1]["seq"], 2, "integers are plain numbers");
    assert_eq!(lines[8], json!({ "kind": "end", "records": 7 }));
}

#[tokio::test]
async fn dates_in_canonical_extended_json_are_read_too() {
    let mut lines = small_file().await;
    let mut message: Value = serde_json::from_str(&lines[4]).expect("a JSON line");
    message["created_at"] = json!({ "$date": { "$numberLong": "1700000000123" } });
    lines[4] = message.to_string();
    let (store, _dir) = crate::helpers::sqlite_store().await;

    import_from_memory(store.as_ref(), &joined(&lines), false)
        .await
        .expect("the import succeeds");

    let records = records_of(store.as_ref()).await;
    let Some(Record::Message(first)) = records.get(3) else {
        panic!("no message where expected: {records:?}")
    };
    assert_eq!(first.created_at.timestamp_millis(), 1_700_000_000_123);
}

/// Runs the `chatroom` binary to its end; whether it succeeded and its peak
/// resident memory in KiB: its own `VmHWM`, read every few milliseconds
/// while it runs. Not `wait4`'s rusage, which also counts the memory of
/// the (much larger) test process it was spawned from.
fn peak_memory_of(args: &[&str], stderr: &Path) -> (bool, u64) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatroom"))
        .args(args)
        .env_remove("CHATROOM_MONGODB_URI")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).expect("a stderr file"))
        .spawn()
        .expect("chatroom starts");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    loop {
        let status = std::fs::read_to_string(&status_file).unwrap_or_default();
        let high_water = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok());
        peak_kib = peak_kib.max(high_water.unwrap_or(0));
        if let Some(exit) = child.try_wait().expect("the child can be waited for") {
            return (exit.success(), peak_kib);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The bound the export of 200,000 messages stays under: the binary's own
/// footprint (runtime, SQLite, the MongoDB driver) plus buffers, far less
/// than the file it writes.
const EXPORT_PEAK_MIB: u64 = 48;

#[tokio::test]
async fn exporting_200_000_messages_peaks_under_48_mib_of_memory() {
    let dir = tempfile::tempdir().expect("a temporary dir");
    let store = sqlite_in(dir.path()).await;
    let mut records = small_store();
    let Record::Room(room) = &mut records[0] else {
        unreachable!("small_store starts with its room")
    };
    let (room_identity, sender) = (room.identity, room.creator_identity);
    room.seq = 200_000;
    records.retain(|record| !matches!(record, Record::Message(_)));
    store
        .import(&records, false)
        .await
        .expect("the users and room load");
    let content = "a message long enough to make the file larger than any memory bound, ".repeat(3);
    for first in (1..=200_000).step_by(10_000) {
        let batch: Vec<Record> = (first..first + 10_000)
            .map(|seq| {
                Record::Message(MessageRecord {
                    identity: Uuid::new_v4(),
                    room_identity,
                    seq,
                    sender_identity: sender,
                    content: content.clone(),
                    client_id: Some(format!("client-{seq}")),
                    created_at: now(),
                    ..posted(seq)
                })
            })
            .collect();
        store.import(&batch, false).await.expect("a batch loads");
    }
    assert_eq!(store.counts().await.expect("counts").messages, 200_000);
    let out = dir.path().join("export.jsonl");
    let (data_dir, out_path) = (
        dir.path().to_str().expect("a UTF-8 path").to_owned(),
        out.to_str().expect("a UTF-8 path").to_owned(),
    );
    let stderr = dir.path().join("stderr");

    let stderr_path = stderr.clone();
    let (succeeded, peak_kib) = tokio::task::spawn_blocking(move || {
        peak_memory_of(
            &["export", "--data-dir", &data_dir, "--out", &out_path],
            &stderr_path,
        )
    })
    .await
    .expect("the measurement runs");

    let said = std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(succeeded, "the export failed: {said}");
    assert_eq!(said, "exported 200005 records\n");
    let file_mib = std::fs::metadata(&out).expect("the file").len() / (1024 * 1024);
    let peak_mib = peak_kib / 1024;
    eprintln!("exporting 200,000 messages: a {file_mib} MiB file, peak memory {peak_mib} MiB");
    assert!(
        file_mib > EXPORT_PEAK_MIB,
        "the file ({file_mib} MiB) is larger than the bound"
    );
    assert!(
        peak_mib < EXPORT_PEAK_MIB,
        "peak memory {peak_mib} MiB, bound {EXPORT_PEAK_MIB} MiB"
    );
}
