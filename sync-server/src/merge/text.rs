//! The text documents touched by one push (bodies of notes and business documents): loaded and
//! locked once, changed in memory per accepted update, stored once at the end of the
//! transaction (see [`crate::text`]).
//!
//! Per mutation: the body's record must exist in the pusher's org (created earlier in the same
//! push counts) and be of the text collection's parent collection; the pusher's relation to the
//! document gives their [`TextRole`] (a signed contract's body is read-only for everyone); then
//! [`authorize_update`] judges the update against the server's copy, and only an accepted
//! update is applied to it.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::panic::{AssertUnwindSafe, catch_unwind};

use syncline_protocol::rules::Relation;
use syncline_protocol::schema::{self, DOCUMENTS, TextCollection};
use syncline_protocol::text::{
    self, EditorUpdate, TextRole, apply_editor_update, authorize_update,
};
use syncline_protocol::{ErrorCode, Mutation};
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

use super::document::{Refusal, WorkingDocs, refuse};
use super::{MAX_CHANGE_BYTES, Pusher};
use crate::authz::OrgAcl;
use crate::effects::outbox::TextEdit;
use crate::store::Tx;
use crate::text::cache::TextCache;
use crate::text::store::{self, COMPACT_AFTER};

enum Slot {
    Own(Box<WorkingText>),
    /// Another org's, unreadable, or without a valid record: refused, with this reason.
    Refused(ErrorCode, String),
}

struct WorkingText {
    collection: &'static TextCollection,
    doc: Doc,
    role: TextRole,
    /// The locked row's version: the cache key of the document as loaded.
    version: i64,
    pending_updates: i32,
    /// Updates accepted in this push, in order.
    accepted: Vec<Vec<u8>>,
}

/// What a text merge needs of the push around it.
#[derive(Clone, Copy)]
pub struct PushContext<'a> {
    pub cache: &'a TextCache,
    pub pusher: Pusher,
    pub acl: &'a OrgAcl,
    /// The push's record documents: a body's record may be created earlier in the same push.
    pub records: &'a WorkingDocs,
}

#[derive(Default)]
pub struct TextDocs {
    docs: HashMap<Uuid, Slot>,
}

/// A body written by a push: `(doc_id, version, document)`, for the cache once committed.
pub type WrittenText = (Uuid, i64, Doc);

impl TextDocs {
    /// Judges and applies one update to a body; `Ok(Err(..))` is a refusal.
    pub async fn merge(
        &mut self,
        tx: &mut Tx<'_>,
        ctx: &PushContext<'_>,
        collection: &'static TextCollection,
        m: &Mutation,
    ) -> Result<Result<(), Refusal>, sqlx::Error> {
        let pusher = ctx.pusher;
        if m.payload.len() > MAX_CHANGE_BYTES {
            return Ok(Err(refuse(
                ErrorCode::TooLarge,
                format!("an update may hold at most {MAX_CHANGE_BYTES} bytes"),
            )));
        }
        let slot = match self.docs.entry(m.doc_id) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(vacant) => {
                let slot = load(tx, ctx, collection, m.doc_id).await?;
                vacant.insert(slot)
            }
        };
        let working = match slot {
            Slot::Own(w) => w,
            Slot::Refused(code, message) => return Ok(Err(refuse(*code, message.clone()))),
        };
        if working.collection.name != collection.name {
            return Ok(Err(refuse(
                ErrorCode::CollectionMismatch,
                format!("document belongs to `{}`", working.collection.name),
            )));
        }
        if working.role == TextRole::Editor {
            // Editors may change anything: apply directly, judge afterwards (see
            // `apply_editor_update`); a refused update taints the copy, which is rebuilt.
            return Ok(match apply_editor_update(&working.doc, &m.payload) {
                EditorUpdate::Applied { changed } => {
                    if changed {
                        working.accepted.push(m.payload.to_vec());
                    }
                    Ok(())
                }
                EditorUpdate::Refused {
                    refusal,
                    doc_tainted,
                } => {
                    if doc_tainted {
                        let parts = store::parts(tx, pusher.org_id, m.doc_id).await?;
                        let rebuilt = store::doc_from_parts(m.doc_id, &parts)?;
                        for update in &working.accepted {
                            apply_trusted(&rebuilt, update)?;
                        }
                        working.doc = rebuilt;
                    }
                    Err(refuse(refusal.code, refusal.message))
                }
            });
        }
        if let Err(refusal) =
            authorize_update(&working.doc, &m.payload, pusher.user_id, working.role)
        {
            return Ok(Err(refuse(refusal.code, refusal.message)));
        }
        // Judged on a scratch copy above, so this integrates; a panic here would leave the copy
        // half-changed, hence the whole push fails (and is retried by the client).
        let before = working.doc.transact().snapshot();
        let applied = catch_unwind(AssertUnwindSafe(|| {
            let update = Update::decode_v1(&m.payload).map_err(|e| e.to_string())?;
            working
                .doc
                .transact_mut()
                .apply_update(update)
                .map_err(|e| e.to_string())
        }));
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(sqlx::Error::Protocol(format!(
                    "accepted update did not apply: {e}"
                )));
            }
            Err(_) => return Err(sqlx::Error::Protocol("accepted update panicked yrs".into())),
        }
        // An update that adds nothing (a re-sent edit, an editor's echo) is acknowledged and
        // logged like any other but not appended to the document's stored updates.
        if working.doc.transact().snapshot() != before {
            working.accepted.push(m.payload.to_vec());
        }
        Ok(Ok(()))
    }

    /// Appends every accepted update, refreshes plain text, compacts where due. Returns every
    /// loaded document with its version (for the cache once committed) and the bodies that
    /// changed (for the effects of [`crate::effects::outbox`]).
    pub async fn store(
        self,
        tx: &mut Tx<'_>,
        org_id: Uuid,
    ) -> Result<(Vec<WrittenText>, Vec<TextEdit>), sqlx::Error> {
        let mut written = Vec::new();
        let mut edits = Vec::new();
        for (doc_id, slot) in self.docs {
            let Slot::Own(w) = slot else { continue };
            if w.accepted.is_empty() {
                // Unchanged: back into the cache as loaded.
                written.push((doc_id, w.version, w.doc));
                continue;
            }
            let plain = text::plain_text(&w.doc);
            let count = i32::try_from(w.accepted.len()).unwrap_or(i32::MAX);
            let compacted = (w.pending_updates.saturating_add(count) >= COMPACT_AFTER).then(|| {
                w.doc
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default())
            });
            let version = store::append(
                tx,
                org_id,
                doc_id,
                &w.accepted,
                &plain,
                compacted.as_deref(),
            )
            .await?;
            edits.push(TextEdit {
                collection: w.collection.name,
                doc_id,
                suggestion: w.role == TextRole::Suggester,
            });
            written.push((doc_id, version, w.doc));
        }
        Ok((written, edits))
    }
}

