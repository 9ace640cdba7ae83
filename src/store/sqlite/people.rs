//! [`People`] on SQLite: the `blocks` table, and the presence and digest
//! columns of `users`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};
use uuid::Uuid;

use crate::{
    error::{Lang, Result},
    store::{DigestDue, People, Profile, Seen},
};

use super::{
    SqliteStore,
    batches::{chunked, distinct, marks, text},
    rows::{PROFILE_COLUMNS, from_millis, parse_uuid, profile_from_row, to_millis},
    schema::db_error,
};

/// The profile columns of `users` read through the alias `u`.
fn profile_of_u() -> String {
    PROFILE_COLUMNS
        .split(", ")
        .map(|column| format!("u.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(super) fn lang_of(stored: &str) -> Lang {
    match stored {
        "zh" => Lang::Zh,
        _ => Lang::En,
    }
}

pub(super) fn lang_to_stored(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "zh",
        Lang::En => "en",
    }
}

#[async_trait]
impl People for SqliteStore {
    async fn block(&self, blocker: Uuid, blocked: Uuid, at: DateTime<Utc>) -> Result<bool> {
        self.run(move |conn| {
            let inserted = conn
                .execute(
                    "INSERT INTO blocks (blocker_identity, blocked_identity, created_at)
                     VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                    params![blocker.to_string(), blocked.to_string(), to_millis(at)],
                )
                .map_err(db_error)?;
            Ok(inserted > 0)
        })
        .await
    }

    async fn unblock(&self, blocker: Uuid, blocked: Uuid) -> Result<bool> {
        self.run(move |conn| {
            let deleted = conn
                .execute(
                    "DELETE FROM blocks WHERE blocker_identity = ?1 AND blocked_identity = ?2",
                    params![blocker.to_string(), blocked.to_string()],
                )
                .map_err(db_error)?;
            Ok(deleted > 0)
        })
        .await
    }

    async fn blocked_by(&self, blocker: Uuid) -> Result<Vec<Profile>> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {} FROM blocks JOIN users AS u ON u.identity = blocks.blocked_identity
                     WHERE blocks.blocker_identity = ?1 ORDER BY u.username_key",
                    profile_of_u()
                ))
                .map_err(db_error)?;
            let users = statement
                .query_map([blocker.to_string()], profile_from_row)
                .map_err(db_error)?;
            users.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }

    async fn blocked_identities(&self, blocker: Uuid) -> Result<Vec<Uuid>> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached("SELECT blocked_identity FROM blocks WHERE blocker_identity = ?1")
                .map_err(db_error)?;
            let users = statement
                .query_map([blocker.to_string()], |row| {
                    parse_uuid(&row.get::<_, String>(0)?)
                })
                .map_err(db_error)?;
            users.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }

    async fn blocks_between(&self, user: Uuid, others: &[Uuid]) -> Result<Vec<Uuid>> {
        let others = distinct(others);
        self.run(move |conn| {
            let found = chunked(
                conn,
                &others,
                |count| {
                    let marks = marks(count);
                    format!(
                        "SELECT blocked_identity FROM blocks
                         WHERE blocker_identity = ? AND blocked_identity IN ({marks})
                         UNION SELECT blocker_identity FROM blocks
                         WHERE blocked_identity = ? AND blocker_identity IN ({marks})"
                    )
                },
                |chunk| {
                    let mut values = vec![text(user)];
                    values.extend(chunk.iter().copied().map(text));
                    values.push(text(user));
                    values.extend(chunk.iter().copied().map(text));
                    values
                },
                |row| parse_uuid(&row.get::<_, String>(0)?),
            )?;
            Ok(distinct(&found))
        })
        .await
    }

    async fn has_blocked(&self, blocker: Uuid, blocked: Uuid) -> Result<bool> {
        self.run(move |conn| {
            conn.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM blocks
                                WHERE blocker_identity = ?1 AND blocked_identity = ?2)",
            )
            .and_then(|mut statement| {
                statement.query_row([blocker.to_string(), blocked.to_string()], |row| row.get(0))
            })
            .map_err(db_error)
        })
        .await
    }

    async fn sharing_rooms(&self, user: Uuid, others: &[Uuid]) -> Result<Vec<Uuid>> {
        let others = distinct(others);
        self.run(move |conn| {
            let found = chunked(
                conn,
                &others,
                |count| {
                    format!(
                        "SELECT DISTINCT theirs.user_identity
                         FROM room_members AS mine
                         JOIN room_members AS theirs ON theirs.room_identity = mine.room_identity
                         WHERE mine.user_identity = ? AND theirs.user_identity IN ({})",
                        marks(count)
                    )
                },
                |chunk| {
                    let mut values = vec![text(user)];
                    values.extend(chunk.iter().copied().map(text));
                    values
                },
                |row| parse_uuid(&row.get::<_, String>(0)?),
            )?;
            Ok(distinct(&found))
        })
        .await
    }

    async fn contacts(&self, user: Uuid) -> Result<Vec<Uuid>> {
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT DISTINCT theirs.user_identity
                     FROM room_members AS mine
                     JOIN room_members AS theirs ON theirs.room_identity = mine.room_identity
                     WHERE mine.user_identity = ?1 AND theirs.user_identity <> ?1",
                )
                .map_err(db_error)?;
            let users = statement
                .query_map([user.to_string()], |row| {
                    parse_uuid(&row.get::<_, String>(0)?)
                })
                .map_err(db_error)?;
            users.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }

    async fn record_seen(&self, seen: &[(Uuid, Seen)]) -> Result<()> {
        if seen.is_empty() {
            return Ok(());
        }
        let seen = seen.to_vec();
        self.transaction(move |tx| {
            let mut online = tx
                .prepare_cached("UPDATE users SET online = 1 WHERE identity = ?1")
                .map_err(db_error)?;
            let mut offline = tx
                .prepare_cached(
                    "UPDATE users SET online = 0, seen_at = ?2, away_since = ?2,
                                      digest_done = 0, digest_checked_at = NULL
                     WHERE identity = ?1",
                )
                .map_err(db_error)?;
            for (user, seen) in seen {
                match seen {
                    Seen::Online => online.execute([user.to_string()]),
                    Seen::Offline(at) => offline.execute(params![user.to_string(), to_millis(at)]),
                }
                .map_err(db_error)?;
            }
            Ok(())
        })
        .await
    }

    async fn all_gone(&self, at: DateTime<Utc>) -> Result<u64> {
        self.run(move |conn| {
            let changed = conn
                .execute(
                    "UPDATE users SET online = 0, seen_at = ?1, away_since = ?1,
                                      digest_done = 0, digest_checked_at = NULL
                     WHERE online = 1",
                    [to_millis(at)],
                )
                .map_err(db_error)?;
            Ok(changed as u64)
        })
        .await
    }

    async fn last_seen(&self, users: &[Uuid]) -> Result<Vec<(Uuid, DateTime<Utc>)>> {
        let users = distinct(users);
        self.run(move |conn| {
            chunked(
                conn,
                &users,
                |count| {
                    format!(
                        "SELECT identity, seen_at FROM users
                         WHERE identity IN ({}) AND seen_at IS NOT NULL",
                        marks(count)
                    )
                },
                |chunk| chunk.iter().copied().map(text).collect(),
                |row| {
                    Ok((
                        parse_uuid(&row.get::<_, String>(0)?)?,
                        from_millis(row.get(1)?)?,
                    ))
                },
            )
        })
        .await
    }

    async fn set_language(&self, user: Uuid, lang: Lang) -> Result<()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE users SET language = ?2 WHERE identity = ?1 AND language <> ?2",
                params![user.to_string(), lang_to_stored(lang)],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn email_digest(&self, user: Uuid) -> Result<Option<bool>> {
        self.run(move |conn| {
            conn.prepare_cached("SELECT email_digest FROM users WHERE identity = ?1")
                .and_then(|mut statement| {
                    statement
                        .query_row([user.to_string()], |row| row.get(0))
                        .optional()
                })
                .map_err(db_error)
        })
        .await
    }

    async fn set_email_digest(&self, user: Uuid, on: bool) -> Result<()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE users SET email_digest = ?2 WHERE identity = ?1",
                params![user.to_string(), on],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn digests_due(
        &self,
        away_before: DateTime<Utc>,
        checked_before: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<DigestDue>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |conn| {
            let mut statement = conn
                .prepare_cached(&format!(
                    "SELECT {PROFILE_COLUMNS}, coalesce(away_since, created_at), language
                     FROM users
                     WHERE online = 0 AND digest_done = 0 AND email_digest = 1
                       AND coalesce(away_since, created_at) < ?1
                       AND (digest_checked_at IS NULL OR digest_checked_at < ?2)
                     ORDER BY coalesce(away_since, created_at) LIMIT ?3"
                ))
                .map_err(db_error)?;
            let due = statement
                .query_map(
                    params![to_millis(away_before), to_millis(checked_before), limit],
                    |row| {
                        Ok(DigestDue {
                            profile: profile_from_row(row)?,
                            away_since: from_millis(row.get(8)?)?,
                            lang: lang_of(&row.get::<_, String>(9)?),
                        })
                    },
                )
                .map_err(db_error)?;
            due.collect::<rusqlite::Result<_>>().map_err(db_error)
        })
        .await
    }

    async fn digest_checked(&self, user: Uuid, at: DateTime<Utc>) -> Result<()> {
        self.run(move |conn| {
            conn.execute(
                "UPDATE users SET digest_checked_at = ?2 WHERE identity = ?1",
                params![user.to_string(), to_millis(at)],
            )
            .map(drop)
            .map_err(db_error)
        })
        .await
    }

    async fn claim_digest(&self, user: Uuid, away_since: DateTime<Utc>) -> Result<bool> {
        self.run(move |conn| {
            let claimed = conn
                .execute(
                    "UPDATE users SET digest_done = 1
                     WHERE identity = ?1 AND online = 0 AND digest_done = 0
                       AND coalesce(away_since, created_at) = ?2",
                    params![user.to_string(), to_millis(away_since)],
                )
                .map_err(db_error)?;
            Ok(claimed > 0)
        })
        .await
    }
}
