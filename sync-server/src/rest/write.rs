//! Record writes over REST: create, PATCH, soft DELETE and restore from the trash. Each is one
//! automerge change authored by the server on behalf of the caller
//! ([`crate::merge::server`]), so it is authorized like a pushed change, merges with offline
//! edits of other fields, and reaches connected clients live.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use syncline_protocol::ErrorCode;
use syncline_protocol::record::FieldValue;
use syncline_protocol::rules::{self, Relation, WriteRule};
use syncline_protocol::schema::{self, CollectionSchema};
use uuid::Uuid;

use super::access::{self, Caller};
use super::body::{FieldErrors, RecordBody, parse_fields};
use super::read::{not_found, parse_id, readable_record};
use crate::AppState;
use crate::error::{ServerError, ServerResult};
use crate::merge::Refusal;
use crate::merge::server::{ServerWrite, WriteKind, apply_server_write};

/// `POST /api/v1/{collection}`: creates a record (201 with the record). The body may name the
/// new record's `id` (a UUID, as offline clients do); otherwise the server makes a UUIDv7.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(collection): Path<String>,
    RecordBody(body): RecordBody,
) -> ServerResult<Response> {
    let schema = access::collection(&collection)?;
    caller.require(schema.name, true)?;
    let (id, fields) = parse_fields(schema, &body, true)?;
    let mut missing = FieldErrors::default();
    for def in schema.client_fields().filter(|d| d.required) {
        if !fields.iter().any(|(name, _)| *name == def.name) {
            missing.add(def.name, ErrorCode::MissingRequiredField, "is required");
        }
    }
    missing.into_result()?;
    let id = id.unwrap_or_else(Uuid::now_v7);
    write(&state, &caller, schema, id, WriteKind::Create, &fields).await?;
    let record = readable_record(&state, &caller, schema, id).await?;
    let location = format!("/api/v1/{}/{id}", schema.name);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(record),
    )
        .into_response())
}

/// `PATCH /api/v1/{collection}/{id}`: writes only the given fields (`null` clears one).
pub async fn patch(
    State(state): State<AppState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
    RecordBody(body): RecordBody,
) -> ServerResult<Json<Map<String, Value>>> {
    let schema = access::collection(&collection)?;
    caller.require(schema.name, true)?;
    let id = parse_id(&id)?;
    let (_, fields) = parse_fields(schema, &body, false)?;
    if !fields.is_empty() {
        write(&state, &caller, schema, id, WriteKind::Update, &fields).await?;
    }
    Ok(Json(readable_record(&state, &caller, schema, id).await?))
}

/// `DELETE /api/v1/{collection}/{id}`: moves the record to the trash (sets `deleted_at`);
/// 204. Deleting a record already in the trash changes nothing.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
) -> ServerResult<StatusCode> {
    let schema = access::collection(&collection)?;
    caller.require(schema.name, true)?;
    let id = parse_id(&id)?;
    let record = readable_record(&state, &caller, schema, id).await?;
    if record.get("deleted_at").is_some_and(|v| !v.is_null()) {
        // Nothing to write, but only those who may delete learn that it worked.
        may_delete(&state, &caller, schema, &record).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let now = chrono::Utc::now().timestamp_millis();
    let fields = [("deleted_at", Some(FieldValue::Timestamp(now)))];
    write(&state, &caller, schema, id, WriteKind::Update, &fields).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/trash/{id}/restore`: takes a record of any collection out of the trash (clears
/// `deleted_at`); 200 with the record.
pub async fn restore(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ServerResult<Json<Map<String, Value>>> {
    let id = parse_id(&id)?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let stored: Option<(String,)> =
        sqlx::query_as("SELECT collection FROM documents WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    let schema = stored
        .and_then(|(name,)| schema::collection(&name))
        .ok_or_else(not_found)?;
    caller.require(schema.name, true)?;
    let fields = [("deleted_at", None)];
    write(&state, &caller, schema, id, WriteKind::Update, &fields).await?;
    Ok(Json(readable_record(&state, &caller, schema, id).await?))
}

/// Refuses (403 `field_forbidden`) a caller whose relation may not write `deleted_at` of
/// `record` (as the merge judges it: the creator owns what they created).
async fn may_delete(
    state: &AppState,
    caller: &Caller,
    schema: &'static CollectionSchema,
    record: &Map<String, Value>,
) -> ServerResult<()> {
    let acl = state.acl.get(&state.db, caller.org_id).await?;
    let needed = match rules::rules(schema).field("deleted_at").map(|r| r.write) {
        Some(WriteRule::AtLeast(relation)) => relation,
        _ => Relation::Owner,
    };
    let creator = record.get("created_by").and_then(Value::as_str)
        == Some(caller.user_id.to_string().as_str());
    let id = record
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_default();
    let relation = if creator {
        Some(Relation::Owner)
    } else {
        acl.relation(caller.user_id, id)
    };
    if relation.is_some_and(|r| r >= needed) {
        return Ok(());
    }
    let message = format!("writing it needs the {needed} relation");
    Err(
        ServerError::new(ErrorCode::FieldForbidden, format!("deleted_at: {message}")).with_details(
            json!({ "fields": { "deleted_at": format!("field_forbidden: {message}") } }),
        ),
    )
}

async fn write(
    state: &AppState,
    caller: &Caller,
    schema: &'static CollectionSchema,
    id: Uuid,
    kind: WriteKind,
    fields: &[(&'static str, Option<FieldValue>)],
) -> ServerResult<()> {
    let write = ServerWrite {
        schema,
        doc_id: id,
        kind,
        fields,
    };
    match apply_server_write(state, caller.org_id, caller.user_id, &write).await? {
        Ok(_) => Ok(()),
        Err(refusal) => Err(refusal_error(schema, refusal)),
    }
}

/// A refused write as an HTTP error; a refusal about one field (`"field: message"`) names it
/// under `details.fields`.
fn refusal_error(schema: &CollectionSchema, refusal: Refusal) -> ServerError {
    let Refusal { code, message } = refusal;
    if code == ErrorCode::NotFound {
        return not_found();
    }
    let field = message
        .split_once(": ")
        .filter(|(name, _)| schema.field(name).is_some());
    match field {
        Some((name, detail)) => ServerError::new(code, message.clone())
            .with_details(json!({ "fields": { name: format!("{code}: {detail}") } })),
        None => ServerError::new(code, message),
    }
}
