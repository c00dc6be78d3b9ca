//! Merging server changes into record documents (automerge): the confirmed state first, so
//! that it can pull in accepted local changes, then the working state and the row.

use automerge::{AutoCommit, Change, ChangeHash};
use rusqlite::Connection;
use syncline_protocol::schema::{self, CollectionSchema};
use uuid::Uuid;

use crate::cache::CachedDoc;
use crate::doc;
use crate::error::{ClientError, Result};
use crate::store::{documents, rows};

/// The schema of a collection the server sent, or `None` (with a warning) for one this client
/// does not know (a newer server); such documents are skipped.
pub(super) fn known_schema(collection: &str, doc_id: Uuid) -> Option<&'static CollectionSchema> {
    let schema = schema::collection(collection);
    if schema.is_none() {
        tracing::warn!(collection, %doc_id, "server sent a document of an unknown collection; skipped");
    }
    schema
}

/// Merges server changes into a document's confirmed and working states (creating the
/// document if new), stores it and re-materializes its row. Returns the document, to go back
/// into the cache once the transaction commits, and whether its working state changed.
pub(super) fn merge_remote(
    conn: &Connection,
    cache: &mut crate::cache::DocCache,
    actor: &automerge::ActorId,
    schema: &CollectionSchema,
    doc_id: Uuid,
    changes: Vec<Change>,
) -> Result<(CachedDoc, bool)> {
    let (mut doc, is_new) = match cache.take(conn, doc_id, actor)? {
        Some(doc) => (doc, false),
        None => (CachedDoc::new(schema.name, actor), true),
    };
    if doc.collection != schema.name {
        tracing::warn!(%doc_id, local = %doc.collection, remote = schema.name, "collection mismatch; skipped");
        return Ok((doc, false));
    }
    let CachedDoc {
        confirmed, working, ..
    } = &mut doc;
    let confirmed = confirmed.get_or_insert_with(|| AutoCommit::new().with_actor(actor.clone()));
    let confirmed_before = heads(confirmed);
    let working_before = heads(working);
    // Confirmed first, so that it can pull in accepted local changes from the working state.
    doc::apply_confirmed(doc_id, confirmed, working, changes.clone())?;
    doc::apply(doc_id, working, changes)?;
    let working_changed = heads(working) != working_before;
    if !confirmed.get_missing_deps(&[]).is_empty() {
        // Changes whose history this replica never received: it must resync (see `on_change`).
        return Err(ClientError::MissingHistory(doc_id));
    }
    if !is_new && !working_changed && heads(confirmed) == confirmed_before {
        // Everything was known already (typically our own change echoed back).
        return Ok((doc, false));
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
        rows::materialize(conn, schema, doc_id, &*working)?;
    }
    Ok((doc, working_changed))
}

pub(super) fn heads(doc: &mut AutoCommit) -> Vec<ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort_unstable();
    heads
}
