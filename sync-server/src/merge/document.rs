//! The documents touched by one push: loaded and locked once, changed in memory per mutation,
//! stored and materialized once at the end of the transaction.
//!
//! Each mutation is judged on its own, in order: the user's relation to the document (or, for
//! a new document, their org role), then the change is applied to a copy, the merged record is
//! validated, and the fields the change touches are checked against the collection's write
//! rules for that relation. Only a change that passes everything replaces the working copy.
//! Automerge's work on the payload runs under the guards of [`super::untrusted`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use automerge::{Automerge, Change, ReadDoc};
use chrono::{DateTime, Utc};
use syncline_protocol::lifecycle;
use syncline_protocol::record::{FieldValue, Record, read_record};
use syncline_protocol::rules::{self, Relation};
use syncline_protocol::schema::{self, CollectionSchema};
use syncline_protocol::{ErrorCode, Mutation};
use uuid::Uuid;

use super::cache::DocCache;
use super::{MAX_CHANGE_BYTES, Pusher};
use super::{dependencies, untrusted};
use crate::authz::OrgAcl;
use crate::effects::outbox::RecordWrite;
use crate::store::Tx;
use crate::store::documents::{self, DocumentLookup};
use crate::store::materialize::{self, ServerFields};

/// Why one mutation was refused.
#[derive(Debug)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

pub(super) fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

fn not_accessible() -> Refusal {
    refuse(ErrorCode::Forbidden, "document not found or not accessible")
}

/// What a server-authored change can be built on (see [`WorkingDocs::current`]).
pub enum Current {
    /// No such document yet; the caller may create it (it is reserved for this transaction).
    New,
    /// The stored document, which the caller may at least read.
    Existing(Box<Automerge>),
    /// Another org's, another collection's, or one the caller may not read.
    Inaccessible,
    /// No such document, and the caller's org role may not create one of this collection.
    MayNotCreate,
}

enum Slot {
    /// A document the pusher may at least read, existing or reserved for creation.
    Own(Box<WorkingDoc>),
    /// Another org's, or one the pusher may not read: refused without revealing which.
    Inaccessible {
        /// Reserved by this transaction (the pusher may not create it): released at the end.
        reserved: bool,
    },
}

struct WorkingDoc {
    schema: &'static CollectionSchema,
    doc: Automerge,
    /// The current valid record (`None` for a document being created).
    record: Option<Record>,
    /// The record as loaded, before this transaction's changes: events are derived from it.
    before: Option<Record>,
    relation: Relation,
    created_by: Uuid,
    created_at: DateTime<Utc>,
    /// Reserved by this transaction: no stored state yet.
    reserved: bool,
    dirty: bool,
}

#[derive(Default)]
pub struct WorkingDocs {
    docs: HashMap<Uuid, Slot>,
}

impl WorkingDocs {
    /// Checks and applies one mutation; `Ok(Err(..))` is a refusal, `Err` a database failure.
    pub async fn merge(
        &mut self,
        tx: &mut Tx<'_>,
        cache: &DocCache,
        pusher: Pusher,
        acl: &OrgAcl,
        m: &Mutation,
    ) -> Result<Result<(), Refusal>, sqlx::Error> {
        let Some(schema) = schema::collection(&m.collection) else {
            return Ok(Err(refuse(
                ErrorCode::UnknownCollection,
                format!("`{}` is not a synced collection", m.collection),
            )));
        };
        if m.payload.len() > MAX_CHANGE_BYTES {
            return Ok(Err(refuse(
                ErrorCode::TooLarge,
                format!("a change may hold at most {MAX_CHANGE_BYTES} bytes"),
            )));
        }
        // Automerge parses the payload only after the inflated size is known to be bounded,
        // and under a panic guard (see `untrusted`).
        if let Err(refusal) = untrusted::check_chunk(&m.payload) {
            return Ok(Err(refusal));
        }
        let parsed = untrusted::guard(m.mid, "parsing the change", || {
            Change::from_bytes(m.payload.to_vec()).map_err(|e| {
                refuse(
                    ErrorCode::InvalidChange,
                    format!("not an automerge change: {e}"),
                )
            })
        });
        let change = match parsed {
            Ok(c) => c,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let slot = match self.docs.entry(m.doc_id) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(vacant) => {
                vacant.insert(load(tx, cache, pusher, acl, m.doc_id, schema).await?)
            }
        };
        let Slot::Own(working) = slot else {
            return Ok(Err(not_accessible()));
        };
        // `check` reads the working copy and applies the change to a clone of it: a panic
        // halfway through leaves the working copy as it was.
        let checked = untrusted::guard(m.mid, "applying and judging the change", || {
            working.check(pusher.user_id, schema, change)
        });
        let (merged, record, touched) = match checked {
            Ok(checked) => checked,
            Err(refusal) => return Ok(Err(refusal)),
        };
        if touched.contains("depends_on") && !record.contains_key("deleted_at") {
            let deps = match record.get("depends_on") {
                Some(FieldValue::RefList(deps)) => deps.clone(),
                _ => Vec::new(),
            };
            let overrides = self.pending_dependencies(m.doc_id);
            if dependencies::creates_cycle(tx, pusher.org_id, m.doc_id, &deps, &overrides).await? {
                return Ok(Err(refuse(
                    ErrorCode::DependencyCycle,
                    "depends_on: the dependency would create a cycle",
                )));
            }
        }
        if let Some(Slot::Own(working)) = self.docs.get_mut(&m.doc_id) {
            working.doc = merged;
            working.record = Some(record);
            working.dirty = true;
        }
        Ok(Ok(()))
    }

