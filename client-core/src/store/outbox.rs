//! The `outbox` table: one row per local change (mutation) not yet answered by the server, in
//! the order it must be pushed. Rows leave on `Ack` or `Reject`, or with their document on
//! `Evict`.

use rusqlite::{Connection, OptionalExtension, Row, params};
use uuid::Uuid;

use super::{from_sql_int, id_text, parse_id, to_sql_int};
use crate::error::Result;

/// One pending mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    /// The mutation id's sequence number.
    pub seq: u64,
    pub doc_id: Uuid,
    pub collection: String,
    /// One automerge change (`Change::raw_bytes`) for a record collection, one Yjs update (lib0
    /// v1) for a text collection.
    pub payload: Vec<u8>,
    /// Unix milliseconds when the local edit was made.
    pub created_at: i64,
}

const COLUMNS: &str = "seq, doc_id, collection, payload, created_at";

fn entry(r: &Row<'_>) -> rusqlite::Result<(i64, String, String, Vec<u8>, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn decode(raw: (i64, String, String, Vec<u8>, i64)) -> Result<OutboxEntry> {
    let (seq, doc_id, collection, payload, created_at) = raw;
    Ok(OutboxEntry {
        seq: from_sql_int(seq)?,
        doc_id: parse_id(&doc_id)?,
        collection,
        payload,
        created_at,
    })
}

fn select(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<OutboxEntry>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM outbox {filter} ORDER BY seq"
    ))?;
    let rows = stmt.query_map(params, entry)?;
    rows.map(|r| decode(r?)).collect()
}

pub(crate) fn insert(conn: &Connection, e: &OutboxEntry) -> Result<()> {
    conn.execute(
        "INSERT INTO outbox (seq, doc_id, collection, payload, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![to_sql_int(e.seq)?, id_text(e.doc_id), e.collection, e.payload, e.created_at],
    )?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, seq: u64) -> Result<Option<OutboxEntry>> {
    let raw = conn
        .query_row(
            &format!("SELECT {COLUMNS} FROM outbox WHERE seq = ?1"),
            [to_sql_int(seq)?],
            entry,
        )
        .optional()?;
    raw.map(decode).transpose()
}

/// Removes one entry; false when it was not there.
pub(crate) fn remove(conn: &Connection, seq: u64) -> Result<bool> {
    Ok(conn.execute("DELETE FROM outbox WHERE seq = ?1", [to_sql_int(seq)?])? > 0)
}

/// Entries with a seq above `after`, in push order.
pub(crate) fn after(conn: &Connection, after: u64) -> Result<Vec<OutboxEntry>> {
    select(conn, "WHERE seq > ?1", [to_sql_int(after)?])
}

/// A document's pending changes, in the order they were made.
pub(crate) fn for_doc(conn: &Connection, doc_id: Uuid) -> Result<Vec<OutboxEntry>> {
    select(conn, "WHERE doc_id = ?1", [id_text(doc_id)])
}

/// A document's pending changes in one collection (a record and its body share the id).
pub(crate) fn for_doc_in(
    conn: &Connection,
    doc_id: Uuid,
    collection: &str,
) -> Result<Vec<OutboxEntry>> {
    select(
        conn,
        "WHERE doc_id = ?1 AND collection = ?2",
        params![id_text(doc_id), collection],
    )
}

/// Replaces an entry's payload (coalescing unsent text updates).
pub(crate) fn set_payload(conn: &Connection, seq: u64, payload: &[u8]) -> Result<()> {
    conn.execute(
        "UPDATE outbox SET payload = ?2 WHERE seq = ?1",
        params![to_sql_int(seq)?, payload],
    )?;
    Ok(())
}

/// The highest seq pending, 0 when none.
pub(crate) fn max_seq(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM outbox", [], |r| r.get(0))?;
    from_sql_int(n)
}

pub(crate) fn remove_for_doc(conn: &Connection, doc_id: Uuid) -> Result<u64> {
    let n = conn.execute("DELETE FROM outbox WHERE doc_id = ?1", [id_text(doc_id)])?;
    Ok(n as u64)
}

pub(crate) fn count(conn: &Connection) -> Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM outbox", [], |r| r.get(0))?;
    from_sql_int(n)
}
