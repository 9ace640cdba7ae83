//! A whole store read out and written back.

use std::sync::Arc;

use chatroom::{
    error::{Error, Unique},
    store::{
        Counts, Loaded, MemberRecord, MessageChange, MessageRecord, NewMessage, Profile, Record,
        Role, RoomRecord, RoomType, Store, now,
    },
};
use chrono::Duration;
use futures_util::StreamExt;
use uuid::Uuid;

use super::{
    create, everything, export_all, member_pairs, message, record, room, send, unread, user,
};

async fn counts_count_each_kind_of_record(store: Arc<dyn Store>) {
    assert_eq!(store.counts().await.unwrap(), Counts::default());
    let (alice, bob) = (user("alice", "a@example.com"), user("bob", "b@example.com"));
    store.create_user(&record(&alice)).await.unwrap();
    store.create_user(&record(&bob)).await.unwrap();
    let tea = create(&*store, RoomType::Group, &[alice.identity, bob.identity]).await;
    for _ in 0..3 {
        send(&*store, tea.identity, bob.identity, "hello").await;
    }

    let counts = store.counts().await.unwrap();

    assert_eq!(
        counts,
        Counts {
            users: 2,
            rooms: 1,
            members: 2,
            messages: 3
        }
    );
    assert_eq!(counts.total(), 8);
}

async fn an_export_gives_each_room_with_its_members_and_messages_then_every_user(
    store: Arc<dyn Store>,
) {
    let people = [
        user("alice", "a@example.com"),
        user("bob", "b@example.com"),
        user("carol", "c@example.com"),
    ];
    for person in &people {
        store.create_user(&record(person)).await.unwrap();
    }
    let [alice, bob, carol] = [0, 1, 2].map(|i| people[i].identity);
    let pair = create(&*store, RoomType::Private, &[alice, bob]).await;
    let tea = create(&*store, RoomType::Group, &[carol, alice, bob]).await;
    for content in ["hi", "hello"] {
        send(&*store, pair.identity, alice, content).await;
    }
    for content in ["one", "two", "three"] {
        send(&*store, tea.identity, carol, content).await;
    }
    store
        .mark_read(tea.identity, bob, None, now())
        .await
        .unwrap();

    let records = export_all(&*store).await;

    let mut expected = Vec::new();
    let mut rooms = [pair.identity, tea.identity];
    rooms.sort();
    for room in rooms {
        expected.push(Record::Room(store.room(room).await.unwrap().unwrap()));
        for (_, user) in member_pairs(&*store, &[room]).await {
            let member = store.member(room, user).await.unwrap().unwrap();
            expected.push(Record::Member(member));
        }
        for message in store.history(room, everything()).await.unwrap() {
            expected.push(Record::Message(message));
        }
    }
    let mut users = people.to_vec();
    users.sort_by_key(|user| user.identity);
    expected.extend(users.iter().map(|user| Record::User(record(user))));
    assert_eq!(records, expected);
    let bob_in_tea = records.iter().find_map(|record| match record {
        Record::Member(member)
            if member.user_identity == bob && member.room_identity == tea.identity =>
        {
            Some(member.last_read_seq)
        }
        _ => None,
    });
    assert_eq!(bob_in_tea, Some(3), "read positions travel");
}