    /// Loads (and locks) `doc_id` for a change the server authors on behalf of `pusher`, and
    /// says what the server may build the change on: see [`Current`]. A reservation made here for
    /// a document that is then not written is released by [`Self::store`].
    pub async fn current(
        &mut self,
        tx: &mut Tx<'_>,
        cache: &DocCache,
        pusher: Pusher,
        acl: &OrgAcl,
        doc_id: Uuid,
        schema: &'static CollectionSchema,
    ) -> Result<Current, sqlx::Error> {
        let slot = match self.docs.entry(doc_id) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(vacant) => {
                vacant.insert(load(tx, cache, pusher, acl, doc_id, schema).await?)
            }
        };
        Ok(match slot {
            Slot::Inaccessible { reserved: true } => Current::MayNotCreate,
            Slot::Inaccessible { reserved: false } => Current::Inaccessible,
            Slot::Own(w) if w.schema.name != schema.name => Current::Inaccessible,
            Slot::Own(w) if w.reserved && w.record.is_none() => Current::New,
            Slot::Own(w) => Current::Existing(Box::new(w.doc.clone())),
        })
    }

    /// Whether this push loaded or created `doc_id` and it holds a valid record (a record
    /// created earlier in the push counts, a refused creation does not).
    pub fn holds_valid_record(&self, doc_id: Uuid) -> bool {
        matches!(self.docs.get(&doc_id), Some(Slot::Own(w)) if w.record.is_some())
    }

    /// `depends_on` of tasks changed earlier in this transaction (not yet materialized).
    fn pending_dependencies(&self, except: Uuid) -> HashMap<Uuid, Vec<Uuid>> {
        self.docs
            .iter()
            .filter(|(id, _)| **id != except)
            .filter_map(|(id, slot)| match slot {
                Slot::Own(w) if w.dirty => {
                    let record = w.record.as_ref()?;
                    let deps = match (record.get("deleted_at"), record.get("depends_on")) {
                        (None, Some(FieldValue::RefList(deps))) => deps.clone(),
                        _ => Vec::new(),
                    };
                    Some((*id, deps))
                }
                _ => None,
            })
            .collect()
    }

    /// Stores every changed document, materializes its row, and drops unused reservations.
    /// Returns the written documents with their new versions (for the cache once committed)
    /// and each record's before/after (for the effects of [`crate::effects::outbox`]).
    pub async fn store(self, tx: &mut Tx<'_>, org_id: Uuid) -> Result<Stored, sqlx::Error> {
        let now = Utc::now();
        let mut written = Vec::new();
        let mut records = Vec::new();
        for (doc_id, slot) in self.docs {
            match slot {
                Slot::Own(w) if w.dirty => {
                    let version = documents::store_state(tx, org_id, doc_id, &w.doc.save()).await?;
                    if let Some(record) = &w.record {
                        let server = ServerFields {
                            created_by: w.created_by,
                            created_at: w.created_at,
                            updated_at: now,
                        };
                        materialize::upsert_row(tx, w.schema, org_id, doc_id, record, &server)
                            .await?;
                        records.push(RecordWrite {
                            schema: w.schema,
                            doc_id,
                            before: w.before,
                            after: record.clone(),
                        });
                    }
                    written.push((doc_id, version, w.doc));
                }
                Slot::Own(w) if w.reserved => {
                    documents::release_reservation(tx, org_id, doc_id).await?
                }
                Slot::Inaccessible { reserved: true } => {
                    documents::release_reservation(tx, org_id, doc_id).await?;
                }
                _ => {}
            }
        }
        Ok(Stored { written, records })
    }
}

