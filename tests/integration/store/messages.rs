//! Messages: stored in order once, paged, and counted unread.

use std::sync::Arc;

use chatroom::{
    error::{Entity, Error},
    store::{HistoryRange, MessageRecord, NewMessage, RoomType, Store, now},
};
use chrono::Duration;
use futures_util::future::join_all;
use uuid::Uuid;

use super::{contents, create, everything, message, record, send, seqs, unread, user};
use chatroom::store::Profile;

async fn a_stored_message_moves_the_room_seq_and_last_message_at(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await;
    let later = tea.created_at + Duration::seconds(5);
    let sent = NewMessage {
        client_id: Some("c-1".into()),
        created_at: later,
        ..message(tea.identity, alice, "你好")
    };

    let (stored, new) = store.insert_message(&sent).await.unwrap();

    assert!(new);
    assert_eq!(stored, sent.at(1, 1));
    assert_eq!(
        (stored.content.as_str(), stored.client_id.as_deref()),
        ("你好", Some("c-1"))
    );
    let moved = store.room(tea.identity).await.unwrap().unwrap();
    assert_eq!((moved.seq, moved.last_message_at), (1, Some(later)));
    assert_eq!(
        store.history(tea.identity, everything()).await.unwrap(),
        [stored]
    );
}

async fn a_message_to_a_missing_room_is_not_found(store: Arc<dyn Store>) {
    let lost = store
        .insert_message(&message(Uuid::new_v4(), Uuid::new_v4(), "anyone?"))
        .await;
    assert!(
        matches!(lost, Err(Error::NotFound(Entity::Room))),
        "{lost:?}"
    );
}

async fn a_members_sent_message_is_stored_and_comes_back_with_its_sender(store: Arc<dyn Store>) {
    let alice = user("alice", "alice@example.com");
    store.create_user(&record(&alice)).await.unwrap();
    let tea = create(&*store, RoomType::Group, &[alice.identity]).await;
    let sent = NewMessage {
        client_id: Some("c-1".into()),
        ..message(tea.identity, alice.identity, "hello")
    };

    let first = store.send_message(&sent).await.unwrap();
    let again = store
        .send_message(&NewMessage {
            identity: Uuid::new_v4(),
            ..sent.clone()
        })
        .await
        .unwrap();

    assert!(first.created);
    assert_eq!(first.sender, alice);
    assert_eq!(
        (first.message.identity, first.message.seq),
        (sent.identity, 1)
    );
    assert!(!again.created, "a retry with the client id stores nothing");
    assert_eq!((&again.message, &again.sender), (&first.message, &alice));
    assert_eq!(
        store.history(tea.identity, everything()).await.unwrap(),
        [first.message]
    );
}

async fn a_send_is_checked_for_room_then_membership_then_sender_and_refused_ones_store_nothing(
    store: Arc<dyn Store>,
) {
    let (alice, bob) = (
        user("alice", "alice@example.com"),
        user("bob", "bob@example.com"),
    );
    store.create_user(&record(&alice)).await.unwrap();
    store.create_user(&record(&bob)).await.unwrap();
    let gone = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice.identity, gone]).await;

    let nowhere = store
        .send_message(&message(Uuid::new_v4(), gone, "anyone?"))
        .await;
    let outsider = store
        .send_message(&message(tea.identity, bob.identity, "let me in"))
        .await;
    let nobody = store
        .send_message(&message(tea.identity, gone, "who am I?"))
        .await;

    assert!(
        matches!(nowhere, Err(Error::NotFound(Entity::Room))),
        "{nowhere:?}"
    );
    assert!(matches!(outsider, Err(Error::Forbidden)), "{outsider:?}");
    assert!(matches!(nobody, Err(Error::Unauthenticated)), "{nobody:?}");
    assert_eq!(store.room(tea.identity).await.unwrap().unwrap().seq, 0);
    assert!(
        store
            .history(tea.identity, everything())
            .await
            .unwrap()
            .is_empty()
    );
}

