//! Documents the server creates as itself, not on a user's behalf: personal documents
//! (notifications, see `authz::model`).
//!
//! Such a creation is not judged as anyone's write: no user's relation or field rules apply (no
//! client may write a notification's text, see `rules::NOTIFICATION_RULES`). What still applies
//! is everything that keeps the store consistent: the record is validated against its schema
//! like a pushed one, its owner must be the record's `recipient_id` (the field the authorization
//! model reads owners from), the id must be a personal id and free in every org, and the change
//! is materialized, appended to the change log under the next seq and published like any other.
//!
//! It runs in the caller's transaction, so a caller can commit it together with related work
//! (the email channel's queue row); [`SystemChange::published`] finishes after commit. The
//! transaction also bumps the org's `acl_seq`: the new document changes who may read what, so
//! models of every process that predate it are reloaded before they judge it (see
//! `authz::cache`).

use automerge::transaction::CommitOptions;
use automerge::{ActorId, Automerge, ReadDoc};
use syncline_protocol::ErrorCode;
use syncline_protocol::record::{FieldValue, put_field, read_record};
use syncline_protocol::schema::{self, CollectionSchema};
use uuid::Uuid;

use super::document::{Refusal, refuse};
use super::server::SERVER_ACTOR;
use crate::AppState;
use crate::hub::{CommittedBatch, CommittedChange};
use crate::store::documents::{self, DocumentLookup};
use crate::store::materialize::{self, ServerFields};
use crate::store::{Tx, change_log};

/// The field of a personal record naming the user it belongs to.
pub const OWNER_FIELD: &str = "recipient_id";

/// A personal record to create.
#[derive(Debug, Clone)]
pub struct PersonalRecord<'a> {
    pub schema: &'static CollectionSchema,
    /// A personal id (`authz::model::personal_id`), derived from what makes the record unique.
    pub doc_id: Uuid,
    /// The user it belongs to; must equal the record's [`OWNER_FIELD`].
    pub owner: Uuid,
    pub fields: &'a [(&'static str, FieldValue)],
}

/// What [`create_personal`] did.
#[derive(Debug)]
pub enum Created {
    /// Stored in the transaction; call [`SystemChange::published`] after it commits.
    New(Box<SystemChange>),
    /// A document with this id already exists in the org (an earlier run created it).
    Exists,
}

/// A committed system change to announce: cache, authorization model, connections.
#[derive(Debug)]
pub struct SystemChange {
    org_id: Uuid,
    version: i64,
    doc: Automerge,
    change: CommittedChange,
}

impl SystemChange {
    /// The change's seq in the org's log.
    pub fn seq(&self) -> u64 {
        self.change.seq
    }

    /// After commit: forgets this process's (now stale) authorization model, caches the
    /// document and publishes the change to the org's connections.
    pub fn published(self, state: &AppState) {
        state.acl.invalidate(self.org_id);
        let doc_id = self.change.doc_id;
        state.docs.put(self.org_id, doc_id, self.version, self.doc);
        let seq = self.change.seq;
        state.hub.publish(CommittedBatch {
            org_id: self.org_id,
            first_seq: seq,
            last_seq: seq,
            changes: vec![self.change],
        });
        tracing::debug!(%doc_id, seq, "system change committed");
    }
}

/// Creates `record` in `org_id` in `tx`, unless its id already exists there. Must be the last
/// write of the transaction before commit: it allocates the change's seq, which keeps the org's
/// seq row locked until then. `Ok(Err(..))` is a refusal (the caller should roll back).
pub async fn create_personal(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    record: &PersonalRecord<'_>,
) -> Result<Result<Created, Refusal>, sqlx::Error> {
    if !schema::is_personal(record.schema.name)
        || !crate::authz::model::is_personal_id(record.doc_id)
    {
        return Ok(Err(refuse(
            ErrorCode::InvalidInput,
            "only personal records with personal ids are created by the system",
        )));
    }
    if record
        .fields
        .iter()
        .find(|(name, _)| *name == OWNER_FIELD)
        .map(|(_, v)| v)
        != Some(&FieldValue::Ref(record.owner))
    {
        return Ok(Err(refuse(
            ErrorCode::InvalidInput,
            format!("{OWNER_FIELD} must name the record's owner"),
        )));
    }
    let lookup =
        documents::lock_or_reserve(tx, org_id, record.doc_id, record.schema.name, record.owner)
            .await?;
    let created_at = match lookup {
        DocumentLookup::Found(found) if found.collection == record.schema.name => {
            return Ok(Ok(Created::Exists));
        }
        DocumentLookup::Found(_) | DocumentLookup::OtherOrg => {
            return Ok(Err(refuse(
                ErrorCode::Conflict,
                "a document of another collection or org has this id",
            )));
        }
        DocumentLookup::Reserved { created_at } => created_at,
    };
    let (doc, payload) = match author(record) {
        Ok(built) => built,
        Err(refusal) => {
            documents::release_reservation(tx, org_id, record.doc_id).await?;
            return Ok(Err(refusal));
        }
    };
    // Validated exactly as a pushed record is (types, lengths, required fields).
    let fields = match read_record(&doc, record.schema) {
        Ok(fields) => fields,
        Err(e) => {
            documents::release_reservation(tx, org_id, record.doc_id).await?;
            return Ok(Err(refuse(e.code, format!("{}: {}", e.field, e.message))));
        }
    };
    let version = documents::store_state(tx, org_id, record.doc_id, &doc.save()).await?;
    let server = ServerFields {
        created_by: record.owner,
        created_at,
        updated_at: chrono::Utc::now(),
    };
    materialize::upsert_row(tx, record.schema, org_id, record.doc_id, &fields, &server).await?;
    let seq = change_log::allocate(tx, org_id, 1).await?;
    // Who may read what changed: every process's model older than this seq is stale.
    sqlx::query("UPDATE org_change_seq SET acl_seq = $2 WHERE org_id = $1")
        .bind(org_id)
        .bind(crate::store::seq_to_db(seq))
        .execute(&mut **tx)
        .await?;
    let change = CommittedChange {
        seq,
        doc_id: record.doc_id,
        collection: record.schema.name.to_owned(),
        payload,
        mid: None,
    };
    change_log::append(tx, org_id, record.owner, std::slice::from_ref(&change)).await?;
    Ok(Ok(Created::New(Box::new(SystemChange {
        org_id,
        version,
        doc,
        change,
    }))))
}

/// The new document and its one change, made by the server's actor.
fn author(record: &PersonalRecord<'_>) -> Result<(Automerge, Vec<u8>), Refusal> {
    let mut doc = Automerge::new();
    doc.set_actor(ActorId::from(SERVER_ACTOR));
    let mut tx = doc.transaction();
    for (name, value) in record.fields {
        put_field(&mut tx, record.schema, name, Some(value))
            .map_err(|e| refuse(e.code, format!("{}: {}", e.field, e.message)))?;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let (hash, _) = tx.commit_with(CommitOptions::default().with_time(now));
    let change = hash
        .and_then(|h| doc.get_change_by_hash(&h))
        .ok_or_else(|| refuse(ErrorCode::InvalidInput, "the record has no fields"))?;
    let payload = change.raw_bytes().to_vec();
    Ok((doc, payload))
}
