//! `searchMessages` on MongoDB: each message carries its search terms, an
//! array with a multikey index, and a query narrows by them, then checks
//! each candidate exactly (docs/deploy.md, "Search", says why not `$text`
//! and what each path costs).
//!
//! A message's terms are its words, every character of its runs of
//! unspaced text, and every pair of neighbouring characters in them
//! ([`terms_of`]). A query's word is an anchored `$regex` on the terms (a
//! range of the index); its run is the run itself when one character
//! long, else all of its pairs. Pairs are far rarer than single
//! characters, so they narrow much more; but having every pair of "中文字"
//! does not make a run contain it ("中文 文字" has both), and so every
//! candidate is checked with [`search::matches`] before it counts.

use std::collections::BTreeSet;

use futures_util::TryStreamExt;
use mongodb::bson::{self, Document, doc};
use serde::Deserialize;

use crate::{
    error::{Error, Problem, Result},
    store::{
        MessageRecord, MessageSearch,
        search::{self, Term, Token},
    },
};

use super::{
    MongoStore,
    documents::{MessageDoc, identity_strings},
    regex_escape,
};

/// The terms a message is found by: its words, and the characters and
/// the pairs of neighbouring characters of its runs; each once, sorted.
pub fn terms_of(content: &str) -> Vec<String> {
    let mut terms = BTreeSet::new();
    for token in search::tokens(content) {
        match token {
            Token::Word(word) => {
                terms.insert(word);
            }
            Token::Run(run) => {
                let chars: Vec<char> = run.chars().collect();
                terms.extend(chars.iter().map(char::to_string));
                terms.extend(chars.windows(2).map(|pair| pair.iter().collect()));
            }
        }
    }
    terms.into_iter().collect()
}

/// The condition on the terms that every message holding `term` meets.
fn narrowing(term: &Term) -> Document {
    match term {
        Term::Prefix(prefix) => {
            doc! { "search_terms": { "$regex": format!("^{}", regex_escape(prefix)) } }
        }
        Term::Chars(chars) => {
            let chars: Vec<char> = chars.chars().collect();
            let pairs: BTreeSet<String> =
                chars.windows(2).map(|pair| pair.iter().collect()).collect();
            match pairs.is_empty() {
                true => doc! { "search_terms": chars.iter().collect::<String>() },
                false => doc! { "search_terms": { "$all": pairs.into_iter().collect::<Vec<_>>() } },
            }
        }
    }
}

/// Where a message stands in the order of a search: newest first, ties by
/// identity.
#[derive(Debug, Deserialize)]
struct Position {
    created_at: bson::DateTime,
    identity: String,
}

/// How many candidates one round trip brings beyond the page: a few, as
/// nearly every candidate is a match.
const SLACK: usize = 8;

impl MongoStore {
    /// [`Store::search_messages`](crate::store::Store::search_messages).
    pub(super) async fn search(&self, search: &MessageSearch) -> Result<Vec<MessageRecord>> {
        if search.rooms.is_empty() || search.terms.is_empty() || search.limit == 0 {
            return Ok(Vec::new());
        }
        let narrowings: Vec<Document> = search.terms.iter().map(narrowing).collect();
        let mut filter = doc! {
            "room_identity": { "$in": identity_strings(&search.rooms) },
            "$and": narrowings,
        };
        if let Some(after) = search.after {
            let position = self
                .timed(
                    self.messages
                        .clone_with_type::<Position>()
                        .find_one(doc! { "identity": after.to_string() })
                        .projection(doc! { "created_at": 1, "identity": 1 }),
                )
                .await?
                .ok_or(Error::bad_input("after", Problem::Cursor))?;
            filter.insert(
                "$or",
                vec![
                    doc! { "created_at": { "$lt": position.created_at } },
                    doc! {
                        "created_at": position.created_at,
                        "identity": { "$lt": position.identity },
                    },
                ],
            );
        }
        let batch = u32::try_from(search.limit.saturating_add(SLACK)).unwrap_or(u32::MAX);
        let found = self
            .timed(async {
                let mut candidates = self
                    .messages
                    .find(filter)
                    .sort(doc! { "created_at": -1, "identity": -1 })
                    .batch_size(batch)
                    .await?;
                let mut found = Vec::new();
                while found.len() < search.limit
                    && let Some(candidate) = candidates.try_next().await?
                {
                    if search::matches(&candidate.content, &search.terms) {
                        found.push(candidate);
                    }
                }
                Ok(found)
            })
            .await?;
        found.into_iter().map(MessageDoc::into_record).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_found_by_its_words_characters_and_pairs() {
        assert_eq!(
            terms_of("Hello hello 中文吧"),
            ["hello", "中", "中文", "吧", "文", "文吧"]
        );
    }

    #[test]
    fn a_run_narrows_by_its_pairs_and_a_word_by_its_beginning() {
        assert_eq!(
            narrowing(&Term::Chars("中文字".into())),
            doc! { "search_terms": { "$all": ["中文", "文字"] } }
        );
        assert_eq!(
            narrowing(&Term::Chars("中".into())),
            doc! { "search_terms": "中" }
        );
        assert_eq!(
            narrowing(&Term::Prefix("hel".into())),
            doc! { "search_terms": { "$regex": "^hel" } }
        );
    }
}
