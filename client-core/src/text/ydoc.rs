//! yrs helpers for text documents: how a replica's `Doc` is configured, which Yjs client id its
//! local edits use, applying and encoding updates, and loading a document from SQLite.
//!
//! Client ids: Yjs requires that no two peers ever write under the same client id with
//! different content. A replica's edits use an id derived from (replica id, document id,
//! epoch). The epoch is allocated from a per-replica counter when the document is first stored
//! and again whenever a rejection rolls local edits back, because the rolled-back edits used
//! clocks that the rebuilt document no longer knows: continuing under the old id would reuse
//! them. Derived rather than random so that simulations replay identically.

use rusqlite::Connection;
use syncline_protocol::schema::{self, TextCollection};
use syncline_protocol::text::check_update_v1;
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{ClientID, Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update};

use crate::error::{ClientError, Result};
use crate::store::{outbox, texts};

/// Largest Yjs client id (JavaScript's safe integers).
const CLIENT_ID_MASK: u64 = (1 << 53) - 1;

/// A text document held in memory: its working state (confirmed plus pending).
#[derive(Debug)]
pub(crate) struct TextEntry {
    pub collection: &'static TextCollection,
    pub doc: Doc,
}

/// The Yjs client id of a replica's edits to one document in one epoch.
pub(crate) fn client_id_for(replica: Uuid, doc_id: Uuid, epoch: u64) -> u64 {
    // FNV-1a over the inputs, then a splitmix64 finalizer so that nearby epochs spread over
    // the whole 53-bit range.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let epoch = epoch.to_le_bytes();
    let bytes = replica
        .as_bytes()
        .iter()
        .chain(doc_id.as_bytes())
        .chain(&epoch);
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^= hash >> 31;
    (hash & CLIENT_ID_MASK).max(1)
}

/// An empty document configured like every replica's: positions in UTF-16 code units (as in
/// JavaScript, ProseMirror and the server's checks), and no formatting cleanup, because yrs
/// cleans up inside the transaction that applied a remote update, which would make the replica
/// delete items in its own name that it never pushes.
pub(crate) fn new_doc(client_id: u64) -> Doc {
    Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        cleanup_formatting: false,
        ..Options::with_client_id(ClientID::new(client_id & CLIENT_ID_MASK))
    })
}

/// Decodes an update (v1) received from outside the replica (server, editor) after the
/// structural check that keeps yrs from crashing on hostile input.
pub(crate) fn decode_checked(doc_id: Uuid, update: &[u8]) -> Result<Update> {
    check_update_v1(update).map_err(|e| ClientError::InvalidUpdate {
        doc_id,
        code: e.code,
        message: e.message,
    })?;
    decode_v1(doc_id, update)
}

fn decode_v1(doc_id: Uuid, update: &[u8]) -> Result<Update> {
    Update::decode_v1(update).map_err(|e| ClientError::document(doc_id, e))
}

/// Applies an update in its own transaction. Returns whether the document changed; an update
/// whose dependencies are missing stays pending inside the document (see [`has_missing`]).
pub(crate) fn apply(doc_id: Uuid, doc: &Doc, update: Update) -> Result<bool> {
    let mut txn = doc.transact_mut();
    txn.apply_update(update)
        .map_err(|e| ClientError::document(doc_id, e))?;
    let changed = txn.before_state() != txn.after_state() || !txn.delete_set().is_empty();
    Ok(changed)
}

/// Applies a stored (trusted) v1 update.
pub(crate) fn apply_stored_v1(doc_id: Uuid, doc: &Doc, update: &[u8]) -> Result<bool> {
    apply(doc_id, doc, decode_v1(doc_id, update)?)
}

/// Whether the document holds updates it cannot integrate for lack of their history.
pub(crate) fn has_missing(doc: &Doc) -> bool {
    doc.transact().has_missing_updates()
}

/// The whole state as one v2 update (compact storage; pending updates included).
pub(crate) fn encode_state_v2(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v2(&StateVector::default())
}

/// The text collection named by a stored row.
pub(crate) fn stored_collection(name: &str) -> Result<&'static TextCollection> {
    schema::text_collection(name)
        .ok_or_else(|| ClientError::Corrupt(format!("text document of unknown collection {name}")))
}

/// The confirmed state of a stored text document (`stored` is its row) in a new `Doc` acting as
/// `client_id`.
pub(crate) fn load_confirmed(
    conn: &Connection,
    doc_id: Uuid,
    stored: &texts::StoredText,
    client_id: u64,
) -> Result<Doc> {
    let doc = new_doc(client_id);
    if let Some(base) = &stored.base {
        let update = Update::decode_v2(base).map_err(|e| ClientError::document(doc_id, e))?;
        apply(doc_id, &doc, update)?;
    }
    for update in texts::confirmed_log(conn, doc_id)? {
        apply_stored_v1(doc_id, &doc, &update)?;
    }
    Ok(doc)
}

/// A stored text document's working state: confirmed plus its pending updates, in order;
/// `None` when the document is not stored.
pub(crate) fn load_working(
    conn: &Connection,
    doc_id: Uuid,
    replica: Uuid,
) -> Result<Option<TextEntry>> {
    let Some(stored) = texts::load(conn, doc_id)? else {
        return Ok(None);
    };
    let collection = stored_collection(&stored.collection)?;
    let client_id = client_id_for(replica, doc_id, stored.epoch);
    let doc = load_confirmed(conn, doc_id, &stored, client_id)?;
    for entry in outbox::for_doc_in(conn, doc_id, collection.name)? {
        apply_stored_v1(doc_id, &doc, &entry.payload)?;
    }
    Ok(Some(TextEntry { collection, doc }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_53_bit_and_differ_per_epoch_document_and_replica() {
        let (r, d) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let ids = [
            client_id_for(r, d, 1),
            client_id_for(r, d, 2),
            client_id_for(r, Uuid::from_u128(3), 1),
            client_id_for(Uuid::from_u128(4), d, 1),
        ];
        for (i, a) in ids.iter().enumerate() {
            assert!(*a <= CLIENT_ID_MASK && *a > 0);
            assert!(ids[i + 1..].iter().all(|b| b != a));
        }
        assert_eq!(client_id_for(r, d, 1), ids[0], "deterministic");
    }
}
