//! Search: messages found by their current words, newest first, in the
//! rooms asked for, paged by the last message found.

use std::sync::Arc;

use chatroom::{
    error::{Error, Problem},
    store::{
        MemberRecord, MessageChange, MessageRecord, MessageScene, MessageSearch, Record, Role,
        RoomRecord, RoomType, Store, now, search,
    },
};
use uuid::Uuid;

use super::{contents, create, message, room, send};

/// A search for `query` in `rooms`, after `after`, at most 100.
fn looking_for(query: &str, rooms: &[Uuid], after: Option<Uuid>) -> MessageSearch {
    MessageSearch {
        terms: search::terms(query),
        rooms: rooms.to_vec(),
        after,
        limit: 100,
    }
}

async fn found(store: &dyn Store, query: &str, rooms: &[Uuid]) -> Vec<MessageRecord> {
    store
        .search_messages(&looking_for(query, rooms, None))
        .await
        .unwrap()
}

/// Has `actor` change `message` to `content`, or delete it (`None`), as
/// `editMessage` and `deleteMessage` do.
async fn change(store: &dyn Store, message: &MessageRecord, content: Option<&str>) {
    let content = content.map(str::to_owned);
    let rule = move |scene: &MessageScene| {
        let mut changed = scene.message.clone();
        match &content {
            Some(content) => {
                changed.content = content.clone();
                changed.edited_at = Some(now());
                changed.change = MessageChange::Edited;
            }
            None => {
                changed.content = String::new();
                changed.deleted_at = Some(now());
                changed.change = MessageChange::Deleted;
            }
        }
        Ok(Some(changed))
    };
    let (_, changed) = store
        .change_message(message.identity, message.sender_identity, Arc::new(rule))
        .await
        .unwrap();
    assert!(changed);
}

async fn a_search_finds_current_words_newest_first_in_the_rooms_asked(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await;
    let coffee = create(&*store, RoomType::Group, &[alice]).await;
    let greeting = send(&*store, tea.identity, alice, "Hello world").await;
    send(&*store, coffee.identity, alice, "hello coffee").await;
    let chinese = send(&*store, tea.identity, alice, "我们说中文吧").await;
    send(&*store, tea.identity, alice, "yellow").await;
    let both = [tea.identity, coffee.identity];

    assert_eq!(
        contents(&found(&*store, "HEL", &both).await),
        ["hello coffee", "Hello world"]
    );
    assert_eq!(
        contents(&found(&*store, "hel", &[tea.identity]).await),
        ["Hello world"]
    );
    assert_eq!(
        contents(&found(&*store, "中文", &both).await),
        ["我们说中文吧"]
    );
    assert!(found(&*store, "ello", &both).await.is_empty());
    assert!(found(&*store, "hel", &[]).await.is_empty());

    change(&*store, &greeting, Some("goodbye world")).await;
    change(&*store, &chinese, None).await;

    assert_eq!(
        contents(&found(&*store, "hel", &both).await),
        ["hello coffee"]
    );
    assert_eq!(
        contents(&found(&*store, "good wor", &both).await),
        ["goodbye world"]
    );
    assert!(found(&*store, "中文", &both).await.is_empty());
}

async fn a_deleted_room_takes_its_messages_out_of_search(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await;
    let kept = create(&*store, RoomType::Group, &[alice]).await;
    for _ in 0..3 {
        send(&*store, tea.identity, alice, "crumbs").await;
    }
    send(&*store, kept.identity, alice, "crumbs kept").await;

    assert!(store.delete_room(tea.identity).await.unwrap());

    let rooms = [tea.identity, kept.identity];
    assert_eq!(
        contents(&found(&*store, "crumbs", &rooms).await),
        ["crumbs kept"]
    );
}

