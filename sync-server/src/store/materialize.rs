//! Materialization: writes a record's typed fields into its collection's table (`tasks`, ...)
//! so that SQL, reports and the REST bridge read plain columns. Runs in the transaction that
//! merges the change, so a row never disagrees with its committed document.

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use syncline_protocol::record::{FieldValue, Record};
use syncline_protocol::schema::{CollectionSchema, FieldDef, FieldType};
use uuid::Uuid;

use super::Tx;

/// Values the server owns for every record (not part of the client's CRDT document).
#[derive(Debug, Clone, Copy)]
pub struct ServerFields {
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ServerFields {
    fn value(&self, def: &FieldDef) -> Option<FieldValue> {
        match def.name {
            "created_by" => Some(FieldValue::Ref(self.created_by)),
            "created_at" => Some(FieldValue::Timestamp(self.created_at.timestamp_millis())),
            "updated_at" => Some(FieldValue::Timestamp(self.updated_at.timestamp_millis())),
            _ => None,
        }
    }
}

/// Fields written once at creation and never overwritten by later changes.
fn immutable(def: &FieldDef) -> bool {
    matches!(def.name, "created_by" | "created_at")
}

/// Inserts or updates the row of `doc_id` in `schema.table`.
pub async fn upsert_row(
    tx: &mut Tx<'_>,
    schema: &CollectionSchema,
    org_id: Uuid,
    doc_id: Uuid,
    record: &Record,
    server: &ServerFields,
) -> Result<(), sqlx::Error> {
    // Table and column names come from the static schema, never from input.
    let mut qb: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("INSERT INTO {} (org_id, id", schema.table));
    for def in schema.fields {
        qb.push(", ").push(def.column);
    }
    qb.push(") VALUES (")
        .push_bind(org_id)
        .push(", ")
        .push_bind(doc_id);
    for def in schema.fields {
        qb.push(", ");
        let value = if def.server_owned {
            server.value(def)
        } else {
            record.get(def.name).cloned()
        };
        bind_value(&mut qb, def.ty, value);
    }
    qb.push(") ON CONFLICT (org_id, id) DO UPDATE SET ");
    let mut first = true;
    for def in schema.fields.iter().filter(|d| !immutable(d)) {
        if !first {
            qb.push(", ");
        }
        first = false;
        qb.push(def.column).push(" = EXCLUDED.").push(def.column);
    }
    qb.build().execute(&mut **tx).await?;
    Ok(())
}

/// Binds a value, or a NULL of the column's type (an untyped NULL would be sent as text and
/// refused by uuid and timestamptz columns).
fn bind_value(qb: &mut QueryBuilder<Postgres>, ty: FieldType, value: Option<FieldValue>) {
    match (ty, value) {
        (_, Some(FieldValue::String(s))) => qb.push_bind(s),
        (_, Some(FieldValue::Int(i))) => qb.push_bind(i),
        (_, Some(FieldValue::Bool(b))) => qb.push_bind(b),
        (_, Some(FieldValue::Timestamp(ms))) => {
            qb.push_bind(DateTime::<Utc>::from_timestamp_millis(ms))
        }
        (_, Some(FieldValue::Ref(id))) => qb.push_bind(id),
        (_, Some(FieldValue::RefList(ids))) => qb.push_bind(ids),
        // An absent list is an empty array (the column is NOT NULL), never NULL.
        (FieldType::RefList(_), None) => qb.push_bind(Vec::<Uuid>::new()),
        (FieldType::String { .. } | FieldType::Enum(_), None) => qb.push_bind(None::<String>),
        (FieldType::Int, None) => qb.push_bind(None::<i64>),
        (FieldType::Bool, None) => qb.push_bind(None::<bool>),
        (FieldType::Timestamp, None) => qb.push_bind(None::<DateTime<Utc>>),
        (FieldType::Ref(_), None) => qb.push_bind(None::<Uuid>),
    };
}
