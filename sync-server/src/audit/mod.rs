//! The audit log and per-record activity feeds, over REST.
//!
//! Rows are appended by [`crate::effects::outbox::record`] in the transaction of every mutation
//! (WebSocket pushes and REST writes alike): actor, action, entity, the fields changed from what
//! to what, transport, IP address and correlation id. Postgres refuses `UPDATE`, `DELETE` and
//! `TRUNCATE` on `audit_log` (triggers in migrations/0010_effects.sql), so no server bug or
//! operator query can rewrite history short of dropping the trigger.
//!
//! - `GET /api/v1/audit-log`: the org's log, newest first (org owners and admins);
//!   filters `collection`, `entity_id`, `actor_id`, `since`, `until`; keyset paging with
//!   `cursor` and `limit` (default 50, max 200).
//! - `GET /api/v1/{collection}/{id}/activity`: one record's feed (who changed which fields
//!   from what to what, when), for anyone who may read the record.

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use crate::AppState;
use crate::effects::dead_letters::require_admin;
use crate::error::{ServerError, ServerResult};
use crate::rest::access::{self, Caller};
use crate::rest::read::{not_found, parse_id};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit-log", get(audit_log))
        .route("/api/v1/{collection}/{id}/activity", get(activity))
}

/// One audit row as served.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct AuditEntry {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub collection: String,
    pub entity_id: Uuid,
    pub changes: Value,
    pub via: String,
    pub ip: Option<String>,
    pub correlation_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    collection: Option<String>,
    entity_id: Option<Uuid>,
    actor_id: Option<Uuid>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    cursor: Option<String>,
    limit: Option<i64>,
}

fn limit(requested: Option<i64>) -> ServerResult<i64> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(l) if (1..=MAX_LIMIT).contains(&l) => Ok(l),
        Some(_) => Err(
            ServerError::new(ErrorCode::InvalidInput, "limit is out of range").with_details(
                json!({"parameters": {"limit": format!("expected 1 to {MAX_LIMIT}")}}),
            ),
        ),
    }
}

/// The cursor is the id of the last row of the previous page (rows come newest first).
fn cursor(text: Option<&str>) -> ServerResult<Option<i64>> {
    text.map(|t| {
        t.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
            ServerError::new(ErrorCode::InvalidInput, "the cursor is not valid").with_details(
                json!({"parameters": {"cursor": "use meta.next_cursor of a previous page"}}),
            )
        })
    })
    .transpose()
}

const SELECT: &str = "SELECT id, occurred_at, actor_id, action, collection, entity_id, changes, via, \
                      host(ip) AS ip, correlation_id FROM audit_log ";

async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<AuditQuery>,
) -> ServerResult<Json<Value>> {
    require_admin(&state, &caller).await?;
    let limit = limit(q.limit)?;
    let before = cursor(q.cursor.as_deref())?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let rows: Vec<AuditEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE org_id = $1 \
           AND ($2::text IS NULL OR collection = $2) AND ($3::uuid IS NULL OR entity_id = $3) \
           AND ($4::uuid IS NULL OR actor_id = $4) \
           AND ($5::timestamptz IS NULL OR occurred_at >= $5) \
           AND ($6::timestamptz IS NULL OR occurred_at < $6) \
           AND ($7::bigint IS NULL OR id < $7) \
         ORDER BY id DESC LIMIT $8"
    )))
    .bind(caller.org_id)
    .bind(&q.collection)
    .bind(q.entity_id)
    .bind(q.actor_id)
    .bind(q.since)
    .bind(q.until)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(page(rows, limit)))
}

fn page(mut rows: Vec<AuditEntry>, limit: i64) -> Value {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = more
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    json!({"data": rows, "meta": {"limit": limit, "next_cursor": next}})
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn activity(
    State(state): State<AppState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
    Query(q): Query<ActivityQuery>,
) -> ServerResult<Json<Value>> {
    let schema = access::collection(&collection)?;
    caller.require(schema.name, false)?;
    let id = parse_id(&id)?;
    let limit = limit(q.limit)?;
    let before = cursor(q.cursor.as_deref())?;
    let (acl, _) = access::readable(&state, &caller, schema).await?;
    if !access::can_read(&acl, &caller, schema, id) {
        return Err(not_found());
    }
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    // Text edits of the record's body (same id) belong to its feed too.
    let rows: Vec<AuditEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE org_id = $1 AND entity_id = $2 AND ($3::bigint IS NULL OR id < $3) \
         ORDER BY id DESC LIMIT $4"
    )))
    .bind(caller.org_id)
    .bind(id)
    .bind(before)
    .bind(limit + 1)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    if rows.is_empty() && before.is_none() {
        // Readable but never changed through the server: it does not exist.
        return Err(not_found());
    }
    Ok(Json(page(rows, limit)))
}
