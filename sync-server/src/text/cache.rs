//! Recently written text documents, kept decoded per server process (like
//! [`crate::merge::cache`] for record documents).
//!
//! A yrs `Doc` is a shared handle, not a value: a copy handed to a transaction that later rolls
//! back would leave the cache holding uncommitted edits. So a push *takes* the document out of
//! the cache and *puts* it back only after its transaction committed; a rolled-back push just
//! drops it, and the next push reloads from the database.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use uuid::Uuid;
use yrs::Doc;

/// Text documents kept per process. Contract bodies are tens to hundreds of KB decoded.
pub const CAPACITY: usize = 512;

type Entries = LruCache<(Uuid, Uuid), (i64, Doc)>;

#[derive(Clone)]
pub struct TextCache {
    entries: Arc<Mutex<Entries>>,
}

impl Default for TextCache {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl std::fmt::Debug for TextCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCache").finish_non_exhaustive()
    }
}

impl TextCache {
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes and returns the document if the cache holds exactly `version` of it.
    pub fn take(&self, org_id: Uuid, doc_id: Uuid, version: i64) -> Option<Doc> {
        let mut entries = self.lock();
        match entries.pop(&(org_id, doc_id)) {
            Some((v, doc)) if v == version => Some(doc),
            _ => None,
        }
    }

    /// Remembers a committed document version.
    pub fn put(&self, org_id: Uuid, doc_id: Uuid, version: i64, doc: Doc) {
        self.lock().put((org_id, doc_id), (version, doc));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_document_is_gone_until_put_back() {
        let cache = TextCache::with_capacity(4);
        let (org, a) = (Uuid::from_u128(1), Uuid::from_u128(2));
        cache.put(org, a, 3, Doc::new());
        assert!(
            cache.take(org, a, 4).is_none(),
            "another version was written"
        );
        assert!(
            cache.take(org, a, 3).is_none(),
            "a stale take drops the entry"
        );
        cache.put(org, a, 5, Doc::new());
        assert!(cache.take(org, a, 5).is_some());
        assert!(
            cache.take(org, a, 5).is_none(),
            "taken: a rollback cannot leak"
        );
    }
}
