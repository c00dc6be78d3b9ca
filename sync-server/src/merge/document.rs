//! The documents touched by one push: loaded and locked once, changed in memory per mutation,
//! stored and materialized once at the end of the transaction.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use automerge::{Automerge, Change, ReadDoc};
use chrono::{DateTime, Utc};
use syncline_protocol::record::{Record, read_record};
use syncline_protocol::schema::{self, CollectionSchema};
use syncline_protocol::{ErrorCode, Mutation};
use uuid::Uuid;

use super::{MAX_CHANGE_BYTES, Pusher};
use crate::store::Tx;
use crate::store::documents::{self, DocumentLookup};
use crate::store::materialize::{self, ServerFields};

/// Why one mutation was refused.
#[derive(Debug)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
    }
}

enum Slot {
    /// A document of the pusher's org, existing or reserved for creation.
    Own(Box<WorkingDoc>),
    /// Belongs to another org.
    Foreign,
}

struct WorkingDoc {
    schema: &'static CollectionSchema,
    doc: Automerge,
    record: Option<Record>,
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
        pusher: Pusher,
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
        let change = match Change::from_bytes(m.payload.to_vec()) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Err(refuse(
                    ErrorCode::InvalidChange,
                    format!("not an automerge change: {e}"),
                )));
            }
        };
        let slot = match self.docs.entry(m.doc_id) {
            Entry::Occupied(slot) => slot.into_mut(),
            Entry::Vacant(vacant) => vacant.insert(load(tx, pusher, m.doc_id, schema).await?),
        };
        let Slot::Own(working) = slot else {
            return Ok(Err(refuse(
                ErrorCode::Forbidden,
                "document not found or not accessible",
            )));
        };
        Ok(working.apply(schema, change))
    }

    /// Stores every changed document, materializes its row, and drops unused reservations.
    pub async fn store(&self, tx: &mut Tx<'_>, org_id: Uuid) -> Result<(), sqlx::Error> {
        let now = Utc::now();
        for (doc_id, slot) in &self.docs {
            let Slot::Own(w) = slot else { continue };
            if w.dirty {
                documents::store_state(tx, org_id, *doc_id, &w.doc.save()).await?;
                if let Some(record) = &w.record {
                    let server = ServerFields {
                        created_by: w.created_by,
                        created_at: w.created_at,
                        updated_at: now,
                    };
                    materialize::upsert_row(tx, w.schema, org_id, *doc_id, record, &server).await?;
                }
            } else if w.reserved {
                documents::release_reservation(tx, org_id, *doc_id).await?;
            }
        }
        Ok(())
    }
}

async fn load(
    tx: &mut Tx<'_>,
    pusher: Pusher,
    doc_id: Uuid,
    schema: &'static CollectionSchema,
) -> Result<Slot, sqlx::Error> {
    let lookup =
        documents::lock_or_reserve(tx, pusher.org_id, doc_id, schema.name, pusher.user_id).await?;
    Ok(match lookup {
        DocumentLookup::OtherOrg => Slot::Foreign,
        DocumentLookup::Reserved { created_at } => Slot::Own(Box::new(WorkingDoc {
            schema,
            doc: Automerge::new(),
            record: None,
            created_by: pusher.user_id,
            created_at,
            reserved: true,
            dirty: false,
        })),
        DocumentLookup::Found(found) => {
            let doc = if found.state.is_empty() {
                Automerge::new()
            } else {
                Automerge::load(&found.state).map_err(|e| {
                    sqlx::Error::Decode(
                        format!("stored document {doc_id} does not load: {e}").into(),
                    )
                })?
            };
            // A stored document of another collection is refused per mutation (collection check).
            let schema = schema::collection(&found.collection).unwrap_or(schema);
            Slot::Own(Box::new(WorkingDoc {
                schema,
                doc,
                record: None,
                created_by: found.created_by,
                created_at: found.created_at,
                reserved: false,
                dirty: false,
            }))
        }
    })
}

impl WorkingDoc {
    fn apply(&mut self, schema: &'static CollectionSchema, change: Change) -> Result<(), Refusal> {
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
        merged.apply_changes([change]).map_err(|e| {
            refuse(
                ErrorCode::InvalidChange,
                format!("change does not apply: {e}"),
            )
        })?;
        let record = read_record(&merged, self.schema)
            .map_err(|e| refuse(e.code, format!("{}: {}", e.field, e.message)))?;
        self.doc = merged;
        self.record = Some(record);
        self.dirty = true;
        Ok(())
    }
}
