//! Rolling back a rejected local change.
//!
//! The working state is rebuilt from the confirmed state plus the document's remaining
//! pending changes in the order they were made. A pending change whose dependencies are no
//! longer there (it built on the rejected one; with automerge that is every later local change
//! of the same document) cannot be applied: it is dropped too and reported as rejected with
//! `missing_dependency`, which is also what the server answers if it was already pushed.

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
        let tx = self.conn.transaction()?;
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

        if let Some(stored) = documents::load(&tx, doc_id)? {
            let mut working = doc::load(doc_id, stored.confirmed.as_deref(), &self.actor)?;
            for entry in outbox::for_doc(&tx, doc_id)? {
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
            let schema = schema::collection(&stored.collection);
            if stored.confirmed.is_none() && working.is_empty() {
                // The server never had this document (its creation was refused): forget it.
                documents::delete(&tx, doc_id)?;
                if let Some(schema) = schema {
                    rows::delete(&tx, schema, doc_id)?;
                }
            } else {
                documents::store(
                    &tx,
                    doc_id,
                    &stored.collection,
                    stored.confirmed.as_deref(),
                    &working.save(),
                )?;
                if let Some(schema) = schema {
                    rows::materialize(&tx, schema, doc_id, &working)?;
                }
            }
            events.push(SyncEvent::DocumentChanged {
                collection: stored.collection,
                doc_id,
            });
        }
        tx.commit()?;
        self.pending -= removed;
        Ok(events)
    }
}
