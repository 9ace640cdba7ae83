//! Rooms and who is in them: access checks, groups, reading positions.

use std::sync::Arc;

use rand::Rng;
use uuid::Uuid;

use super::{
    blocking,
    messages::decode_cursor,
    timeline::announce,
    values::{GroupInfo, GroupName},
};
use crate::{
    app::App,
    auth::Viewer,
    broker::{Event, Topic},
    error::{Entity, Error, Problem, Result, Unique},
    store::{
        MemberRecord, Profile, Role, RoomEdit, RoomRecord, RoomRule, RoomScene, RoomType, Stored,
        now,
    },
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
    app.writes
        .run(async move {
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
        rev: 0,
        updated_rev: 0,
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
    blocking::check_adding(app, viewer.identity, &identities[1..]).await?;
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
        .filter(|user| members.iter().all(|member| member.user_identity != *user))
        .collect();
    blocking::check_adding(app, viewer.identity, &identities).await?;
    check_group_size(app, members.len() + identities.len(), "usernames")?;
    check_room_caps(app, &identities, "usernames").await?;
    let (store, broker) = (app.store.clone(), app.broker.clone());
    app.writes
        .run(async move {
            let added = store.add_members(room.identity, &identities, now()).await?;
            for member in added {
                let joined = Event::Joined {
                    room: room.identity,
                    seq: member.last_read_seq,
                };
                broker
                    .publish(Topic::User(member.user_identity), joined)
                    .await;
                let change = Event::Change(Arc::new(crate::broker::ChangeEvent::new(
                    Stored::Member(member),
                    true,
                )));
                broker.publish(Topic::Room(room.identity), change).await;
            }
            store
                .room(room.identity)
                .await?
                .ok_or(Error::NotFound(Entity::Room))
        })
        .await
}

/// Leaves a GROUP room; the last one out deletes it. An owner who leaves
/// hands the room to the ADMIN who joined first, else to the member who
/// joined first. Live subscriptions of the viewer to the room end.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity, room = %identity))]
pub async fn leave_room(app: &Arc<App>, viewer: &Viewer, identity: &str) -> Result<bool> {
    let (room, _) = member_room(app, viewer, identity).await?;
    if room.room_type != RoomType::Group {
        return Err(Error::Forbidden);
    }
    let user = viewer.identity;
    let rule = move |scene: &RoomScene| {
        let Some(leaving) = scene.members.iter().find(|m| m.user_identity == user) else {
            return Ok(Vec::new());
        };
        let mut edits = vec![RoomEdit::Remove {
            user,
            by: None,
            at: now(),
        }];
        if leaving.role == Role::Owner {
            let others = || scene.members.iter().filter(|m| m.user_identity != user);
            let heir = others()
                .find(|m| m.role == Role::Admin)
                .or_else(|| others().next());
            if let Some(heir) = heir {
                edits.push(RoomEdit::SetRole {
                    user: heir.user_identity,
                    role: Role::Owner,
                });
            }
        }
        Ok(edits)
    };
    let changes = change_room(app, room.identity, Arc::new(rule)).await?;
    Ok(!changes.is_empty())
}

/// Stores what `rule` decides for `room` and announces each change, or
/// the room's end; the changes made.
async fn change_room(app: &Arc<App>, room: Uuid, rule: Arc<RoomRule>) -> Result<Vec<Stored>> {
    let (app, writes) = (app.clone(), &app.writes);
    writes
        .run(async move {
            let made = app.store.change_room(room, rule).await?;
            for change in &made.changes {
                announce(&app, room, change.clone(), false).await;
            }
            if made.deleted {
                app.broker
                    .publish(Topic::Room(room), Event::RoomDeleted)
                    .await;
            }
            Ok(made.changes)
        })
        .await
}

/// The viewer's membership in `scene`, when it may manage the group: its
/// OWNER or an ADMIN. `FORBIDDEN` in a PRIVATE room and for a MEMBER.
fn manager(scene: &RoomScene, viewer: Uuid) -> Result<&MemberRecord> {
    let member = scene
        .members
        .iter()
        .find(|m| m.user_identity == viewer)
        .ok_or(Error::Forbidden)?;
    match (scene.room.room_type, member.role) {
        (RoomType::Group, Role::Owner | Role::Admin) => Ok(member),
        _ => Err(Error::Forbidden),
    }
}

/// The member of `scene` that `target` names: not the viewer, and in the room.
fn target_member(scene: &RoomScene, viewer: Uuid, target: Uuid) -> Result<&MemberRecord> {
    if target == viewer {
        return Err(Error::bad_input("username", Problem::Yourself));
    }
    scene
        .members
        .iter()
        .find(|m| m.user_identity == target)
        .ok_or(Error::bad_input("username", Problem::NotAMember))
}

/// The user a username names, or `NOT_FOUND`.
async fn user_named(app: &App, username: &str) -> Result<Profile> {
    app.store
        .user_by_username(username)
        .await?
        .ok_or(Error::NotFound(Entity::User))
}

/// The room as it is now, once changed.
async fn room_now(app: &App, room: Uuid) -> Result<RoomRecord> {
    app.store
        .room(room)
        .await?
        .ok_or(Error::NotFound(Entity::Room))
}

/// Renames a GROUP room or changes its info: its OWNER or an ADMIN. What is
/// left out stays; a change that changes nothing makes no event.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity, room = %identity))]
pub async fn update_room(
    app: &Arc<App>,
    viewer: &Viewer,
    identity: &str,
    name: Option<&str>,
    info: Option<&str>,
) -> Result<RoomRecord> {
    let name = name
        .map(GroupName::parse)
        .transpose()?
        .map(GroupName::into_inner);
    let info = info
        .map(GroupInfo::parse)
        .transpose()?
        .map(GroupInfo::into_inner);
    let (room, _) = member_room(app, viewer, identity).await?;
    let user = viewer.identity;
    let rule = move |scene: &RoomScene| {
        manager(scene, user)?;
        let name = name.clone().unwrap_or_else(|| scene.room.name.clone());
        let info = info.clone().unwrap_or_else(|| scene.room.info.clone());
        if name == scene.room.name && info == scene.room.info {
            return Ok(Vec::new());
        }
        Ok(vec![RoomEdit::Rename {
            name,
            info,
            at: now(),
        }])
    };
    change_room(app, room.identity, Arc::new(rule)).await?;
    room_now(app, room.identity).await
}

/// Removes a member from a GROUP room: the OWNER removes anyone, an ADMIN
/// only MEMBERs. Their live subscriptions to the room end.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity, room = %identity))]
pub async fn remove_member(
    app: &Arc<App>,
    viewer: &Viewer,
    identity: &str,
    username: &str,
) -> Result<RoomRecord> {
    let (room, _) = member_room(app, viewer, identity).await?;
    let target = user_named(app, username).await?.identity;
    let user = viewer.identity;
    let rule = move |scene: &RoomScene| {
        let manager = manager(scene, user)?;
        let removed = target_member(scene, user, target)?;
        if manager.role != Role::Owner && removed.role != Role::Member {
            return Err(Error::Forbidden);
        }
        Ok(vec![RoomEdit::Remove {
            user: target,
            by: Some(user),
            at: now(),
        }])
    };
    change_room(app, room.identity, Arc::new(rule)).await?;
    room_now(app, room.identity).await
}

/// The OWNER makes a member ADMIN or MEMBER, or hands the room over with
/// OWNER (and becomes an ADMIN).
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity, room = %identity))]
pub async fn set_member_role(
    app: &Arc<App>,
    viewer: &Viewer,
    identity: &str,
    username: &str,
    role: Role,
) -> Result<RoomRecord> {
    let (room, _) = member_room(app, viewer, identity).await?;
    let target = user_named(app, username).await?.identity;
    let user = viewer.identity;
    let rule = move |scene: &RoomScene| {
        if manager(scene, user)?.role != Role::Owner {
            return Err(Error::Forbidden);
        }
        let member = target_member(scene, user, target)?;
        if member.role == role {
            return Ok(Vec::new());
        }
        let mut edits = vec![RoomEdit::SetRole { user: target, role }];
        if role == Role::Owner {
            edits.push(RoomEdit::SetRole {
                user,
                role: Role::Admin,
            });
        }
        Ok(edits)
    };
    change_room(app, room.identity, Arc::new(rule)).await?;
    room_now(app, room.identity).await
}

/// Moves the viewer's read position forward to the message `up_to` names
/// (default: the newest), never back.
pub async fn mark_read(
    app: &Arc<App>,
    viewer: &Viewer,
    identity: &str,
    up_to: Option<&str>,
) -> Result<RoomRecord> {
    let room_identity = parse_identity(identity)?;
    let up_to = up_to
        .map(|cursor| decode_cursor("upTo", cursor, room_identity))
        .transpose()?;
    let (room, _) = member_room(app, viewer, identity).await?;
    if up_to.is_some_and(|seq| seq > room.seq) {
        return Err(Error::bad_input("upTo", Problem::NotInRoom));
    }
    let (app, user, writes) = (app.clone(), viewer.identity, &app.writes);
    writes
        .run(async move {
            let marked = app
                .store
                .mark_read(room.identity, user, up_to, now())
                .await?;
            let Some((member, moved)) = marked else {
                return Err(Error::Forbidden);
            };
            if moved {
                announce(&app, room.identity, Stored::Member(member), false).await;
            }
            Ok(room)
        })
        .await
}
