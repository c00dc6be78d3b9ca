//! REST for notifications (the records themselves are the generic `/api/v1/notifications`
//! collection, which lists only the caller's own):
//!
//! - `GET /api/v1/notifications/unread-count` → `{"unread": n}`;
//! - `POST /api/v1/notifications/read-all` → `{"marked": n}`: sets `read_at` on every unread
//!   notification of the caller, each as a server-authored change on the caller's behalf, so
//!   it syncs to every device of theirs like a read marked on one of them;
//! - `GET|PUT /api/v1/notification-preferences` (see [`super::preferences`]);
//! - `PUT|DELETE /api/v1/{collection}/{id}/watch` (see [`super::watchers`]).

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::NOTIFICATIONS;
use uuid::Uuid;

use super::{preferences, watchers};
use crate::AppState;
use crate::error::{ServerError, ServerResult};
use crate::merge::server::{ServerWrite, WriteKind, apply_server_write};
use crate::rest::access::Caller;

/// Notifications one `read-all` marks at most (a caller with more calls again).
const MAX_MARKED: i64 = 1000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/notifications/unread-count", get(unread_count))
        .route("/api/v1/notifications/read-all", post(read_all))
        .route(
            "/api/v1/notification-preferences",
            get(preferences::get_preferences).put(preferences::put_preferences),
        )
        .route(
            "/api/v1/{collection}/{id}/watch",
            put(watchers::put_watch).delete(watchers::delete_watch),
        )
}

async fn unread_count(State(state): State<AppState>, caller: Caller) -> ServerResult<Json<Value>> {
    caller.require(NOTIFICATIONS.name, false)?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let (unread,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM notifications \
         WHERE org_id = $1 AND recipient_id = $2 AND read_at IS NULL",
    )
    .bind(caller.org_id)
    .bind(caller.user_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Json(json!({ "unread": unread })))
}

async fn read_all(State(state): State<AppState>, caller: Caller) -> ServerResult<Json<Value>> {
    caller.require(NOTIFICATIONS.name, true)?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let unread: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM notifications \
         WHERE org_id = $1 AND recipient_id = $2 AND read_at IS NULL ORDER BY created_at LIMIT $3",
    )
    .bind(caller.org_id)
    .bind(caller.user_id)
    .bind(MAX_MARKED)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    let now = chrono::Utc::now().timestamp_millis();
    let fields = [("read_at", Some(FieldValue::Timestamp(now)))];
    let mut marked = 0;
    for (id,) in unread {
        let write = ServerWrite {
            schema: &NOTIFICATIONS,
            doc_id: id,
            kind: WriteKind::Update,
            fields: &fields,
        };
        match apply_server_write(&state, caller.org_id, caller.user_id, &write).await? {
            Ok(_) => marked += 1,
            // Judged like the caller's own write: anything refused is not theirs to mark.
            Err(refusal) => {
                return Err(ServerError::new(refusal.code, refusal.message));
            }
        }
    }
    Ok(Json(json!({ "marked": marked })))
}
