//! `searchMessages` on SQLite: an FTS5 index of every message that is not
//! deleted, filled in batches, and the query that pages through it newest
//! first.
//!
//! The index (`message_search`, made by the third migration) is
//! contentless: it keeps the tokens and not the text, which the messages
//! table has already. Each row has two columns: `room`, the room's identity
//! as one token, and `words`, the message's [`search::tokens`] as FTS5
//! reads them ([`indexed_words`]).
//!
//! Writing an FTS5 row costs little, but each transaction that writes any
//! costs a new segment of the index (about 85 µs here, docs/perf.md): paid
//! by every commit of the writer, it halved how many messages a second the
//! store takes. So a message is not indexed in the transaction that stores
//! it. Triggers on `messages` queue it in `message_search_pending` instead
//! (an append to a small table), and take an edited or deleted message out
//! of the index at once; [`index_pending`] moves the queue into the index,
//! hundreds at a time: the writer after its batches, an import in its own
//! transaction, and the store when it opens. A search reads the index and
//! the queue, so a message is found as soon as it is stored.
//!
//! An FTS5 row's id is its message's `search_key`: the millisecond the
//! message was sent, times [`KEYS_PER_MILLISECOND`], plus its place among
//! the messages of that millisecond. Walking the index by id downwards is
//! walking the messages newest first, so a page is the first `limit`
//! matches below the previous page's last key: no sort, however many
//! messages match. The key is a column of its own, not the table's rowid,
//! which `VACUUM` may renumber.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::{
    error::{Error, Problem, Result},
    store::{
        MessageRecord, MessageSearch,
        search::{self, Term, Token},
    },
};

use super::{
    rows::{MESSAGE_COLUMNS, message_from_row},
    schema::db_error,
};

/// How many messages one millisecond has room for in the search keys: a
/// message's key is its `created_at` in milliseconds times this, plus its
/// place among those sent in the same millisecond. 2^21 leaves the keys
/// of every date before the year 2100 inside an `i64`, and room for an
/// import of two million messages stamped with one time.
pub const KEYS_PER_MILLISECOND: i64 = 1 << 21;

/// A token standing between two runs of unspaced characters: a run is
/// indexed one character per token, so that a query's run is a phrase of
/// its characters, and without it the last character of one run and the
/// first of the next would read as neighbours. No query has it: it is
/// neither a letter nor a digit.
const RUN_BREAK: char = '·';

/// The tokens of `content` as FTS5's `ascii` tokenizer reads them back:
/// separated by spaces, a run one character at a time. Tokens hold only
/// letters and digits, and the tokenizer splits only on ASCII characters
/// that are neither (any other character is part of a token), so it finds
/// exactly these tokens.
pub fn indexed_words(content: &str) -> String {
    fn push(words: &mut String, token: &str) {
        if !words.is_empty() {
            words.push(' ');
        }
        words.push_str(token);
    }
    let mut words = String::with_capacity(content.len() * 2);
    let mut after_run = false;
    for token in search::tokens(content) {
        match token {
            Token::Word(word) => {
                push(&mut words, &word);
                after_run = false;
            }
            Token::Run(run) => {
                if after_run {
                    push(&mut words, RUN_BREAK.encode_utf8(&mut [0; 4]));
                }
                for c in run.chars() {
                    push(&mut words, c.encode_utf8(&mut [0; 4]));
                }
                after_run = true;
            }
        }
    }
    words
}

/// How many queued messages one transaction indexes at most when the
/// queue is emptied: a few tens of milliseconds of holding the write lock.
const INDEX_CHUNK: usize = 2_000;

/// Empties the queue into the index, [`INDEX_CHUNK`] messages a
/// transaction: at the store's opening (after an upgrade, every message
/// stored before) and from the writer.
pub fn index_queue(conn: &mut Connection) -> Result<()> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error)?;
        let indexed = index_pending(&tx, INDEX_CHUNK)?;
        tx.commit().map_err(db_error)?;
        if indexed < INDEX_CHUNK {
            return Ok(());
        }
    }
}

