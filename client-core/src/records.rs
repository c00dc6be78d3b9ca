//! Generic record operations on any synced collection: create, update, soft delete, restore,
//! get and query.
//!
//! Every write is exactly one automerge change made as the client's actor, validated against
//! the collection schema on the merged result, and committed in one SQLite transaction that
//! updates the working document, its materialized row and the outbox. An invalid write stores
//! nothing.

use automerge::AutoCommit;
use rusqlite::TransactionBehavior;
use syncline_protocol::ErrorCode;
use syncline_protocol::record::{FieldValue, RecordError, put_field, read_record};
use syncline_protocol::schema::CollectionSchema;
use uuid::Uuid;

use crate::cache::CachedDoc;
use crate::client::{Client, schema_of};
use crate::clock::now_millis;
use crate::error::{ClientError, Result};
use crate::query::Query;
use crate::row::{DELETED_AT, Row};
use crate::store::outbox::{self, OutboxEntry};
use crate::store::{documents, meta, rows};

/// Whether a write starts a document or changes an existing one.
#[derive(Clone, Copy)]
enum Target {
    New,
    Existing,
}

impl Client {
    /// Creates a record with a new UUIDv7 id. Fields the schema requires must be present.
    pub fn create<K: AsRef<str>>(
        &mut self,
        collection: &str,
        fields: impl IntoIterator<Item = (K, FieldValue)>,
    ) -> Result<Uuid> {
        let schema = schema_of(collection)?;
        let id = Uuid::now_v7();
        self.write(schema, id, Target::New, |doc| {
            for (name, value) in fields {
                put_field(doc, schema, name.as_ref(), Some(&value))?;
            }
            Ok(())
        })?;
        Ok(id)
    }

    /// Sets (`Some`) or clears (`None`) fields of an existing record; other fields are left
    /// alone, so concurrent edits of different fields both survive. Returns false when nothing
    /// changed (no change is recorded).
    pub fn update<K: AsRef<str>>(
        &mut self,
        collection: &str,
        id: Uuid,
        patch: impl IntoIterator<Item = (K, Option<FieldValue>)>,
    ) -> Result<bool> {
        let schema = schema_of(collection)?;
        self.write(schema, id, Target::Existing, |doc| {
            for (name, value) in patch {
                put_field(doc, schema, name.as_ref(), value.as_ref())?;
            }
            Ok(())
        })
    }

    /// Soft-deletes a record by setting `deleted_at` to now. Deleting a deleted record is a
    /// no-op (false).
    pub fn delete(&mut self, collection: &str, id: Uuid) -> Result<bool> {
        let row = self
            .get(collection, id)?
            .ok_or_else(|| not_found(collection, id))?;
        if row.is_deleted() {
            return Ok(false);
        }
        self.update(
            collection,
            id,
            [(DELETED_AT, Some(FieldValue::Timestamp(now_millis())))],
        )
    }

    /// Undoes a soft delete.
    pub fn restore(&mut self, collection: &str, id: Uuid) -> Result<bool> {
        self.update(collection, id, [(DELETED_AT, None)])
    }

    /// The current row of a record, soft-deleted or not.
    pub fn get(&self, collection: &str, id: Uuid) -> Result<Option<Row>> {
        rows::get(&self.conn, schema_of(collection)?, id)
    }

    /// Rows matching `query`.
    pub fn query(&self, collection: &str, query: &Query) -> Result<Vec<Row>> {
        let schema = schema_of(collection)?;
        let (tail, params) = query.to_sql(schema)?;
        rows::select(&self.conn, schema, &tail, params)
    }

    /// Applies `edit` to the working document as one change and commits it with its row and
    /// outbox entry. False when the edit produced no operation.
    fn write(
        &mut self,
        schema: &'static CollectionSchema,
        id: Uuid,
        target: Target,
        edit: impl FnOnce(&mut AutoCommit) -> Result<(), RecordError>,
    ) -> Result<bool> {
        // IMMEDIATE: take the write lock before reading, so the document read here is the one
        // the change is based on even if another connection writes the same file.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let mut doc = match target {
            Target::New => CachedDoc::new(schema.name, &self.actor),
            Target::Existing => self
                .cache
                .take(&tx, id, &self.actor)?
                .filter(|d| d.collection == schema.name)
                .ok_or_else(|| not_found(schema.name, id))?,
        };
        // On any early return below, `doc` is dropped and the cache reloads the committed
        // state next time, so a refused edit never lingers in memory.
        let working = &mut doc.working;
        edit(working).map_err(|e| ClientError::invalid(schema.name, e))?;
        let hash = working.commit();
        if hash.is_none() && matches!(target, Target::Existing) {
            return Ok(false);
        }
        // Validate the merged record, not just the written fields: required fields and the
        // rest of the document must still hold. The edited document is dropped on failure.
        read_record(working, schema).map_err(|e| ClientError::invalid(schema.name, e))?;
        let Some(hash) = hash else {
            return Err(ClientError::invalid_field(
                schema.name,
                ErrorCode::MissingRequiredField,
                "*",
                "a record needs at least one field",
            ));
        };
        let change = working
            .get_change_by_hash(&hash)
            .ok_or_else(|| ClientError::document(id, "committed change not found"))?;
        let seq = meta::allocate_seq(&tx)?;
        documents::store_working(&tx, id, schema.name, &working.save())?;
        rows::materialize(&tx, schema, id, working)?;
        outbox::insert(
            &tx,
            &OutboxEntry {
                seq,
                doc_id: id,
                collection: schema.name.to_owned(),
                payload: change.raw_bytes().to_vec(),
                created_at: now_millis(),
            },
        )?;
        tx.commit()?;
        self.cache.put(id, doc);
        self.pending += 1;
        tracing::debug!(collection = schema.name, %id, seq, "local change recorded");
        Ok(true)
    }
}

fn not_found(collection: &str, id: Uuid) -> ClientError {
    ClientError::NotFound {
        collection: collection.to_owned(),
        id,
    }
}
