//! `GET /api/v1/{collection}/{id}`: one record, if the caller may read it (deleted records
//! too: they are in the trash until restored). A record the caller may not read is 404, as if
//! it did not exist.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Map, Value, json};
use syncline_protocol::ErrorCode;
use syncline_protocol::schema::CollectionSchema;
use uuid::Uuid;

use super::access::{self, Caller};
use super::records;
use crate::AppState;
use crate::error::{ServerError, ServerResult};

pub async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
) -> ServerResult<Json<Map<String, Value>>> {
    let schema = access::collection(&collection)?;
    caller.require(schema.name, false)?;
    let id = parse_id(&id)?;
    Ok(Json(readable_record(&state, &caller, schema, id).await?))
}

/// The record `id` of `schema` if the caller may read it, else 404 `not_found`.
pub async fn readable_record(
    state: &AppState,
    caller: &Caller,
    schema: &'static CollectionSchema,
    id: Uuid,
) -> ServerResult<Map<String, Value>> {
    let (acl, _) = access::readable(state, caller, schema).await?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let record = records::fetch(&mut tx, schema, id).await?;
    tx.commit().await?;
    let record = record.ok_or_else(not_found)?;
    // The creator owns what they created, as on the write path: a guest reads back the
    // comment they just posted although nothing is shared with them.
    let is_creator = record.get("created_by") == Some(&Value::String(caller.user_id.to_string()));
    if !access::can_read(&acl, caller, schema, id) && !is_creator {
        return Err(not_found());
    }
    Ok(record)
}

/// The record id of a path; anything but a UUID is 400 `invalid_input`.
pub fn parse_id(text: &str) -> ServerResult<Uuid> {
    Uuid::parse_str(text).map_err(|_| {
        ServerError::new(ErrorCode::InvalidInput, "the record id is not a UUID")
            .with_details(json!({ "parameters": { "id": "expected a UUID" } }))
    })
}

pub fn not_found() -> ServerError {
    ServerError::new(ErrorCode::NotFound, "record not found")
}
