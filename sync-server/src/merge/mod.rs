//! Merging pushed mutations: the write path of the server.
//!
//! A `Push` is processed in one Postgres transaction. Per mutation, in the client's order:
//! idempotency (a mutation the client's progress has passed is answered as the first time),
//! the document's org and collection, the change's dependencies, then the change is applied to
//! a copy of the stored document and the merged record is validated against its schema. An
//! accepted change replaces the working document; a refused one leaves it untouched, so a later
//! mutation depending on it fails its dependency check and is refused too. Automerge runs on
//! the payload only under a panic guard and after an inflation cap (`untrusted.rs`): crafted
//! changes make automerge 0.12 panic, and compressed ones inflate without limit.
//!
//! At the end the merged documents are stored and materialized, seqs are allocated (the org's
//! counter row stays locked until commit: see [`crate::store::change_log`]), the changes are
//! appended to the log and the client's progress advances. Only after commit are the `Ack`s sent
//! and the batch published to the org's connections.

pub mod cache;
mod dependencies;
mod document;
pub mod server;
pub mod system;
mod text;
mod untrusted;

use std::collections::HashMap;
use std::time::Duration;

use serde_bytes::ByteBuf;
use syncline_protocol::schema;
use syncline_protocol::{ErrorCode, Mutation, MutationId, ServerMessage};
use uuid::Uuid;

use crate::AppState;
use crate::error::ServerError;
use crate::hub::{CommittedBatch, CommittedChange};
use crate::store::progress::{self, PastOutcome};
use crate::store::{Tx, change_log};
pub use document::Refusal;
use document::WorkingDocs;
use text::TextDocs;
pub use untrusted::{MAX_INFLATED_CHANGE_BYTES, PANIC_REFUSAL};

/// Largest accepted change payload.
pub const MAX_CHANGE_BYTES: usize = 1 << 20;
/// Attempts for a batch that hits a deadlock or serialization failure.
const MAX_ATTEMPTS: u32 = 5;

/// Who is pushing.
#[derive(Debug, Clone, Copy)]
pub struct Pusher {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub client_id: Uuid,
}

/// The answers to a push and the batch to publish once they are sent.
#[derive(Debug, Default)]
pub struct PushOutcome {
    /// One `Ack` or `Reject` per mutation, in order.
    pub replies: Vec<ServerMessage>,
    pub batch: Option<CommittedBatch>,
}

