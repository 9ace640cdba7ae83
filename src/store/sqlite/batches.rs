//! Reads over many keys at once (the rooms of a page, the users they name)
//! in a bounded number of statements, and a prefix search as an index range.

use std::{collections::HashSet, hash::Hash};

use rusqlite::{Connection, Row, params_from_iter, types::Value};
use uuid::Uuid;

use crate::error::Result;

use super::schema::db_error;

/// At most this many items go into one statement's `IN` or `VALUES` list:
/// reads over many rooms take a bounded number of statements, each far below
/// SQLite's limit on bound values.
const CHUNK: usize = 500;

/// `items` without repeats, first occurrence kept: a repeat would come back
/// twice from a `VALUES` join.
pub fn distinct<T: Copy + Eq + Hash>(items: &[T]) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .iter()
        .copied()
        .filter(|item| seen.insert(*item))
        .collect()
}

/// `count` placeholders for an `IN` list.
pub fn marks(count: usize) -> String {
    vec!["?"; count].join(", ")
}

/// `count` two-value rows for a `VALUES` list, read as `column1`, `column2`.
pub fn pairs(count: usize) -> String {
    vec!["(?, ?)"; count].join(", ")
}

pub fn text(identity: Uuid) -> Value {
    Value::Text(identity.to_string())
}

/// Runs one statement per [`CHUNK`] of `items` and gathers the rows: `sql`
/// is given the chunk's length, `bind` the chunk, returning its values in
/// placeholder order.
pub fn chunked<I, T>(
    conn: &Connection,
    items: &[I],
    sql: impl Fn(usize) -> String,
    bind: impl Fn(&[I]) -> Vec<Value>,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut found = Vec::new();
    for chunk in items.chunks(CHUNK) {
        let mut statement = conn.prepare(&sql(chunk.len())).map_err(db_error)?;
        let rows = statement
            .query_map(params_from_iter(bind(chunk)), &read)
            .map_err(db_error)?;
        for row in rows {
            found.push(row.map_err(db_error)?);
        }
    }
    Ok(found)
}

/// The least string greater than every string starting with `prefix`, so a
/// prefix search is an index range (`>= prefix AND < end`) in which `_` and
/// `%` are plain characters. `None` when no string is greater: then
/// `>= prefix` alone is exact.
pub fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        if let Some(next) = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}