async fn eight_concurrent_writers_take_seqs_one_to_two_hundred_without_holes(
    store: Arc<dyn Store>,
) {
    let senders: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    let tea = create(&*store, RoomType::Group, &senders).await.identity;

    let writers = senders.iter().map(|&sender| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut taken = Vec::new();
            for i in 0..25 {
                let stored = send(&*store, tea, sender, &format!("{i}")).await;
                taken.push(stored.seq);
            }
            taken
        })
    });
    let per_writer: Vec<Vec<i64>> = join_all(writers)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    for taken in &per_writer {
        assert!(
            taken.windows(2).all(|pair| pair[0] < pair[1]),
            "one writer's messages keep its order: {taken:?}"
        );
    }
    let mut all = per_writer.concat();
    all.sort_unstable();
    let expected: Vec<i64> = (1..=200).collect();
    assert_eq!(all, expected);
    assert_eq!(store.room(tea).await.unwrap().unwrap().seq, 200);
    let stored = store.history(tea, everything()).await.unwrap();
    assert_eq!(seqs(&stored), expected);
}

async fn ten_concurrent_retries_with_one_client_id_store_one_message(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob])
        .await
        .identity;
    send(&*store, tea, bob, "before").await;

    let retries = (0..10).map(|_| {
        let store = store.clone();
        let retry = NewMessage {
            client_id: Some("c-1".into()),
            ..message(tea, alice, "hello")
        };
        tokio::spawn(async move { store.insert_message(&retry).await.unwrap() })
    });
    let results: Vec<(MessageRecord, bool)> = join_all(retries)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .collect();

    let stored: Vec<&MessageRecord> = results
        .iter()
        .filter(|(_, new)| *new)
        .map(|(m, _)| m)
        .collect();
    assert_eq!(stored.len(), 1, "exactly one retry stores the message");
    let first = stored[0];
    assert!(results.iter().all(|(m, _)| m == first), "{results:?}");
    assert_eq!(first.seq, 2);
    assert_eq!(store.room(tea).await.unwrap().unwrap().seq, 2);
    let history = store.history(tea, everything()).await.unwrap();
    assert_eq!(contents(&history), ["before", "hello"]);
}

async fn a_client_id_is_scoped_to_its_sender_and_room(store: Arc<dyn Store>) {
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob])
        .await
        .identity;
    let chess = create(&*store, RoomType::Group, &[alice]).await.identity;
    let with_id = |room: Uuid, sender: Uuid, content: &str| NewMessage {
        client_id: Some("same".into()),
        ..message(room, sender, content)
    };

    let (first, new) = store
        .insert_message(&with_id(tea, alice, "first"))
        .await
        .unwrap();
    assert!(new);
    let (_, new) = store
        .insert_message(&with_id(tea, bob, "bob's"))
        .await
        .unwrap();
    assert!(new, "another sender's client id is another message");
    let (_, new) = store
        .insert_message(&with_id(chess, alice, "elsewhere"))
        .await
        .unwrap();
    assert!(new, "another room's client id is another message");

    let (retried, new) = store
        .insert_message(&with_id(tea, alice, "edited retry"))
        .await
        .unwrap();
    assert!(!new);
    assert_eq!(retried, first);
    assert_eq!(store.room(tea).await.unwrap().unwrap().seq, 2);
}