/// Applies a push; retries the whole transaction on deadlock or serialization failure.
pub async fn apply_push(
    state: &AppState,
    pusher: Pusher,
    mutations: &[Mutation],
) -> Result<PushOutcome, ServerError> {
    let mut attempt = 1;
    loop {
        match try_apply(state, pusher, mutations).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) if attempt < MAX_ATTEMPTS && is_retryable(&e) => {
                tracing::debug!(attempt, error = %e, "retrying push after a transient conflict");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn is_retryable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01" || code == "40001")
}

/// An answer decided during the transaction; new acks get their seq at the end.
#[derive(Debug, Clone)]
enum Answer {
    Acked(u64),
    NewAck(usize),
    Rejected(ErrorCode, String),
}

async fn try_apply(
    state: &AppState,
    pusher: Pusher,
    mutations: &[Mutation],
) -> Result<PushOutcome, sqlx::Error> {
    // The authorization model must be current as of now, even if another server process
    // changed access: the org's acl_seq says how new it must be.
    let (mut tx, acl) = crate::authz::fresh::begin_with_acl(state, pusher.org_id).await?;
    let mut progress_seq = progress::lock(&mut tx, pusher.org_id, pusher.client_id).await?;
    let start_progress = progress_seq;
    let mut docs = WorkingDocs::default();
    let mut texts = TextDocs::default();
    let mut accepted: Vec<CommittedChange> = Vec::new();
    let mut answers: Vec<(MutationId, Answer)> = Vec::with_capacity(mutations.len());
    let mut this_batch: HashMap<u64, Answer> = HashMap::new();
    let mut rejections: Vec<(MutationId, Uuid, ErrorCode, String)> = Vec::new();

    for m in mutations {
        let answer = if m.mid.client_id != pusher.client_id || m.mid.seq == 0 {
            Answer::Rejected(
                ErrorCode::InvalidMutationId,
                "mutation ids must name this connection's client and start at 1".into(),
            )
        } else if let Some(past) = match this_batch.get(&m.mid.seq) {
            Some(a) => Some(a.clone()),
            None if m.mid.seq <= progress_seq => past_answer(&mut tx, pusher.org_id, m.mid).await?,
            None => None,
        } {
            past
        } else {
            // New, or below the client's progress but never received: pushes can overtake
            // each other across connections (an old connection's push arriving after the new
            // connection's), and a late one is still the client's work (conflict-tests).
            progress_seq = progress_seq.max(m.mid.seq);
            let merged = match schema::text_collection(&m.collection) {
                Some(collection) => {
                    let ctx = text::PushContext {
                        cache: &state.texts,
                        pusher,
                        acl: &acl,
                        records: &docs,
                    };
                    texts.merge(&mut tx, &ctx, collection, m).await?
                }
                None => docs.merge(&mut tx, &state.docs, pusher, &acl, m).await?,
            };
            let answer = match merged {
                Ok(()) => {
                    accepted.push(CommittedChange {
                        seq: 0,
                        doc_id: m.doc_id,
                        collection: m.collection.clone(),
                        payload: m.payload.to_vec(),
                        mid: Some(m.mid),
                    });
                    Answer::NewAck(accepted.len() - 1)
                }
                Err(Refusal { code, message }) => {
                    rejections.push((m.mid, m.doc_id, code, message.clone()));
                    Answer::Rejected(code, message)
                }
            };
            this_batch.insert(m.mid.seq, answer.clone());
            answer
        };
        answers.push((m.mid, answer));
    }

    let (written_texts, edits) = texts.store(&mut tx, pusher.org_id).await?;
    let stored = docs.store(&mut tx, pusher.org_id).await?;
    let jobs = crate::effects::outbox::record(
        &mut tx,
        &state.effect_handlers,
        pusher.org_id,
        Some(pusher.user_id),
        &stored.records,
        &edits,
    )
    .await?;
    for (mid, doc_id, code, message) in &rejections {
        progress::record_rejection(&mut tx, pusher.org_id, *mid, *doc_id, *code, message).await?;
    }
    if progress_seq != start_progress {
        progress::advance(&mut tx, pusher.org_id, pusher.client_id, progress_seq).await?;
    }
    let batch = if accepted.is_empty() {
        None
    } else {
        // Last step before commit: the org's seq row stays locked until then.
        let count = accepted.len() as u64;
        let first = change_log::allocate(&mut tx, pusher.org_id, count).await?;
        for (i, change) in accepted.iter_mut().enumerate() {
            change.seq = first + i as u64;
        }
        change_log::append(&mut tx, pusher.org_id, pusher.user_id, &accepted).await?;
        Some(CommittedBatch {
            org_id: pusher.org_id,
            first_seq: first,
            last_seq: first + count - 1,
            changes: accepted,
        })
    };
    if state.faults.take_commit_failure() {
        // Rolled back when `tx` drops: nothing of this push is stored or answered.
        return Err(sqlx::Error::Protocol(
            "injected fault: the transaction failed before commit".into(),
        ));
    }
    tx.commit().await?;
    if jobs > 0 {
        state.effect_wakeup.wake();
    }
    for (doc_id, version, doc) in stored.written {
        state.docs.put(pusher.org_id, doc_id, version, doc);
    }
    for (doc_id, version, doc) in written_texts {
        state.texts.put(pusher.org_id, doc_id, version, doc);
    }

    let replies = answers
        .into_iter()
        .map(|(mid, answer)| match answer {
            Answer::Acked(seq) => ServerMessage::Ack { mid, seq },
            Answer::NewAck(i) => ServerMessage::Ack {
                mid,
                seq: batch.as_ref().map_or(0, |b| b.changes[i].seq),
            },
            Answer::Rejected(code, message) => ServerMessage::Reject { mid, code, message },
        })
        .collect();
    Ok(PushOutcome { replies, batch })
}

/// The stored answer to a mutation at or below the client's progress; `None` if it was never
/// received.
async fn past_answer(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    mid: MutationId,
) -> Result<Option<Answer>, sqlx::Error> {
    Ok(match progress::past_outcome(tx, org_id, mid).await? {
        PastOutcome::Acked(seq) => Some(Answer::Acked(seq)),
        PastOutcome::Rejected { code, message } => {
            let code = serde_json::from_value(serde_json::Value::String(code))
                .unwrap_or(ErrorCode::Internal);
            Some(Answer::Rejected(code, message))
        }
        PastOutcome::Unknown => None,
    })
}

/// Builds a `Change` message from a committed change.
pub fn change_message(change: &CommittedChange) -> ServerMessage {
    ServerMessage::Change {
        seq: change.seq,
        doc_id: change.doc_id,
        collection: change.collection.clone(),
        payload: ByteBuf::from(change.payload.clone()),
        mid: change.mid,
    }
}
