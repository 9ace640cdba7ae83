//! Blocking, and every rule of it (API.md, "Blocking"): after A blocks B,
//! until A unblocks,
//!
//! - neither may make the other a friend or add the other to a group
//!   ([`check_pair`], [`check_adding`]);
//! - B may not write, type or react in their PRIVATE room
//!   ([`check_speaking`]; a send is refused by the store itself, in the
//!   step that stores it, since it runs for every message:
//!   `Store::send_message`);
//! - neither finds the other in `searchUsers` ([`search_users`]);
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
    if app.store.blocked_identities(viewer.identity).await?.len() >= MAX_BLOCKS {
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

/// How many times `searchUsers` reads a page again, each time without
/// the users the last read found to have blocked the viewer.
const SEARCH_READS: usize = 3;

/// Up to `size` users whose username or nickname starts with `prefix`,
/// the viewer and anyone with a block between them and the viewer left
/// out.
///
/// Whom the viewer blocked are few, and the store leaves them out. Who
/// blocked the viewer may be any number of users, so they are not read
/// up front: a page of twice `size` is read and they are taken out of it,
/// and if that leaves it short the page is read again without them, a
/// bounded number of times. A page stays short only when most users of
/// the prefix blocked the viewer, which hides nobody else.
pub async fn search_users(
    app: &App,
    viewer: Uuid,
    prefix: &str,
    size: usize,
) -> Result<Vec<Profile>> {
    let mut exclude = app.store.blocked_identities(viewer).await?;
    exclude.push(viewer);
    let read = size.saturating_mul(2);
    let mut reads = 0;
    loop {
        reads += 1;
        let mut page = app.store.search_users(prefix, &exclude, read).await?;
        let last = page.len() < read || reads == SEARCH_READS;
        let identities: Vec<Uuid> = page.iter().map(|user| user.identity).collect();
        let blockers = app.store.blocks_between(viewer, &identities).await?;
        page.retain(|user| !blockers.contains(&user.identity));
        if page.len() >= size || last {
            page.truncate(size);
            return Ok(page);
        }
        exclude.extend(blockers);
    }
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
