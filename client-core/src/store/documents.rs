//! The `documents` table: per document, its collection, the server-acknowledged (`confirmed`)
//! automerge state and the `working` state (confirmed plus pending local changes).

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{id_text, parse_id};
use crate::clock::now_millis;
use crate::error::Result;

/// A document as stored.
#[derive(Debug, Clone)]
pub(crate) struct StoredDoc {
    pub collection: String,
    /// `None` while nothing of the document was acknowledged (created offline).
    pub confirmed: Option<Vec<u8>>,
    pub working: Vec<u8>,
}

pub(crate) fn load(conn: &Connection, id: Uuid) -> Result<Option<StoredDoc>> {
    Ok(conn
        .query_row(
            "SELECT collection, confirmed, working FROM documents WHERE id = ?1",
            [id_text(id)],
            |r| {
                Ok(StoredDoc {
                    collection: r.get(0)?,
                    confirmed: r.get(1)?,
                    working: r.get(2)?,
                })
            },
        )
        .optional()?)
}

/// The collection of a stored record document, without loading its states.
pub(crate) fn collection_of(conn: &Connection, id: Uuid) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT collection FROM documents WHERE id = ?1")?
        .query_row([id_text(id)], |r| r.get(0))
        .optional()?)
}

/// Inserts or replaces a document's states.
pub(crate) fn store(
    conn: &Connection,
    id: Uuid,
    collection: &str,
    confirmed: Option<&[u8]>,
    working: &[u8],
) -> Result<()> {
    conn.execute(
        "INSERT INTO documents (id, collection, confirmed, working, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (id) DO UPDATE SET confirmed = excluded.confirmed, \
             working = excluded.working, updated_at = excluded.updated_at",
        params![id_text(id), collection, confirmed, working, now_millis()],
    )?;
    Ok(())
}

/// Stores a new working state; a new document starts with no confirmed state.
pub(crate) fn store_working(
    conn: &Connection,
    id: Uuid,
    collection: &str,
    working: &[u8],
) -> Result<()> {
    conn.execute(
        "INSERT INTO documents (id, collection, confirmed, working, updated_at) \
         VALUES (?1, ?2, NULL, ?3, ?4) \
         ON CONFLICT (id) DO UPDATE SET working = excluded.working, updated_at = excluded.updated_at",
        params![id_text(id), collection, working, now_millis()],
    )?;
    Ok(())
}

/// Stores a new confirmed state of an existing document.
pub(crate) fn store_confirmed(conn: &Connection, id: Uuid, confirmed: &[u8]) -> Result<()> {
    conn.execute(
        "UPDATE documents SET confirmed = ?2, updated_at = ?3 WHERE id = ?1",
        params![id_text(id), confirmed, now_millis()],
    )?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, id: Uuid) -> Result<bool> {
    clear_unlisted(conn, id)?;
    Ok(conn.execute("DELETE FROM documents WHERE id = ?1", [id_text(id)])? > 0)
}

/// Ids of every document of a collection (for re-materialization).
pub(crate) fn ids_in_collection(conn: &Connection, collection: &str) -> Result<Vec<Uuid>> {
    let mut stmt = conn.prepare("SELECT id FROM documents WHERE collection = ?1")?;
    let ids = stmt.query_map([collection], |r| r.get::<_, String>(0))?;
    ids.map(|id| parse_id(&id?)).collect()
}

/// Marks a document a fresh snapshot did not list (see the `unlisted` table).
pub(crate) fn mark_unlisted(conn: &Connection, id: Uuid) -> Result<()> {
    conn.execute(
        "INSERT INTO unlisted (doc_id) VALUES (?1) ON CONFLICT DO NOTHING",
        [id_text(id)],
    )?;
    Ok(())
}

/// The server sent the document after all (it is readable): no longer unlisted.
pub(crate) fn clear_unlisted(conn: &Connection, id: Uuid) -> Result<()> {
    conn.execute("DELETE FROM unlisted WHERE doc_id = ?1", [id_text(id)])?;
    Ok(())
}

pub(crate) fn is_unlisted(conn: &Connection, id: Uuid) -> Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM unlisted WHERE doc_id = ?1",
        [id_text(id)],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}
