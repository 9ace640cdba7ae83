//! Other users: profiles, search, and friendship, which is a PRIVATE room.

use super::{
    blocking, rooms,
    values::{PageSize, SearchPrefix},
};
use crate::{
    app::App,
    auth::Viewer,
    broker::{Event, Topic},
    error::{Entity, Error, Problem, Result, Unique},
    store::{Profile, RoomRecord, RoomType, pair_key},
};

/// `searchUsers`' page size when the client gives none.
const DEFAULT_SEARCH_SIZE: i32 = 20;

/// Another user as the viewer sees them.
pub struct Contact {
    pub user: Profile,
    /// The PRIVATE room of the two, when they are friends.
    pub private_room: Option<RoomRecord>,
}

pub(super) async fn user_named(app: &App, username: &str) -> Result<Profile> {
    app.store
        .user_by_username(username)
        .await?
        .ok_or(Error::NotFound(Entity::User))
}

pub async fn user_profile(app: &App, viewer: &Viewer, username: &str) -> Result<Contact> {
    let user = user_named(app, username).await?;
    let private_room = match user.identity == viewer.identity {
        true => None,
        false => {
            app.store
                .private_room(&pair_key(viewer.identity, user.identity))
                .await?
        }
    };
    Ok(Contact { user, private_room })
}

pub async fn search_users(
    app: &App,
    viewer: &Viewer,
    query: &str,
    first: Option<i32>,
) -> Result<Vec<Profile>> {
    let prefix = SearchPrefix::parse(query)?;
    let size = PageSize::parse(
        "first",
        first.unwrap_or(DEFAULT_SEARCH_SIZE),
        app.config.limits.max_page_size,
    )?;
    blocking::search_users(app, viewer.identity, prefix.as_str(), size.get()).await
}

pub async fn friends(app: &App, viewer: &Viewer) -> Result<Vec<Profile>> {
    app.store.friends(viewer.identity).await
}

/// Makes the viewer and `username` friends: their one PRIVATE room, created
/// now or found. Both sides calling at once still make one room: the store's
/// unique pair key lets one create it, and the other finds it.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn add_friend(app: &App, viewer: &Viewer, username: &str) -> Result<RoomRecord> {
    let friend = user_named(app, username).await?;
    if friend.identity == viewer.identity {
        return Err(Error::bad_input("username", Problem::Yourself));
    }
    blocking::check_pair(app, viewer.identity, friend.identity).await?;
    let key = pair_key(viewer.identity, friend.identity);
    if let Some(room) = app.store.private_room(&key).await? {
        return Ok(room);
    }
    rooms::check_room_caps(app, &[viewer.identity, friend.identity], "username").await?;
    let room = rooms::new_room(
        viewer.identity,
        RoomType::Private,
        String::new(),
        String::new(),
        Some(key.clone()),
    );
    match rooms::create_room(app, room, &[viewer.identity, friend.identity]).await {
        Err(Error::Conflict(Unique::PrivatePair)) => {
            app.store.private_room(&key).await?.ok_or_else(|| {
                Error::internal(anyhow::anyhow!("pair room vanished after a conflict"))
            })
        }
        created => created,
    }
}

/// Ends a friendship: the PRIVATE room and its history are deleted, and both
/// sides' live subscriptions to it end. False when they were not friends.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn remove_friend(app: &App, viewer: &Viewer, username: &str) -> Result<bool> {
    let friend = user_named(app, username).await?;
    let key = pair_key(viewer.identity, friend.identity);
    let Some(room) = app.store.private_room(&key).await? else {
        return Ok(false);
    };
    let (store, broker) = (app.store.clone(), app.broker.clone());
    app.writes
        .run(async move {
            let deleted = store.delete_room(room.identity).await?;
            if deleted {
                broker
                    .publish(Topic::Room(room.identity), Event::RoomDeleted)
                    .await;
            }
            Ok(deleted)
        })
        .await
}
