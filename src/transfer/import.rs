//! Loading an export file into a store: every line is checked first, and
//! only a file found whole and sound is written, in batches.

use std::{
    collections::{HashMap, HashSet},
    io::SeekFrom,
};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, BufReader};
use uuid::Uuid;

use super::{
    Progress,
    format::{FORMAT, KINDS, Line, MemberLine, MessageLine, RoomLine, UserLine, VERSION},
};
use crate::store::{Record, RoomRecord, RoomType, Store, username_key};

/// No line may be longer: no record can be, since MongoDB keeps none larger
/// than 16 MiB. A longer line is garbage, and is not read into memory whole.
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;

/// Records written per call to [`Store::import`] unless told otherwise:
/// large enough that a round trip or a commit per batch costs little, small
/// enough to hold in memory and in one MongoDB request.
pub const DEFAULT_BATCH: usize = 500;

#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Import into a store that already holds records, leaving out those
    /// whose identity it has (see docs/export.md).
    pub merge: bool,
    /// Records per batch.
    pub batch: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            merge: false,
            batch: DEFAULT_BATCH,
        }
    }
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Imported {
    pub inserted: u64,
    /// Left out because the store had their identity (only with `merge`).
    pub skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is not what the format allows; nothing was written.
    #[error("line {line}: {reason}")]
    BadLine { line: u64, reason: String },
    #[error(
        "the target store is not empty ({0} records): import into an empty store, \
         or pass --merge to leave out the records it already has"
    )]
    NotEmpty(u64),
    #[error("reading the file")]
    Read(#[from] std::io::Error),
    #[error("the store failed")]
    Store(#[from] crate::error::Error),
}

fn bad(line: u64, reason: impl Into<String>) -> ImportError {
    ImportError::BadLine {
        line,
        reason: reason.into(),
    }
}

/// Imports the export file `input` into `store`. Reads it twice: the first
/// pass checks every line (and, with `merge`, what the store already holds)
/// and writes nothing, so a bad file leaves the store as it was and names
/// its first bad line; the second loads it in batches.
pub async fn import<R>(
    store: &dyn Store,
    mut input: R,
    options: ImportOptions,
    progress: &Progress,
) -> Result<Imported, ImportError>
where
    R: AsyncRead + AsyncSeek + Unpin,
{
    if !options.merge {
        let held = store.counts().await?.total();
        if held > 0 {
            return Err(ImportError::NotEmpty(held));
        }
    }
    input.seek(SeekFrom::Start(0)).await?;
    progress.start("checking", None);
    let (records, owners) = check(store, &mut input, options.merge, progress).await?;
    input.seek(SeekFrom::Start(0)).await?;
    progress.start("loading", Some(records));
    let imported = load(store, &mut input, options, &owners, progress).await?;
    progress.finish();
    Ok(imported)
}

/// The file's lines, numbered from 1, each parsed.
struct Lines<R> {
    reader: BufReader<R>,
    number: u64,
    buffer: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(reader: R) -> Self {
        Self {
            reader: BufReader::new(reader),
            number: 0,
            buffer: Vec::new(),
        }
    }

    /// The next line and its number; `None` at the end of the file.
    async fn next(&mut self) -> Result<Option<(u64, Line)>, ImportError> {
        self.buffer.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut self.buffer)
            .await?;
        if read == 0 {
            return Ok(None);
        }
        self.number += 1;
        let line = self.number;
        if self.buffer.pop() != Some(b'\n') {
            return Err(match read as u64 > MAX_LINE_BYTES {
                true => bad(line, "longer than any record can be (16 MiB)"),
                false => bad(
                    line,
                    "the file ends in the middle of this line: it is truncated",
                ),
            });
        }
        let text = std::str::from_utf8(&self.buffer)
            .map_err(|e| bad(line, format!("not UTF-8 text: {e}")))?;
        Ok(Some((line, parse(line, text)?)))
    }
}

/// Reads one line, telling an unknown kind of record from a malformed one.
fn parse(line: u64, text: &str) -> Result<Line, ImportError> {
    serde_json::from_str(text).map_err(|error| {
        #[derive(serde::Deserialize)]
        struct Kind {
            kind: serde_json::Value,
        }
        match serde_json::from_str::<Kind>(text) {
            Ok(Kind {
                kind: serde_json::Value::String(kind),
            }) if !KINDS.contains(&kind.as_str()) => bad(
                line,
                format!("unknown record kind {kind:?} (known: {})", KINDS.join(", ")),
            ),
            Ok(_) => bad(line, format!("not a valid record: {}", within_line(&error))),
            Err(_) => bad(
                line,
                format!("not a JSON record with a kind: {}", within_line(&error)),
            ),
        }
    })
}

