//! automerge helpers for record documents: loading a stored state under the client's actor,
//! decoding changes, and applying them.
//!
//! The actor of every local change is the client id, so a document reloaded after a restart
//! continues the same actor (and its change sequence) instead of minting a new actor per
//! session.

use automerge::{ActorId, AutoCommit, Change, ChangeHash};
use uuid::Uuid;

use crate::error::{ClientError, Result};

/// The automerge actor of a client: its id's 16 bytes.
pub(crate) fn actor_for(client_id: Uuid) -> ActorId {
    ActorId::from(client_id.as_bytes())
}

/// Loads a stored document (or starts an empty one) acting as `actor`.
pub(crate) fn load(doc_id: Uuid, bytes: Option<&[u8]>, actor: &ActorId) -> Result<AutoCommit> {
    let doc = match bytes {
        Some(bytes) => AutoCommit::load(bytes).map_err(|e| ClientError::document(doc_id, e))?,
        None => AutoCommit::new(),
    };
    Ok(doc.with_actor(actor.clone()))
}

/// Decodes one change as pushed or received (raw or compressed chunk).
pub(crate) fn parse_change(doc_id: Uuid, bytes: &[u8]) -> Result<Change> {
    Change::try_from(bytes)
        .map_err(|e| ClientError::document(doc_id, format!("invalid change: {e}")))
}

/// Whether every change `change` depends on is already in `doc`.
pub(crate) fn deps_satisfied(doc: &mut AutoCommit, change: &Change) -> bool {
    change
        .deps()
        .iter()
        .all(|dep| doc.get_change_by_hash(dep).is_some())
}

/// Applies changes; automerge ignores ones it already has and queues ones whose dependencies
/// are missing (a queued change is kept in the saved document, see `SaveOptions::retain_orphans`).
pub(crate) fn apply(doc_id: Uuid, doc: &mut AutoCommit, changes: Vec<Change>) -> Result<()> {
    doc.apply_changes(changes)
        .map_err(|e| ClientError::document(doc_id, e))
}

/// Applies server-confirmed changes to the confirmed state.
///
/// A confirmed change can depend on local changes whose `Ack` has not arrived yet (another
/// client built on them after the server committed them). The server holding the dependent
/// change proves those local changes were accepted, so they are pulled from `working` into
/// the confirmed state too rather than leaving the confirmed change queued.
pub(crate) fn apply_confirmed(
    doc_id: Uuid,
    confirmed: &mut AutoCommit,
    working: &mut AutoCommit,
    changes: Vec<Change>,
) -> Result<()> {
    apply(doc_id, confirmed, changes)?;
    loop {
        let missing: Vec<ChangeHash> = confirmed.get_missing_deps(&[]);
        if missing.is_empty() {
            return Ok(());
        }
        let found: Vec<Change> = missing
            .iter()
            .filter_map(|h| working.get_change_by_hash(h))
            .collect();
        if found.is_empty() {
            // Only a server bug or a gap in the change stream gets here; the change stays
            // queued in the document until its dependencies arrive.
            tracing::warn!(%doc_id, missing = missing.len(), "confirmed change has unknown dependencies");
            return Ok(());
        }
        apply(doc_id, confirmed, found)?;
    }
}
