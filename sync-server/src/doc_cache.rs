//! Recently written documents, kept decoded per server process, keyed by `(org, document)`
//! and valid for exactly one version of the document's row.
//!
//! Decoding a stored document costs time proportional to its history and was most of a push's
//! CPU time on busy documents (docs/benchmarks.md, record-doc-growth). A push locks the row,
//! which returns the current version without the state: if the cached copy has that version it
//! is used, otherwise (another process wrote it since, or it was evicted) the state is read and
//! decoded. Entries are added only after the writing transaction commits, so a cached copy is
//! never ahead of the database.
//!
//! Two instances: record documents ([`crate::merge::cache::DocCache`], copied out with
//! [`VersionedCache::get`]) and text documents ([`crate::text::cache::TextCache`], moved out
//! with [`VersionedCache::take`], because a yrs `Doc` is a shared handle, not a value: a copy
//! handed to a transaction that rolls back would leave the cache holding uncommitted edits).

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use uuid::Uuid;

type Entries<T> = LruCache<(Uuid, Uuid), (i64, T)>;

/// An LRU cache of decoded documents with the row version each was written at.
pub struct VersionedCache<T> {
    entries: Arc<Mutex<Entries<T>>>,
}

impl<T> Clone for VersionedCache<T> {
    fn clone(&self) -> Self {
        Self {
            entries: Arc::clone(&self.entries),
        }
    }
}

impl<T> std::fmt::Debug for VersionedCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedCache").finish_non_exhaustive()
    }
}

impl<T> VersionedCache<T> {
    pub fn with_capacity(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Arc::new(Mutex::new(LruCache::new(capacity))),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<T>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes and returns the document if the cache holds exactly `version` of it (a stale
    /// entry is dropped).
    pub fn take(&self, org_id: Uuid, doc_id: Uuid, version: i64) -> Option<T> {
        match self.lock().pop(&(org_id, doc_id)) {
            Some((v, doc)) if v == version => Some(doc),
            _ => None,
        }
    }

    /// Remembers a committed document version.
    pub fn put(&self, org_id: Uuid, doc_id: Uuid, version: i64, doc: T) {
        self.lock().put((org_id, doc_id), (version, doc));
    }
}

impl<T: Clone> VersionedCache<T> {
    /// A copy of the document if the cache holds exactly `version` of it.
    pub fn get(&self, org_id: Uuid, doc_id: Uuid, version: i64) -> Option<T> {
        match self.lock().get(&(org_id, doc_id)) {
            Some((v, doc)) if *v == version => Some(doc.clone()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_cached_version_is_returned_and_the_least_recent_goes_first() {
        let cache = VersionedCache::<u32>::with_capacity(2);
        let (org, a, b, c) = (
            Uuid::from_u128(1),
            Uuid::from_u128(2),
            Uuid::from_u128(3),
            Uuid::from_u128(4),
        );
        cache.put(org, a, 3, 30);
        assert_eq!(cache.get(org, a, 3), Some(30));
        assert_eq!(
            cache.get(org, a, 4),
            None,
            "a newer version was written elsewhere"
        );
        assert_eq!(
            cache.get(Uuid::from_u128(9), a, 3),
            None,
            "keys include the org"
        );
        cache.put(org, b, 1, 10);
        cache.put(org, c, 1, 11);
        assert_eq!(cache.get(org, a, 3), None, "least recently used is evicted");
    }

    #[test]
    fn a_taken_document_is_gone_until_put_back() {
        let cache = VersionedCache::<u32>::with_capacity(4);
        let (org, a) = (Uuid::from_u128(1), Uuid::from_u128(2));
        cache.put(org, a, 3, 1);
        assert_eq!(cache.take(org, a, 4), None, "another version was written");
        assert_eq!(cache.take(org, a, 3), None, "a stale take drops the entry");
        cache.put(org, a, 5, 2);
        assert_eq!(cache.take(org, a, 5), Some(2));
        assert_eq!(cache.take(org, a, 5), None, "taken: a rollback cannot leak");
    }
}
