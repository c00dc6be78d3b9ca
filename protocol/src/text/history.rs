//! Revisions of a text document and redlines between them, by CRDT item identity.
//!
//! A *revision* is a yrs [`Snapshot`] (state vector + delete set) of a document at some moment.
//! Yjs never rewrites content: every run of characters and every node is an item with a stable
//! id, and a snapshot tells which items existed and which were deleted. So the document as it was
//! at a snapshot is "the items visible in it" ([`html_at`], [`text_at`]), and a redline between
//! two snapshots is exact without any text-diff algorithm ([`redline`], [`redline_html`]): an item
//! visible at `to` but not at `from` was inserted, visible at `from` but not at `to` was deleted,
//! visible at both is unchanged. Text inserted and deleted again between the two was never
//! visible in either, so it does not appear at all.
//!
//! # Requirements
//!
//! The document must keep deleted content: it is created with `Options { skip_gc: true, .. }`
//! (the server's documents are), and has been so since the snapshots were taken. A document
//! that collects garbage replaces deleted text with placeholders, so its past cannot be shown;
//! every function here refuses it with [`HistoryError::NotRetained`]. Reloading a `skip_gc`
//! document from its encoded state (v1 or v2) keeps the deleted content, so snapshots stay valid
//! across compaction as long as the state is encoded from, and loaded into, `skip_gc` documents.
//!
//! Each function opens a transaction on `doc` (a write one for the redline walk, which splits
//! items at snapshot boundaries and merges them back when it commits; the document's content
//! does not change), so this thread must not hold another one on it ([`HistoryError::Busy`]).

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::{Encode, Encoder, EncoderV1};
use yrs::{Doc, OffsetKind, Options, ReadTxn, Snapshot, StateVector, Transact, Update};

use super::extract::plain_text_in;
use super::history_html::render;
use super::history_walk::{RedlineContent, walk};

/// Why a revision could not be read or compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The document collects garbage (no `skip_gc`), so deleted content is gone.
    #[error("the document does not retain deleted content (it must be created with skip_gc)")]
    NotRetained,
    /// The bytes are not an encoded snapshot.
    #[error("not a valid snapshot: {0}")]
    InvalidSnapshot(String),
    /// The snapshot refers to changes this document does not have (another document's, or a
    /// newer state than the one loaded).
    #[error("the snapshot is not part of this document's history")]
    UnknownState,
    /// This thread already holds a transaction on the document.
    #[error("the document is in use by another transaction on this thread")]
    Busy,
    /// yrs could not rebuild the document as it was at the snapshot.
    #[error("could not restore the document at the snapshot: {0}")]
    Restore(String),
}

/// The document's current snapshot, lib0 v1 encoded: a revision to store and compare later.
/// Opens a read transaction.
pub fn snapshot_of(doc: &Doc) -> Vec<u8> {
    doc.transact().snapshot().encode_v1()
}

/// Decodes a snapshot made by [`snapshot_of`].
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, HistoryError> {
    Snapshot::decode_v1(bytes).map_err(|e| HistoryError::InvalidSnapshot(e.to_string()))
}

/// The body as it was at `at`, as HTML (see the `history_html` module for the elements used).
pub fn html_at(doc: &Doc, at: &Snapshot) -> Result<String, HistoryError> {
    Ok(render(&redline(doc, at, at)?))
}

/// The body's plain text as it was at `at`, with [`plain_text`](super::plain_text)'s
/// conventions (text blocks separated by `"\n"`).
pub fn text_at(doc: &Doc, at: &Snapshot) -> Result<String, HistoryError> {
    retained(doc)?;
    let txn = doc.try_transact().map_err(|_| HistoryError::Busy)?;
    let past = restore(&txn, &checked(&txn, at)?)?;
    let past_txn = past.transact();
    Ok(plain_text_in(&past_txn))
}

/// The body's redline from revision `from` to revision `to`: its nodes and text runs at either,
/// each marked kept, inserted or deleted (see the module header). Deleted text keeps the
/// formatting it had at `from`; kept and inserted text show their formatting at `to`
/// (formatting changes are not themselves marked). `from` may be later than `to`, which reverses
/// the roles.
pub fn redline(
    doc: &Doc,
    from: &Snapshot,
    to: &Snapshot,
) -> Result<Vec<RedlineContent>, HistoryError> {
    retained(doc)?;
    let mut txn = doc.try_transact_mut().map_err(|_| HistoryError::Busy)?;
    let (from, to) = (checked(&txn, from)?, checked(&txn, to)?);
    let from_doc = restore(&txn, &from)?;
    let to_doc = if from == to {
        from_doc.clone()
    } else {
        restore(&txn, &to)?
    };
    let (from_txn, to_txn) = (from_doc.transact(), to_doc.transact());
    Ok(walk(&mut txn, &from, &to, &from_txn, &to_txn))
}

/// [`redline`] as HTML: inserted text in `<ins>`, deleted text in `<del>`, and inserted or
/// deleted blocks marked `data-redline="inserted"` / `"deleted"`.
pub fn redline_html(doc: &Doc, from: &Snapshot, to: &Snapshot) -> Result<String, HistoryError> {
    Ok(render(&redline(doc, from, to)?))
}

/// A fresh document holding exactly what the document read through `txn` held at `at` (a
/// [`checked`] snapshot), with the same item ids, kept with `skip_gc` so that its deleted items
/// stay readable too.
fn restore<T: ReadTxn>(txn: &T, at: &Snapshot) -> Result<Doc, HistoryError> {
    let mut encoder = EncoderV1::new();
    txn.encode_state_from_snapshot(at, &mut encoder)
        .map_err(|e| HistoryError::Restore(e.to_string()))?;
    let update =
        Update::decode_v1(&encoder.to_vec()).map_err(|e| HistoryError::Restore(e.to_string()))?;
    let past = Doc::with_options(Options {
        skip_gc: true,
        offset_kind: OffsetKind::Utf16,
        cleanup_formatting: false,
        ..Options::default()
    });
    past.transact_mut()
        .apply_update(update)
        .map_err(|e| HistoryError::Restore(e.to_string()))?;
    Ok(past)
}

fn retained(doc: &Doc) -> Result<(), HistoryError> {
    if doc.skip_gc() {
        Ok(())
    } else {
        Err(HistoryError::NotRetained)
    }
}

/// The snapshot, if it is part of the document's history, without the zero clocks a hand-made
/// snapshot may hold (yrs's encoder subtracts one from each clock).
fn checked<T: ReadTxn>(txn: &T, at: &Snapshot) -> Result<Snapshot, HistoryError> {
    let local = txn.state_vector();
    if at.state_map.iter().any(|(c, &clock)| clock > local.get(c)) {
        return Err(HistoryError::UnknownState);
    }
    let state_map: StateVector = at
        .state_map
        .iter()
        .filter(|&(_, &clock)| clock > 0)
        .map(|(&c, &clock)| (c, clock))
        .collect();
    Ok(Snapshot::new(state_map, at.delete_set.clone()))
}
