//! Records as the REST bridge returns them: rows of a collection's typed table turned into JSON
//! objects (`id`, every field of the schema by its field name, server fields), and reading one.
//!
//! Absent fields are `null` (reference lists: `[]`), timestamps RFC 3339 in UTC with
//! milliseconds, references UUID strings, integers (money: minor units) JSON integers.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};
use syncline_protocol::schema::{CollectionSchema, FieldDef, FieldType};
use uuid::Uuid;

use crate::store::Tx;

/// `SELECT id, <columns> FROM <table>`: the start of every read of records.
pub fn select(schema: &CollectionSchema) -> QueryBuilder<Postgres> {
    // Table and column names come from the static schema, never from input.
    let mut columns = String::from("id");
    for def in schema.fields {
        columns.push_str(", ");
        columns.push_str(def.column);
    }
    QueryBuilder::new(format!("SELECT {columns} FROM {} WHERE TRUE", schema.table))
}

/// The row of `id`, or `None` (not in this org's table: RLS restricts the transaction).
pub async fn fetch(
    tx: &mut Tx<'_>,
    schema: &CollectionSchema,
    id: Uuid,
) -> Result<Option<Map<String, Value>>, sqlx::Error> {
    let mut qb = select(schema);
    qb.push(" AND id = ").push_bind(id);
    let row = qb.build().fetch_optional(&mut **tx).await?;
    row.map(|r| to_json(schema, &r)).transpose()
}

/// A row as a JSON record.
pub fn to_json(schema: &CollectionSchema, row: &PgRow) -> Result<Map<String, Value>, sqlx::Error> {
    let mut out = Map::new();
    let id: Uuid = row.try_get("id")?;
    out.insert("id".into(), Value::String(id.to_string()));
    for def in schema.fields {
        out.insert(def.name.into(), column_json(def, row)?);
    }
    Ok(out)
}

/// One column's value as JSON (also the sort key stored in cursors).
pub fn column_json(def: &FieldDef, row: &PgRow) -> Result<Value, sqlx::Error> {
    let c = def.column;
    Ok(match def.ty {
        FieldType::String { .. } | FieldType::Enum(_) => row
            .try_get::<Option<String>, _>(c)?
            .map_or(Value::Null, Value::String),
        FieldType::Int => row
            .try_get::<Option<i64>, _>(c)?
            .map_or(Value::Null, Value::from),
        FieldType::Bool => row
            .try_get::<Option<bool>, _>(c)?
            .map_or(Value::Null, Value::Bool),
        FieldType::Timestamp => row
            .try_get::<Option<DateTime<Utc>>, _>(c)?
            .map_or(Value::Null, |t| Value::String(timestamp(t))),
        FieldType::Ref(_) => row
            .try_get::<Option<Uuid>, _>(c)?
            .map_or(Value::Null, |id| Value::String(id.to_string())),
        FieldType::RefList(_) => Value::Array(
            row.try_get::<Vec<Uuid>, _>(c)?
                .into_iter()
                .map(|id| Value::String(id.to_string()))
                .collect(),
        ),
    })
}

/// RFC 3339 in UTC with milliseconds (record timestamps have millisecond precision).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
