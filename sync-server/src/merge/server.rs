//! Changes the server authors on behalf of a user: the REST bridge's writes.
//!
//! The server is an automerge actor of its own ([`SERVER_ACTOR`]). A write becomes one automerge
//! change made on the stored document (locked for the transaction) that puts only the fields the
//! caller gave, so it merges with concurrent offline edits of other fields instead of
//! overwriting them. The change then goes through the same path as a pushed mutation
//! ([`WorkingDocs::merge`]): the caller's relation, the collection's write rules, validation of
//! the merged record, life-cycle rules, materialization. It is appended to the change log without
//! a client mutation id (`client_id` NULL) and published like any other change, so connected
//! clients receive it live.

use std::time::Duration;

use automerge::transaction::CommitOptions;
use automerge::{ActorId, Automerge, ReadDoc};
use serde_bytes::ByteBuf;
use syncline_protocol::record::{FieldValue, put_field};
use syncline_protocol::schema::CollectionSchema;
use syncline_protocol::{ErrorCode, Mutation, MutationId};
use uuid::Uuid;

use super::Pusher;
use super::document::{Current, Refusal, WorkingDocs, refuse};
use crate::AppState;
use crate::error::ServerError;
use crate::hub::{CommittedBatch, CommittedChange};
use crate::store::change_log;

/// The actor id of changes the server authors. One fixed actor is safe: a document is locked
/// while the server builds a change on its current state, so the actor's sequence numbers in it
/// never repeat.
pub const SERVER_ACTOR: [u8; 16] = *b"syncline-server\0";

/// Attempts for a write that hits a deadlock or serialization failure.
const MAX_ATTEMPTS: u32 = 5;

/// Whether a write creates the document or changes an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Create,
    Update,
}

/// One server-authored write of some fields of one record.
#[derive(Debug, Clone)]
pub struct ServerWrite<'a> {
    pub schema: &'static CollectionSchema,
    pub doc_id: Uuid,
    pub kind: WriteKind,
    /// Field name and new value; `None` clears the field.
    pub fields: &'a [(&'static str, Option<FieldValue>)],
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Committed as the change with this seq.
    Changed(u64),
    /// The fields already had these values: nothing was stored.
    Unchanged,
}

/// Applies a write made by `user_id` in `org_id`; `Ok(Err(..))` is a refusal (not found,
/// forbidden, invalid), `Err` a failure of the server.
pub async fn apply_server_write(
    state: &AppState,
    org_id: Uuid,
    user_id: Uuid,
    write: &ServerWrite<'_>,
) -> Result<Result<Written, Refusal>, ServerError> {
    // No client and no mutation id: the log row's client is NULL.
    let author = Pusher {
        org_id,
        user_id,
        client_id: Uuid::nil(),
    };
    let mut attempt = 1;
    loop {
        match try_write(state, author, write).await {
            Ok(outcome) => return Ok(outcome),
            Err(e) if attempt < MAX_ATTEMPTS && super::is_retryable(&e) => {
                tracing::debug!(attempt, error = %e, "retrying a server write after a conflict");
                tokio::time::sleep(Duration::from_millis(5 * u64::from(attempt))).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn try_write(
    state: &AppState,
    author: Pusher,
    write: &ServerWrite<'_>,
) -> Result<Result<Written, Refusal>, sqlx::Error> {
    let (mut tx, acl) = crate::authz::fresh::begin_with_acl(state, author.org_id).await?;
    let mut docs = WorkingDocs::default();
    let current = docs
        .current(
            &mut tx,
            &state.docs,
            author,
            &acl,
            write.doc_id,
            write.schema,
        )
        .await?;
    let base = match (current, write.kind) {
        (Current::Existing(doc), WriteKind::Update) => *doc,
        (Current::New, WriteKind::Create) => Automerge::new(),
        // Ids are unique across orgs and collections: an id taken anywhere is a conflict (which
        // reveals no more than that a random UUID is in use).
        (Current::Existing(_) | Current::Inaccessible, WriteKind::Create) => {
            return Ok(Err(refuse(
                ErrorCode::Conflict,
                "a document with this id already exists",
            )));
        }
        // Returning drops `tx`: the reservation `current` may have made is rolled back.
        (Current::New | Current::Inaccessible, _) => {
            return Ok(Err(refuse(ErrorCode::NotFound, "record not found")));
        }
        (Current::MayNotCreate, _) => {
            return Ok(Err(refuse(
                ErrorCode::Forbidden,
                "your role may not create records of this collection",
            )));
        }
    };
    let payload = match author_change(base, write) {
        Ok(Some(payload)) => payload,
        Ok(None) => return Ok(Ok(Written::Unchanged)),
        Err(refusal) => return Ok(Err(refusal)),
    };
    let mutation = Mutation {
        // Only for log context in the merge's panic guard; never stored (see `CommittedChange`).
        mid: MutationId {
            client_id: Uuid::nil(),
            seq: 0,
        },
        doc_id: write.doc_id,
        collection: write.schema.name.to_owned(),
        payload: ByteBuf::from(payload.clone()),
    };
    if let Err(refusal) = docs
        .merge(&mut tx, &state.docs, author, &acl, &mutation)
        .await?
    {
        return Ok(Err(refusal));
    }
    let stored = docs.store(&mut tx, author.org_id).await?;
    let jobs = crate::effects::outbox::record(
        &mut tx,
        &state.effect_handlers,
        author.org_id,
        Some(author.user_id),
        &stored.records,
        &[],
    )
    .await?;
    let seq = change_log::allocate(&mut tx, author.org_id, 1).await?;
    let change = CommittedChange {
        seq,
        doc_id: write.doc_id,
        collection: write.schema.name.to_owned(),
        payload,
        mid: None,
    };
    change_log::append(
        &mut tx,
        author.org_id,
        author.user_id,
        std::slice::from_ref(&change),
    )
    .await?;
    tx.commit().await?;
    if jobs > 0 {
        state.effect_wakeup.wake();
    }
    for (doc_id, version, doc) in stored.written {
        state.docs.put(author.org_id, doc_id, version, doc);
    }
    state.hub.publish(CommittedBatch {
        org_id: author.org_id,
        first_seq: seq,
        last_seq: seq,
        changes: vec![change],
    });
    tracing::debug!(doc_id = %write.doc_id, seq, "server-authored change committed");
    Ok(Ok(Written::Changed(seq)))
}

/// Builds the change that puts `write.fields` on `base`; `None` when it changes nothing.
fn author_change(mut base: Automerge, write: &ServerWrite<'_>) -> Result<Option<Vec<u8>>, Refusal> {
    base.set_actor(ActorId::from(SERVER_ACTOR));
    let now = chrono::Utc::now().timestamp_millis();
    let mut tx = base.transaction();
    for (name, value) in write.fields {
        put_field(&mut tx, write.schema, name, value.as_ref())
            .map_err(|e| refuse(e.code, format!("{}: {}", e.field, e.message)))?;
    }
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now));
    let Some(hash) = hash else {
        return Ok(None);
    };
    let change = base
        .get_change_by_hash(&hash)
        .ok_or_else(|| refuse(ErrorCode::Internal, "the authored change is missing"))?;
    Ok(Some(change.raw_bytes().to_vec()))
}
