//! Open text documents, decoded: loading one replays its confirmed base, log and pending
//! updates, which is far too slow to repeat for every keystroke.
//!
//! Same discipline as the record cache (`crate::cache`): an operation *takes* a document out
//! (loading it if absent), changes it, and *puts* it back only after its SQLite transaction
//! committed, so a failed operation leaves no uncommitted edit in memory. The record cache's
//! `PRAGMA data_version` check clears this cache too (see `client::refresh`).

use std::collections::HashMap;

use rusqlite::Connection;
use uuid::Uuid;

use super::ydoc::{self, TextEntry};
use crate::error::Result;

/// Text documents kept decoded by default (they can be large; editors keep few open).
pub const DEFAULT_TEXT_CAPACITY: usize = 32;

#[derive(Debug)]
pub(crate) struct TextCache {
    capacity: usize,
    tick: u64,
    entries: HashMap<Uuid, (u64, TextEntry)>,
}

impl TextCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.shrink();
    }

    /// Takes a document out of the cache, or loads it; `None` if it is not stored.
    pub fn take(
        &mut self,
        conn: &Connection,
        id: Uuid,
        replica: Uuid,
    ) -> Result<Option<TextEntry>> {
        if let Some((_, entry)) = self.entries.remove(&id) {
            return Ok(Some(entry));
        }
        ydoc::load_working(conn, id, replica)
    }

    /// A cached document, without loading it.
    pub fn get(&self, id: Uuid) -> Option<&TextEntry> {
        self.entries.get(&id).map(|(_, entry)| entry)
    }

    /// Returns a document whose changes were committed.
    pub fn put(&mut self, id: Uuid, entry: TextEntry) {
        if self.capacity == 0 {
            return;
        }
        self.tick += 1;
        self.entries.insert(id, (self.tick, entry));
        self.shrink();
    }

    pub fn forget(&mut self, id: Uuid) {
        self.entries.remove(&id);
    }

    /// Forgets everything (another connection changed the file).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    fn shrink(&mut self) {
        while self.entries.len() > self.capacity {
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
