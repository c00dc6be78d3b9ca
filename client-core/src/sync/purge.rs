//! Removing documents the user may no longer read: on `Evict`, and when a fresh snapshot did
//! not list a document that only stayed for its pending changes. A record and its body share
//! their id, and both go.

use rusqlite::{Connection, TransactionBehavior};
use syncline_protocol::schema;
use uuid::Uuid;

use super::SyncEvent;
use crate::client::Client;
use crate::error::Result;
use crate::store::{documents, outbox, rows, texts};

impl Client {
    pub(super) fn on_evict(&mut self, doc_id: Uuid) -> Result<Vec<SyncEvent>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let removed = outbox::remove_for_doc(&tx, doc_id)?;
        let collection = purge(&tx, doc_id)?;
        tx.commit()?;
        self.cache.forget(doc_id);
        self.texts.forget(doc_id);
        self.pending = self.pending.saturating_sub(removed);
        tracing::info!(%doc_id, dropped_pending = removed, "document evicted");
        Ok(vec![SyncEvent::Evicted { doc_id, collection }])
    }
}

/// Deletes a record document and its row, and its body if any. Returns the collection of
/// what was deleted (the record's when both existed). Runs inside the caller's transaction.
pub(super) fn purge(conn: &Connection, doc_id: Uuid) -> Result<Option<String>> {
    let record = documents::collection_of(conn, doc_id)?;
    if let Some(collection) = &record {
        delete_record(conn, collection, doc_id)?;
    }
    let text = texts::collection_of(conn, doc_id)?;
    texts::delete(conn, doc_id)?;
    documents::clear_unlisted(conn, doc_id)?;
    Ok(record.or(text))
}

/// Deletes a record document and its materialized row.
pub(super) fn delete_record(conn: &Connection, collection: &str, doc_id: Uuid) -> Result<()> {
    documents::delete(conn, doc_id)?;
    if let Some(schema) = schema::collection(collection) {
        rows::delete(conn, schema, doc_id)?;
    }
    Ok(())
}

/// Drops a document a fresh snapshot did not list once a rejection left no local change to it
/// awaiting an answer; returns the `Evicted` event. Runs inside the caller's transaction; the
/// caller forgets the cached document.
pub(super) fn drop_if_unlisted(conn: &Connection, doc_id: Uuid) -> Result<Option<SyncEvent>> {
    if !documents::is_unlisted(conn, doc_id)? || !outbox::for_doc(conn, doc_id)?.is_empty() {
        return Ok(None);
    }
    let collection = purge(conn, doc_id)?;
    tracing::info!(%doc_id, "not readable (absent from the fresh snapshot) and no longer pending: dropped");
    Ok(Some(SyncEvent::Evicted { doc_id, collection }))
}
