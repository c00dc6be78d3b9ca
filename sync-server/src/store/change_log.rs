//! The per-org change log and its gap-free sequence numbers.
//!
//! Sequence numbers are taken by [`allocate`], which increments the org's counter row and keeps
//! that row locked until the transaction commits. A second committer of the same org waits for
//! the first to finish (Postgres makes a transaction visible before it releases its locks), so
//! seqs commit in order and a reader that sees seq N committed sees every seq below N too. A
//! resuming client reading `seq > cursor` therefore never skips a change. Callers allocate as
//! the last step before commit, so the lock is held for as short as possible.

use sqlx::PgPool;
use syncline_protocol::MutationId;
use uuid::Uuid;

use super::{Tx, seq_from_db, seq_to_db};
use crate::hub::CommittedChange;

/// Reserves `count` consecutive seqs for `org_id`; returns the first.
pub async fn allocate(tx: &mut Tx<'_>, org_id: Uuid, count: u64) -> Result<u64, sqlx::Error> {
    let (last,): (i64,) = sqlx::query_as(
        "INSERT INTO org_change_seq (org_id, last_seq) VALUES ($1, $2) \
         ON CONFLICT (org_id) DO UPDATE SET last_seq = org_change_seq.last_seq + EXCLUDED.last_seq \
         RETURNING last_seq",
    )
    .bind(org_id)
    .bind(seq_to_db(count))
    .fetch_one(&mut **tx)
    .await?;
    Ok(seq_from_db(last) + 1 - count)
}

/// The highest committed seq of the org (0 before its first change).
pub async fn current(db: &PgPool, org_id: Uuid) -> Result<u64, sqlx::Error> {
    let mut tx = crate::db::begin_org(db, org_id).await?;
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT last_seq FROM org_change_seq WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(row.map_or(0, |(s,)| seq_from_db(s)))
}

/// Appends changes (with their already allocated seqs) to the log in one statement.
pub async fn append(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
    changes: &[CommittedChange],
) -> Result<(), sqlx::Error> {
    let seqs: Vec<i64> = changes.iter().map(|c| seq_to_db(c.seq)).collect();
    let docs: Vec<Uuid> = changes.iter().map(|c| c.doc_id).collect();
    let collections: Vec<&str> = changes.iter().map(|c| c.collection.as_str()).collect();
    let payloads: Vec<&[u8]> = changes.iter().map(|c| c.payload.as_slice()).collect();
    let clients: Vec<Option<Uuid>> = changes.iter().map(|c| c.mid.map(|m| m.client_id)).collect();
    let client_seqs: Vec<Option<i64>> = changes
        .iter()
        .map(|c| c.mid.map(|m| seq_to_db(m.seq)))
        .collect();
    sqlx::query(
        "INSERT INTO change_log (org_id, seq, doc_id, collection, payload, user_id, client_id, client_seq) \
         SELECT $1, s, d, c, p, $2, cl, cs \
         FROM UNNEST($3::bigint[], $4::uuid[], $5::text[], $6::bytea[], $7::uuid[], $8::bigint[]) \
              AS t(s, d, c, p, cl, cs)",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(&seqs)
    .bind(&docs)
    .bind(&collections)
    .bind(&payloads)
    .bind(&clients)
    .bind(&client_seqs)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Which changes a read of the log returns. Authorization entries (collection `_acl`) are
/// always included: they decide what a reader may see from then on.
#[derive(Debug, Clone)]
pub enum LogFilter<'a> {
    All,
    Collection(&'a str),
    Document(Uuid),
}

/// Changes of the org with `after < seq <= upto`, in seq order, at most `limit`.
pub async fn read_range(
    db: &PgPool,
    org_id: Uuid,
    after: u64,
    upto: u64,
    filter: &LogFilter<'_>,
    limit: i64,
) -> Result<Vec<CommittedChange>, sqlx::Error> {
    type Row = (i64, Uuid, String, Vec<u8>, Option<Uuid>, Option<i64>);
    macro_rules! log_query {
        ($tail:literal) => {
            concat!(
                "SELECT seq, doc_id, collection, payload, client_id, client_seq FROM change_log \
                 WHERE org_id = $1 AND seq > $2 AND seq <= $3",
                $tail
            )
        };
    }
    let query = match filter {
        LogFilter::All => sqlx::query_as::<_, Row>(log_query!(" ORDER BY seq LIMIT $4")),
        LogFilter::Collection(_) => sqlx::query_as(log_query!(
            " AND (collection = $5 OR collection = '_acl') ORDER BY seq LIMIT $4"
        )),
        LogFilter::Document(_) => sqlx::query_as(log_query!(
            " AND (doc_id = $5 OR collection = '_acl') ORDER BY seq LIMIT $4"
        )),
    };
    let query = query
        .bind(org_id)
        .bind(seq_to_db(after))
        .bind(seq_to_db(upto))
        .bind(limit);
    let query = match filter {
        LogFilter::All => query,
        LogFilter::Collection(c) => query.bind(*c),
        LogFilter::Document(d) => query.bind(*d),
    };
    let mut tx = crate::db::begin_org(db, org_id).await?;
    let rows = query.fetch_all(&mut *tx).await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(
            |(seq, doc_id, collection, payload, client_id, client_seq)| CommittedChange {
                seq: seq_from_db(seq),
                doc_id,
                collection,
                payload,
                mid: client_id.zip(client_seq).map(|(client_id, s)| MutationId {
                    client_id,
                    seq: seq_from_db(s),
                }),
            },
        )
        .collect())
}