async fn load(
    tx: &mut Tx<'_>,
    ctx: &PushContext<'_>,
    collection: &'static TextCollection,
    doc_id: Uuid,
) -> Result<Slot, sqlx::Error> {
    let PushContext {
        cache,
        pusher,
        acl,
        records,
    } = *ctx;
    let record: Option<(String, Uuid, bool)> = sqlx::query_as(
        "SELECT collection, created_by, state = '\\x'::bytea FROM documents WHERE org_id = $1 AND id = $2",
    )
    .bind(pusher.org_id)
    .bind(doc_id)
    .fetch_optional(&mut **tx)
    .await?;
    let not_accessible = || {
        Slot::Refused(
            ErrorCode::Forbidden,
            "document not found or not accessible".into(),
        )
    };
    let Some((record_collection, created_by, reserved)) = record else {
        // Row-level security hides other orgs' documents; this narrow lookup tells them apart.
        let (owner,): (Option<Uuid>,) = sqlx::query_as("SELECT syncline_document_org($1)")
            .bind(doc_id)
            .fetch_one(&mut **tx)
            .await?;
        return Ok(match owner {
            Some(_) => not_accessible(),
            None => Slot::Refused(
                ErrorCode::MissingDependency,
                format!(
                    "the body's record does not exist: create the `{}` record {doc_id} first",
                    collection.parent.name
                ),
            ),
        });
    };
    if record_collection != collection.parent.name {
        return Ok(Slot::Refused(
            ErrorCode::CollectionMismatch,
            format!(
                "document {doc_id} is a `{record_collection}` record, which has no `{}` body",
                collection.name
            ),
        ));
    }
    // A record reserved in this transaction exists only if its creation was accepted.
    if reserved && !records.holds_valid_record(doc_id) {
        return Ok(Slot::Refused(
            ErrorCode::MissingDependency,
            format!("the body's record {doc_id} was not created (was it rejected?)"),
        ));
    }
    let Some(mut relation) = acl.relation(pusher.user_id, doc_id) else {
        return Ok(not_accessible());
    };
    // The creator owns what they created (while they can still read it), as for records.
    if created_by == pusher.user_id {
        relation = Relation::Owner;
    }
    let mut role = TextRole::from(relation);
    if collection.parent.name == DOCUMENTS.name && is_signed(tx, pusher.org_id, doc_id).await? {
        // A signed contract is final: its text no longer changes.
        role = TextRole::Viewer;
    }
    let locked = store::lock_or_create(tx, pusher.org_id, doc_id, collection.name).await?;
    let doc = match cache.take(pusher.org_id, doc_id, locked.version) {
        Some(doc) => doc,
        None => {
            let parts = store::parts(tx, pusher.org_id, doc_id).await?;
            store::doc_from_parts(doc_id, &parts)?
        }
    };
    Ok(Slot::Own(Box::new(WorkingText {
        collection: schema::text_collection(collection.name).unwrap_or(collection),
        doc,
        role,
        version: locked.version,
        pending_updates: locked.pending_updates,
        accepted: Vec::new(),
    })))
}

/// Re-applies an update this push already accepted (to a rebuilt copy).
fn apply_trusted(doc: &Doc, update: &[u8]) -> Result<(), sqlx::Error> {
    let update = Update::decode_v1(update)
        .map_err(|e| sqlx::Error::Protocol(format!("accepted update does not decode: {e}")))?;
    doc.transact_mut()
        .apply_update(update)
        .map_err(|e| sqlx::Error::Protocol(format!("accepted update did not apply: {e}")))
}

async fn is_signed(tx: &mut Tx<'_>, org_id: Uuid, doc_id: Uuid) -> Result<bool, sqlx::Error> {
    let status: Option<(String,)> =
        sqlx::query_as("SELECT status FROM document_records WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(doc_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(status.is_some_and(|(s,)| s == "signed"))
}
