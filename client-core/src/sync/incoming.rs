//! Applying server messages to the replica. Each message is handled in one SQLite
//! transaction; in-memory state (pending count, cached documents) changes only after it
//! commits.
//!
//! Cursors: `Synced` persists the server's cursor. A `Change` advances the cursor only after
//! its subscription reached `Synced` on this connection, because before that the server may
//! still be streaming a snapshot or catching up, and a cursor persisted mid-way would skip
//! changes after a reconnect. Re-receiving changes is harmless: automerge and Yjs ignore
//! duplicates. Text collections are handled in `text` (changes) and here (snapshots, cursors).

use automerge::AutoCommit;
use rusqlite::{Connection, TransactionBehavior};
use syncline_protocol::schema;
use syncline_protocol::{DocSnapshot, MutationId, ServerMessage};
use uuid::Uuid;

use super::merge::{heads, known_schema, merge_remote};
use super::{LastError, Phase, SyncEvent, SyncSession, TextEvent};
use crate::cache::CachedDoc;
use crate::client::Client;
use crate::doc;
use crate::error::{ClientError, Result};
use crate::store::{documents, meta, outbox, texts};

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
            ServerMessage::Awareness { doc_id, update } => {
                Ok(vec![SyncEvent::Text(TextEvent::Awareness {
                    doc_id,
                    update: update.into_vec(),
                })])
            }
        }
    }

    fn on_snapshot(&mut self, sub_id: u32, docs: Vec<DocSnapshot>) -> Result<Vec<SyncEvent>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let mut events = Vec::new();
        let mut touched = Vec::new();
        let mut touched_texts = Vec::new();
        if let Some(listed) = self
            .sync
            .subs
            .get_mut(&sub_id)
            .and_then(|s| s.snapshot.as_mut())
        {
            listed.extend(docs.iter().map(|d| d.doc_id));
        }
        for snapshot in docs {
            if let Some(collection) = schema::text_collection(&snapshot.collection) {
                documents::clear_unlisted(&tx, snapshot.doc_id)?;
                // The state is one update holding the whole document; it merges like any.
                let (entry, changed) = super::text::apply_confirmed(
                    &tx,
                    &mut self.texts,
                    self.client_id,
                    collection,
                    snapshot.doc_id,
                    &snapshot.state,
                )?;
                touched_texts.push((snapshot.doc_id, entry));
                if changed {
                    let update = snapshot.state.into_vec();
                    events.extend(super::text::changed_events(
                        collection,
                        snapshot.doc_id,
                        update,
                    ));
                }
                continue;
            }
            let Some(schema) = known_schema(&snapshot.collection, snapshot.doc_id) else {
                continue;
            };
            documents::clear_unlisted(&tx, snapshot.doc_id)?;
            // The snapshot is a whole saved document; its changes merge like any others.
            let mut state = AutoCommit::load(&snapshot.state)
                .map_err(|e| ClientError::document(snapshot.doc_id, e))?;
            let changes = state.get_changes(&[]);
            let (doc, changed) = merge_remote(
                &tx,
                &mut self.cache,
                &self.actor,
                schema,
                snapshot.doc_id,
                changes,
            )?;
            touched.push((snapshot.doc_id, doc));
            if changed {
                events.push(SyncEvent::DocumentChanged {
                    collection: snapshot.collection,
                    doc_id: snapshot.doc_id,
                });
            }
        }
        tx.commit()?;
        for (id, doc) in touched {
            self.cache.put(id, doc);
        }
        for (id, entry) in touched_texts {
            self.texts.put(id, entry);
        }
        tracing::debug!(sub_id, changed = events.len(), "snapshot chunk applied");
        Ok(events)
    }

    fn on_synced(&mut self, sub_id: u32, cursor: u64) -> Result<Vec<SyncEvent>> {
        let Some(sub) = self.sync.subs.get_mut(&sub_id) else {
            tracing::warn!(sub_id, "Synced for an unknown subscription");
            return Ok(Vec::new());
        };
        let collection = sub.collection;
        let listed = sub.snapshot.take();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let mut events = Vec::new();
        let mut purged = Vec::new();
        if let Some(listed) = listed {
            let text = schema::text_collection(collection).is_some();
            let ids = if text {
                texts::ids_in_collection(&tx, collection)?
            } else {
                documents::ids_in_collection(&tx, collection)?
            };
            for doc_id in ids {
                if listed.contains(&doc_id) {
                    continue;
                }
                if !outbox::for_doc(&tx, doc_id)?.is_empty() {
                    // A local creation on its way, or a document the user lost: dropped once
                    // its changes are answered unless the server sends it meanwhile
                    // (`drop_if_unlisted`; a wrong guess heals through `resync`).
                    documents::mark_unlisted(&tx, doc_id)?;
                    continue;
                }
                if text {
                    texts::delete(&tx, doc_id)?;
                } else {
                    super::purge::delete_record(&tx, collection, doc_id)?;
                }
                purged.push(doc_id);
                events.push(SyncEvent::Evicted {
                    doc_id,
                    collection: Some(collection.to_owned()),
                });
            }
        }
        meta::set_cursor(&tx, collection, cursor)?;
        tx.commit()?;
        for doc_id in purged {
            tracing::info!(%doc_id, collection, "not in the fresh snapshot: dropped");
            self.cache.forget(doc_id);
            self.texts.forget(doc_id);
        }
        if let Some(sub) = self.sync.subs.get_mut(&sub_id) {
            sub.synced = true;
        }
        events.push(SyncEvent::Synced {
            sub_id,
            collection: collection.to_owned(),
            cursor,
        });
        Ok(events)
    }

    fn on_change(
        &mut self,
        seq: u64,
        doc_id: Uuid,
        collection: String,
        payload: &[u8],
        mid: Option<MutationId>,
    ) -> Result<Vec<SyncEvent>> {
        if let Some(text) = schema::text_collection(&collection) {
            return self.on_text_change(seq, doc_id, text, payload, mid);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let mut events = Vec::new();
        let mut touched = None;
        let mut changed = false;
        if let Some(schema) = known_schema(&collection, doc_id) {
            documents::clear_unlisted(&tx, doc_id)?;
            match doc::parse_change(doc_id, payload) {
                Ok(change) => {
                    let merged = merge_remote(
                        &tx,
                        &mut self.cache,
                        &self.actor,
                        schema,
                        doc_id,
                        vec![change],
                    );
                    let (doc, working_changed) = match merged {
                        Ok(merged) => merged,
                        Err(ClientError::MissingHistory(doc_id)) => {
                            drop(tx);
                            return self.resync(&collection, doc_id);
                        }
                        Err(e) => return Err(e),
                    };
                    touched = Some(doc);
                    changed = working_changed;
                }
                // A server bug; retrying cannot fix it, so skip it like a foreign change.
                Err(e) => {
                    tracing::error!(seq, error = %e, "undecodable change from the server; skipped")
                }
            }
        }
        // Our own change coming back is as good as its Ack.
        let mut acked = 0;
        if let Some(mid) = mid.filter(|m| m.client_id == self.client_id)
            && outbox::remove(&tx, mid.seq)?
        {
            acked = 1;
            events.push(SyncEvent::Acked { mid, doc_id, seq });
        }
        advance_cursor(&tx, &self.sync, &collection, seq)?;
        tx.commit()?;
        if let Some(doc) = touched {
            self.cache.put(doc_id, doc);
        }
        self.pending = self.pending.saturating_sub(acked);
        if changed {
            events.push(SyncEvent::DocumentChanged { collection, doc_id });
        }
        Ok(events)
    }

    /// A change arrived whose history this replica never received (a document it dropped
    /// while the server still counted it as readable, or a stream that skipped it): nothing
    /// was applied. The collection's cursor is cleared so the next connection starts from a
    /// full snapshot, and the transport must reconnect (see `Received::Resync`).
    pub(super) fn resync(&mut self, collection: &str, doc_id: Uuid) -> Result<Vec<SyncEvent>> {
        tracing::warn!(%doc_id, collection, "change without its history: resyncing from a snapshot");
        self.cache.forget(doc_id);
        meta::clear_cursor(&self.conn, collection)?;
        self.sync.resync = true;
        Ok(Vec::new())
    }

    fn on_ack(&mut self, mid: MutationId, seq: u64) -> Result<Vec<SyncEvent>> {
        if mid.client_id != self.client_id {
            tracing::warn!(?mid, "Ack for another client's mutation");
            return Ok(Vec::new());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let Some(entry) = outbox::get(&tx, mid.seq)? else {
            // Already answered (its Change echo arrived first, or a retransmit was re-acked).
            return Ok(Vec::new());
        };
        outbox::remove(&tx, mid.seq)?;
        let mut touched = None;
        if let Some(text) = schema::text_collection(&entry.collection) {
            // The working state has the update already; it is now confirmed too.
            if texts::append_confirmed(&tx, entry.doc_id, &entry.payload)? {
                let working = self.texts.get(entry.doc_id).map(|e| &e.doc);
                super::text::compact(&tx, entry.doc_id, text, working)?;
            }
        } else if let Some(mut doc) = self.cache.take(&tx, entry.doc_id, &self.actor)? {
            let change = doc::parse_change(entry.doc_id, &entry.payload)?;
            let CachedDoc {
                confirmed, working, ..
            } = &mut doc;
            let confirmed =
                confirmed.get_or_insert_with(|| AutoCommit::new().with_actor(self.actor.clone()));
            let before = heads(confirmed);
            doc::apply_confirmed(entry.doc_id, confirmed, working, vec![change])?;
            if heads(confirmed) != before {
                documents::store_confirmed(&tx, entry.doc_id, &confirmed.save())?;
            }
            touched = Some(doc);
        }
        // (An unlisted document is not dropped on an Ack: the server follows an Ack on a
        // document the user may not read with an `Evict`.)
        tx.commit()?;
        if let Some(doc) = touched {
            self.cache.put(entry.doc_id, doc);
        }
        self.pending = self.pending.saturating_sub(1);
        Ok(vec![SyncEvent::Acked {
            mid,
            doc_id: entry.doc_id,
            seq,
        }])
    }
}

/// Persists a change's seq as the collection's cursor once its subscription is synced on this
/// connection (see the module header). Runs inside the caller's transaction.
pub(super) fn advance_cursor(
    conn: &Connection,
    sync: &SyncSession,
    collection: &str,
    seq: u64,
) -> Result<()> {
    if sync.sub_for(collection).is_some_and(|s| s.synced) {
        let current = meta::cursor(conn, collection)?.unwrap_or(0);
        if seq > current {
            meta::set_cursor(conn, collection, seq)?;
        }
    }
    Ok(())
}
