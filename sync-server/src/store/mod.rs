//! The SQL behind the sync protocol. Every function takes the caller's transaction or pool so
//! that the merge of a batch of mutations (see [`crate::merge`]) is one atomic transaction.
//!
//! - [`documents`]: stored CRDT state per document, locked while a change is merged.
//! - [`materialize`]: writing a record's fields into its collection's typed table.
//! - [`change_log`]: gap-free per-org sequence numbers and the change log.
//! - [`progress`]: per-client mutation progress and rejected mutations (idempotent retransmits).
//! - [`membership`]: who belongs to which org.

pub mod change_log;
pub mod documents;
pub mod materialize;
pub mod membership;
pub mod progress;

/// The Postgres transaction type used throughout.
pub type Tx<'c> = sqlx::Transaction<'c, sqlx::Postgres>;

/// Converts a non-negative database bigint into a protocol sequence number.
pub(crate) fn seq_from_db(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Converts a protocol sequence number into a database bigint (saturating: no real sequence
/// comes near 2^63).
pub(crate) fn seq_to_db(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}
