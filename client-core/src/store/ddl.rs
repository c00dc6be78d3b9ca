//! Creating and upgrading the replica's tables.
//!
//! The fixed tables (`meta`, `documents`, `outbox`, the text-document tables) are versioned with
//! `PRAGMA user_version`. Every version only adds tables (`CREATE ... IF NOT EXISTS`), so an
//! older replica is upgraded in place by running the statements below; a replica written by a
//! newer client is refused.
//! The row tables are generated from `syncline_protocol::schema` on every open: missing tables
//! and columns are added, so a client upgraded to a schema with new fields keeps its replica
//! and re-materializes the affected collections from their documents.

use rusqlite::Connection;
use syncline_protocol::schema::{COLLECTIONS, CollectionSchema, FieldType};

use crate::error::{ClientError, Result};

/// The layout of the fixed tables this code writes. 2 added `text_documents` and
/// `text_confirmed`.
const USER_VERSION: i64 = 2;

const BASE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value
);
-- One row per synced document. `confirmed` is the state the server acknowledged (NULL while a
-- locally created document has no acknowledged change); `working` is confirmed plus the
-- pending changes in the outbox, and is what the row tables show.
CREATE TABLE IF NOT EXISTS documents (
    id         TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    confirmed  BLOB,
    working    BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_collection ON documents (collection);
-- Local changes awaiting an Ack or Reject, pushed in seq order. `seq` is the mutation id's
-- sequence number and never reused, even after the row is deleted.
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY,
    doc_id     TEXT NOT NULL,
    collection TEXT NOT NULL,
    payload    BLOB NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_doc ON outbox (doc_id, seq);
-- Documents a fresh snapshot did not list (the user may not read them) that were kept only
-- because local changes to them awaited an answer: dropped once none does, unless the server
-- sends them meanwhile (see sync/incoming.rs).
CREATE TABLE IF NOT EXISTS unlisted (
    doc_id TEXT PRIMARY KEY
);
-- One row per text document (note or document body; its id is its record's). Its confirmed
-- (server-acknowledged) state is `base` (the whole state as one Yjs update, v2 encoding; NULL
-- when empty) followed by the updates in `text_confirmed`; its working state is that plus its
-- pending updates in the outbox. `log_count`/`log_bytes` describe `text_confirmed` so that
-- compaction needs no query; `epoch` picks the Yjs client id of local edits (see
-- text/ydoc.rs).
CREATE TABLE IF NOT EXISTS text_documents (
    id         TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    base       BLOB,
    log_count  INTEGER NOT NULL DEFAULT 0,
    log_bytes  INTEGER NOT NULL DEFAULT 0,
    epoch      INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS text_documents_collection ON text_documents (collection);
-- Confirmed Yjs updates (v1) not yet folded into their document's `base`, in arrival order.
CREATE TABLE IF NOT EXISTS text_confirmed (
    seq     INTEGER PRIMARY KEY,
    doc_id  TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS text_confirmed_doc ON text_confirmed (doc_id, seq);
";

/// Creates or upgrades every table. Returns the collections whose row table gained columns and
/// must be re-materialized from their documents.
pub(crate) fn migrate(conn: &Connection) -> Result<Vec<&'static CollectionSchema>> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > USER_VERSION {
        return Err(ClientError::Corrupt(format!(
            "replica has layout version {version}; this client knows up to {USER_VERSION}"
        )));
    }
    conn.execute_batch(BASE_TABLES)?;
    if version < USER_VERSION {
        conn.pragma_update(None, "user_version", USER_VERSION)?;
    }
    let mut stale = Vec::new();
    for schema in COLLECTIONS.iter().copied() {
        if ensure_row_table(conn, schema)? {
            stale.push(schema);
        }
    }
    Ok(stale)
}

/// SQLite column type of a field.
pub(crate) fn column_type(ty: FieldType) -> &'static str {
    match ty {
        // A list of references is a JSON array of UUID strings (see `crate::row`).
        FieldType::String { .. }
        | FieldType::Enum(_)
        | FieldType::Ref(_)
        | FieldType::RefList(_) => "TEXT",
        FieldType::Int | FieldType::Bool | FieldType::Timestamp => "INTEGER",
    }
}

/// Whether a column gets an index: enums and references are what lists filter on (status,
/// assignee, board, parent); free text and timestamps are sorted on, not looked up.
fn indexed(ty: FieldType) -> bool {
    matches!(ty, FieldType::Enum(_) | FieldType::Ref(_))
}

/// Creates the row table, adds missing columns and indexes. True when columns were added to an
/// already existing table.
fn ensure_row_table(conn: &Connection, schema: &CollectionSchema) -> Result<bool> {
    let table = schema.table;
    let columns: Vec<String> = schema
        .fields
        .iter()
        .map(|f| format!("\"{}\" {}", f.column, column_type(f.ty)))
        .collect();
    let existed = table_exists(conn, table)?;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (id TEXT PRIMARY KEY, {})",
        columns.join(", ")
    ))?;
    let present = existing_columns(conn, table)?;
    let mut added = false;
    for field in schema.fields {
        if !present.iter().any(|c| c == field.column) {
            conn.execute_batch(&format!(
                "ALTER TABLE \"{table}\" ADD COLUMN \"{}\" {}",
                field.column,
                column_type(field.ty)
            ))?;
            added = true;
        }
    }
    for field in schema.fields.iter().filter(|f| indexed(f.ty)) {
        conn.execute_batch(&format!(
            "CREATE INDEX IF NOT EXISTS \"{table}_{col}\" ON \"{table}\" (\"{col}\")",
            col = field.column
        ))?;
    }
    Ok(existed && added)
}

fn table_exists(conn: &Connection, table: &str) -> Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [table],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

fn existing_columns(conn: &Connection, table: &str) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info(?1)")?;
    let names = stmt.query_map([table], |r| r.get::<_, String>(0))?;
    Ok(names.collect::<Result<_, _>>()?)
}
