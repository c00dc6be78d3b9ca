//! Watchers: users told about changes of a record (status changes, completion, comments)
//! besides its creator. The creator of a record and everyone who comments on it watch it
//! automatically (the notifications handler adds them); anyone who may read a record can watch
//! or unwatch it over REST:
//!
//! - `PUT /api/v1/{collection}/{id}/watch` → 204 (watching; idempotent);
//! - `DELETE /api/v1/{collection}/{id}/watch` → 204 (not watching; idempotent).
//!
//! A record the caller may not read is 404, as everywhere in the REST bridge.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use syncline_protocol::ErrorCode;
use syncline_protocol::schema;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ServerError, ServerResult};
use crate::rest::access::{self, Caller};
use crate::rest::read::{parse_id, readable_record};
use crate::store::Tx;

/// Makes `user_id` watch the record (no-op when they already do).
pub async fn watch(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    collection: &str,
    entity_id: Uuid,
    user_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO watchers (org_id, collection, entity_id, user_id) VALUES ($1, $2, $3, $4) \
         ON CONFLICT DO NOTHING",
    )
    .bind(org_id)
    .bind(collection)
    .bind(entity_id)
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The users watching the record.
pub async fn of(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    collection: &str,
    entity_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT user_id FROM watchers WHERE org_id = $1 AND collection = $2 AND entity_id = $3 \
         ORDER BY user_id",
    )
    .bind(org_id)
    .bind(collection)
    .bind(entity_id)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(u,)| u).collect())
}

/// `PUT /api/v1/{collection}/{id}/watch`.
pub async fn put_watch(
    State(state): State<AppState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
) -> ServerResult<StatusCode> {
    let (collection, id) = watchable(&state, &caller, &collection, &id).await?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    watch(&mut tx, caller.org_id, collection, id, caller.user_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/{collection}/{id}/watch`.
pub async fn delete_watch(
    State(state): State<AppState>,
    caller: Caller,
    Path((collection, id)): Path<(String, String)>,
) -> ServerResult<StatusCode> {
    let (collection, id) = watchable(&state, &caller, &collection, &id).await?;
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    sqlx::query(
        "DELETE FROM watchers WHERE org_id = $1 AND collection = $2 AND entity_id = $3 AND user_id = $4",
    )
    .bind(caller.org_id)
    .bind(collection)
    .bind(id)
    .bind(caller.user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The record named by the path, if it is one the caller may read and watching it makes sense.
async fn watchable(
    state: &AppState,
    caller: &Caller,
    collection: &str,
    id: &str,
) -> ServerResult<(&'static str, Uuid)> {
    let schema = access::collection(collection)?;
    if schema::is_personal(schema.name) {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            format!("records of `{}` cannot be watched", schema.name),
        ));
    }
    caller.require(schema.name, false)?;
    let id = parse_id(id)?;
    readable_record(state, caller, schema, id).await?;
    Ok((schema.name, id))
}
