//! # conflict-tests
//!
//! Convergence tests of real replicas: `client-core` clients with SQLite files, syncing over
//! real WebSockets with a real `sync-server` on a throwaway PostgreSQL database (see
//! `sync_server::testing`). This library holds what the tests share: reading a record the same
//! way from a client replica and from Postgres, so "every replica equals the server" is one
//! comparison.

use std::collections::BTreeMap;

pub mod harness;
pub mod sim;
pub mod trace;

use chrono::DateTime;
use client_core::Client;
use sqlx::PgPool;
use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::{CollectionSchema, FieldType};
use uuid::Uuid;

/// The client-written fields of a record (server-owned ones are compared separately).
pub type Fields = BTreeMap<&'static str, FieldValue>;

/// Why a record could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("client replica: {0}")]
    Client(String),
    #[error("postgres: {0}")]
    Postgres(String),
}

/// A record's client fields as the client's SQLite replica holds them.
pub fn client_fields(
    client: &Client,
    schema: &CollectionSchema,
    id: Uuid,
) -> Result<Option<Fields>, ReadError> {
    let row = client
        .get(schema.name, id)
        .map_err(|e| ReadError::Client(e.to_string()))?;
    Ok(row.map(|row| {
        row.fields
            .into_iter()
            .filter(|(name, _)| schema.field(name).is_some_and(|d| !d.server_owned))
            .collect()
    }))
}

/// Ids of every record of the collection in the client's replica (deleted ones included).
pub fn client_ids(client: &Client, schema: &CollectionSchema) -> Result<Vec<Uuid>, ReadError> {
    let rows = client
        .query(
            schema.name,
            &client_core::Query::new().include_deleted(true),
        )
        .map_err(|e| ReadError::Client(e.to_string()))?;
    let mut ids: Vec<Uuid> = rows.into_iter().map(|r| r.id).collect();
    ids.sort();
    Ok(ids)
}

/// A record's client fields as materialized in its Postgres table.
pub async fn postgres_fields(
    db: &PgPool,
    schema: &CollectionSchema,
    id: Uuid,
) -> Result<Option<Fields>, ReadError> {
    let json: Option<(serde_json::Value,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT row_to_json(t) FROM {} t WHERE id = $1",
        schema.table
    )))
    .bind(id)
    .fetch_optional(db)
    .await
    .map_err(|e| ReadError::Postgres(e.to_string()))?;
    let Some((serde_json::Value::Object(row),)) = json else {
        return Ok(None);
    };
    let mut fields = Fields::new();
    for def in schema.client_fields() {
        let Some(value) = row.get(def.column).filter(|v| !v.is_null()) else {
            continue;
        };
        let parsed = match (def.ty, value) {
            (FieldType::String { .. } | FieldType::Enum(_), serde_json::Value::String(s)) => {
                FieldValue::String(s.clone())
            }
            (FieldType::Int, v) => FieldValue::Int(
                v.as_i64()
                    .ok_or_else(|| ReadError::Postgres(format!("{}: {v}", def.name)))?,
            ),
            (FieldType::Bool, serde_json::Value::Bool(b)) => FieldValue::Bool(*b),
            (FieldType::Timestamp, serde_json::Value::String(s)) => FieldValue::Timestamp(
                DateTime::parse_from_rfc3339(s)
                    .map_err(|e| ReadError::Postgres(e.to_string()))?
                    .timestamp_millis(),
            ),
            (FieldType::Ref(_), serde_json::Value::String(s)) => {
                FieldValue::Ref(Uuid::parse_str(s).map_err(|e| ReadError::Postgres(e.to_string()))?)
            }
            (FieldType::RefList(_), serde_json::Value::Array(items)) => {
                let ids = items
                    .iter()
                    .map(|item| {
                        item.as_str()
                            .and_then(|s| Uuid::parse_str(s).ok())
                            .ok_or_else(|| ReadError::Postgres(format!("{}: {item}", def.name)))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                // An empty array is an absent field, as in the record.
                if ids.is_empty() {
                    continue;
                }
                FieldValue::RefList(ids)
            }
            (_, v) => return Err(ReadError::Postgres(format!("{}: unexpected {v}", def.name))),
        };
        fields.insert(def.name, parsed);
    }
    Ok(Some(fields))
}

/// Ids of every record of the collection in the org's Postgres table.
pub async fn postgres_ids(
    db: &PgPool,
    schema: &CollectionSchema,
    org_id: Uuid,
) -> Result<Vec<Uuid>, ReadError> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM {} WHERE org_id = $1 ORDER BY id",
        schema.table
    )))
    .bind(org_id)
    .fetch_all(db)
    .await
    .map_err(|e| ReadError::Postgres(e.to_string()))?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
