//! Applying server messages to the replica. Each message is handled in one SQLite
//! transaction; in-memory counters change only after it commits.
//!
//! Cursors: `Synced` persists the server's cursor. A `Change` advances the cursor only after
//! its subscription reached `Synced` on this connection, because before that the server may
//! still be streaming a snapshot or catching up, and a cursor persisted mid-way would skip
//! changes after a reconnect. Re-receiving changes is harmless: automerge ignores duplicates.

use automerge::{AutoCommit, Change};
use rusqlite::Connection;
use syncline_protocol::schema::{self, CollectionSchema};
use syncline_protocol::{DocSnapshot, MutationId, ServerMessage};
use uuid::Uuid;

use super::{LastError, Phase, SyncEvent};
use crate::client::Client;
use crate::doc;
use crate::error::{ClientError, Result};
use crate::store::{documents, meta, outbox, rows};

impl Client {
    /// Applies one server message; returns what happened, for the UI.
    pub fn handle(&mut self, message: ServerMessage) -> Result<Vec<SyncEvent>> {
        match message {
            ServerMessage::Welcome {
                protocol_version,
                user_id,
                org_id,
                session_expires_at,
            } => {
                tracing::debug!(protocol_version, %user_id, %org_id, "welcomed");
                meta::set_session_identity(&self.conn, user_id, org_id)?;
                self.sync.phase = Phase::Welcomed;
                self.sync.last_error = None;
                Ok(vec![SyncEvent::Welcomed {
                    user_id,
                    org_id,
                    session_expires_at,
                }])
            }
            ServerMessage::Snapshot { sub_id, docs } => self.on_snapshot(sub_id, docs),
            ServerMessage::Synced { sub_id, cursor } => self.on_synced(sub_id, cursor),
            ServerMessage::Change {
                seq,
                doc_id,
                collection,
                payload,
                mid,
            } => self.on_change(seq, doc_id, collection, &payload, mid),
            ServerMessage::Ack { mid, seq } => self.on_ack(mid, seq),
            ServerMessage::Reject { mid, code, message } => self.on_reject(mid, code, message),
            ServerMessage::Evict { doc_id } => self.on_evict(doc_id),
            ServerMessage::Reauthed { session_expires_at } => {
                Ok(vec![SyncEvent::Reauthed { session_expires_at }])
            }
            ServerMessage::Pong { nonce } => Ok(vec![SyncEvent::Pong { nonce }]),
            ServerMessage::Error { code, message } => {
                tracing::warn!(%code, %message, "server refused a message");
                self.sync.last_error = Some(LastError {
                    code: Some(code),
                    close_code: None,
                    message: message.clone(),
                });
                Ok(vec![SyncEvent::ServerError { code, message }])
            }
        }
    }

    fn on_snapshot(&mut self, sub_id: u32, docs: Vec<DocSnapshot>) -> Result<Vec<SyncEvent>> {
        let tx = self.conn.transaction()?;
        let mut events = Vec::new();
        for snapshot in docs {
            let Some(schema) = known_schema(&snapshot.collection, snapshot.doc_id) else {
                continue;
            };
            // The snapshot is a whole saved document; its changes merge like any others.
            let mut state = AutoCommit::load(&snapshot.state)
                .map_err(|e| ClientError::document(snapshot.doc_id, e))?;
            let changes = state.get_changes(&[]);
            let changed = merge_remote(&tx, &self.actor, schema, snapshot.doc_id, changes)?;
            if changed {
                events.push(SyncEvent::DocumentChanged {
                    collection: snapshot.collection,
                    doc_id: snapshot.doc_id,
                });
            }
        }
        tx.commit()?;
        tracing::debug!(sub_id, changed = events.len(), "snapshot chunk applied");
        Ok(events)
    }

    fn on_synced(&mut self, sub_id: u32, cursor: u64) -> Result<Vec<SyncEvent>> {
        let Some(sub) = self.sync.subs.get_mut(&sub_id) else {
            tracing::warn!(sub_id, "Synced for an unknown subscription");
            return Ok(Vec::new());
        };
        meta::set_cursor(&self.conn, sub.collection, cursor)?;
        sub.synced = true;
        Ok(vec![SyncEvent::Synced {
            sub_id,
            collection: sub.collection.to_owned(),
            cursor,
        }])
    }

    fn on_change(
        &mut self,
        seq: u64,
        doc_id: Uuid,
        collection: String,
        payload: &[u8],
        mid: Option<MutationId>,
    ) -> Result<Vec<SyncEvent>> {
        let tx = self.conn.transaction()?;
        let mut events = Vec::new();
        let changed = match known_schema(&collection, doc_id) {
            None => false,
            Some(schema) => match doc::parse_change(doc_id, payload) {
                Ok(change) => merge_remote(&tx, &self.actor, schema, doc_id, vec![change])?,
                Err(e) => {
                    // A server bug; retrying cannot fix it, so skip it like a foreign change.
                    tracing::error!(seq, error = %e, "undecodable change from the server; skipped");
                    false
                }
            },
        };
        // Our own change coming back is as good as its Ack.
        let mut acked = 0;
        if let Some(mid) = mid.filter(|m| m.client_id == self.client_id)
            && outbox::remove(&tx, mid.seq)?
        {
            acked = 1;
            events.push(SyncEvent::Acked { mid, doc_id, seq });
        }
        if self.sync.sub_for(&collection).is_some_and(|s| s.synced) {
            let current = meta::cursor(&tx, &collection)?.unwrap_or(0);
            if seq > current {
                meta::set_cursor(&tx, &collection, seq)?;
            }
        }
        tx.commit()?;
        self.pending -= acked;
        if changed {
            events.push(SyncEvent::DocumentChanged { collection, doc_id });
        }
        Ok(events)
    }

