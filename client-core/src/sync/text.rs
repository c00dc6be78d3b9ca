//! Server messages about text documents (Yjs): snapshots, changes, acknowledgements, and
//! awareness. Rejections are in `text_reject`.
//!
//! The confirmed state only ever grows by updates the server accepted: its snapshots and
//! changes (other clients' and, as the echo of a pending mutation, ours) and, on `Ack`, the
//! acknowledged pending update. Each is appended to the document's confirmed log and applied
//! to the working `Doc` (a no-op for our own updates, which it already has). An own change
//! echoed after its `Ack` was already appended and is skipped.

use rusqlite::{Connection, TransactionBehavior};
use syncline_protocol::MutationId;
use syncline_protocol::schema::TextCollection;
use uuid::Uuid;
use yrs::Doc;

use super::{SyncEvent, TextEvent};
use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::store::{documents, meta, outbox, texts};
use crate::text::cache::TextCache;
use crate::text::ydoc::{self, TextEntry};

/// Applies an update the server accepted (a change or a snapshot state, v1) to a text
/// document's confirmed and working states, creating the document if new. Returns the
/// document, to go back into the cache once the transaction commits, and whether the working
/// state changed. Fails with [`ClientError::MissingHistory`] if the update needs changes this
/// replica never received (the taken document is then dropped, nothing is stored).
pub(super) fn apply_confirmed(
    conn: &Connection,
    texts_cache: &mut TextCache,
    replica: Uuid,
    collection: &'static TextCollection,
    doc_id: Uuid,
    update: &[u8],
) -> Result<(TextEntry, bool)> {
    let decoded = ydoc::decode_checked(doc_id, update)?;
    let entry = match texts_cache.take(conn, doc_id, replica)? {
        Some(entry) => entry,
        None => {
            let epoch = meta::allocate_text_epoch(conn)?;
            texts::create(conn, doc_id, collection.name, epoch)?;
            TextEntry {
                collection,
                doc: ydoc::new_doc(ydoc::client_id_for(replica, doc_id, epoch)),
            }
        }
    };
    if entry.collection.name != collection.name {
        tracing::warn!(%doc_id, local = entry.collection.name, remote = collection.name, "collection mismatch; skipped");
        return Ok((entry, false));
    }
    let changed = ydoc::apply(doc_id, &entry.doc, decoded)?;
    if ydoc::has_missing(&entry.doc) {
        return Err(ClientError::MissingHistory(doc_id));
    }
    if texts::append_confirmed(conn, doc_id, update)? {
        compact(conn, doc_id, collection, Some(&entry.doc))?;
    }
    Ok((entry, changed))
}

/// Folds a text document's confirmed log into its base. With no pending local update the
/// working state *is* the confirmed state and is encoded directly; otherwise the confirmed
/// state is rebuilt from SQLite.
pub(super) fn compact(
    conn: &Connection,
    doc_id: Uuid,
    collection: &TextCollection,
    working: Option<&Doc>,
) -> Result<()> {
    let pending = !outbox::for_doc_in(conn, doc_id, collection.name)?.is_empty();
    let base = match working {
        Some(doc) if !pending => ydoc::encode_state_v2(doc),
        _ => {
            let Some(stored) = texts::load(conn, doc_id)? else {
                return Ok(());
            };
            // The client id is irrelevant: nothing is edited in this copy.
            ydoc::encode_state_v2(&ydoc::load_confirmed(conn, doc_id, &stored, 1)?)
        }
    };
    tracing::debug!(%doc_id, bytes = base.len(), "text document compacted");
    texts::compact(conn, doc_id, &base)
}

/// The events for remote content applied to a text document's working state.
pub(super) fn changed_events(
    collection: &TextCollection,
    doc_id: Uuid,
    update: Vec<u8>,
) -> [SyncEvent; 2] {
    [
        SyncEvent::DocumentChanged {
            collection: collection.name.to_owned(),
            doc_id,
        },
        SyncEvent::Text(TextEvent::Updated {
            collection: collection.name.to_owned(),
            doc_id,
            update,
        }),
    ]
}

impl Client {
    /// A `Change` of a text collection (see `on_change` for records).
    pub(super) fn on_text_change(
        &mut self,
        seq: u64,
        doc_id: Uuid,
        collection: &'static TextCollection,
        payload: &[u8],
        mid: Option<MutationId>,
    ) -> Result<Vec<SyncEvent>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        documents::clear_unlisted(&tx, doc_id)?;
        let own = mid.filter(|m| m.client_id == self.client_id);
        let pending = match own {
            Some(mid) => outbox::get(&tx, mid.seq)?.filter(|e| e.doc_id == doc_id),
            None => None,
        };
        let mut events = Vec::new();
        let mut touched = None;
        let mut changed = false;
        if own.is_some() && pending.is_none() {
            tracing::debug!(%doc_id, seq, "own text change already confirmed");
        } else {
            match apply_confirmed(
                &tx,
                &mut self.texts,
                self.client_id,
                collection,
                doc_id,
                payload,
            ) {
                Ok((entry, working_changed)) => {
                    touched = Some(entry);
                    changed = working_changed;
                }
                Err(ClientError::MissingHistory(doc_id)) => {
                    drop(tx);
                    return self.resync(collection.name, doc_id);
                }
                // A server bug; retrying cannot fix it, so skip it like a foreign change.
                Err(e @ ClientError::InvalidUpdate { .. }) => {
                    tracing::error!(seq, error = %e, "undecodable text change from the server; skipped");
                }
                Err(e) => return Err(e),
            }
        }
        // Our own change coming back is as good as its Ack.
        let mut acked = 0;
        if let (Some(mid), Some(entry)) = (own, pending) {
            outbox::remove(&tx, entry.seq)?;
            acked = 1;
            events.push(SyncEvent::Acked { mid, doc_id, seq });
        }
        super::incoming::advance_cursor(&tx, &self.sync, collection.name, seq)?;
        tx.commit()?;
        if let Some(entry) = touched {
            self.texts.put(doc_id, entry);
        }
        self.pending = self.pending.saturating_sub(acked);
        if changed {
            events.extend(changed_events(collection, doc_id, payload.to_vec()));
        }
        Ok(events)
    }

    /// Queues a y-protocols awareness update (presence, cursor) of an open text document for
    /// the current connection; it is sent by the next [`Client::take_outgoing`]. Presence is
    /// only meaningful live, so while not connected it is dropped (false); an editor sends its
    /// state again after reconnecting.
    pub fn send_awareness(&mut self, doc_id: Uuid, update: Vec<u8>) -> bool {
        if self.sync.phase != super::Phase::Welcomed {
            return false;
        }
        self.sync.awareness_out.push((doc_id, update));
        true
    }
}
