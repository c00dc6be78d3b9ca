//! Per-client mutation progress, so that mutations are processed once and in order per client,
//! and retransmits are answered exactly as the first time (same `Ack` seq or same `Reject`).

use syncline_protocol::{ErrorCode, MutationId};
use uuid::Uuid;

use super::{Tx, seq_from_db, seq_to_db};

/// Who owns a client id.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientOwner {
    /// Registered to this user (possibly just now).
    ThisUser,
    /// Registered to someone else: the connection must be refused.
    OtherUser,
}

/// Registers `client_id` to the user on first sight; reports whether it belongs to them.
pub async fn claim_client(
    db: &sqlx::PgPool,
    org_id: Uuid,
    client_id: Uuid,
    user_id: Uuid,
) -> Result<ClientOwner, sqlx::Error> {
    let mut tx = crate::db::begin_org(db, org_id).await?;
    sqlx::query(
        "INSERT INTO client_progress (org_id, client_id, user_id) VALUES ($1, $2, $3) \
         ON CONFLICT (org_id, client_id) DO NOTHING",
    )
    .bind(org_id)
    .bind(client_id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    let (owner,): (Uuid,) =
        sqlx::query_as("SELECT user_id FROM client_progress WHERE org_id = $1 AND client_id = $2")
            .bind(org_id)
            .bind(client_id)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(if owner == user_id {
        ClientOwner::ThisUser
    } else {
        ClientOwner::OtherUser
    })
}

/// Locks the client's progress row for the transaction and returns the highest mutation seq
/// already processed. Two connections of the same client thus never interleave mutations.
pub async fn lock(tx: &mut Tx<'_>, org_id: Uuid, client_id: Uuid) -> Result<u64, sqlx::Error> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT last_client_seq FROM client_progress WHERE org_id = $1 AND client_id = $2 FOR UPDATE",
    )
    .bind(org_id)
    .bind(client_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map_or(0, |(s,)| seq_from_db(s)))
}

pub async fn advance(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    client_id: Uuid,
    last: u64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE client_progress SET last_client_seq = $3, updated_at = now() \
         WHERE org_id = $1 AND client_id = $2",
    )
    .bind(org_id)
    .bind(client_id)
    .bind(seq_to_db(last))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// How an already processed mutation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PastOutcome {
    Acked(u64),
    Rejected {
        code: String,
        message: String,
    },
    /// Below the client's progress but unknown: it was never seen (the client skipped it).
    Unknown,
}

/// Looks up the outcome of a mutation the client's progress has passed.
pub async fn past_outcome(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    mid: MutationId,
) -> Result<PastOutcome, sqlx::Error> {
    let acked: Option<(i64,)> = sqlx::query_as(
        "SELECT seq FROM change_log WHERE org_id = $1 AND client_id = $2 AND client_seq = $3",
    )
    .bind(org_id)
    .bind(mid.client_id)
    .bind(seq_to_db(mid.seq))
    .fetch_optional(&mut **tx)
    .await?;
    if let Some((seq,)) = acked {
        return Ok(PastOutcome::Acked(seq_from_db(seq)));
    }
    let rejected: Option<(String, String)> = sqlx::query_as(
        "SELECT code, message FROM mutation_rejections \
         WHERE org_id = $1 AND client_id = $2 AND client_seq = $3",
    )
    .bind(org_id)
    .bind(mid.client_id)
    .bind(seq_to_db(mid.seq))
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match rejected {
        Some((code, message)) => PastOutcome::Rejected { code, message },
        None => PastOutcome::Unknown,
    })
}

/// Records a rejection so a retransmit gets the same answer.
pub async fn record_rejection(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    mid: MutationId,
    doc_id: Uuid,
    code: ErrorCode,
    message: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO mutation_rejections (org_id, client_id, client_seq, doc_id, code, message) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(org_id)
    .bind(mid.client_id)
    .bind(seq_to_db(mid.seq))
    .bind(doc_id)
    .bind(code.as_str())
    .bind(message)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