    fn on_ack(&mut self, mid: MutationId, seq: u64) -> Result<Vec<SyncEvent>> {
        if mid.client_id != self.client_id {
            tracing::warn!(?mid, "Ack for another client's mutation");
            return Ok(Vec::new());
        }
        let tx = self.conn.transaction()?;
        let Some(entry) = outbox::get(&tx, mid.seq)? else {
            // Already answered (its Change echo arrived first, or a retransmit was re-acked).
            return Ok(Vec::new());
        };
        outbox::remove(&tx, mid.seq)?;
        if let Some(stored) = documents::load(&tx, entry.doc_id)? {
            let change = doc::parse_change(entry.doc_id, &entry.payload)?;
            let mut confirmed = doc::load(entry.doc_id, stored.confirmed.as_deref(), &self.actor)?;
            let mut working = doc::load(entry.doc_id, Some(&stored.working), &self.actor)?;
            doc::apply_confirmed(entry.doc_id, &mut confirmed, &mut working, vec![change])?;
            documents::store(
                &tx,
                entry.doc_id,
                &stored.collection,
                Some(&confirmed.save()),
                &stored.working,
            )?;
        }
        tx.commit()?;
        self.pending -= 1;
        Ok(vec![SyncEvent::Acked {
            mid,
            doc_id: entry.doc_id,
            seq,
        }])
    }

    fn on_evict(&mut self, doc_id: Uuid) -> Result<Vec<SyncEvent>> {
        let tx = self.conn.transaction()?;
        let stored = documents::load(&tx, doc_id)?;
        let removed = outbox::remove_for_doc(&tx, doc_id)?;
        documents::delete(&tx, doc_id)?;
        let collection = stored.map(|s| s.collection);
        if let Some(schema) = collection.as_deref().and_then(schema::collection) {
            rows::delete(&tx, schema, doc_id)?;
        }
        tx.commit()?;
        self.pending -= removed;
        tracing::info!(%doc_id, dropped_pending = removed, "document evicted");
        Ok(vec![SyncEvent::Evicted { doc_id, collection }])
    }
}

/// The schema of a collection the server sent, or `None` (with a warning) for one this client
/// does not know (a newer server); such documents are skipped.
fn known_schema(collection: &str, doc_id: Uuid) -> Option<&'static CollectionSchema> {
    let schema = schema::collection(collection);
    if schema.is_none() {
        tracing::warn!(collection, %doc_id, "server sent a document of an unknown collection; skipped");
    }
    schema
}

/// Merges server changes into a document's confirmed and working states (creating the
/// document if new) and re-materializes its row. Returns whether the working state changed.
fn merge_remote(
    conn: &Connection,
    actor: &automerge::ActorId,
    schema: &CollectionSchema,
    doc_id: Uuid,
    changes: Vec<Change>,
) -> Result<bool> {
    let stored = documents::load(conn, doc_id)?;
    if let Some(s) = &stored
        && s.collection != schema.name
    {
        tracing::warn!(%doc_id, local = %s.collection, remote = schema.name, "collection mismatch; skipped");
        return Ok(false);
    }
    let (confirmed, working) = match &stored {
        Some(s) => (s.confirmed.as_deref(), Some(s.working.as_slice())),
        None => (None, None),
    };
    let mut confirmed = doc::load(doc_id, confirmed, actor)?;
    let mut working = doc::load(doc_id, working, actor)?;
    let confirmed_before = heads(&mut confirmed);
    let working_before = heads(&mut working);
    // Confirmed first, so that it can pull in accepted local changes from the working state.
    doc::apply_confirmed(doc_id, &mut confirmed, &mut working, changes.clone())?;
    doc::apply(doc_id, &mut working, changes)?;
    let working_changed = heads(&mut working) != working_before;
    if stored.is_some() && !working_changed && heads(&mut confirmed) == confirmed_before {
        // Everything was known already (typically our own change echoed back).
        return Ok(false);
    }
    documents::store(
        conn,
        doc_id,
        schema.name,
        Some(&confirmed.save()),
        &working.save(),
    )?;
    // A new document whose first change still waits for its dependencies has no row yet.
    if working_changed {
        rows::materialize(conn, schema, doc_id, &working)?;
    }
    Ok(working_changed)
}

fn heads(doc: &mut AutoCommit) -> Vec<automerge::ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort_unstable();
    heads
}