async fn many_senders_at_once_with_retries_take_distinct_increasing_seqs_and_all_read_back(
    store: Arc<dyn Store>,
) {
    let senders: Vec<Profile> = (0..24)
        .map(|i| user(&format!("sender{i}"), &format!("sender{i}@example.com")))
        .collect();
    let outsider = user("outsider", "outsider@example.com");
    for sender in senders.iter().chain([&outsider]) {
        store.create_user(&record(sender)).await.unwrap();
    }
    let identities: Vec<Uuid> = senders.iter().map(|s| s.identity).collect();
    let tea = create(&*store, RoomType::Group, &identities).await.identity;
    let sending = move |sender: Uuid, i: usize| NewMessage {
        client_id: Some(format!("c-{i}")),
        ..message(tea, sender, &format!("{sender} {i}"))
    };

    let members = identities.iter().map(|&sender| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..8 {
                // Each message and a retry of it, at once.
                let first = sending(sender, i);
                let retry = NewMessage {
                    identity: Uuid::new_v4(),
                    ..first.clone()
                };
                let (a, b) = tokio::join!(store.send_message(&first), store.send_message(&retry));
                let (a, b) = (a.unwrap(), b.unwrap());
                assert_eq!(a.message, b.message, "a retry answers with the first");
                assert!(a.created ^ b.created, "one of the two stores it");
                assert_eq!(a.sender.identity, sender);
                seqs.push(a.message.seq);
            }
            seqs
        })
    });
    let outsiders = (0..8).map(|i| {
        let store = store.clone();
        let refused = sending(outsider.identity, i);
        tokio::spawn(async move { store.send_message(&refused).await })
    });
    let (per_sender, refused) = tokio::join!(join_all(members), join_all(outsiders));

    for refused in refused {
        assert!(matches!(refused.unwrap(), Err(Error::Forbidden)));
    }
    let per_sender: Vec<Vec<i64>> = per_sender.into_iter().map(|j| j.unwrap()).collect();
    for seqs in &per_sender {
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    }
    let mut all = per_sender.concat();
    all.sort_unstable();
    let expected: Vec<i64> = (1..=192).collect();
    assert_eq!(all, expected, "every seq once, none skipped");
    let room = store.room(tea).await.unwrap().unwrap();
    assert_eq!((room.seq, room.rev), (192, 192));
    let history = store.history(tea, everything()).await.unwrap();
    assert_eq!(seqs(&history), expected);
    let mut read: Vec<(Uuid, &str)> = history
        .iter()
        .map(|m| (m.sender_identity, m.content.as_str()))
        .collect();
    read.sort_unstable();
    let mut sent: Vec<(Uuid, String)> = identities
        .iter()
        .flat_map(|&sender| (0..8).map(move |i| (sender, format!("{sender} {i}"))))
        .collect();
    sent.sort_unstable();
    let sent: Vec<(Uuid, &str)> = sent.iter().map(|(s, c)| (*s, c.as_str())).collect();
    assert_eq!(read, sent, "every message reads back once, from its sender");
}

async fn a_message_that_fails_after_taking_its_seq_leaves_the_room_without_a_hole(
    store: Arc<dyn Store>,
) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await.identity;
    let first = send(&*store, tea, alice, "first").await;
    // A message with the identity of one stored already fails on the
    // unique index after its seq was taken: a write that fails half-way,
    // among others in flight with it.
    let replayed = NewMessage {
        identity: first.identity,
        ..message(tea, alice, "replayed")
    };

    let burst = (0..8)
        .map(|i| message(tea, alice, &format!("fresh {i}")))
        .chain([replayed])
        .map(|sent| {
            let store = store.clone();
            tokio::spawn(async move { store.insert_message(&sent).await })
        });
    join_all(burst).await;

    let history = store.history(tea, everything()).await.unwrap();
    let expected: Vec<i64> = (1..=9).collect();
    assert_eq!(seqs(&history), expected, "no seq taken by the failed write");
    let room = store.room(tea).await.unwrap().unwrap();
    assert_eq!((room.seq, room.rev), (9, 9));
    let mut read = contents(&history);
    read.sort_unstable();
    let mut sent = vec!["first".to_owned()];
    sent.extend((0..8).map(|i| format!("fresh {i}")));
    assert_eq!(read, sent, "the others are stored, the failed one is not");
}

