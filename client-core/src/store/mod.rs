//! The SQLite replica: everything the client knows, in one file, changed only inside
//! transactions so that a killed process leaves either the state before or after an operation.
//!
//! - [`ddl`]: table creation and upgrades (idempotent, versioned with `user_version`).
//! - [`meta`]: client id, mutation counter, subscription cursors, session identity.
//! - [`documents`]: each record document's confirmed and working automerge state.
//! - [`texts`]: each text document's confirmed Yjs state (base plus log) and epoch.
//! - [`outbox`]: local changes not yet acknowledged by the server.
//! - [`rows`]: the materialized, queryable row tables generated from the protocol schemas.
//!
//! Functions here take a `&Connection` (a `Transaction` derefs to one) and never open
//! transactions themselves: the caller decides what is atomic.

pub(crate) mod ddl;
pub(crate) mod documents;
pub(crate) mod meta;
pub(crate) mod outbox;
pub(crate) mod rows;
pub(crate) mod texts;

use rusqlite::Connection;
use uuid::Uuid;

use crate::error::{ClientError, Result};

/// Connection settings applied on every open.
pub(crate) fn configure(conn: &Connection) -> Result<()> {
    // WAL keeps readers and the writer from blocking each other and, with synchronous=NORMAL,
    // still survives a process kill (only an OS crash can lose the last commits). VFSes without
    // shared memory (browser OPFS) silently keep their journal mode, hence no check of the result.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    // Another process (a second app window) may hold the write lock briefly.
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

/// Document ids are stored as hyphenated lowercase text, like the row tables' `id` column.
pub(crate) fn id_text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

pub(crate) fn parse_id(text: &str) -> Result<Uuid> {
    Uuid::parse_str(text).map_err(|e| ClientError::Corrupt(format!("stored id `{text}`: {e}")))
}

/// SQLite integers are signed; mutation seqs and cursors are u64 on the wire but never reach
/// 2^63, so a value that does not fit is corruption rather than something to wrap.
pub(crate) fn to_sql_int(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| ClientError::Corrupt(format!("integer {value} exceeds i64")))
}

pub(crate) fn from_sql_int(value: i64) -> Result<u64> {
    u64::try_from(value)
        .map_err(|_| ClientError::Corrupt(format!("negative stored integer {value}")))
}
