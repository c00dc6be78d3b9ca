//! Reading and writing a text document's working state.
//!
//! A local edit is one Yjs transaction on the cached working `Doc`; the update it produced is
//! committed as one outbox entry in one SQLite transaction (with the document's row when it is
//! the first edit). The confirmed state is untouched: it only grows from the server (see
//! `sync::text`). A refused or failed edit drops the edited `Doc`, and the next access reloads
//! the committed state.

use rusqlite::TransactionBehavior;
use syncline_protocol::schema::TextCollection;
use syncline_protocol::text::BODY;
use uuid::Uuid;
use yrs::{Doc, Transact, TransactionMut, WriteTxn, XmlFragmentRef};

use super::ydoc::{self, TextEntry};
use crate::client::Client;
use crate::clock::now_millis;
use crate::error::{ClientError, Result};
use crate::store::outbox::{self, OutboxEntry};
use crate::store::{documents, meta, texts};

impl Client {
    /// Runs `read` on a text document's working state; `None` when it is not stored (an
    /// empty body).
    pub(crate) fn text_read<R>(
        &mut self,
        doc_id: Uuid,
        collection: &'static TextCollection,
        read: impl FnOnce(&Doc) -> R,
    ) -> Result<Option<R>> {
        // A read transaction, so that the document's rows are read from one snapshot of the
        // file even if another connection commits meanwhile.
        let tx = self.conn.transaction()?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let Some(entry) = self.texts.take(&tx, doc_id, self.client_id)? else {
            return Ok(None);
        };
        tx.commit()?;
        check_collection(&entry, doc_id, collection)?;
        let result = read(&entry.doc);
        self.texts.put(doc_id, entry);
        Ok(Some(result))
    }

    /// Applies `edit` to a text document in one Yjs transaction and records the update it made
    /// as one pending mutation. Returns the edit's value and the update (`None` when nothing
    /// changed, and then nothing is recorded). The body's record must exist locally.
    pub(crate) fn text_write<R>(
        &mut self,
        doc_id: Uuid,
        collection: &'static TextCollection,
        edit: impl FnOnce(&mut TransactionMut, &XmlFragmentRef) -> Result<R>,
    ) -> Result<(R, Option<Vec<u8>>)> {
        // IMMEDIATE: the document read here must be the one the update builds on, even if
        // another connection writes the same file.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let entry = match self.texts.take(&tx, doc_id, self.client_id)? {
            Some(entry) => {
                check_collection(&entry, doc_id, collection)?;
                entry
            }
            None => {
                let parent = documents::collection_of(&tx, doc_id)?;
                if parent.as_deref() != Some(collection.parent.name) {
                    return Err(ClientError::NotFound {
                        collection: collection.parent.name.to_owned(),
                        id: doc_id,
                    });
                }
                let epoch = meta::allocate_text_epoch(&tx)?;
                texts::create(&tx, doc_id, collection.name, epoch)?;
                TextEntry {
                    collection,
                    doc: ydoc::new_doc(ydoc::client_id_for(self.client_id, doc_id, epoch)),
                }
            }
        };
        // On an early return below the edited entry is dropped, not cached.
        let (value, update) = {
            let mut txn = entry.doc.transact_mut();
            let body = txn.get_or_insert_xml_fragment(BODY);
            let value = edit(&mut txn, &body)?;
            // After commit, so that the update includes what committing adds (garbage
            // collection of content deleted in the same transaction).
            txn.commit();
            let changed = txn.before_state() != txn.after_state() || !txn.delete_set().is_empty();
            (value, changed.then(|| txn.encode_update_v1()))
        };
        if let Some(update) = &update {
            let seq = meta::allocate_seq(&tx)?;
            outbox::insert(
                &tx,
                &OutboxEntry {
                    seq,
                    doc_id,
                    collection: collection.name.to_owned(),
                    payload: update.clone(),
                    created_at: now_millis(),
                },
            )?;
            tracing::debug!(collection = collection.name, %doc_id, seq, bytes = update.len(), "local text edit recorded");
        }
        tx.commit()?;
        self.texts.put(doc_id, entry);
        if update.is_some() {
            self.pending += 1;
        }
        Ok((value, update))
    }

    /// The welcomed user (author of suggestions), if any.
    pub(crate) fn session_user(&self) -> Result<Option<Uuid>> {
        Ok(meta::session_identity(&self.conn)?.map(|(user, _)| user))
    }
}

fn check_collection(
    entry: &TextEntry,
    doc_id: Uuid,
    collection: &'static TextCollection,
) -> Result<()> {
    if entry.collection.name == collection.name {
        return Ok(());
    }
    Err(ClientError::NotFound {
        collection: collection.name.to_owned(),
        id: doc_id,
    })
}
