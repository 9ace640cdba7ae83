//! Users: created, found, unique, changed, befriended and searched.

use std::sync::Arc;

use chatroom::{
    error::{Error, Unique},
    store::{Profile, ProfileUpdate, RoomType, Sex, Store, now},
};
use uuid::Uuid;

use super::{create, record, user};

async fn a_created_user_reads_back_by_identity_username_and_email(store: Arc<dyn Store>) {
    let alice = user("Alice_1", "alice@example.com");
    store.create_user(&record(&alice)).await.unwrap();

    assert_eq!(
        store.user_by_identity(alice.identity).await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_username("Alice_1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(
        store.user_by_email("alice@example.com").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.user_by_identity(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(store.user_by_username("bob").await.unwrap(), None);
    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
}

async fn only_a_login_reads_the_password_hash_back(store: Arc<dyn Store>) {
    let alice = record(&user("Alice_1", "alice@example.com"));
    store.create_user(&alice).await.unwrap();

    assert_eq!(
        store.login_record("alice_1").await.unwrap(),
        Some(alice.clone())
    );
    assert_eq!(store.login_record("bob").await.unwrap(), None);
}

async fn usernames_are_found_and_unique_ignoring_case(store: Arc<dyn Store>) {
    let alice = user("Alice", "alice@example.com");
    store.create_user(&record(&alice)).await.unwrap();

    let found = store.user_by_username("aLICE").await.unwrap().unwrap();
    assert_eq!(found.username, "Alice", "kept as registered");

    let clash = store
        .create_user(&record(&user("ALICE", "other@example.com")))
        .await;
    assert!(
        matches!(clash, Err(Error::Conflict(Unique::Username))),
        "{clash:?}"
    );
}

async fn a_taken_email_is_a_conflict_on_email(store: Arc<dyn Store>) {
    store
        .create_user(&record(&user("alice", "same@example.com")))
        .await
        .unwrap();
    let clash = store
        .create_user(&record(&user("bob", "same@example.com")))
        .await;
    assert!(
        matches!(clash, Err(Error::Conflict(Unique::Email))),
        "{clash:?}"
    );
}

async fn twenty_concurrent_registrations_of_one_username_leave_one(store: Arc<dyn Store>) {
    let attempts = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_user(&record(&user("racer", &format!("racer{i}@example.com"))))
                .await
        })
    });
    let results = futures_util::future::join_all(attempts).await;
    let (won, lost): (Vec<_>, Vec<_>) = results
        .into_iter()
        .map(|joined| joined.unwrap())
        .partition(Result::is_ok);
    assert_eq!(won.len(), 1);
    assert_eq!(lost.len(), 19);
    for result in lost {
        assert!(
            matches!(result, Err(Error::Conflict(Unique::Username))),
            "{result:?}"
        );
    }
    let stored = store.user_by_username("RACER").await.unwrap().unwrap();
    assert_eq!(stored.username, "racer");
}

