//! The text-document tables: `text_documents` (per body: collection, compacted confirmed state,
//! epoch) and `text_confirmed` (confirmed Yjs updates not yet folded into the base).
//!
//! The confirmed state is kept as a base plus an append-only log because every `Ack` and every
//! remote change confirms one more small update: re-encoding the whole document for each would
//! cost time linear in its size per keystroke. The log is folded into the base when it grows
//! past [`needs_compaction`]'s bounds.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{from_sql_int, id_text, parse_id, to_sql_int};
use crate::clock::now_millis;
use crate::error::Result;

/// Fold the log into the base once it holds this many updates (bounds the cost of loading).
const MAX_LOG_COUNT: u64 = 4096;
/// ... or once its bytes exceed both this and the base's size (keeps compaction amortized
/// linear: each compaction at least doubles what the base absorbed).
const MIN_LOG_BYTES: u64 = 256 * 1024;

/// A text document's row.
#[derive(Debug, Clone)]
pub(crate) struct StoredText {
    pub collection: String,
    /// The compacted confirmed state (Yjs update v2), if any.
    pub base: Option<Vec<u8>>,
    pub log_count: u64,
    pub epoch: u64,
}

pub(crate) fn load(conn: &Connection, id: Uuid) -> Result<Option<StoredText>> {
    let raw = conn
        .prepare_cached(
            "SELECT collection, base, log_count, epoch FROM text_documents WHERE id = ?1",
        )?
        .query_row([id_text(id)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    raw.map(|(collection, base, log_count, epoch)| {
        Ok(StoredText {
            collection,
            base,
            log_count: from_sql_int(log_count)?,
            epoch: from_sql_int(epoch)?,
        })
    })
    .transpose()
}

/// Creates an empty text document (nothing confirmed yet) with its first epoch.
pub(crate) fn create(conn: &Connection, id: Uuid, collection: &str, epoch: u64) -> Result<()> {
    conn.execute(
        "INSERT INTO text_documents (id, collection, base, epoch, updated_at) \
         VALUES (?1, ?2, NULL, ?3, ?4)",
        params![id_text(id), collection, to_sql_int(epoch)?, now_millis()],
    )?;
    Ok(())
}

/// A new epoch after a rollback: local edits continue under a new Yjs client id.
pub(crate) fn set_epoch(conn: &Connection, id: Uuid, epoch: u64) -> Result<()> {
    conn.execute(
        "UPDATE text_documents SET epoch = ?2 WHERE id = ?1",
        params![id_text(id), to_sql_int(epoch)?],
    )?;
    Ok(())
}

/// The confirmed updates not yet in the base, in arrival order.
pub(crate) fn confirmed_log(conn: &Connection, id: Uuid) -> Result<Vec<Vec<u8>>> {
    let mut stmt =
        conn.prepare_cached("SELECT payload FROM text_confirmed WHERE doc_id = ?1 ORDER BY seq")?;
    let rows = stmt.query_map([id_text(id)], |r| r.get::<_, Vec<u8>>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Appends a confirmed update. Returns whether the log should now be folded into the base.
pub(crate) fn append_confirmed(conn: &Connection, id: Uuid, update: &[u8]) -> Result<bool> {
    let text = id_text(id);
    conn.prepare_cached("INSERT INTO text_confirmed (doc_id, payload) VALUES (?1, ?2)")?
        .execute(params![text, update])?;
    let bytes = to_sql_int(update.len() as u64)?;
    let (count, log_bytes, base_bytes): (i64, i64, i64) = conn
        .prepare_cached(
            "UPDATE text_documents SET log_count = log_count + 1, log_bytes = log_bytes + ?2, \
                 updated_at = ?3 WHERE id = ?1 \
             RETURNING log_count, log_bytes, coalesce(length(base), 0)",
        )?
        .query_row(params![text, bytes, now_millis()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    Ok(needs_compaction(
        from_sql_int(count)?,
        from_sql_int(log_bytes)?,
        from_sql_int(base_bytes)?,
    ))
}

/// Whether a log of `count` updates and `bytes` bytes over a base of `base_bytes` should be
/// folded.
pub(crate) fn needs_compaction(count: u64, bytes: u64, base_bytes: u64) -> bool {
    count >= MAX_LOG_COUNT || bytes >= MIN_LOG_BYTES.max(base_bytes)
}

/// Replaces the confirmed state with `base` (Yjs update v2) and an empty log.
pub(crate) fn compact(conn: &Connection, id: Uuid, base: &[u8]) -> Result<()> {
    let text = id_text(id);
    conn.execute("DELETE FROM text_confirmed WHERE doc_id = ?1", [&text])?;
    conn.execute(
        "UPDATE text_documents SET base = ?2, log_count = 0, log_bytes = 0, updated_at = ?3 \
         WHERE id = ?1",
        params![text, base, now_millis()],
    )?;
    Ok(())
}

/// Deletes a text document and its confirmed log; false when there was none.
pub(crate) fn delete(conn: &Connection, id: Uuid) -> Result<bool> {
    let text = id_text(id);
    conn.execute("DELETE FROM text_confirmed WHERE doc_id = ?1", [&text])?;
    Ok(conn.execute("DELETE FROM text_documents WHERE id = ?1", [&text])? > 0)
}

/// The collection of a stored text document.
pub(crate) fn collection_of(conn: &Connection, id: Uuid) -> Result<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT collection FROM text_documents WHERE id = ?1",
            [id_text(id)],
            |r| r.get(0),
        )
        .optional()?)
}

/// Ids of every text document of a collection.
pub(crate) fn ids_in_collection(conn: &Connection, collection: &str) -> Result<Vec<Uuid>> {
    let mut stmt = conn.prepare("SELECT id FROM text_documents WHERE collection = ?1")?;
    let ids = stmt.query_map([collection], |r| r.get::<_, String>(0))?;
    ids.map(|id| parse_id(&id?)).collect()
}