/// Indexes up to `most` queued messages, oldest key first, in the caller's
/// transaction; how many it took from the queue.
pub fn index_pending(conn: &Connection, most: usize) -> Result<usize> {
    let most = i64::try_from(most).unwrap_or(i64::MAX);
    let queued: Vec<(i64, String, String)> = conn
        .prepare_cached(
            "SELECT queued.search_key, replace(room_identity, '-', ''), content
             FROM message_search_pending AS queued
             CROSS JOIN messages ON messages.search_key = queued.search_key
             ORDER BY queued.search_key LIMIT ?1",
        )
        .and_then(|mut statement| {
            statement
                .query_map([most], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
                .collect()
        })
        .map_err(db_error)?;
    let mut index = conn
        .prepare_cached("INSERT INTO message_search (rowid, room, words) VALUES (?1, ?2, ?3)")
        .map_err(db_error)?;
    let mut dequeue = conn
        .prepare_cached("DELETE FROM message_search_pending WHERE search_key = ?1")
        .map_err(db_error)?;
    for (key, room, content) in &queued {
        index
            .execute(params![key, room, indexed_words(content)])
            .map_err(db_error)?;
        dequeue.execute([key]).map_err(db_error)?;
    }
    Ok(queued.len())
}

/// An FTS5 string: in double quotes, any inside doubled.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

/// The FTS5 query for `terms` in `rooms`: one of the rooms, and in the
/// words every term, a prefix as a prefix query and a run as the phrase
/// of its characters.
fn match_expression(terms: &[Term], rooms: &[uuid::Uuid]) -> String {
    let rooms: Vec<String> = rooms
        .iter()
        .map(|room| quoted(&room.simple().to_string()))
        .collect();
    let words: Vec<String> = terms
        .iter()
        .map(|term| match term {
            Term::Prefix(prefix) => format!("{}*", quoted(prefix)),
            Term::Chars(chars) => {
                let spaced: Vec<String> = chars.chars().map(String::from).collect();
                quoted(&spaced.join(" "))
            }
        })
        .collect();
    format!(
        "room : ({}) AND words : ({})",
        rooms.join(" OR "),
        words.join(" AND ")
    )
}

/// The queued messages with a key below `?1`, and their keys. The queue
/// is read first (`CROSS JOIN` keeps SQLite to that order): it is short,
/// while the messages below a key may be millions, and without statistics
/// the planner was seen to walk those.
fn queued_below() -> String {
    format!(
        "SELECT {MESSAGE_COLUMNS}, queued.search_key
         FROM message_search_pending AS queued
         CROSS JOIN messages ON messages.search_key = queued.search_key
         WHERE queued.search_key < ?1"
    )
}

/// A message found, with its search key (after [`MESSAGE_COLUMNS`]).
fn keyed_from_row(row: &Row<'_>) -> rusqlite::Result<(i64, MessageRecord)> {
    Ok((row.get(14)?, message_from_row(row)?))
}

/// [`Store::search_messages`](crate::store::Store::search_messages) on `conn`.
pub fn search(conn: &Connection, search: &MessageSearch) -> Result<Vec<MessageRecord>> {
    if search.rooms.is_empty() || search.terms.is_empty() || search.limit == 0 {
        return Ok(Vec::new());
    }
    let below = match search.after {
        None => i64::MAX,
        Some(after) => conn
            .prepare_cached("SELECT search_key FROM messages WHERE identity = ?1")
            .and_then(|mut statement| {
                statement.query_row([after.to_string()], |row| row.get::<_, Option<i64>>(0))
            })
            .optional()
            .map_err(db_error)?
            .flatten()
            .ok_or(Error::bad_input("after", Problem::Cursor))?,
    };
    let limit = i64::try_from(search.limit).unwrap_or(i64::MAX);
    // The page of keys first, then their messages: the index walk stops
    // after `limit` matches, and only those are read.
    let mut found: Vec<(i64, MessageRecord)> = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS}, hit FROM (
                 SELECT rowid AS hit FROM message_search
                 WHERE message_search MATCH ?1 AND rowid < ?2
                 ORDER BY rowid DESC LIMIT ?3
             )
             JOIN messages ON search_key = hit"
        ))
        .and_then(|mut statement| {
            statement
                .query_map(
                    params![match_expression(&search.terms, &search.rooms), below, limit],
                    keyed_from_row,
                )?
                .collect()
        })
        .map_err(db_error)?;
    // The messages not indexed yet: at most a few hundred, checked here.
    let rooms: HashSet<uuid::Uuid> = search.rooms.iter().copied().collect();
    let queued: Vec<(i64, MessageRecord)> = conn
        .prepare_cached(&queued_below())
        .and_then(|mut statement| statement.query_map([below], keyed_from_row)?.collect())
        .map_err(db_error)?;
    found.extend(queued.into_iter().filter(|(_, message)| {
        rooms.contains(&message.room_identity) && search::matches(&message.content, &search.terms)
    }));
    found.sort_unstable_by_key(|(key, _)| std::cmp::Reverse(*key));
    found.truncate(search.limit);
    Ok(found.into_iter().map(|(_, message)| message).collect())
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng, rngs::StdRng};

    use super::*;

    #[test]
    fn runs_are_indexed_a_character_at_a_time_and_kept_apart() {
        assert_eq!(
            indexed_words("Hello 我们说中文吧, 中文! x"),
            "hello 我 们 说 中 文 吧 · 中 文 x"
        );
        assert_eq!(indexed_words("中文abc文字"), "中 文 abc 文 字");
        assert_eq!(indexed_words("?!"), "");
    }

    /// An empty database of the latest schema.
    fn migrated() -> Connection {
        let mut conn = Connection::open_in_memory().expect("a database");
        rusqlite_migration::Migrations::from_slice(super::super::schema::MIGRATIONS)
            .to_latest(&mut conn)
            .expect("the schema");
        conn
    }

    #[test]
    fn the_queue_is_read_before_the_messages_it_names() {
        let conn = migrated();
        let plan: Vec<String> = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", queued_below()))
            .and_then(|mut statement| statement.query_map([i64::MAX], |row| row.get(3))?.collect())
            .expect("a plan");
        assert!(plan[0].contains(" queued "), "{plan:?}");
        assert!(plan[1].contains("messages_search_key"), "{plan:?}");
    }

    #[test]
    fn a_query_is_one_of_the_rooms_and_every_term_in_the_words() {
        let room = uuid::Uuid::nil();
        assert_eq!(
            match_expression(&search::terms("Hel 中文"), &[room]),
            "room : (\"00000000000000000000000000000000\") AND words : (\"hel\"* AND \"中 文\")"
        );
    }

    /// What the generated queries and messages are made of: what people
    /// type, and what could break an FTS5 expression or set the index apart
    /// from [`search::matches`]: FTS5's syntax, keywords and column names,
    /// NUL, combining marks, zero-width characters, emoji, the unspaced
    /// scripts, [`RUN_BREAK`], and characters that NFKC or lower case turn
    /// into several or into ASCII.
    #[rustfmt::skip]
    const PIECES: &[&str] = &[
        " ", " ", " ", " ", "a", "b", "e", "h", "l", "o", "x", "Z", "0", "7", "ab", "hello", "Hel",
        "\"", "*", "^", ":", "(", ")", "+", "-", ".", ",", "'", "_", "/", "\\", "{", "}", "[",
        "#", "@", "%", "&", "|", "AND", "OR", "NOT", "NEAR", "NEAR(", "room", "words", "rowid",
        "\0", "\u{301}", "\u{307}", "\u{3099}", "e\u{301}", "\u{200B}", "\u{200C}",
        "\u{200D}", "\u{2060}", "\u{FEFF}", "\u{AD}", "😀", "👍🏽", "🇫🇷", "👨‍👩‍👧", "·", "中",
        "文", "中文", "我们", "说", "吧", "日本語", "ひらがな", "カタカナ", "ｶﾀｶﾅ", "ー", "・",
        "々", "한국어", "하세요", "ㅎ", "\u{1100}", "\u{1161}", "𠀀", "½", "℡", "⑴", "ﬁ", "ﬀ",
        "Ⅻ", "①", "㍿", "Ｈｅｌｌｏ", "İ", "ẞ", "ß", "Σ", "ǅ", "ﷺ",
    ];

    /// Up to `most` pieces, now and then a random code point among them.
    fn text(rng: &mut StdRng, most: usize) -> String {
        (0..rng.gen_range(0..=most))
            .map(|_| match rng.gen_bool(0.05) {
                true => rng.r#gen::<char>().to_string(),
                false => PIECES[rng.gen_range(0..PIECES.len())].to_owned(),
            })
            .collect()
    }

    /// Part of `content`, so that queries find something: a run of its
    /// characters, with a piece before or after it now and then.
    fn part_of(rng: &mut StdRng, content: &str) -> String {
        let chars: Vec<char> = content.chars().collect();
        let start = rng.gen_range(0..=chars.len());
        let end = rng.gen_range(start..=chars.len().min(start + 12));
        let mut part: String = chars[start..end].iter().collect();
        if rng.gen_bool(0.3) {
            part.insert_str(0, &text(rng, 1));
        }
        if rng.gen_bool(0.3) {
            part.push_str(&text(rng, 1));
        }
        part
    }

    /// A typed query must never be an internal error, and the index must
    /// answer what the contract says (`search::matches`): generated
    /// queries, about half of them parts of the messages, against
    /// generated messages in two rooms, searched in one room and in both.
    /// Every query with a word in it is searched: those `SearchQuery`
    /// accepts, and more words than it allows.
    #[test]
    fn every_query_with_a_word_finds_in_the_index_exactly_what_matches_says() {
        let mut rng = StdRng::seed_from_u64(17);
        let conn = migrated();
        // Messages without their rooms and sender: only the index is tested.
        conn.execute_batch("PRAGMA foreign_keys = OFF")
            .expect("no foreign keys");
        let rooms = [uuid::Uuid::from_u128(1), uuid::Uuid::from_u128(2)];
        let start = chrono::DateTime::from_timestamp_millis(1_700_000_000_000).expect("a time");
        let messages: Vec<MessageRecord> = (1..=120)
            .map(|seq| {
                crate::store::NewMessage {
                    identity: uuid::Uuid::from_u128(1000 + seq as u128),
                    room_identity: rooms[seq as usize % 2],
                    sender_identity: rooms[0],
                    content: text(&mut rng, 30),
                    client_id: None,
                    created_at: start + chrono::Duration::milliseconds(seq),
                    reply_to: None,
                }
                .at(seq, seq)
            })
            .collect();
        for message in &messages {
            super::super::rows::insert_stored_message(&conn, message, false).expect("stored");
        }
        assert_eq!(index_pending(&conn, usize::MAX).expect("indexed"), 120);

        let (mut queries, mut found_any) = (0, 0);
        for round in 0..2000 {
            let query = match rng.gen_bool(0.5) {
                true => text(&mut rng, 10),
                false => {
                    let content = &messages[rng.gen_range(0..messages.len())].content;
                    part_of(&mut rng, content)
                }
            };
            let terms = search::terms(&query);
            if terms.is_empty() {
                continue;
            }
            let searched = match round % 2 {
                0 => &rooms[..1],
                _ => &rooms[..],
            };
            let found: Vec<uuid::Uuid> = search(
                &conn,
                &MessageSearch {
                    terms: terms.clone(),
                    rooms: searched.to_vec(),
                    after: None,
                    limit: 1000,
                },
            )
            .unwrap_or_else(|error| panic!("{query:?} failed: {error:?}"))
            .iter()
            .map(|message| message.identity)
            .collect();
            let expected: Vec<uuid::Uuid> = messages
                .iter()
                .rev()
                .filter(|message| {
                    searched.contains(&message.room_identity)
                        && search::matches(&message.content, &terms)
                })
                .map(|message| message.identity)
                .collect();
            assert_eq!(found, expected, "{query:?}, terms {terms:?}");
            queries += 1;
            found_any += usize::from(!found.is_empty());
        }
        assert!(
            queries > 1000 && found_any > 300,
            "{queries} queries, {found_any} found something"
        );
    }
}
