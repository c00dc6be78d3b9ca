//! Rolling back a rejected local change (of a record; text documents are rebuilt by
//! `text_reject`).
//!
//! The working state is rebuilt from the confirmed state plus the document's remaining
//! pending changes in the order they were made. A pending change whose dependencies are no
//! longer there (it built on the rejected one; with automerge that is every later local change
//! of the same document) cannot be applied: it is dropped too and reported as rejected with
//! `missing_dependency`, which is also what the server answers if it was already pushed.

use automerge::AutoCommit;
use rusqlite::TransactionBehavior;
use syncline_protocol::schema;
use syncline_protocol::{ErrorCode, MutationId};

use super::SyncEvent;
use crate::client::Client;
use crate::doc;
use crate::error::Result;
use crate::store::{documents, outbox, rows};

impl Client {
    pub(super) fn on_reject(
        &mut self,
        mid: MutationId,
        code: ErrorCode,
        message: String,
    ) -> Result<Vec<SyncEvent>> {
        if mid.client_id != self.client_id {
            tracing::warn!(?mid, "Reject for another client's mutation");
            return Ok(Vec::new());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let Some(rejected) = outbox::get(&tx, mid.seq)? else {
            // Already dropped locally as dependent on an earlier rejection, or evicted.
            tracing::debug!(?mid, %code, "Reject for a mutation no longer pending");
            return Ok(Vec::new());
        };
        tracing::info!(?mid, doc_id = %rejected.doc_id, %code, %message, "local change rejected");
        outbox::remove(&tx, mid.seq)?;
        let doc_id = rejected.doc_id;
        let mut removed = 1;
        let mut events = vec![SyncEvent::Rejected {
            doc_id,
            mid,
            code,
            message,
        }];
        let mut keep = None;
        let mut keep_text = None;

        if let Some(text) = schema::text_collection(&rejected.collection) {
            let rebuilt = super::text_reject::rebuild(
                &tx,
                &mut self.texts,
                self.client_id,
                text,
                doc_id,
                mid,
            )?;
            removed += rebuilt.dropped;
            events.extend(rebuilt.events);
            keep_text = rebuilt.entry;
        } else if let Some(mut cached) = self.cache.take(&tx, doc_id, &self.actor)? {
            // A clone keeps the confirmed history decoded; reloading it from bytes would cost
            // a full re-hash of the document.
            let mut working = match &cached.confirmed {
                Some(confirmed) => confirmed.clone(),
                None => AutoCommit::new(),
            }
            .with_actor(self.actor.clone());
            for entry in outbox::for_doc_in(&tx, doc_id, &cached.collection)? {
                let change = doc::parse_change(doc_id, &entry.payload)?;
                if doc::deps_satisfied(&mut working, &change) {
                    doc::apply(doc_id, &mut working, vec![change])?;
                    continue;
                }
                outbox::remove(&tx, entry.seq)?;
                removed += 1;
                let dropped = MutationId {
                    client_id: self.client_id,
                    seq: entry.seq,
                };
                tracing::info!(mid = ?dropped, %doc_id, "dropping a local change that depended on a rejected one");
                events.push(SyncEvent::Rejected {
                    doc_id,
                    mid: dropped,
                    code: ErrorCode::MissingDependency,
                    message: format!("depends on rejected change {} of this client", mid.seq),
                });
            }
            let schema = schema::collection(&cached.collection);
            if cached.confirmed.is_none() && working.is_empty() {
                // The server never had this document (its creation was refused): forget it.
                documents::delete(&tx, doc_id)?;
                if let Some(schema) = schema {
                    rows::delete(&tx, schema, doc_id)?;
                }
            } else {
                documents::store_working(&tx, doc_id, &cached.collection, &working.save())?;
                if let Some(schema) = schema {
                    rows::materialize(&tx, schema, doc_id, &working)?;
                }
                cached.working = working;
                keep = Some(cached);
            }
            events.push(SyncEvent::DocumentChanged {
                collection: rejected.collection,
                doc_id,
            });
        }
        // Refused for access: a document the fresh snapshot did not list is one the user lost.
        // Refused for its content: the server judged it, so the user may read it.
        let dropped = if code == ErrorCode::Forbidden {
            super::purge::drop_if_unlisted(&tx, doc_id)?
        } else {
            documents::clear_unlisted(&tx, doc_id)?;
            None
        };
        tx.commit()?;
        if let Some(event) = dropped {
            self.cache.forget(doc_id);
            self.texts.forget(doc_id);
            events.push(event);
        } else {
            if let Some(doc) = keep {
                self.cache.put(doc_id, doc);
            }
            if let Some(entry) = keep_text {
                self.texts.put(doc_id, entry);
            }
        }
        self.pending = self.pending.saturating_sub(removed);
        Ok(events)
    }
}