async fn a_profile_update_changes_only_what_it_names(store: Arc<dyn Store>) {
    let alice = user("alice", "alice@example.com");
    store.create_user(&record(&alice)).await.unwrap();
    let later = now() + chrono::Duration::seconds(1);

    let renamed = store
        .update_profile(
            alice.identity,
            &ProfileUpdate {
                nickname: Some("爱丽丝".into()),
                updated_at: later,
                ..ProfileUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.nickname, "爱丽丝");
    assert_eq!(renamed.sex, Sex::Female);
    assert_eq!(renamed.avatar, alice.avatar);
    assert_eq!(renamed.updated_at, later);
    assert_eq!(renamed.created_at, alice.created_at);

    let cleared = store
        .update_profile(
            alice.identity,
            &ProfileUpdate {
                sex: Some(Sex::Male),
                avatar: Some(None),
                updated_at: later,
                ..ProfileUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cleared.sex, cleared.avatar.clone()), (Sex::Male, None));
    assert_eq!(cleared.nickname, "爱丽丝");
    assert_eq!(
        store.user_by_identity(alice.identity).await.unwrap(),
        Some(cleared)
    );

    let nobody = store
        .update_profile(Uuid::new_v4(), &ProfileUpdate::default())
        .await
        .unwrap();
    assert_eq!(nobody, None);
}

async fn friends_are_the_other_members_of_private_rooms_ordered_by_username(store: Arc<dyn Store>) {
    let [mia, zed, amy, bo, cy] = [
        user("mia", "mia@example.com"),
        user("Zed", "zed@example.com"),
        user("amy", "amy@example.com"),
        user("bo", "bo@example.com"),
        user("cy", "cy@example.com"),
    ];
    for u in [&mia, &zed, &amy, &bo, &cy] {
        store.create_user(&record(u)).await.unwrap();
    }
    create(&*store, RoomType::Private, &[mia.identity, zed.identity]).await;
    create(&*store, RoomType::Private, &[amy.identity, mia.identity]).await;
    create(
        &*store,
        RoomType::Group,
        &[mia.identity, bo.identity, zed.identity],
    )
    .await;

    assert_eq!(
        store.friends(mia.identity).await.unwrap(),
        [amy, zed.clone()],
        "ordered ignoring case; group members are not friends"
    );
    assert_eq!(store.friends(zed.identity).await.unwrap(), [mia]);
    assert_eq!(store.friends(bo.identity).await.unwrap(), []);
    assert_eq!(store.friends(cy.identity).await.unwrap(), []);
}

async fn search_finds_a_prefix_of_username_or_nickname_ignoring_case(store: Arc<dyn Store>) {
    let named = |username: &str, nickname: &str| Profile {
        nickname: nickname.into(),
        ..user(username, &format!("{username}@example.com"))
    };
    let viewer = named("alfred", "Al");
    let everyone = [
        viewer.clone(),
        named("alice", "Wonder"),
        named("Alina", "Lina"),
        named("al_x", "Underscore"),
        named("alxx", "Double"),
        named("bob", "Albert"),
        named("cy", "Émile"),
        named("dee", "100% sure"),
    ];
    for u in &everyone {
        store.create_user(&record(u)).await.unwrap();
    }
    let search = async |prefix: &str, limit: usize| -> Vec<String> {
        store
            .search_users(prefix, &[viewer.identity], limit)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect()
    };

    assert_eq!(
        search("AL", 10).await,
        ["al_x", "alice", "Alina", "alxx", "bob"],
        "by username or nickname, ordered ignoring case, without the viewer"
    );
    assert_eq!(search("AL", 2).await, ["al_x", "alice"]);
    assert_eq!(search("al_", 10).await, ["al_x"], "`_` is literal");
    assert_eq!(
        search("10%", 10).await,
        Vec::<String>::new(),
        "`%` is literal"
    );
    assert_eq!(search("100%", 10).await, ["dee"]);
    assert_eq!(search("lina", 10).await, ["Alina"]);
    assert_eq!(search("é", 10).await, ["cy"]);
    assert_eq!(
        search("ice", 10).await,
        Vec::<String>::new(),
        "a prefix, not a substring"
    );
    let found = store
        .search_users("wOnDeR", &[viewer.identity], 10)
        .await
        .unwrap();
    assert_eq!(found, [everyone[1].clone()]);
}

super::store_suite!(
    a_created_user_reads_back_by_identity_username_and_email,
    only_a_login_reads_the_password_hash_back,
    usernames_are_found_and_unique_ignoring_case,
    a_taken_email_is_a_conflict_on_email,
    twenty_concurrent_registrations_of_one_username_leave_one,
    a_profile_update_changes_only_what_it_names,
    friends_are_the_other_members_of_private_rooms_ordered_by_username,
    search_finds_a_prefix_of_username_or_nickname_ignoring_case,
);
