//! REST for webhooks (org owners and admins only, with a user token or an API key holding the
//! `*:read` scope, `*:write` to change anything):
//!
//! - `POST /api/v1/webhooks/endpoints {url, description?, event_types?}` → 201 with the
//!   endpoint and, this once, its `secret`;
//! - `GET /api/v1/webhooks/endpoints`, `GET|PATCH|DELETE /api/v1/webhooks/endpoints/{id}`
//!   (`PATCH` takes `url`, `description`, `event_types`, `enabled`);
//! - `POST /api/v1/webhooks/endpoints/{id}/rotate-secret` → the new secret, once; the old one
//!   keeps signing for 24 h (scaled by `time_scale`);
//! - `POST /api/v1/webhooks/endpoints/{id}/recover {since}` → sends again the endpoint's failed
//!   deliveries made since then, and the events since then it never got;
//! - `GET /api/v1/webhooks/endpoints/{id}/deliveries?status=&limit=&cursor=` → the endpoint's
//!   deliveries, newest first, a page at a time;
//! - `GET /api/v1/webhooks/deliveries/{id}` → one delivery with its attempts;
//! - `POST /api/v1/webhooks/deliveries/{id}/resend` → a new round of attempts of a finished
//!   delivery (same `webhook-id`, same bytes).

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use super::request::parse_fields;
use super::{signature, store};
use crate::AppState;
use crate::effects::dead_letters::require_admin;
use crate::error::{ServerError, ServerResult};
use crate::rest::access::Caller;
use crate::rest::body::RecordBody;

/// How long the previous secret keeps signing after a rotation (unscaled).
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Events one recovery may add (older ones need another recovery with a later `since`).
const MAX_RECOVERED_EVENTS: i64 = 10_000;
const DEFAULT_LIST_LIMIT: i64 = 100;
const MAX_LIST_LIMIT: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/webhooks/endpoints",
            get(list_endpoints).post(create_endpoint),
        )
        .route(
            "/api/v1/webhooks/endpoints/{id}",
            get(get_endpoint)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route(
            "/api/v1/webhooks/endpoints/{id}/rotate-secret",
            post(rotate_secret),
        )
        .route("/api/v1/webhooks/endpoints/{id}/recover", post(recover))
        .route(
            "/api/v1/webhooks/endpoints/{id}/deliveries",
            get(list_deliveries),
        )
        .route("/api/v1/webhooks/deliveries/{id}", get(get_delivery))
        .route("/api/v1/webhooks/deliveries/{id}/resend", post(resend))
}

/// Org owners and admins only; an API key also needs the `*:read` (or, to change anything,
/// `*:write`) scope: an endpoint receives every collection's events, so a key scoped to some
/// collections must not be able to route all of them elsewhere.
async fn authorize(state: &AppState, caller: &Caller, write: bool) -> ServerResult<()> {
    require_admin(state, caller).await?;
    caller.require("*", write)
}

fn endpoint_not_found() -> ServerError {
    ServerError::new(ErrorCode::NotFound, "no such webhook endpoint")
}

fn delivery_not_found() -> ServerError {
    ServerError::new(ErrorCode::NotFound, "no such webhook delivery")
}

fn parse_id(id: &str, not_found: fn() -> ServerError) -> ServerResult<Uuid> {
    id.parse().map_err(|_| not_found())
}

/// `POST /api/v1/webhooks/endpoints` → 201 `{data: {..endpoint, secret}}`.
async fn create_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    RecordBody(body): RecordBody,
) -> ServerResult<(StatusCode, Json<Value>)> {
    authorize(&state, &caller, true).await?;
    let changes = parse_fields(&state, &body, true).await?;
    let new = store::NewEndpoint {
        url: changes.url.unwrap_or_default(),
        description: changes.description.unwrap_or_default(),
        event_types: changes.event_types.unwrap_or_default(),
        secret: signature::generate_secret(),
        created_by: caller.user_id,
    };
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let endpoint = store::insert_endpoint(&mut tx, caller.org_id, &new).await?;
    tx.commit().await?;
    tracing::info!(endpoint_id = %endpoint.id, url = %endpoint.url, "webhook endpoint created");
    let mut value = serde_json::to_value(&endpoint).map_err(ServerError::internal)?;
    if let Value::Object(map) = &mut value {
        // The only time the secret leaves the server.
        map.insert("secret".into(), Value::String(new.secret));
    }
    Ok((StatusCode::CREATED, Json(json!({ "data": value }))))
}

