//! The `meta` key/value table: the client's identity, its mutation and text-epoch counters, one
//! cursor per subscribed collection, and who the server said the session belongs to.

use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{from_sql_int, parse_id, to_sql_int};
use crate::error::Result;

const CLIENT_ID: &str = "client_id";
const NEXT_SEQ: &str = "next_mutation_seq";
const NEXT_TEXT_EPOCH: &str = "next_text_epoch";
const USER_ID: &str = "user_id";
const ORG_ID: &str = "org_id";

fn cursor_key(collection: &str) -> String {
    format!("cursor:{collection}")
}

fn get_text(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn get_int(conn: &Connection, key: &str) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn set(conn: &Connection, key: &str, value: impl rusqlite::ToSql) -> Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// The client id, generated (or taken from `new_id`) on first open. It is also the automerge
/// actor of every local change, so it must never change for the life of the replica.
pub(crate) fn client_id(conn: &Connection, new_id: Option<Uuid>) -> Result<Uuid> {
    if let Some(text) = get_text(conn, CLIENT_ID)? {
        return parse_id(&text);
    }
    let id = new_id.unwrap_or_else(Uuid::now_v7);
    set(conn, CLIENT_ID, super::id_text(id))?;
    tracing::info!(client_id = %id, "new replica: generated client id");
    Ok(id)
}

/// Claims the next mutation seq (from 1, strictly increasing, never reused).
pub(crate) fn allocate_seq(conn: &Connection) -> Result<u64> {
    let next = get_int(conn, NEXT_SEQ)?.unwrap_or(1);
    set(conn, NEXT_SEQ, next + 1)?;
    from_sql_int(next)
}

/// Claims the next text-document epoch (never reused within the replica, so that the Yjs client
/// id derived from it is never reused either; see `text::ydoc`).
pub(crate) fn allocate_text_epoch(conn: &Connection) -> Result<u64> {
    let next = get_int(conn, NEXT_TEXT_EPOCH)?.unwrap_or(1);
    set(conn, NEXT_TEXT_EPOCH, next + 1)?;
    from_sql_int(next)
}

/// The cursor of a collection's subscription: the last change seq known to be fully received.
pub(crate) fn cursor(conn: &Connection, collection: &str) -> Result<Option<u64>> {
    get_int(conn, &cursor_key(collection))?
        .map(from_sql_int)
        .transpose()
}

pub(crate) fn set_cursor(conn: &Connection, collection: &str, cursor: u64) -> Result<()> {
    set(conn, &cursor_key(collection), to_sql_int(cursor)?)
}

/// Forgets a cursor, so the next subscription starts again from a snapshot.
pub(crate) fn clear_cursor(conn: &Connection, collection: &str) -> Result<()> {
    conn.execute("DELETE FROM meta WHERE key = ?1", [cursor_key(collection)])?;
    Ok(())
}

/// The user and org of the last session the server welcomed.
pub(crate) fn session_identity(conn: &Connection) -> Result<Option<(Uuid, Uuid)>> {
    match (get_text(conn, USER_ID)?, get_text(conn, ORG_ID)?) {
        (Some(u), Some(o)) => Ok(Some((parse_id(&u)?, parse_id(&o)?))),
        _ => Ok(None),
    }
}

pub(crate) fn set_session_identity(conn: &Connection, user_id: Uuid, org_id: Uuid) -> Result<()> {
    set(conn, USER_ID, super::id_text(user_id))?;
    set(conn, ORG_ID, super::id_text(org_id))
}