/// serde_json's message with its position given as a column: the line it
/// counts is always 1, since it reads one line at a time.
fn within_line(error: &serde_json::Error) -> String {
    let message = error.to_string();
    let position = format!(" at line {} column {}", error.line(), error.column());
    match message.strip_suffix(&position) {
        Some(message) => format!("{message} (column {})", error.column()),
        None => message,
    }
}

/// Where in the file's fixed order the check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Header,
    Rooms,
    Users,
    /// Blocks and settings, which name users.
    People,
    Done,
}

/// The room whose members and messages are being read.
struct OpenRoom {
    identity: Uuid,
    seq: i64,
    /// The seq of its last message so far: 0 before the first.
    last_seq: i64,
    members: HashSet<Uuid>,
    /// (sender, client id) pairs seen.
    client_ids: HashSet<(Uuid, String)>,
    /// With `merge`: the room as the store already has it.
    stored: Option<RoomRecord>,
    /// A GROUP room's creator.
    group_creator: Option<Uuid>,
    /// Its first member line's user.
    first_member: Option<Uuid>,
    /// Whether its member lines carry roles (version 2).
    roles_given: bool,
}

impl OpenRoom {
    /// The member of a group of version 1 (no roles given) who owns it: its
    /// creator, or when gone its first member, as the store's migration to
    /// version 2 makes them.
    fn owner_of_version_1(&self) -> Option<(Uuid, Uuid)> {
        let creator = self.group_creator?;
        if self.roles_given {
            return None;
        }
        let owner = match self.members.contains(&creator) {
            true => creator,
            false => self.first_member?,
        };
        Some((self.identity, owner))
    }
}

/// What the first pass remembers, to find a repeat or a dangling reference:
/// one entry per record and unique value, each with the line it came on.
/// Memory grows with the file (tens of bytes a record), unlike the export's.
struct Checker<'a> {
    store: &'a dyn Store,
    merge: bool,
    stage: Stage,
    records: u64,
    room: Option<OpenRoom>,
    rooms: HashMap<Uuid, u64>,
    numbers: HashMap<String, u64>,
    pair_keys: HashMap<String, u64>,
    messages: HashMap<Uuid, u64>,
    users: HashMap<Uuid, u64>,
    usernames: HashMap<String, u64>,
    emails: HashMap<String, u64>,
    /// Users named by a room, member or message, with the first line naming
    /// each: users come last, so they are checked at the end.
    named_users: HashMap<Uuid, u64>,
    /// The owners of groups of version 1, by room.
    owners: HashSet<(Uuid, Uuid)>,
    /// (blocker, blocked) pairs seen.
    blocks: HashSet<(Uuid, Uuid)>,
    /// Users whose settings were seen.
    settings: HashSet<Uuid>,
}

/// The first pass: checks every line; how many records the file holds.
async fn check<R>(
    store: &dyn Store,
    input: R,
    merge: bool,
    progress: &Progress,
) -> Result<(u64, HashSet<(Uuid, Uuid)>), ImportError>
where
    R: AsyncRead + Unpin,
{
    let mut checker = Checker {
        store,
        merge,
        stage: Stage::Header,
        records: 0,
        room: None,
        rooms: HashMap::new(),
        numbers: HashMap::new(),
        pair_keys: HashMap::new(),
        messages: HashMap::new(),
        users: HashMap::new(),
        usernames: HashMap::new(),
        emails: HashMap::new(),
        named_users: HashMap::new(),
        owners: HashSet::new(),
        blocks: HashSet::new(),
        settings: HashSet::new(),
    };
    let mut lines = Lines::new(input);
    while let Some((line, parsed)) = lines.next().await? {
        checker.line(line, parsed).await?;
        progress.advance(1);
    }
    if checker.stage != Stage::Done {
        return Err(bad(
            lines.number + 1,
            "the file ends without its end line: it is truncated",
        ));
    }
    checker.named_users_exist().await?;
    Ok((checker.records, checker.owners))
}