async fn list_endpoints(
    State(state): State<AppState>,
    caller: Caller,
) -> ServerResult<Json<Value>> {
    authorize(&state, &caller, false).await?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let endpoints = store::endpoints(&mut tx, caller.org_id).await?;
    tx.commit().await?;
    let count = endpoints.len();
    Ok(Json(
        json!({ "data": endpoints, "meta": { "count": count } }),
    ))
}

async fn get_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ServerResult<Json<Value>> {
    authorize(&state, &caller, false).await?;
    let id = parse_id(&id, endpoint_not_found)?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let endpoint = store::endpoint(&mut tx, caller.org_id, id).await?;
    tx.commit().await?;
    let endpoint = endpoint.ok_or_else(endpoint_not_found)?;
    Ok(Json(json!({ "data": endpoint })))
}

async fn update_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RecordBody(body): RecordBody,
) -> ServerResult<Json<Value>> {
    authorize(&state, &caller, true).await?;
    let id = parse_id(&id, endpoint_not_found)?;
    let changes = parse_fields(&state, &body, false).await?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let endpoint = store::update_endpoint(&mut tx, caller.org_id, id, &changes).await?;
    tx.commit().await?;
    let endpoint = endpoint.ok_or_else(endpoint_not_found)?;
    Ok(Json(json!({ "data": endpoint })))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ServerResult<StatusCode> {
    authorize(&state, &caller, true).await?;
    let id = parse_id(&id, endpoint_not_found)?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let deleted = store::delete_endpoint(&mut tx, caller.org_id, id).await?;
    tx.commit().await?;
    if !deleted {
        return Err(endpoint_not_found());
    }
    tracing::info!(endpoint_id = %id, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST .../rotate-secret` → `{data: {secret, previous_secret_expires_at}}`.
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ServerResult<Json<Value>> {
    authorize(&state, &caller, true).await?;
    let id = parse_id(&id, endpoint_not_found)?;
    let secret = signature::generate_secret();
    let until = Utc::now()
        + chrono::Duration::from_std(state.effects.scaled(ROTATION_OVERLAP))
            .map_err(ServerError::internal)?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let rotated = store::rotate_secret(&mut tx, caller.org_id, id, &secret, until).await?;
    tx.commit().await?;
    if !rotated {
        return Err(endpoint_not_found());
    }
    tracing::info!(endpoint_id = %id, "webhook secret rotated");
    Ok(Json(
        json!({ "data": { "secret": secret, "previous_secret_expires_at": until } }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverRequest {
    since: DateTime<Utc>,
}

/// `POST .../recover {since}` → `{data: {requeued, created}}`.
async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RecordBody(body): RecordBody,
) -> ServerResult<Json<Value>> {
    authorize(&state, &caller, true).await?;
    let id = parse_id(&id, endpoint_not_found)?;
    let request: RecoverRequest = serde_json::from_value(Value::Object(body)).map_err(|e| {
        ServerError::new(
            ErrorCode::InvalidFieldValue,
            "expected {\"since\": an RFC 3339 timestamp}",
        )
        .with_details(json!({ "reason": e.to_string() }))
    })?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let endpoint = store::endpoint(&mut tx, caller.org_id, id)
        .await?
        .ok_or_else(endpoint_not_found)?;
    if !endpoint.enabled {
        return Err(ServerError::new(
            ErrorCode::Conflict,
            "the endpoint is disabled: enable it before recovering its deliveries",
        ));
    }
    let requeued = store::requeue_failed_since(&mut tx, caller.org_id, id, request.since).await?;
    let missed = store::undelivered_events_since(
        &mut tx,
        caller.org_id,
        id,
        request.since,
        MAX_RECOVERED_EVENTS,
    )
    .await?;
    let mut created = 0;
    for event in &missed {
        created += store::insert_deliveries(&mut tx, event, &[id]).await?;
    }
    tx.commit().await?;
    super::wake();
    tracing::info!(endpoint_id = %id, requeued, created, "webhook deliveries recovered");
    Ok(Json(
        json!({ "data": { "requeued": requeued, "created": created } }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeliveriesQuery {
    status: Option<String>,
    limit: Option<i64>,
    /// `meta.next_cursor` of the previous page.
    cursor: Option<String>,
}

async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> ServerResult<Json<Value>> {
    authorize(&state, &caller, false).await?;
    let id = parse_id(&id, endpoint_not_found)?;
    if let Some(status) = &q.status
        && !matches!(
            status.as_str(),
            "pending" | "running" | "succeeded" | "failed"
        )
    {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            "status is one of pending, running, succeeded, failed",
        ));
    }
    let limit = q.limit.unwrap_or(DEFAULT_LIST_LIMIT);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            format!("limit is between 1 and {MAX_LIST_LIMIT}"),
        ));
    }
    let before = match q.cursor.as_deref() {
        None => None,
        Some(cursor) => Some(cursor.parse::<Uuid>().map_err(|_| {
            ServerError::new(
                ErrorCode::InvalidInput,
                "cursor is the `meta.next_cursor` of a previous page",
            )
        })?),
    };
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    store::endpoint(&mut tx, caller.org_id, id)
        .await?
        .ok_or_else(endpoint_not_found)?;
    let rows = store::deliveries(
        &mut tx,
        caller.org_id,
        id,
        q.status.as_deref(),
        before,
        limit,
    )
    .await?;
    tx.commit().await?;
    let count = rows.len();
    // A full page may have more behind it.
    let next_cursor = (i64::try_from(count).ok() == Some(limit))
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(json!({
        "data": rows,
        "meta": { "count": count, "limit": limit, "next_cursor": next_cursor },
    })))
}

/// `GET /api/v1/webhooks/deliveries/{id}` → `{data: {..delivery, attempts: [...]}}`.
async fn get_delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ServerResult<Json<Value>> {
    authorize(&state, &caller, false).await?;
    let id = parse_id(&id, delivery_not_found)?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let delivery = store::delivery(&mut tx, caller.org_id, id)
        .await?
        .ok_or_else(delivery_not_found)?;
    let attempts = store::attempts(&mut tx, caller.org_id, id).await?;
    tx.commit().await?;
    let mut value = serde_json::to_value(&delivery).map_err(ServerError::internal)?;
    if let Value::Object(map) = &mut value {
        map.insert(
            "attempts".into(),
            serde_json::to_value(&attempts).map_err(ServerError::internal)?,
        );
    }
    Ok(Json(json!({ "data": value })))
}

/// `POST /api/v1/webhooks/deliveries/{id}/resend` → 202 `{data: delivery}`.
async fn resend(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ServerResult<(StatusCode, Json<Value>)> {
    authorize(&state, &caller, true).await?;
    let id = parse_id(&id, delivery_not_found)?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    match store::resend(&mut tx, caller.org_id, id).await? {
        None => return Err(delivery_not_found()),
        Some(false) => {
            return Err(ServerError::new(
                ErrorCode::Conflict,
                "the delivery is still being attempted",
            ));
        }
        Some(true) => {}
    }
    let delivery = store::delivery(&mut tx, caller.org_id, id)
        .await?
        .ok_or_else(delivery_not_found)?;
    tx.commit().await?;
    super::wake();
    Ok((StatusCode::ACCEPTED, Json(json!({ "data": delivery }))))
}
