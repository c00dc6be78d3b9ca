//! The SQL behind text documents: a compacted state per document (`text_documents.state`) and
//! the updates accepted since (`text_updates`), folded into the state every
//! [`COMPACT_AFTER`] updates. Readers merge the two, so the state a client receives is always
//! current.

use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, Transact, Update};

use super::server_doc;
use crate::store::Tx;

/// Updates appended before the document is compacted into one snapshot. Appending is cheap
/// (one small row); compacting re-encodes the whole document. A few dozen keeps loads short
/// without re-encoding a large contract on every keystroke batch.
pub const COMPACT_AFTER: i32 = 64;

/// A text document row locked by the current transaction.
#[derive(Debug, Clone, Copy)]
pub struct LockedText {
    /// Bumped by every write ([`append`]); the cache key.
    pub version: i64,
    pub pending_updates: i32,
}

/// Locks the body `doc_id`, creating its (empty) row first if it has none. The caller has
/// checked that its record exists in `org_id`.
pub async fn lock_or_create(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
    collection: &str,
) -> Result<LockedText, sqlx::Error> {
    sqlx::query(
        "INSERT INTO text_documents (org_id, id, collection, state) VALUES ($1, $2, $3, '\\x'::bytea) \
         ON CONFLICT (org_id, id) DO NOTHING",
    )
    .bind(org_id)
    .bind(doc_id)
    .bind(collection)
    .execute(&mut **tx)
    .await?;
    let (version, pending_updates): (i64, i32) = sqlx::query_as(
        "SELECT version, pending_updates FROM text_documents \
         WHERE org_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(org_id)
    .bind(doc_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(LockedText {
        version,
        pending_updates,
    })
}

/// The compacted state and the pending updates of a body, in order (empty when it has none).
pub async fn parts(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    doc_id: Uuid,
) -> Result<Vec<Vec<u8>>, sqlx::Error> {
    let state: Option<(Vec<u8>,)> =
        sqlx::query_as("SELECT state FROM text_documents WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(doc_id)
            .fetch_optional(&mut *conn)
            .await?;
    let Some((state,)) = state else {
        return Ok(Vec::new());
    };
    let updates: Vec<(Vec<u8>,)> = sqlx::query_as(
        "SELECT payload FROM text_updates WHERE org_id = $1 AND doc_id = $2 ORDER BY id",
    )
    .bind(org_id)
    .bind(doc_id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(std::iter::once(state)
        .chain(updates.into_iter().map(|(u,)| u))
        .filter(|part| !part.is_empty())
        .collect())
}

/// The server's current document (see [`server_doc`]), or `None` when the body has no row.
/// Stored parts were accepted by the server, so a part that does not decode is corruption,
/// reported as a decode error.
pub async fn load_doc(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
) -> Result<Option<Doc>, sqlx::Error> {
    let exists: Option<(i64,)> =
        sqlx::query_as("SELECT version FROM text_documents WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(doc_id)
            .fetch_optional(&mut **tx)
            .await?;
    if exists.is_none() {
        return Ok(None);
    }
    let parts = parts(tx, org_id, doc_id).await?;
    doc_from_parts(doc_id, &parts).map(Some)
}

/// Builds the server's document from stored parts.
pub fn doc_from_parts(doc_id: Uuid, parts: &[Vec<u8>]) -> Result<Doc, sqlx::Error> {
    let doc = server_doc();
    {
        let mut txn = doc.transact_mut();
        for part in parts {
            let update = Update::decode_v1(part).map_err(|e| {
                sqlx::Error::Decode(
                    format!("stored text document {doc_id} does not load: {e}").into(),
                )
            })?;
            txn.apply_update(update).map_err(|e| {
                sqlx::Error::Decode(
                    format!("stored text document {doc_id} does not apply: {e}").into(),
                )
            })?;
        }
    }
    Ok(doc)
}

/// The whole current state of a body as one Yjs update (v1), as sent in snapshots.
pub fn merged_state(doc_id: Uuid, parts: &[Vec<u8>]) -> Result<Vec<u8>, sqlx::Error> {
    match parts {
        [] => Ok(Vec::new()),
        [only] => Ok(only.clone()),
        _ => yrs::merge_updates_v1(parts).map_err(|e| {
            sqlx::Error::Decode(format!("stored text document {doc_id} does not merge: {e}").into())
        }),
    }
}

/// Appends the updates accepted for a body in this transaction and refreshes its plain text;
/// compacts when enough updates piled up (`state` is then the document's whole state). Returns
/// the new version.
pub async fn append(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
    updates: &[Vec<u8>],
    plain_text: &str,
    compacted_state: Option<&[u8]>,
) -> Result<i64, sqlx::Error> {
    if let Some(state) = compacted_state {
        sqlx::query("DELETE FROM text_updates WHERE org_id = $1 AND doc_id = $2")
            .bind(org_id)
            .bind(doc_id)
            .execute(&mut **tx)
            .await?;
        let (version,): (i64,) = sqlx::query_as(
            "UPDATE text_documents SET state = $3, pending_updates = 0, plain_text = $4, \
             version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING version",
        )
        .bind(org_id)
        .bind(doc_id)
        .bind(state)
        .bind(plain_text)
        .fetch_one(&mut **tx)
        .await?;
        return Ok(version);
    }
    sqlx::query(
        "INSERT INTO text_updates (org_id, doc_id, payload) SELECT $1, $2, u FROM unnest($3::bytea[]) WITH ORDINALITY AS t(u, n) ORDER BY n",
    )
    .bind(org_id)
    .bind(doc_id)
    .bind(updates)
    .execute(&mut **tx)
    .await?;
    let count = i32::try_from(updates.len()).unwrap_or(i32::MAX);
    let (version,): (i64,) = sqlx::query_as(
        "UPDATE text_documents SET pending_updates = pending_updates + $3, plain_text = $4, \
         version = version + 1, updated_at = now() WHERE org_id = $1 AND id = $2 RETURNING version",
    )
    .bind(org_id)
    .bind(doc_id)
    .bind(count)
    .bind(plain_text)
    .fetch_one(&mut **tx)
    .await?;
    Ok(version)
}

/// The current state (merged) of bodies `ids`, for snapshots: `(id, collection, state)`, in
/// id order, without bodies that hold nothing yet.
pub async fn states(
    conn: &mut sqlx::PgConnection,
    org_id: Uuid,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, String, Vec<u8>)>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, collection FROM text_documents WHERE org_id = $1 AND id = ANY($2) ORDER BY id",
    )
    .bind(org_id)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for (id, collection) in rows {
        let parts = parts(conn, org_id, id).await?;
        let state = merged_state(id, &parts)?;
        if !state.is_empty() {
            out.push((id, collection, state));
        }
    }
    Ok(out)
}
