//! Automatic persisted queries, the protocol Apollo Client's
//! persisted-queries link and urql's `persistedExchange` speak: a client
//! sends a document's SHA-256 in `extensions.persistedQuery.sha256Hash`
//! instead of the document; `PersistedQueryNotFound` asks it once for the
//! whole document with its hash, which is kept from then on. Its GETs then
//! fit a URL and a CDN's cache.
//!
//! Kept: in this instance, the [`CAPACITY`] last used documents of at most
//! [`MAX_DOCUMENT_BYTES`]; with Redis, in the kv too for [`SHARED_FOR`],
//! so that a client sent to another instance is not asked again. A larger
//! document runs but is not kept: the client sends it whole each time. A
//! kv that does not answer is a document not found, which the client
//! mends by sending the document. Only a document that parses is kept, and
//! keeping one in the kv counts as a write of the client's address.

use std::{net::IpAddr, num::NonZeroUsize, sync::Arc, sync::Mutex, time::Duration};

use async_graphql::{Request, Value};
use lru::LruCache;

use crate::{
    app::App,
    error::{Error, Malformed},
    rate_limit::Action,
};

/// Documents kept in an instance: far more than an app's operations.
pub const CAPACITY: NonZeroUsize = NonZeroUsize::new(1000).unwrap();

/// Larger documents are not kept: an app's operations are far smaller, and
/// the cap bounds what [`CAPACITY`] documents may take.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024;

/// How long the kv keeps a document since it was last sent whole.
pub const SHARED_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// The documents this instance knows by their hash.
pub struct PersistedQueries {
    documents: Mutex<LruCache<String, Arc<str>>>,
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self {
            documents: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

/// What a request's `persistedQuery` extension asks of the server.
pub enum Persisted {
    /// No such extension: the request carries its document.
    No,
    /// The document of this hash, which the request leaves out.
    Lookup(String),
    /// The request carries the document of this hash, to be kept.
    Keep(String),
}

impl Persisted {
    /// Reads the extension: version 1, and a hash of 64 hex digits.
    pub fn of(request: &Request) -> Result<Self, Error> {
        let Some(extension) = request.extensions.get("persistedQuery") else {
            return Ok(Persisted::No);
        };
        let malformed = || Error::Malformed(Malformed::Parameter("extensions"));
        let Value::Object(extension) = extension else {
            return Err(malformed());
        };
        let version = extension.get("version");
        let hash = match extension.get("sha256Hash") {
            Some(Value::String(hash))
                if version == Some(&Value::from(1))
                    && hash.len() == 64
                    && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                hash.to_ascii_lowercase()
            }
            _ => return Err(malformed()),
        };
        Ok(match request.query.is_empty() {
            true => Persisted::Lookup(hash),
            false => Persisted::Keep(hash),
        })
    }
}

fn kv_key(hash: &str) -> String {
    format!("persisted:{hash}")
}

fn sha256_hex(text: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

impl PersistedQueries {
    /// `request` with its document, found by its hash or kept under it (see
    /// the module's doc); `PersistedQueryNotFound` for a hash not known.
    pub async fn resolve(
        &self,
        app: &App,
        mut request: Request,
        client: IpAddr,
    ) -> Result<Request, Error> {
        match Persisted::of(&request)? {
            Persisted::No => {}
            Persisted::Lookup(hash) => {
                let document = match self.known(&hash) {
                    Some(document) => document,
                    None => self.shared(app, &hash).await?,
                };
                request.query = document.to_string();
            }
            Persisted::Keep(hash) => {
                if self.keep(&hash, &request.query)? {
                    self.share(app, &hash, &request.query, client).await;
                }
            }
        }
        Ok(request)
    }

    /// The document of `hash` if this instance knows it.
    pub fn known(&self, hash: &str) -> Option<Arc<str>> {
        crate::lock(&self.documents).get(hash).cloned()
    }

    /// Keeps `document` under `hash` in this instance, once it is checked to
    /// be the document of that hash; whether it was new here (and so is to
    /// be shared).
    pub fn keep(&self, hash: &str, document: &str) -> Result<bool, Error> {
        if sha256_hex(document) != hash {
            return Err(Error::Malformed(Malformed::PersistedQueryHash));
        }
        if document.len() > MAX_DOCUMENT_BYTES || super::document(document).is_none() {
            return Ok(false);
        }
        let mut documents = crate::lock(&self.documents);
        if documents.get(hash).is_some() {
            return Ok(false);
        }
        documents.put(hash.to_owned(), document.into());
        Ok(true)
    }

    /// The document of `hash` in the kv that instances share, kept here too.
    async fn shared(&self, app: &App, hash: &str) -> Result<Arc<str>, Error> {
        let Some(kv) = &app.shared_kv else {
            return Err(Error::PersistedQueryNotFound);
        };
        match kv.get(&kv_key(hash)).await {
            Ok(Some(document)) if sha256_hex(&document) == hash => {
                let document: Arc<str> = document.into();
                crate::lock(&self.documents).put(hash.to_owned(), document.clone());
                Ok(document)
            }
            _ => Err(Error::PersistedQueryNotFound),
        }
    }

    /// Shares `document` with the other instances through the kv, when
    /// there are others and the client's address may write.
    pub async fn share(&self, app: &App, hash: &str, document: &str, client: IpAddr) {
        let Some(kv) = &app.shared_kv else {
            return;
        };
        if app.limiter.check(Action::WriteFrom(client)).await.is_err() {
            return;
        }
        if let Err(error) = kv.set(&kv_key(hash), document, SHARED_FOR).await {
            tracing::warn!(%error, "a persisted query was not shared");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persisted(query: &str, hash: &str) -> Request {
        let mut request = Request::new(query);
        request.extensions.insert(
            "persistedQuery".into(),
            async_graphql::value!({ "version": 1, "sha256Hash": hash }),
        );
        request
    }

    #[test]
    fn a_document_is_kept_under_its_own_hash_only() {
        let queries = PersistedQueries::default();
        let document = "{ me { username } }";
        let hash = sha256_hex(document);
        assert!(matches!(
            queries.keep(&"0".repeat(64), document),
            Err(Error::Malformed(Malformed::PersistedQueryHash))
        ));
        assert!(queries.known(&hash).is_none());
        assert!(queries.keep(&hash, document).expect("its hash"));
        assert!(!queries.keep(&hash, document).expect("kept before"));
        assert_eq!(queries.known(&hash).as_deref(), Some(document));
    }

    #[test]
    fn large_and_broken_documents_are_not_kept() {
        let queries = PersistedQueries::default();
        let large = format!(
            "{{ me {{ username }} }} #{}",
            "x".repeat(MAX_DOCUMENT_BYTES)
        );
        let broken = "{ me {";
        for document in [large.as_str(), broken] {
            let hash = sha256_hex(document);
            assert!(!queries.keep(&hash, document).expect("its hash"));
            assert!(queries.known(&hash).is_none());
        }
    }

    #[test]
    fn the_extension_is_read_strictly() {
        let hash = sha256_hex("{ a }");
        assert!(matches!(
            Persisted::of(&persisted("", &hash)),
            Ok(Persisted::Lookup(found)) if found == hash
        ));
        assert!(matches!(
            Persisted::of(&persisted("{ a }", &hash.to_uppercase())),
            Ok(Persisted::Keep(found)) if found == hash
        ));
        assert!(matches!(
            Persisted::of(&Request::new("{ a }")),
            Ok(Persisted::No)
        ));
        for bad in ["", "xyz", &"g".repeat(64)] {
            assert!(Persisted::of(&persisted("", bad)).is_err(), "{bad}");
        }
    }
}