async fn history_pages_both_ways_between_exclusive_bounds(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await.identity;
    let quiet = create(&*store, RoomType::Group, &[alice]).await.identity;
    for i in 1..=120 {
        send(&*store, tea, alice, &format!("m{i}")).await;
    }
    let slice =
        |after: Option<i64>, before: Option<i64>, limit: usize, newest: bool| HistoryRange {
            after,
            before,
            limit,
            newest,
        };
    let page = async |range: HistoryRange| seqs(&store.history(tea, range).await.unwrap());
    let span = |from: i64, to: i64| (from..=to).collect::<Vec<i64>>();

    let newest = store
        .history(tea, slice(None, None, 50, true))
        .await
        .unwrap();
    assert_eq!(seqs(&newest), span(71, 120));
    assert_eq!(contents(&newest[..2]), ["m71", "m72"]);
    assert_eq!(page(slice(None, Some(71), 50, true)).await, span(21, 70));
    assert_eq!(page(slice(None, Some(21), 50, true)).await, span(1, 20));
    assert_eq!(
        page(slice(None, Some(1), 50, true)).await,
        Vec::<i64>::new()
    );

    assert_eq!(page(slice(None, None, 50, false)).await, span(1, 50));
    assert_eq!(page(slice(Some(50), None, 50, false)).await, span(51, 100));
    assert_eq!(
        page(slice(Some(100), None, 50, false)).await,
        span(101, 120)
    );
    assert_eq!(
        page(slice(Some(120), None, 50, false)).await,
        Vec::<i64>::new()
    );
    assert_eq!(page(slice(Some(100), None, 50, true)).await, span(101, 120));

    assert_eq!(
        page(slice(Some(10), Some(15), 50, true)).await,
        span(11, 14)
    );
    assert_eq!(page(slice(Some(10), Some(15), 2, true)).await, [13, 14]);
    assert_eq!(page(slice(Some(10), Some(15), 2, false)).await, [11, 12]);
    assert_eq!(
        page(slice(Some(10), Some(11), 50, false)).await,
        Vec::<i64>::new()
    );

    assert_eq!(store.history(quiet, everything()).await.unwrap(), []);
}

async fn messages_at_returns_the_last_message_of_each_room(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let mut rooms = Vec::new();
    for count in 1..=3 {
        let room = create(&*store, RoomType::Group, &[alice]).await.identity;
        for i in 1..=count {
            send(&*store, room, alice, &format!("{count}-{i}")).await;
        }
        rooms.push((room, count));
    }
    let beyond = (rooms[0].0, 2);
    let nowhere = (Uuid::new_v4(), 1);
    let positions: Vec<(Uuid, i64)> = rooms.iter().copied().chain([beyond, nowhere]).collect();

    let mut last = store.messages_at(&positions).await.unwrap();

    last.sort_by_key(|m| m.seq);
    assert_eq!(contents(&last), ["1-1", "2-2", "3-3"]);
    assert_eq!(store.messages_at(&[]).await.unwrap(), []);
}

async fn unread_counts_only_others_messages_after_the_last_read_and_mark_read_clears_them(
    store: Arc<dyn Store>,
) {
    let [alice, bob, carol] = [(); 3].map(|()| Uuid::new_v4());
    let tea = create(&*store, RoomType::Group, &[alice, bob])
        .await
        .identity;
    let quiet = create(&*store, RoomType::Group, &[alice, carol])
        .await
        .identity;
    for _ in 0..3 {
        send(&*store, tea, bob, "from bob").await;
    }
    for _ in 0..2 {
        send(&*store, tea, alice, "from alice").await;
    }

    assert_eq!(unread(&*store, alice, &[tea, quiet]).await, [3, 0]);
    assert_eq!(unread(&*store, bob, &[tea]).await, [2]);

    let marked = store.mark_read(tea, alice, None, now()).await.unwrap();
    assert!(marked.is_some_and(|(_, moved)| moved));
    let alice_member = store.member(tea, alice).await.unwrap().unwrap();
    assert_eq!(alice_member.last_read_seq, 5);
    assert_eq!(unread(&*store, alice, &[tea, quiet]).await, [0, 0]);

    send(&*store, tea, bob, "after").await;
    assert_eq!(unread(&*store, alice, &[tea]).await, [1]);
    assert_eq!(
        unread(&*store, bob, &[tea]).await,
        [2],
        "own messages never count"
    );
}

