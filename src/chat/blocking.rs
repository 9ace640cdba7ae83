//! Blocking, and every rule of it (API.md, "Blocking"): after A blocks B,
//! until A unblocks,
//!
//! - neither may make the other a friend or add the other to a group
//!   ([`check_pair`], [`check_adding`]);
//! - B may not write, type or react in their PRIVATE room
//!   ([`check_speaking`]; a send is refused by the store itself, in the
//!   step that stores it, since it runs for every message:
//!   `Store::send_message`);
//! - neither finds the other in `searchUsers` ([`hidden_from`]);
//! - neither sees the other's presence ([`unblocked`]).
//!
//! Messages in groups both are in are delivered as before.

use uuid::Uuid;

use super::social::user_named;
use crate::{
    app::App,
    auth::Viewer,
    error::{Error, Problem, Result},
    store::{Profile, RoomRecord, now},
};

/// How many users one user may block: what one account can make the store
/// keep, and every check that reads its blocks read.
pub const MAX_BLOCKS: usize = 1000;

/// The viewer blocks `username`; false when they already had.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn block(app: &App, viewer: &Viewer, username: &str) -> Result<bool> {
    let user = user_named(app, username).await?;
    if user.identity == viewer.identity {
        return Err(Error::bad_input("username", Problem::Yourself));
    }
    if app
        .store
        .has_blocked(viewer.identity, user.identity)
        .await?
    {
        return Ok(false);
    }
    if app.store.blocked_by(viewer.identity).await?.len() >= MAX_BLOCKS {
        let max = MAX_BLOCKS;
        return Err(Error::bad_input("username", Problem::Blocks { max }));
    }
    app.store.block(viewer.identity, user.identity, now()).await
}

/// The viewer unblocks `username`; false when they had not blocked them.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn unblock(app: &App, viewer: &Viewer, username: &str) -> Result<bool> {
    let user = user_named(app, username).await?;
    app.store.unblock(viewer.identity, user.identity).await
}

/// The users the viewer blocked, by username.
pub async fn blocked_users(app: &App, viewer: &Viewer) -> Result<Vec<Profile>> {
    app.store.blocked_by(viewer.identity).await
}

/// `FORBIDDEN` when either of `a` and `b` blocked the other.
pub async fn check_pair(app: &App, a: Uuid, b: Uuid) -> Result<()> {
    match app.store.blocks_between(a, &[b]).await?.is_empty() {
        true => Ok(()),
        false => Err(Error::Forbidden),
    }
}

/// `FORBIDDEN` when any of `added` and `adder` blocked the other.
pub async fn check_adding(app: &App, adder: Uuid, added: &[Uuid]) -> Result<()> {
    match app.store.blocks_between(adder, added).await?.is_empty() {
        true => Ok(()),
        false => Err(Error::Forbidden),
    }
}

/// `FORBIDDEN` when `user` may not speak in `room` (write, type, react):
/// the other member of a PRIVATE room blocked them.
pub async fn check_speaking(app: &App, room: &RoomRecord, user: Uuid) -> Result<()> {
    match room.other_member(user) {
        Some(other) if app.store.has_blocked(other, user).await? => Err(Error::Forbidden),
        _ => Ok(()),
    }
}

/// Whom `user` must not find, nor be found by.
pub async fn hidden_from(app: &App, user: Uuid) -> Result<Vec<Uuid>> {
    app.store.blocks_of(user).await
}

/// `others` without those who blocked `user` or whom `user` blocked.
pub async fn unblocked(app: &App, user: Uuid, mut others: Vec<Uuid>) -> Result<Vec<Uuid>> {
    if others.is_empty() {
        return Ok(others);
    }
    let blocked = app.store.blocks_between(user, &others).await?;
    others.retain(|other| !blocked.contains(other));
    Ok(others)
}
