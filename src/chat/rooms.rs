//! Rooms and who is in them: access checks, groups, reading positions.

use rand::Rng;
use uuid::Uuid;

use super::{
    outliving,
    values::{GroupInfo, GroupName},
};
use crate::{
    app::App,
    auth::Viewer,
    broker::{Event, Topic},
    error::{Entity, Error, Problem, Result, Unique},
    store::{Departure, MemberRecord, Profile, RoomRecord, RoomType, now},
};

/// How often a new room draws another number when the one drawn is taken.
const NUMBER_DRAWS: usize = 8;

/// A room identity from the client; one that cannot exist is simply not found.
pub fn parse_identity(identity: &str) -> Result<Uuid> {
    Uuid::parse_str(identity).map_err(|_| Error::NotFound(Entity::Room))
}

/// The room and the viewer's membership: `NOT_FOUND` when there is no such
/// room, `FORBIDDEN` when the viewer is not in it. Every operation on a room
/// goes through here.
pub async fn member_room(
    app: &App,
    viewer: &Viewer,
    identity: &str,
) -> Result<(RoomRecord, MemberRecord)> {
    let identity = parse_identity(identity)?;
    let room = app
        .store
        .room(identity)
        .await?
        .ok_or(Error::NotFound(Entity::Room))?;
    let member = app
        .store
        .member(identity, viewer.identity)
        .await?
        .ok_or(Error::Forbidden)?;
    Ok((room, member))
}

/// `room(identity)`: the room when the viewer is in it, else nothing.
pub async fn visible_room(
    app: &App,
    viewer: &Viewer,
    identity: &str,
) -> Result<Option<RoomRecord>> {
    match member_room(app, viewer, identity).await {
        Ok((room, _)) => Ok(Some(room)),
        Err(Error::NotFound(_) | Error::Forbidden) => Ok(None),
        Err(other) => Err(other),
    }
}

/// The viewer's rooms, most recent activity first.
pub async fn rooms(app: &App, viewer: &Viewer) -> Result<Vec<RoomRecord>> {
    app.store.rooms_of_user(viewer.identity).await
}

/// A short number to share a room by: 8 digits, drawn at random.
fn draw_number() -> String {
    rand::thread_rng()
        .gen_range(10_000_000..100_000_000u32)
        .to_string()
}

/// Stores a new room with its members, drawing another number while the one
/// drawn is taken, and tells each member's inbox about it. Other conflicts
/// (a PRIVATE pair that exists) go back to the caller.
pub async fn create_room(app: &App, mut room: RoomRecord, members: &[Uuid]) -> Result<RoomRecord> {
    let (store, broker, members) = (app.store.clone(), app.broker.clone(), members.to_vec());
    outliving(async move {
        for _ in 0..NUMBER_DRAWS {
            match store.create_room(&room, &members).await {
                Ok(()) => {
                    for member in &members {
                        let joined = Event::Joined {
                            room: room.identity,
                            seq: 0,
                        };
                        broker.publish(Topic::User(*member), joined).await;
                    }
                    return Ok(room);
                }
                Err(Error::Conflict(Unique::RoomNumber)) => room.number = draw_number(),
                Err(other) => return Err(other),
            }
        }
        Err(Error::internal(anyhow::anyhow!(
            "no free room number in {NUMBER_DRAWS} draws"
        )))
    })
    .await
}

/// A new room record created now by `creator`.
pub fn new_room(
    creator: Uuid,
    room_type: RoomType,
    name: String,
    info: String,
    pair_key: Option<String>,
) -> RoomRecord {
    let created_at = now();
    RoomRecord {
        identity: Uuid::new_v4(),
        number: draw_number(),
        name,
        info,
        creator_identity: creator,
        room_type,
        pair_key,
        seq: 0,
        last_message_at: None,
        created_at,
        updated_at: created_at,
    }
}

/// `BAD_USER_INPUT` on `field` when `users` joining one more room would put
/// one of them in more rooms than a user may belong to.
pub async fn check_room_caps(app: &App, users: &[Uuid], field: &'static str) -> Result<()> {
    let max = app.config.limits.max_rooms_per_user;
    let counts = app.store.room_counts(users).await?;
    if counts
        .values()
        .any(|&count| count >= u64::try_from(max).unwrap_or(u64::MAX))
    {
        return Err(Error::bad_input(field, Problem::RoomsPerUser { max }));
    }
    Ok(())
}

