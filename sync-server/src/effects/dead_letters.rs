//! REST for dead-lettered effect jobs (org owners and admins only):
//!
//! - `GET /api/v1/effects/dead-letters?handler=` lists the org's dead jobs, newest first, with
//!   their event, attempts and last error;
//! - `POST /api/v1/effects/dead-letters/{event_id}/{handler}/replay` puts one back in the queue
//!   with its attempts reset (the handler is idempotent, so a replay never duplicates work that
//!   did succeed).

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use syncline_protocol::ErrorCode;
use syncline_protocol::rules::OrgRole;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ServerError, ServerResult};
use crate::rest::access::Caller;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/effects/dead-letters", get(list))
        .route(
            "/api/v1/effects/dead-letters/{event_id}/{handler}/replay",
            post(replay),
        )
}

/// Only org owners and admins see and replay the org's failed effects.
pub async fn require_admin(state: &AppState, caller: &Caller) -> ServerResult<()> {
    let acl = state.acl.get(&state.db, caller.org_id).await?;
    match acl.role(caller.user_id) {
        Some(OrgRole::Owner | OrgRole::Admin) => Ok(()),
        _ => Err(ServerError::new(
            ErrorCode::Forbidden,
            "only org owners and admins may do this",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    handler: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct DeadLetter {
    event_id: Uuid,
    handler: String,
    event_type: String,
    collection: String,
    entity_id: Uuid,
    attempts: i32,
    last_error: Option<String>,
    occurred_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ServerResult<Json<serde_json::Value>> {
    require_admin(&state, &caller).await?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    // `effect_jobs` has no row-level security (workers claim across orgs): the org filter here
    // is what keeps this to the caller's org, and the join reads events under RLS.
    let rows: Vec<DeadLetter> = sqlx::query_as(
        "SELECT j.event_id, j.handler, e.event_type, e.collection, e.entity_id, j.attempts, \
                j.last_error, e.occurred_at, j.finished_at \
         FROM effect_jobs j JOIN domain_events e ON e.org_id = j.org_id AND e.id = j.event_id \
         WHERE j.org_id = $1 AND j.status = 'dead' AND ($2::text IS NULL OR j.handler = $2) \
         ORDER BY j.finished_at DESC LIMIT 500",
    )
    .bind(caller.org_id)
    .bind(&q.handler)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "data": rows })))
}

async fn replay(
    State(state): State<AppState>,
    caller: Caller,
    Path((event_id, handler)): Path<(Uuid, String)>,
) -> ServerResult<Json<serde_json::Value>> {
    require_admin(&state, &caller).await?;
    let done = sqlx::query(
        "UPDATE effect_jobs SET status = 'pending', attempts = 0, run_at = now(), finished_at = NULL \
         WHERE org_id = $1 AND event_id = $2 AND handler = $3 AND status = 'dead'",
    )
    .bind(caller.org_id)
    .bind(event_id)
    .bind(&handler)
    .execute(&state.db)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ServerError::new(
            ErrorCode::NotFound,
            "no dead-lettered job for this event and handler",
        ));
    }
    state.effect_wakeup.wake();
    Ok(Json(
        json!({ "data": { "event_id": event_id, "handler": handler, "status": "pending" } }),
    ))
}
