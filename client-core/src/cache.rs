//! An in-memory cache of recently used documents, decoded.
//!
//! Loading an automerge document re-hashes its whole history (about 4 ms for a record with
//! 2,000 changes, against 0.15 ms to save it), so reloading a hot document from SQLite for
//! every edit, Ack and echoed Change dominated sync time. Documents are cached decoded.
//!
//! Consistency with SQLite: an operation *takes* a document out of the cache (loading it if
//! absent), changes it, and *puts* it back only after its transaction committed. If anything
//! fails, the taken copy is dropped and the next operation reloads the committed state. Commits
//! by other connections to the same file are detected with `PRAGMA data_version` and clear
//! the cache.

use std::collections::HashMap;

use automerge::{ActorId, AutoCommit};
use rusqlite::Connection;
use uuid::Uuid;

use crate::doc;
use crate::error::Result;
use crate::store::documents;

/// Documents kept decoded by default.
pub const DEFAULT_CAPACITY: usize = 256;

/// A document's decoded states.
#[derive(Debug)]
pub(crate) struct CachedDoc {
    pub collection: String,
    /// `None` while nothing was acknowledged by the server.
    pub confirmed: Option<AutoCommit>,
    pub working: AutoCommit,
}

impl CachedDoc {
    /// A document that does not exist yet.
    pub fn new(collection: &str, actor: &ActorId) -> Self {
        Self {
            collection: collection.to_owned(),
            confirmed: None,
            working: AutoCommit::new().with_actor(actor.clone()),
        }
    }
}

#[derive(Debug)]
pub(crate) struct DocCache {
    capacity: usize,
    tick: u64,
    entries: HashMap<Uuid, (u64, CachedDoc)>,
    /// `PRAGMA data_version` when the cache was last known to match the file.
    data_version: Option<i64>,
}

impl DocCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            entries: HashMap::new(),
            data_version: None,
        }
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.shrink();
    }

    /// Forgets everything if another connection committed to the file since the last check
    /// (and says so). Call inside the operation's transaction, before taking documents.
    pub fn check(&mut self, conn: &Connection) -> Result<bool> {
        let version: i64 = conn.query_row("PRAGMA data_version", [], |r| r.get(0))?;
        if self.data_version != Some(version) {
            if self.data_version.is_some() {
                tracing::debug!("replica changed by another connection; document cache cleared");
            }
            self.entries.clear();
            self.data_version = Some(version);
            return Ok(true);
        }
        Ok(false)
    }

    /// Takes a document out of the cache, or loads it; `None` if it does not exist.
    pub fn take(
        &mut self,
        conn: &Connection,
        id: Uuid,
        actor: &ActorId,
    ) -> Result<Option<CachedDoc>> {
        if let Some((_, doc)) = self.entries.remove(&id) {
            return Ok(Some(doc));
        }
        let Some(stored) = documents::load(conn, id)? else {
            return Ok(None);
        };
        let confirmed = stored
            .confirmed
            .as_deref()
            .map(|b| doc::load(id, Some(b), actor))
            .transpose()?;
        let working = doc::load(id, Some(&stored.working), actor)?;
        Ok(Some(CachedDoc {
            collection: stored.collection,
            confirmed,
            working,
        }))
    }

    /// Drops a document (deleted, or changed outside the cache).
    pub fn forget(&mut self, id: Uuid) {
        self.entries.remove(&id);
    }

    /// Returns a document whose changes were committed.
    pub fn put(&mut self, id: Uuid, doc: CachedDoc) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        self.entries.insert(id, (self.tick, doc));
        self.shrink();
    }

    fn shrink(&mut self) {
        while self.entries.len() > self.capacity {
            // Linear scan: the cache is small and eviction happens once per insert at most.
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(id, _)| *id)
            else {
                return;
            };
            self.entries.remove(&oldest);
        }
    }
}