/// What [`WorkingDocs::store`] wrote.
pub struct Stored {
    /// Documents with their new versions, for the cache once committed.
    pub written: Vec<(Uuid, i64, Automerge)>,
    /// Each materialized record's before and after.
    pub records: Vec<RecordWrite>,
}

async fn load(
    tx: &mut Tx<'_>,
    cache: &DocCache,
    pusher: Pusher,
    acl: &OrgAcl,
    doc_id: Uuid,
    schema: &'static CollectionSchema,
) -> Result<Slot, sqlx::Error> {
    let lookup =
        documents::lock_or_reserve(tx, pusher.org_id, doc_id, schema.name, pusher.user_id).await?;
    Ok(match lookup {
        DocumentLookup::OtherOrg => Slot::Inaccessible { reserved: false },
        DocumentLookup::Reserved { created_at } => {
            // Personal document ids (notifications) are the server's to create.
            let may_create = acl
                .role(pusher.user_id)
                .is_some_and(|role| role >= rules::create_role(schema))
                && !crate::authz::model::is_personal_id(doc_id);
            if !may_create {
                return Ok(Slot::Inaccessible { reserved: true });
            }
            Slot::Own(Box::new(WorkingDoc {
                schema,
                doc: Automerge::new(),
                record: None,
                before: None,
                // The creator owns what they create.
                relation: Relation::Owner,
                created_by: pusher.user_id,
                created_at,
                reserved: true,
                dirty: false,
            }))
        }
        DocumentLookup::Found(found) => {
            let Some(mut relation) = acl.relation(pusher.user_id, doc_id) else {
                return Ok(Slot::Inaccessible { reserved: false });
            };
            // The creator owns what they created (while they can still read it).
            if found.created_by == pusher.user_id {
                relation = Relation::Owner;
            }
            let doc = match cache.get(pusher.org_id, doc_id, found.version) {
                Some(doc) => doc,
                None => {
                    let state = documents::load_state(tx, pusher.org_id, doc_id).await?;
                    if state.is_empty() {
                        Automerge::new()
                    } else {
                        Automerge::load(&state).map_err(|e| {
                            sqlx::Error::Decode(
                                format!("stored document {doc_id} does not load: {e}").into(),
                            )
                        })?
                    }
                }
            };
            // A stored document of another collection is refused per mutation (collection check).
            let schema = schema::collection(&found.collection).unwrap_or(schema);
            let record = read_record(&doc, schema).ok();
            Slot::Own(Box::new(WorkingDoc {
                schema,
                doc,
                before: record.clone(),
                record,
                relation,
                created_by: found.created_by,
                created_at: found.created_at,
                reserved: false,
                dirty: false,
            }))
        }
    })
}

/// A change that passed every check, with the merged document, its record and touched fields.
type Checked = (Automerge, Record, std::collections::BTreeSet<String>);

impl WorkingDoc {
    /// Judges `change` against this document. Runs under `untrusted::guard`, which catches
    /// automerge panics: it must only read `self` and change what it owns (the merged clone).
    fn check(
        &self,
        user_id: Uuid,
        schema: &'static CollectionSchema,
        change: Change,
    ) -> Result<Checked, Refusal> {
        if self.schema.name != schema.name {
            return Err(refuse(
                ErrorCode::CollectionMismatch,
                format!("document belongs to `{}`", self.schema.name),
            ));
        }
        if let Some(missing) = change
            .deps()
            .iter()
            .find(|h| self.doc.get_change_by_hash(h).is_none())
        {
            return Err(refuse(
                ErrorCode::MissingDependency,
                format!(
                    "depends on change {missing}, which the server does not have (was it rejected?)"
                ),
            ));
        }
        let mut merged = self.doc.clone();
        merged.apply_changes([change.clone()]).map_err(|e| {
            refuse(
                ErrorCode::InvalidChange,
                format!("change does not apply: {e}"),
            )
        })?;
        let record = read_record(&merged, self.schema)
            .map_err(|e| refuse(e.code, format!("{}: {}", e.field, e.message)))?;
        let touched =
            rules::touched_fields(&change, &merged).map_err(|e| refuse(e.code, e.message))?;
        rules::authorize_write(
            self.schema,
            user_id,
            Some(self.relation),
            self.record.as_ref(),
            &record,
            &touched,
        )
        .map_err(|e| refuse(e.code, format!("{}: {}", e.field, e.message)))?;
        lifecycle::check_transition(self.schema, self.record.as_ref(), &record, &touched)
            .map_err(|e| refuse(e.code, format!("{}: {}", e.field, e.message)))?;
        Ok((merged, record, touched))
    }
}