/// `BAD_USER_INPUT` on `field` when a group of `members` would be larger
/// than a group may be.
fn check_group_size(app: &App, members: usize, field: &'static str) -> Result<()> {
    let max = app.config.limits.max_group_members;
    match members > max {
        true => Err(Error::bad_input(field, Problem::GroupMembers { max })),
        false => Ok(()),
    }
}

/// The users named in `field`, all of them or `NOT_FOUND`; duplicates and
/// `except` left out. A list longer than one request may name is refused
/// before any is looked up.
async fn users_named(
    app: &App,
    usernames: &[String],
    except: Uuid,
    field: &'static str,
) -> Result<Vec<Profile>> {
    let max = app.config.limits.max_usernames_per_request;
    if usernames.len() > max {
        return Err(Error::bad_input(field, Problem::TooMany { max }));
    }
    let mut users: Vec<Profile> = Vec::with_capacity(usernames.len());
    for username in usernames {
        let user = app
            .store
            .user_by_username(username)
            .await?
            .ok_or(Error::NotFound(Entity::User))?;
        if user.identity != except && users.iter().all(|u| u.identity != user.identity) {
            users.push(user);
        }
    }
    Ok(users)
}

/// Creates a GROUP room of the viewer and the users named; an unknown
/// username creates nothing.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn create_group(
    app: &App,
    viewer: &Viewer,
    name: &str,
    info: &str,
    members: &[String],
) -> Result<RoomRecord> {
    let name = GroupName::parse(name)?;
    let info = GroupInfo::parse(info)?;
    let others = users_named(app, members, viewer.identity, "members").await?;
    let mut identities = vec![viewer.identity];
    identities.extend(others.iter().map(|u| u.identity));
    check_group_size(app, identities.len(), "members")?;
    check_room_caps(app, &identities, "members").await?;
    let room = new_room(
        viewer.identity,
        RoomType::Group,
        name.into_inner(),
        info.into_inner(),
        None,
    );
    create_room(app, room, &identities).await
}

/// Adds the users named to a GROUP room the viewer is in; members already
/// there are ignored.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity, room = %identity))]
pub async fn add_members(
    app: &App,
    viewer: &Viewer,
    identity: &str,
    usernames: &[String],
) -> Result<RoomRecord> {
    let (room, _) = member_room(app, viewer, identity).await?;
    if room.room_type != RoomType::Group {
        return Err(Error::Forbidden);
    }
    let users = users_named(app, usernames, viewer.identity, "usernames").await?;
    let members = app.store.members_of_rooms(&[room.identity]).await?;
    let identities: Vec<Uuid> = users
        .iter()
        .map(|u| u.identity)
        .filter(|user| members.iter().all(|(_, member)| member != user))
        .collect();
    check_group_size(app, members.len() + identities.len(), "usernames")?;
    check_room_caps(app, &identities, "usernames").await?;
    let (store, broker) = (app.store.clone(), app.broker.clone());
    outliving(async move {
        let added = store.add_members(room.identity, &identities, now()).await?;
        let room = store
            .room(room.identity)
            .await?
            .ok_or(Error::NotFound(Entity::Room))?;
        for user in added {
            let joined = Event::Joined {
                room: room.identity,
                seq: room.seq,
            };
            broker.publish(Topic::User(user), joined).await;
        }
        Ok(room)
    })
    .await
}

/// Leaves a GROUP room; the last one out deletes it. Live subscriptions of
/// the viewer to the room end at once.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity, room = %identity))]
pub async fn leave_room(app: &App, viewer: &Viewer, identity: &str) -> Result<bool> {
    let (room, _) = member_room(app, viewer, identity).await?;
    if room.room_type != RoomType::Group {
        return Err(Error::Forbidden);
    }
    let (store, broker, user) = (app.store.clone(), app.broker.clone(), viewer.identity);
    outliving(async move {
        let event = match store.remove_member(room.identity, user).await? {
            Departure::NotAMember => return Ok(false),
            Departure::Left => Event::Left { user },
            Departure::LeftAndRoomDeleted => Event::RoomDeleted,
        };
        broker.publish(Topic::Room(room.identity), event).await;
        Ok(true)
    })
    .await
}

/// Marks everything in the room read for the viewer.
pub async fn mark_read(app: &App, viewer: &Viewer, identity: &str) -> Result<RoomRecord> {
    let (room, _) = member_room(app, viewer, identity).await?;
    if !app.store.mark_read(room.identity, viewer.identity).await? {
        return Err(Error::Forbidden);
    }
    Ok(room)
}
