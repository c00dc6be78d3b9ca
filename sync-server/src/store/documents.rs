//! Stored documents: the merged automerge state of every synced document, with its owner org.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::Tx;

/// `(org_id, collection, created_by, created_at, version)` of a stored document.
type DocumentRow = (Uuid, String, Uuid, DateTime<Utc>, i64);

/// A document row locked for update by the current transaction. Its state is read separately
/// ([`load_state`]), only when the caller has no current copy of that `version`.
#[derive(Debug, Clone)]
pub struct LockedDocument {
    pub collection: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    /// Bumped by every [`store_state`].
    pub version: i64,
}

/// What a lookup of a document id found.
#[derive(Debug)]
pub enum DocumentLookup {
    /// The document exists in the caller's org and is now locked.
    Found(LockedDocument),
    /// No document has this id: the caller has reserved it (an empty row locked by its
    /// transaction, to be filled or removed before commit).
    Reserved { created_at: DateTime<Utc> },
    /// The id belongs to another org's document.
    OtherOrg,
}

/// Locks document `doc_id` for the rest of the transaction, or reserves the id for a new
/// document when none exists. Concurrent creators of the same id serialize on the unique index:
/// the second waits for the first to commit and then finds (and locks) its document.
pub async fn lock_or_reserve(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
    collection: &str,
    user_id: Uuid,
) -> Result<DocumentLookup, sqlx::Error> {
    loop {
        let row: Option<DocumentRow> = sqlx::query_as(
            "SELECT org_id, collection, created_by, created_at, version \
             FROM documents WHERE id = $1 FOR UPDATE",
        )
        .bind(doc_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some((owner, collection, created_by, created_at, version)) = row {
            // Row-level security already hides other orgs' rows; checked again regardless.
            if owner != org_id {
                return Ok(DocumentLookup::OtherOrg);
            }
            return Ok(DocumentLookup::Found(LockedDocument {
                collection,
                created_by,
                created_at,
                version,
            }));
        }
        let inserted: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "INSERT INTO documents (org_id, id, collection, state, created_by) \
             VALUES ($1, $2, $3, '\\x'::bytea, $4) \
             ON CONFLICT (id) DO NOTHING RETURNING created_at",
        )
        .bind(org_id)
        .bind(doc_id)
        .bind(collection)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some((created_at,)) = inserted {
            return Ok(DocumentLookup::Reserved { created_at });
        }
        // The id is taken. Row-level security hides other orgs' documents, so ask who owns it;
        // if it is our org, someone created it between our SELECT and INSERT: look again (the
        // INSERT above already waited for their commit).
        let (owner,): (Option<Uuid>,) = sqlx::query_as("SELECT syncline_document_org($1)")
            .bind(doc_id)
            .fetch_one(&mut **tx)
            .await?;
        if owner.is_some_and(|o| o != org_id) {
            return Ok(DocumentLookup::OtherOrg);
        }
    }
}

/// The saved state of a document locked by [`lock_or_reserve`] (empty for a reservation).
pub async fn load_state(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
) -> Result<Vec<u8>, sqlx::Error> {
    let (state,): (Vec<u8>,) =
        sqlx::query_as("SELECT state FROM documents WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(doc_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(state)
}

/// Stores the merged state of a document found or reserved by [`lock_or_reserve`]; returns
/// its new version.
pub async fn store_state(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
    state: &[u8],
) -> Result<i64, sqlx::Error> {
    let (version,): (i64,) = sqlx::query_as(
        "UPDATE documents SET state = $3, updated_at = now(), version = version + 1 \
         WHERE org_id = $1 AND id = $2 RETURNING version",
    )
    .bind(org_id)
    .bind(doc_id)
    .bind(state)
    .fetch_one(&mut **tx)
    .await?;
    Ok(version)
}

/// Removes a reservation made by [`lock_or_reserve`] whose document never became valid.
pub async fn release_reservation(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM documents WHERE org_id = $1 AND id = $2 AND state = '\\x'::bytea")
        .bind(org_id)
        .bind(doc_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A document as sent in a snapshot.
#[derive(Debug, sqlx::FromRow)]
pub struct SnapshotRow {
    pub id: Uuid,
    pub collection: String,
    pub state: Vec<u8>,
}
