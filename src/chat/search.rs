//! `searchMessages`: which rooms a viewer searches, the query and the page,
//! and the cursors of the results.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use uuid::Uuid;

use super::{
    messages::Page,
    rooms::member_room,
    values::{PageSize, SearchQuery},
};
use crate::{
    app::App,
    auth::Viewer,
    error::{Error, Problem, Result},
    store::MessageSearch,
};

/// The page size when the client gives none.
pub const DEFAULT_PAGE: i32 = 20;

/// A result's cursor names its message: `s` and the identity, so that it
/// is told from a message's own cursor (a place in one room's history,
/// which search results, from many rooms, do not have).
const CURSOR_PREFIX: char = 's';

/// The cursor of a search result.
pub fn encode_cursor(message: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{}", message.simple()))
}

/// The message a search cursor names; `BAD_USER_INPUT` on `after` for
/// anything else, history cursors included.
pub fn decode_cursor(cursor: &str) -> Result<Uuid> {
    let bad = || Error::bad_input("after", Problem::Cursor);
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let identity = text
        .strip_prefix(CURSOR_PREFIX)
        .and_then(|hex| Uuid::try_parse(hex).ok())
        .ok_or_else(bad)?;
    if encode_cursor(identity) != cursor {
        return Err(bad());
    }
    Ok(identity)
}

/// A page of the messages matching `query` in the rooms the viewer
/// belongs to now, or only in `room` (`NOT_FOUND` when there is no such
/// room, `FORBIDDEN` when the viewer is not in it), newest first, after
/// the result `after` names.
#[tracing::instrument(skip_all, fields(viewer = %viewer.identity))]
pub async fn search_messages(
    app: &App,
    viewer: &Viewer,
    query: &str,
    room: Option<&str>,
    first: Option<i32>,
    after: Option<&str>,
) -> Result<Page> {
    let terms = SearchQuery::parse(query)?.into_terms();
    let size = PageSize::parse(
        "first",
        first.unwrap_or(DEFAULT_PAGE),
        app.config.limits.max_page_size,
    )?
    .get();
    let after = after.map(decode_cursor).transpose()?;
    let rooms = match room {
        Some(room) => vec![member_room(app, viewer, room).await?.0.identity],
        None => app
            .store
            .rooms_of_user(viewer.identity)
            .await?
            .into_iter()
            .map(|room| room.identity)
            .collect(),
    };
    let search = MessageSearch {
        terms,
        rooms,
        after,
        limit: size + 1,
    };
    let mut messages = app.store.search_messages(&search).await?;
    let has_next = messages.len() > size;
    messages.truncate(size);
    Ok(Page {
        messages,
        has_previous: after.is_some(),
        has_next,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_name_their_message_and_nothing_else() {
        let message = Uuid::new_v4();
        assert_eq!(decode_cursor(&encode_cursor(message)).unwrap(), message);
        let history = super::super::messages::encode_cursor(Uuid::new_v4(), 7);
        let hyphenated = URL_SAFE_NO_PAD.encode(format!("s{message}"));
        for bad in ["", "!!", "cw", history.as_str(), hyphenated.as_str()] {
            assert_eq!(
                decode_cursor(bad).unwrap_err().field(),
                Some("after"),
                "{bad:?}"
            );
        }
    }
}