impl Checker<'_> {
    async fn line(&mut self, line: u64, parsed: Line) -> Result<(), ImportError> {
        match (self.stage, parsed) {
            (Stage::Header, Line::Header(header)) => {
                if header.format != FORMAT {
                    return Err(bad(
                        line,
                        format!("not a chatroom export (format {:?})", header.format),
                    ));
                }
                if !(1..=VERSION).contains(&header.version) {
                    return Err(bad(
                        line,
                        format!(
                            "format version {} is not one this chatroom reads (it reads 1 to {VERSION})",
                            header.version
                        ),
                    ));
                }
                self.stage = Stage::Rooms;
                Ok(())
            }
            (Stage::Header, _) => Err(bad(line, "the first line must be the header")),
            (Stage::Done, _) => Err(bad(line, "a line after the end line")),
            (_, Line::Header(_)) => Err(bad(line, "a second header")),
            (Stage::Rooms, Line::Room(room)) => self.room(line, room).await,
            (Stage::Rooms, Line::Member(member)) => self.member(line, member).await,
            (Stage::Rooms, Line::Message(message)) => self.message(line, message).await,
            (Stage::Rooms, Line::Departure(departure)) => {
                self.counted();
                self.name_user(departure.user_identity, line);
                self.open_room(line, departure.room_identity, "departure")?;
                Ok(())
            }
            (
                Stage::Users,
                Line::Room(_) | Line::Member(_) | Line::Message(_) | Line::Departure(_),
            ) => Err(bad(
                line,
                "rooms, their members and their messages must come before the users",
            )),
            (Stage::Rooms | Stage::Users, Line::User(user)) => {
                self.stage = Stage::Users;
                self.close_room();
                self.user(line, user).await
            }
            (Stage::Rooms, Line::Block(_) | Line::Settings(_)) => {
                Err(bad(line, "blocks and settings must come after the users"))
            }
            (
                Stage::People,
                Line::Room(_)
                | Line::Member(_)
                | Line::Message(_)
                | Line::Departure(_)
                | Line::User(_),
            ) => Err(bad(
                line,
                "rooms and users must come before blocks and settings",
            )),
            (Stage::Users | Stage::People, Line::Block(block)) => {
                self.stage = Stage::People;
                self.counted();
                if block.blocker == block.blocked {
                    return Err(bad(line, format!("user {} blocks themself", block.blocker)));
                }
                if !self.blocks.insert((block.blocker, block.blocked)) {
                    return Err(bad(
                        line,
                        format!("{} blocks {} twice", block.blocker, block.blocked),
                    ));
                }
                self.name_user(block.blocker, line);
                self.name_user(block.blocked, line);
                Ok(())
            }
            (Stage::Users | Stage::People, Line::Settings(settings)) => {
                self.stage = Stage::People;
                self.counted();
                if !self.settings.insert(settings.user) {
                    return Err(bad(
                        line,
                        format!("the settings of {} come twice", settings.user),
                    ));
                }
                self.name_user(settings.user, line);
                Ok(())
            }
            (Stage::Rooms | Stage::Users | Stage::People, Line::End(end)) => {
                if end.records != self.records {
                    return Err(bad(
                        line,
                        format!(
                            "the end line counts {} records but {} came before it: \
                             lines are missing or were added",
                            end.records, self.records
                        ),
                    ));
                }
                self.stage = Stage::Done;
                Ok(())
            }
        }
    }

    fn counted(&mut self) {
        self.records += 1;
    }

    /// Done with the open room: its owner, when a group of version 1.
    fn close_room(&mut self) {
        if let Some(owner) = self.room.take().and_then(|room| room.owner_of_version_1()) {
            self.owners.insert(owner);
        }
    }

    fn name_user(&mut self, user: Uuid, line: u64) {
        self.named_users.entry(user).or_insert(line);
    }

    async fn room(&mut self, line: u64, room: RoomLine) -> Result<(), ImportError> {
        self.counted();
        if let Some(first) = self.rooms.insert(room.identity, line) {
            return Err(bad(
                line,
                format!("room {} is already on line {first}", room.identity),
            ));
        }
        if let Some(first) = self.numbers.insert(room.number.clone(), line) {
            return Err(bad(
                line,
                format!("room number {:?} is already on line {first}", room.number),
            ));
        }
        match (room.room_type, &room.pair_key) {
            (RoomType::Private, Some(pair_key)) => {
                if let Some(first) = self.pair_keys.insert(pair_key.clone(), line) {
                    return Err(bad(
                        line,
                        format!("the pair {pair_key} already has its private room on line {first}"),
                    ));
                }
            }
            (RoomType::Private, None) => {
                return Err(bad(line, "a PRIVATE room without its pair_key"));
            }
            (RoomType::Group, Some(_)) => {
                return Err(bad(line, "a GROUP room with a pair_key"));
            }
            (RoomType::Group, None) => {}
        }
        if room.seq < 0 {
            return Err(bad(line, format!("negative seq {}", room.seq)));
        }
        self.name_user(room.creator_identity, line);
        let stored = match self.merge {
            true => self.stored_room(line, &room).await?,
            false => None,
        };
        self.close_room();
        self.room = Some(OpenRoom {
            identity: room.identity,
            seq: room.seq,
            last_seq: 0,
            members: HashSet::new(),
            client_ids: HashSet::new(),
            stored,
            group_creator: (room.room_type == RoomType::Group).then_some(room.creator_identity),
            first_member: None,
            roles_given: false,
        });
        Ok(())
    }

    /// With `merge`: the store's room of this identity (to be left out), or
    /// an error when another room has its number or pair.
    async fn stored_room(
        &self,
        line: u64,
        room: &RoomLine,
    ) -> Result<Option<RoomRecord>, ImportError> {
        if let Some(stored) = self.store.room(room.identity).await? {
            return Ok(Some(stored));
        }
        if self.store.room_by_number(&room.number).await?.is_some() {
            return Err(bad(
                line,
                format!(
                    "room number {:?} is taken by another room in the target store",
                    room.number
                ),
            ));
        }
        if let Some(pair_key) = &room.pair_key
            && self.store.private_room(pair_key).await?.is_some()
        {
            return Err(bad(
                line,
                format!("the pair {pair_key} already has another private room in the target store"),
            ));
        }
        Ok(None)
    }

    /// The open room, when `room` is it; else why a record of `room` is out of place.
    fn open_room(
        &mut self,
        line: u64,
        room: Uuid,
        what: &str,
    ) -> Result<&mut OpenRoom, ImportError> {
        match &mut self.room {
            Some(open) if open.identity == room => Ok(open),
            _ => Err(bad(
                line,
                match self.rooms.get(&room) {
                    Some(room_line) => format!(
                        "a {what} of room {room} (line {room_line}) that does not follow \
                         its room: a room's members and messages come right after it"
                    ),
                    None => format!("a {what} of room {room}, which no line before it has"),
                },
            )),
        }
    }

    async fn member(&mut self, line: u64, member: MemberLine) -> Result<(), ImportError> {
        self.counted();
        self.name_user(member.user_identity, line);
        let store = self.store;
        let room = self.open_room(line, member.room_identity, "member")?;
        room.first_member.get_or_insert(member.user_identity);
        room.roles_given |= member.role.is_some();
        if !room.members.insert(member.user_identity) {
            return Err(bad(
                line,
                format!(
                    "user {} is already a member of this room",
                    member.user_identity
                ),
            ));
        }
        if !(0..=room.seq).contains(&member.last_read_seq) {
            return Err(bad(
                line,
                format!(
                    "last_read_seq {} is outside the room's 0 to {}",
                    member.last_read_seq, room.seq
                ),
            ));
        }
        if let Some(stored) = &room.stored {
            let known = store
                .member(member.room_identity, member.user_identity)
                .await?
                .is_some();
            if !known && member.last_read_seq > stored.seq {
                return Err(bad(
                    line,
                    format!(
                        "last_read_seq {} is beyond the target store's room, at seq {}",
                        member.last_read_seq, stored.seq
                    ),
                ));
            }
        }
        Ok(())
    }

    async fn message(&mut self, line: u64, message: MessageLine) -> Result<(), ImportError> {
        self.counted();
        self.name_user(message.sender_identity, line);
        if let Some(first) = self.messages.insert(message.identity, line) {
            return Err(bad(
                line,
                format!("message {} is already on line {first}", message.identity),
            ));
        }
        let store = self.store;
        let room = self.open_room(line, message.room_identity, "message")?;
        if message.seq <= room.last_seq {
            return Err(bad(
                line,
                format!(
                    "seq {} after seq {}: a room's messages come in seq order, each once",
                    message.seq, room.last_seq
                ),
            ));
        }
        if message.seq > room.seq {
            return Err(bad(
                line,
                format!("seq {} is beyond the room's seq {}", message.seq, room.seq),
            ));
        }
        room.last_seq = message.seq;
        if let Some(client_id) = &message.client_id
            && !room
                .client_ids
                .insert((message.sender_identity, client_id.clone()))
        {
            return Err(bad(
                line,
                format!("client_id {client_id:?} is already used by this sender in this room"),
            ));
        }
        if let Some(stored) = &room.stored {
            let at = store
                .messages_at(&[(message.room_identity, message.seq)])
                .await?;
            match at.first() {
                Some(there) if there.identity == message.identity => {}
                Some(_) => {
                    return Err(bad(
                        line,
                        format!(
                            "seq {} of room {} holds another message in the target store",
                            message.seq, message.room_identity
                        ),
                    ));
                }
                None if message.seq > stored.seq => {
                    return Err(bad(
                        line,
                        format!(
                            "the target store's room is at seq {}: adding seq {} would \
                             leave a hole in its sequence",
                            stored.seq, message.seq
                        ),
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }

    async fn user(&mut self, line: u64, user: UserLine) -> Result<(), ImportError> {
        self.counted();
        if let Some(first) = self.users.insert(user.identity, line) {
            return Err(bad(
                line,
                format!("user {} is already on line {first}", user.identity),
            ));
        }
        let username = username_key(&user.username);
        if let Some(first) = self.usernames.insert(username, line) {
            return Err(bad(
                line,
                format!("username {:?} is already on line {first}", user.username),
            ));
        }
        if let Some(first) = self.emails.insert(user.email.clone(), line) {
            return Err(bad(
                line,
                format!("email {:?} is already on line {first}", user.email),
            ));
        }
        if self.merge && self.store.user_by_identity(user.identity).await?.is_none() {
            if self.store.user_by_username(&user.username).await?.is_some() {
                return Err(bad(
                    line,
                    format!(
                        "username {:?} is taken by another user in the target store",
                        user.username
                    ),
                ));
            }
            if self.store.user_by_email(&user.email).await?.is_some() {
                return Err(bad(
                    line,
                    format!(
                        "email {:?} is taken by another user in the target store",
                        user.email
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Every user a line names is in the file (or, with `merge`, in the
    /// store); else the first line naming one that is not.
    async fn named_users_exist(&self) -> Result<(), ImportError> {
        let mut missing: Vec<(u64, Uuid)> = self
            .named_users
            .iter()
            .filter(|(user, _)| !self.users.contains_key(user))
            .map(|(&user, &line)| (line, user))
            .collect();
        if self.merge && !missing.is_empty() {
            let mut stored = HashSet::new();
            for chunk in missing.chunks(DEFAULT_BATCH) {
                let identities: Vec<Uuid> = chunk.iter().map(|(_, user)| *user).collect();
                for user in self.store.users_by_identities(&identities).await? {
                    stored.insert(user.identity);
                }
            }
            missing.retain(|(_, user)| !stored.contains(user));
        }
        match missing.into_iter().min() {
            Some((line, user)) => Err(bad(
                line,
                format!(
                    "names user {user}, who is not in the file{}",
                    if self.merge {
                        " nor in the target store"
                    } else {
                        ""
                    }
                ),
            )),
            None => Ok(()),
        }
    }
}

/// The second pass: writes the (checked) records in batches, in file order.
async fn load<R>(
    store: &dyn Store,
    input: R,
    options: ImportOptions,
    owners: &HashSet<(Uuid, Uuid)>,
    progress: &Progress,
) -> Result<Imported, ImportError>
where
    R: AsyncRead + Unpin,
{
    let mut imported = Imported::default();
    let mut batch: Vec<Record> = Vec::with_capacity(options.batch);
    let mut lines = Lines::new(input);
    while let Some((_, line)) = lines.next().await? {
        let owner = match &line {
            Line::Member(member) => owners.contains(&(member.room_identity, member.user_identity)),
            _ => false,
        };
        if let Some(record) = line.into_record(owner) {
            batch.push(record);
        }
        if batch.len() >= options.batch.max(1) {
            write(store, &mut batch, options.merge, &mut imported, progress).await?;
        }
    }
    write(store, &mut batch, options.merge, &mut imported, progress).await?;
    Ok(imported)
}

async fn write(
    store: &dyn Store,
    batch: &mut Vec<Record>,
    merge: bool,
    imported: &mut Imported,
    progress: &Progress,
) -> Result<(), ImportError> {
    if batch.is_empty() {
        return Ok(());
    }
    let loaded = store.import(batch, merge).await?;
    imported.inserted += loaded.inserted;
    imported.skipped += loaded.skipped;
    progress.advance(batch.len() as u64);
    batch.clear();
    Ok(())
}