async fn imported_messages_of_one_millisecond_are_paged_once_each(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await;
    let at = now();
    let records: Vec<Record> = (1..=30)
        .map(|seq| {
            Record::Message(MessageRecord {
                created_at: at,
                ..message(tea.identity, alice, &format!("imported 导入 {seq}")).at(seq, seq)
            })
        })
        .collect();
    store.import(&records, false).await.unwrap();

    let mut seen: Vec<MessageRecord> = Vec::new();
    loop {
        let page = store
            .search_messages(&MessageSearch {
                limit: 7,
                ..looking_for("导入 imp", &[tea.identity], seen.last().map(|m| m.identity))
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page);
    }

    let mut seqs: Vec<i64> = seen.iter().map(|m| m.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>(), "each once");
}

/// Imported messages are indexed with their batch, and sent ones may wait
/// for it (SQLite indexes in batches): a search reads both, in one order,
/// and edits and deletions of either show at once.
async fn imported_and_just_sent_messages_are_found_and_paged_together(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = RoomRecord {
        seq: 6,
        rev: 6,
        ..room(RoomType::Group, &[alice])
    };
    let old = now() - chrono::Duration::minutes(5);
    let mut records = vec![
        Record::Room(tea.clone()),
        Record::Member(MemberRecord::joining(
            tea.identity,
            alice,
            Role::Owner,
            6,
            0,
            old,
        )),
    ];
    records.extend((1..=6).map(|seq| {
        Record::Message(MessageRecord {
            created_at: old + chrono::Duration::seconds(seq),
            ..message(tea.identity, alice, &format!("old news {seq}")).at(seq, seq)
        })
    }));
    store.import(&records, false).await.unwrap();
    let imported = store
        .history(tea.identity, super::everything())
        .await
        .unwrap();
    let mut sent = Vec::new();
    for n in 1..=4 {
        sent.push(send(&*store, tea.identity, alice, &format!("new news {n}")).await);
    }

    change(&*store, &imported[1], Some("old rumours 2")).await;
    change(&*store, &imported[2], None).await;
    change(&*store, &sent[0], Some("fresh rumours")).await;
    change(&*store, &sent[1], None).await;

    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .search_messages(&MessageSearch {
                limit: 3,
                ..looking_for("news", &[tea.identity], after)
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.identity);
        pages.push(contents(&page).join(", "));
    }
    assert_eq!(
        pages,
        [
            "new news 4, new news 3, old news 6",
            "old news 5, old news 4, old news 1"
        ]
    );
    assert_eq!(
        contents(&found(&*store, "rumours", &[tea.identity]).await),
        ["fresh rumours", "old rumours 2"]
    );
}

async fn a_search_after_an_unknown_message_is_bad_input(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await;
    send(&*store, tea.identity, alice, "hello").await;

    let refused = store
        .search_messages(&looking_for("hello", &[tea.identity], Some(Uuid::new_v4())))
        .await;

    assert!(
        matches!(
            refused,
            Err(Error::BadInput {
                field: "after",
                problem: Problem::Cursor
            })
        ),
        "{refused:?}"
    );
}

super::store_suite!(
    a_search_finds_current_words_newest_first_in_the_rooms_asked,
    a_deleted_room_takes_its_messages_out_of_search,
    imported_messages_of_one_millisecond_are_paged_once_each,
    imported_and_just_sent_messages_are_found_and_paged_together,
    a_search_after_an_unknown_message_is_bad_input,
);

/// Messages stored before search (documents without search terms) get
/// their terms when a store connects to the database.
#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn a_mongodb_database_from_before_search_gets_its_terms_on_connect() {
    use ::mongodb::bson::{DateTime, Document, doc};

    let uri = crate::helpers::service("CHATROOM_TEST_MONGODB_URI");
    let name = crate::helpers::unique_name("mongo_before_search");
    let db = ::mongodb::Client::with_uri_str(&uri)
        .await
        .expect("MongoDB connects")
        .database(&name);
    let (room, ann) = (Uuid::new_v4(), Uuid::new_v4().to_string());
    let start = DateTime::now().timestamp_millis();
    for (seq, content, deleted) in [
        (1_i64, "older words 旧的", false),
        (2, "", true),
        (3, "newer words", false),
    ] {
        let at = DateTime::from_millis(start + seq);
        let deleted_at = deleted.then_some(at);
        db.collection::<Document>("messages")
            .insert_one(doc! {
                "identity": Uuid::new_v4().to_string(), "room_identity": room.to_string(),
                "seq": seq, "sender_identity": &ann, "content": content, "created_at": at,
                "deleted_at": deleted_at, "posted_rev": seq, "rev": seq,
            })
            .await
            .expect("a message from before search");
    }

    let store =
        chatroom::store::MongoStore::connect(&uri, &name, std::time::Duration::from_secs(5))
            .await
            .expect("the store connects and migrates");

    assert_eq!(
        contents(&found(&store, "wor", &[room]).await),
        ["newer words", "older words 旧的"]
    );
    assert_eq!(
        contents(&found(&store, "旧", &[room]).await),
        ["older words 旧的"]
    );
    let without_terms = db
        .collection::<Document>("messages")
        .count_documents(doc! { "search_terms": { "$exists": false } })
        .await
        .expect("a count");
    assert_eq!(without_terms, 0, "the deleted one too, with none");
}