async fn an_export_taken_while_messages_arrive_has_each_room_whole_up_to_its_seq(
    store: Arc<dyn Store>,
) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let rooms = [
        create(&*store, RoomType::Group, &[alice, bob])
            .await
            .identity,
        create(&*store, RoomType::Group, &[alice, bob])
            .await
            .identity,
    ];
    for room in rooms {
        for _ in 0..20 {
            send(&*store, room, alice, "before").await;
        }
    }
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (store, writing) = (store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut sent = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) && sent < 2_000 {
                for room in rooms {
                    send(&*store, room, alice, "during").await;
                    store.mark_read(room, bob, None, now()).await.unwrap();
                }
                sent += 1;
            }
            sent
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let mut records = Vec::new();
    let mut export = store.export();
    while let Some(record) = export.next().await {
        records.push(record.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    let sent = writer.await.unwrap();

    assert!(sent > 0, "messages arrived during the export");
    let mut room_seq = None;
    let mut seqs = Vec::new();
    let check_room = |room_seq: Option<i64>, seqs: &mut Vec<i64>| {
        if let Some(seq) = room_seq {
            assert_eq!(
                *seqs,
                (1..=seq).collect::<Vec<_>>(),
                "each message up to the room's seq, once"
            );
        }
        seqs.clear();
    };
    for record in &records {
        match record {
            Record::Room(room) => {
                check_room(room_seq, &mut seqs);
                room_seq = Some(room.seq);
            }
            Record::Member(member) => {
                assert!(member.last_read_seq <= room_seq.unwrap(), "{member:?}");
            }
            Record::Message(message) => seqs.push(message.seq),
            Record::Departure(_) | Record::User(_) | Record::Block(_) | Record::Settings(_) => {}
        }
    }
    check_room(room_seq, &mut seqs);
}

/// A group of two users with three messages, as records to import: the
/// first with a client id, bob having read up to seq 1.
fn records_to_import() -> Vec<Record> {
    let at = now() - Duration::days(30);
    let (alice, bob) = (
        Profile {
            created_at: at,
            updated_at: at,
            ..user("Alice", "alice@example.com")
        },
        Profile {
            avatar: None,
            created_at: at,
            updated_at: at,
            ..user("bob", "bob@example.com")
        },
    );
    let tea = RoomRecord {
        seq: 3,
        rev: 3,
        last_message_at: Some(at + Duration::minutes(3)),
        created_at: at,
        updated_at: at,
        ..room(RoomType::Group, &[alice.identity, bob.identity])
    };
    let messages = (1..=3).map(|seq| {
        Record::Message(MessageRecord {
            identity: Uuid::new_v4(),
            room_identity: tea.identity,
            seq,
            sender_identity: alice.identity,
            content: format!("message {seq}"),
            client_id: (seq == 1).then(|| "first-try".to_owned()),
            created_at: at + Duration::minutes(seq),
            reply_to: None,
            edited_at: None,
            deleted_at: None,
            reactions: Vec::new(),
            posted_rev: seq,
            rev: seq,
            change: MessageChange::Posted,
        })
    });
    let mut records = vec![
        Record::Room(tea.clone()),
        Record::Member(MemberRecord::joining(
            tea.identity,
            alice.identity,
            Role::Owner,
            3,
            0,
            at,
        )),
        Record::Member(MemberRecord::joining(
            tea.identity,
            bob.identity,
            Role::Member,
            1,
            0,
            at,
        )),
    ];
    records.extend(messages);
    let mut users = [alice, bob];
    users.sort_by_key(|user| user.identity);
    records.extend(users.map(|user| Record::User(record(&user))));
    records
}

async fn imported_records_read_back_as_they_were_and_new_messages_continue_their_seq(
    store: Arc<dyn Store>,
) {
    let records = records_to_import();

    let loaded = store.import(&records, false).await.unwrap();

    assert_eq!(
        loaded,
        Loaded {
            inserted: 8,
            skipped: 0
        }
    );
    let [Record::Room(tea), _, _, Record::Message(first), ..] = &records[..] else {
        unreachable!("records_to_import starts with a room, two members and a message")
    };
    let user_named = |name: &str| {
        records.iter().find_map(|record| match record {
            Record::User(user) if user.profile.username == name => Some(&user.profile),
            _ => None,
        })
    };
    let (Some(alice), Some(bob)) = (user_named("Alice"), user_named("bob")) else {
        unreachable!("records_to_import has Alice and bob")
    };
    assert_eq!(store.room(tea.identity).await.unwrap().as_ref(), Some(tea));
    assert_eq!(
        store.room_by_number(&tea.number).await.unwrap().as_ref(),
        Some(tea)
    );
    assert_eq!(
        store.user_by_username("ALICE").await.unwrap().as_ref(),
        Some(alice)
    );
    assert_eq!(
        store
            .user_by_email("bob@example.com")
            .await
            .unwrap()
            .as_ref(),
        Some(bob)
    );
    assert_eq!(export_all(&*store).await, records, "what went in comes out");
    assert_eq!(unread(&*store, bob.identity, &[tea.identity]).await, [2]);

    let (next, new) = store
        .insert_message(&message(tea.identity, bob.identity, "after the move"))
        .await
        .unwrap();
    assert!(new);
    assert_eq!(next.seq, 4);
    let retry = NewMessage {
        client_id: Some("first-try".into()),
        ..message(tea.identity, alice.identity, "message 1")
    };
    assert_eq!(
        store.insert_message(&retry).await.unwrap(),
        (first.clone(), false),
        "client ids still deduplicate"
    );
}

async fn importing_what_is_stored_is_a_conflict_unless_existing_records_are_skipped(
    store: Arc<dyn Store>,
) {
    let records = records_to_import();
    store.import(&records, false).await.unwrap();
    let stored = store.counts().await.unwrap();

    let again = store.import(&records, false).await;
    assert!(matches!(again, Err(Error::Conflict(_))), "{again:?}");
    assert_eq!(store.counts().await.unwrap(), stored);

    let newcomer = user("carol", "carol@example.com");
    let mut with_newcomer = records.clone();
    with_newcomer.push(Record::User(record(&newcomer)));
    let merged = store.import(&with_newcomer, true).await.unwrap();

    assert_eq!(
        merged,
        Loaded {
            inserted: 1,
            skipped: 8
        }
    );
    assert_eq!(
        store.user_by_identity(newcomer.identity).await.unwrap(),
        Some(newcomer)
    );
    let taken = Profile {
        identity: Uuid::new_v4(),
        ..user("alice", "other@example.com")
    };
    let clash = store.import(&[Record::User(record(&taken))], true).await;
    assert!(
        matches!(clash, Err(Error::Conflict(Unique::Username))),
        "only a taken identity is skipped: {clash:?}"
    );
}

super::store_suite!(
    counts_count_each_kind_of_record,
    an_export_gives_each_room_with_its_members_and_messages_then_every_user,
    an_export_taken_while_messages_arrive_has_each_room_whole_up_to_its_seq,
    imported_records_read_back_as_they_were_and_new_messages_continue_their_seq,
    importing_what_is_stored_is_a_conflict_unless_existing_records_are_skipped,
);