async fn mark_read_is_false_for_a_non_member_and_a_missing_room(store: Arc<dyn Store>) {
    let alice = Uuid::new_v4();
    let tea = create(&*store, RoomType::Group, &[alice]).await.identity;
    send(&*store, tea, alice, "hi").await;

    let stranger = store.mark_read(tea, Uuid::new_v4(), None, now()).await;
    assert!(stranger.unwrap().is_none());
    let nowhere = store.mark_read(Uuid::new_v4(), alice, None, now()).await;
    assert!(nowhere.unwrap().is_none());
    assert_eq!(
        store
            .member(tea, alice)
            .await
            .unwrap()
            .unwrap()
            .last_read_seq,
        0
    );
}

super::store_suite!(
    a_stored_message_moves_the_room_seq_and_last_message_at,
    a_message_to_a_missing_room_is_not_found,
    a_members_sent_message_is_stored_and_comes_back_with_its_sender,
    a_send_is_checked_for_room_then_membership_then_sender_and_refused_ones_store_nothing,
    eight_concurrent_writers_take_seqs_one_to_two_hundred_without_holes,
    ten_concurrent_retries_with_one_client_id_store_one_message,
    many_senders_at_once_with_retries_take_distinct_increasing_seqs_and_all_read_back,
    a_message_that_fails_after_taking_its_seq_leaves_the_room_without_a_hole,
    a_client_id_is_scoped_to_its_sender_and_room,
    history_pages_both_ways_between_exclusive_bounds,
    messages_at_returns_the_last_message_of_each_room,
    unread_counts_only_others_messages_after_the_last_read_and_mark_read_clears_them,
    mark_read_is_false_for_a_non_member_and_a_missing_room,
);

/// Two instances of the server on one MongoDB: each writes a room's
/// messages in batches of its own, so their batches race for the room's
/// seqs and for the unique client id, and the loser of a race finds its
/// insert refused after it took its seqs. Only MongoDB is shared by
/// instances.
#[cfg_attr(not(test_services), ignore = "needs the services scripts/test starts")]
#[tokio::test]
async fn two_instances_racing_retries_of_one_client_id_store_it_once_without_a_hole() {
    let uri = crate::helpers::service("CHATROOM_TEST_MONGODB_URI");
    let database = crate::helpers::unique_name("two_instances_racing");
    let mut instances: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..2 {
        let store = chatroom::store::MongoStore::connect(
            &uri,
            &database,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
        instances.push(Arc::new(store));
    }
    let (alice, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let tea = create(&*instances[0], RoomType::Group, &[alice, bob])
        .await
        .identity;

    let retries = (0..10).map(|i| {
        let store = instances[i % 2].clone();
        let retry = NewMessage {
            client_id: Some("c-1".into()),
            ..message(tea, alice, "hello")
        };
        tokio::spawn(async move { store.insert_message(&retry).await.unwrap() })
    });
    let others = (0..10).map(|i| {
        let store = instances[i % 2].clone();
        let other = message(tea, bob, &format!("bob {i}"));
        tokio::spawn(async move { store.insert_message(&other).await.unwrap() })
    });
    let (retries, others) = tokio::join!(join_all(retries), join_all(others));

    let retries: Vec<(MessageRecord, bool)> = retries.into_iter().map(|j| j.unwrap()).collect();
    assert_eq!(retries.iter().filter(|(_, new)| *new).count(), 1);
    assert!(retries.iter().all(|(m, _)| *m == retries[0].0));
    assert!(others.into_iter().all(|j| j.unwrap().1), "bob's all stored");
    let history = instances[1].history(tea, everything()).await.unwrap();
    let expected: Vec<i64> = (1..=11).collect();
    assert_eq!(seqs(&history), expected);
    let room = instances[1].room(tea).await.unwrap().unwrap();
    assert_eq!((room.seq, room.rev), (11, 11));
}
