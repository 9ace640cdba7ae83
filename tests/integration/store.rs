//! One behavioural suite over every Store backend, so they cannot drift apart.

use std::sync::Arc;

use chatroom::{
    error::Error,
    store::{ProfileUpdate, Sex, Store, UserRecord, now},
};
use uuid::Uuid;

fn user(username: &str, email: &str) -> UserRecord {
    let at = now();
    UserRecord {
        identity: Uuid::new_v4(),
        username: username.into(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        nickname: format!("{username} nick"),
        sex: Sex::Female,
        email: email.into(),
        avatar: Some("https://example.com/a.png".into()),
        created_at: at,
        updated_at: at,
    }
}

async fn a_created_user_reads_back_by_identity_username_and_email(store: Arc<dyn Store>) {
    let alice = user("Alice_1", "alice@example.com");
    store.create_user(&alice).await.unwrap();

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

async fn usernames_are_found_and_unique_ignoring_case(store: Arc<dyn Store>) {
    let alice = user("Alice", "alice@example.com");
    store.create_user(&alice).await.unwrap();

    let found = store.user_by_username("aLICE").await.unwrap().unwrap();
    assert_eq!(found.username, "Alice", "kept as registered");

    let clash = store.create_user(&user("ALICE", "other@example.com")).await;
    assert!(
        matches!(clash, Err(Error::Conflict { field: "username" })),
        "{clash:?}"
    );
}

async fn a_taken_email_is_a_conflict_on_email(store: Arc<dyn Store>) {
    store
        .create_user(&user("alice", "same@example.com"))
        .await
        .unwrap();
    let clash = store.create_user(&user("bob", "same@example.com")).await;
    assert!(
        matches!(clash, Err(Error::Conflict { field: "email" })),
        "{clash:?}"
    );
}

async fn twenty_concurrent_registrations_of_one_username_leave_one(store: Arc<dyn Store>) {
    let attempts = (0..20).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_user(&user("racer", &format!("racer{i}@example.com")))
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
            matches!(result, Err(Error::Conflict { field: "username" })),
            "{result:?}"
        );
    }
    let stored = store.user_by_username("RACER").await.unwrap().unwrap();
    assert_eq!(stored.username, "racer");
}

async fn a_profile_update_changes_only_what_it_names(store: Arc<dyn Store>) {
    let alice = user("alice", "alice@example.com");
    store.create_user(&alice).await.unwrap();
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

async fn a_reachable_store_answers_ping(store: Arc<dyn Store>) {
    store.ping().await.unwrap();
}

/// Runs each behaviour above over SQLite and over MongoDB.
macro_rules! store_suite {
    ($($behaviour:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let (store, _dir) = crate::helpers::sqlite_store().await;
                    super::$behaviour(store).await;
                }
            )*
        }
        mod mongodb {
            $(
                #[tokio::test]
                async fn $behaviour() {
                    let Some(store) = crate::helpers::mongo_store(stringify!($behaviour)).await else {
                        return;
                    };
                    super::$behaviour(store).await;
                }
            )*
        }
    };
}

store_suite!(
    a_created_user_reads_back_by_identity_username_and_email,
    usernames_are_found_and_unique_ignoring_case,
    a_taken_email_is_a_conflict_on_email,
    twenty_concurrent_registrations_of_one_username_leave_one,
    a_profile_update_changes_only_what_it_names,
    a_reachable_store_answers_ping,
);
