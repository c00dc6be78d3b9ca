//! Rolling back a rejected update to a text document.
//!
//! The working state is rebuilt from the confirmed state plus the document's remaining pending
//! updates in order. A pending update that needs something only the rejected one had (every
//! later local edit continues the rejected edit's Yjs clock; an editor's update may build on
//! its text) cannot be integrated: it is dropped too and reported as rejected with
//! `missing_dependency`, as the server answers if it was pushed. Updates that leave a gap in a
//! client's clock are recognised before applying; anything else that stays pending forces a
//! rebuild without it, because yrs cannot take back a half-integrated update.
//!
//! The rebuilt document continues under a new epoch, hence a new Yjs client id: the clocks the
//! rejected edits used are free again in this replica but must never be reused.

use rusqlite::Connection;
use syncline_protocol::schema::TextCollection;
use syncline_protocol::{ErrorCode, MutationId};
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{ReadTxn, StateVector, Transact, Update};

use super::{SyncEvent, TextEvent};
use crate::error::{ClientError, Result};
use crate::store::outbox::OutboxEntry;
use crate::store::{meta, outbox, texts};
use crate::text::cache::TextCache;
use crate::text::ydoc::{self, TextEntry};

/// What a rebuild did.
pub(super) struct Rebuilt {
    /// The rebuilt document, to cache once the transaction commits (`None` when the document
    /// was forgotten: the server never had any of it).
    pub entry: Option<TextEntry>,
    /// `Rejected` events for dropped dependent updates, then `DocumentChanged` and `Reset`.
    pub events: Vec<SyncEvent>,
    /// Outbox entries removed besides the rejected one.
    pub dropped: u64,
}

/// Rebuilds a text document whose pending update `rejected` (already removed from the outbox)
/// was refused. Runs inside the caller's transaction.
pub(super) fn rebuild(
    conn: &Connection,
    texts_cache: &mut TextCache,
    client_id: Uuid,
    collection: &'static TextCollection,
    doc_id: Uuid,
    rejected: MutationId,
) -> Result<Rebuilt> {
    // The cached working state holds the rejected update.
    texts_cache.forget(doc_id);
    let mut out = Rebuilt {
        entry: None,
        events: Vec::new(),
        dropped: 0,
    };
    let Some(stored) = texts::load(conn, doc_id)? else {
        return Ok(out);
    };
    let epoch = meta::allocate_text_epoch(conn)?;
    texts::set_epoch(conn, doc_id, epoch)?;
    let yjs_client = ydoc::client_id_for(client_id, doc_id, epoch);
    let mut pending = outbox::for_doc_in(conn, doc_id, collection.name)?;
    let mut dropped = Vec::new();
    let doc = 'build: loop {
        let doc = ydoc::load_confirmed(conn, doc_id, &stored, yjs_client)?;
        let mut i = 0;
        while let Some(entry) = pending.get(i) {
            let update =
                Update::decode_v1(&entry.payload).map_err(|e| ClientError::document(doc_id, e))?;
            if leaves_gap(&update, &doc.transact().state_vector()) {
                dropped.push(pending.remove(i));
                continue;
            }
            ydoc::apply(doc_id, &doc, update)?;
            if ydoc::has_missing(&doc) {
                dropped.push(pending.remove(i));
                continue 'build;
            }
            i += 1;
        }
        break doc;
    };
    for entry in dropped {
        drop_dependent(conn, &mut out, doc_id, client_id, rejected, entry)?;
    }
    if stored.base.is_none() && stored.log_count == 0 && pending.is_empty() {
        // The server never had any of this body: forget it.
        texts::delete(conn, doc_id)?;
    } else {
        out.entry = Some(TextEntry { collection, doc });
    }
    out.events.push(SyncEvent::DocumentChanged {
        collection: collection.name.to_owned(),
        doc_id,
    });
    out.events.push(SyncEvent::Text(TextEvent::Reset {
        collection: collection.name.to_owned(),
        doc_id,
    }));
    Ok(out)
}

/// Whether `update` starts some client's items past what `state` has (it continues content
/// this document does not have, so it can only stay pending).
fn leaves_gap(update: &Update, state: &StateVector) -> bool {
    update
        .state_vector_lower()
        .iter()
        .any(|(client, clock)| *clock > state.get(client))
}

fn drop_dependent(
    conn: &Connection,
    out: &mut Rebuilt,
    doc_id: Uuid,
    client_id: Uuid,
    rejected: MutationId,
    entry: OutboxEntry,
) -> Result<()> {
    outbox::remove(conn, entry.seq)?;
    out.dropped += 1;
    let mid = MutationId {
        client_id,
        seq: entry.seq,
    };
    tracing::info!(?mid, %doc_id, "dropping a text update that depended on a rejected one");
    out.events.push(SyncEvent::Rejected {
        doc_id,
        mid,
        code: ErrorCode::MissingDependency,
        message: format!("depends on rejected change {} of this client", rejected.seq),
    });
    Ok(())
}
