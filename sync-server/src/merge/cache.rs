//! Recently written documents, kept decoded per server process.
//!
//! Decoding a stored document (`Automerge::load`) costs time proportional to its history and
//! was most of a push's CPU time on busy documents (docs/benchmarks.md, record-doc-growth). The
//! cache keeps the merged document of each recent write with the version its row got. A push
//! locks the row, which returns the current version without the state: if the cached copy has
//! that version it is used, otherwise (another process wrote it since, or it was evicted) the
//! state is read and decoded. Entries are added only after the writing transaction commits, so
//! a cached copy is never ahead of the database.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use automerge::Automerge;
use lru::LruCache;
use uuid::Uuid;

/// Documents kept per process. A task document is a few KB decoded; this bounds the cache to
/// tens of MB.
pub const CAPACITY: usize = 4096;

/// `(org, document)` -> `(version, document)`.
type Entries = LruCache<(Uuid, Uuid), (i64, Automerge)>;

#[derive(Clone)]
pub struct DocCache {
    entries: Arc<Mutex<Entries>>,
}

impl Default for DocCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl std::fmt::Debug for DocCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocCache").finish_non_exhaustive()
    }
}

impl DocCache {
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the document if the cache holds exactly `version` of it.
    pub fn get(&self, org_id: Uuid, doc_id: Uuid, version: i64) -> Option<Automerge> {
        let mut entries = self.lock();
        match entries.get(&(org_id, doc_id)) {
            Some((v, doc)) if *v == version => Some(doc.clone()),
            _ => None,
        }
    }

    /// Remembers a committed document version.
    pub fn put(&self, org_id: Uuid, doc_id: Uuid, version: i64, doc: Automerge) {
        self.lock().put((org_id, doc_id), (version, doc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cached_version_is_returned() {
        let cache = DocCache::with_capacity(2);
        let (org, a, b, c) = (
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Uuid::from_u128(3),
            Uuid::from_u128(4),
        );
        cache.put(org, a, 3, Automerge::new());
        assert!(cache.get(org, a, 3).is_some());
        assert!(
            cache.get(org, a, 4).is_none(),
            "a newer version was written elsewhere"
        );
        assert!(
            cache.get(Uuid::from_u128(9), a, 3).is_none(),
            "keys include the org"
        );
        cache.put(org, b, 1, Automerge::new());
        cache.put(org, c, 1, Automerge::new());
        assert!(
            cache.get(org, a, 3).is_none(),
            "least recently used is evicted"
        );
    }
}
