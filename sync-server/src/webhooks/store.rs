//! The SQL of webhook endpoints and deliveries. Every function runs in a transaction begun for
//! one org (`db::begin_org`), so row-level security confines it to that org.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::effects::DomainEvent;
use crate::store::Tx;

/// An endpoint as admins see it (never its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Event types sent; empty means every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// Start of the current run of failures (`null` while deliveries succeed).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, event_types, disabled_at IS NULL AS enabled, \
     disabled_at, disabled_reason, failing_since, \
     CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END \
       AS previous_secret_expires_at, created_at, updated_at";

/// One endpoint of the org.
pub async fn endpoint(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Endpoint>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 AND id = $2"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Every endpoint of the org, oldest first.
pub async fn endpoints(tx: &mut Tx<'_>, org_id: Uuid) -> Result<Vec<Endpoint>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE org_id = $1 ORDER BY created_at, id"
    )))
    .bind(org_id)
    .fetch_all(&mut **tx)
    .await
}

/// What a new endpoint is made of.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub secret: String,
    pub created_by: Uuid,
}

pub async fn insert_endpoint(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    new: &NewEndpoint,
) -> Result<Endpoint, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_endpoints (org_id, id, url, description, event_types, secret, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {ENDPOINT_COLUMNS}"
    )))
    .bind(org_id)
    .bind(Uuid::now_v7())
    .bind(&new.url)
    .bind(&new.description)
    .bind(&new.event_types)
    .bind(&new.secret)
    .bind(new.created_by)
    .fetch_one(&mut **tx)
    .await
}

/// Changes to an endpoint (`None`: unchanged).
#[derive(Debug, Clone, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

pub async fn update_endpoint(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    id: Uuid,
    changes: &EndpointChanges,
) -> Result<Option<Endpoint>, sqlx::Error> {
    // Enabling clears the failure history (a fresh start); disabling by hand records why.
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_endpoints SET \
           url = COALESCE($3, url), description = COALESCE($4, description), \
           event_types = COALESCE($5, event_types), \
           disabled_at = CASE WHEN $6 IS NULL THEN disabled_at WHEN $6 THEN NULL \
                              ELSE COALESCE(disabled_at, now()) END, \
           disabled_reason = CASE WHEN $6 IS NULL THEN disabled_reason WHEN $6 THEN NULL \
                                  WHEN disabled_at IS NULL THEN 'disabled by an admin' \
                                  ELSE disabled_reason END, \
           failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END, \
           updated_at = now() \
         WHERE org_id = $1 AND id = $2 RETURNING {ENDPOINT_COLUMNS}"
    )))
    .bind(org_id)
    .bind(id)
    .bind(&changes.url)
    .bind(&changes.description)
    .bind(&changes.event_types)
    .bind(changes.enabled)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn delete_endpoint(tx: &mut Tx<'_>, org_id: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("DELETE FROM webhook_endpoints WHERE org_id = $1 AND id = $2")
        .bind(org_id)
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Makes `secret` the endpoint's secret; the current one keeps signing until `overlap_until`.
pub async fn rotate_secret(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    id: Uuid,
    secret: &str,
    overlap_until: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_endpoints SET previous_secret = secret, previous_secret_expires_at = $4, \
                secret = $3, updated_at = now() \
         WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(id)
    .bind(secret)
    .bind(overlap_until)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Inserts one delivery of `event` per endpoint (none twice); returns how many were new.
pub async fn insert_deliveries(
    tx: &mut Tx<'_>,
    event: &DomainEvent,
    endpoint_ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let ids: Vec<Uuid> = endpoint_ids.iter().map(|_| Uuid::now_v7()).collect();
    let body = super::message_body(event);
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (org_id, id, endpoint_id, event_id, event_type, msg_id, body) \
         SELECT $1, d, e, $4, $5, $6, $7 FROM UNNEST($2::uuid[], $3::uuid[]) AS t(d, e) \
         ON CONFLICT (org_id, event_id, endpoint_id) DO NOTHING",
    )
    .bind(event.org_id)
    .bind(&ids)
    .bind(endpoint_ids)
    .bind(event.id)
    .bind(&event.event_type)
    .bind(super::msg_id(event.id))
    .bind(&body)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// Disables an endpoint that is still enabled and raises `webhook.endpoint_disabled` (which
/// notifies the org's admins) in `tx`; returns the jobs queued (wake the workers after commit).
pub async fn disable_and_notify(
    tx: &mut Tx<'_>,
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
    reason: &str,
) -> Result<usize, sqlx::Error> {
    let disabled: Option<Endpoint> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_endpoints SET disabled_at = now(), disabled_reason = $3, updated_at = now() \
         WHERE org_id = $1 AND id = $2 AND disabled_at IS NULL RETURNING {ENDPOINT_COLUMNS}"
    )))
    .bind(org_id)
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(endpoint) = disabled else {
        return Ok(0);
    };
    tracing::warn!(endpoint_id = %id, url = %endpoint.url, reason, "webhook endpoint disabled");
    let data = json!({
        "endpoint_id": id,
        "url": endpoint.url,
        "reason": reason,
        "record": endpoint,
        "changes": {"disabled_at": {"from": null, "to": endpoint.disabled_at}},
    });
    crate::effects::outbox::emit(
        tx,
        &state.effect_handlers,
        org_id,
        None,
        "webhook_endpoints",
        id,
        "webhook.endpoint_disabled",
        data,
    )
    .await
}

/// A delivery as admins see it (without its body bytes, with the message type and id).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub msg_id: String,
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const DELIVERY_COLUMNS: &str = "id, endpoint_id, event_id, event_type, msg_id, status, attempts, \
     CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at, last_status, \
     last_error, created_at, finished_at";

/// One attempt of a delivery, from the delivery log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Attempt {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    pub status_code: Option<i32>,
    pub response_body: Option<String>,
    pub error: Option<String>,
    pub webhook_timestamp: i64,
}

pub async fn delivery(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    id: Uuid,
) -> Result<Option<Delivery>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE org_id = $1 AND id = $2"
    )))
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// The endpoint's deliveries, newest first (by id: UUIDv7, so by creation), at most `limit`,
/// optionally of one status and only older than the delivery `before` (the paging cursor).
pub async fn deliveries(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    endpoint_id: Uuid,
    status: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Delivery>, sqlx::Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
         WHERE org_id = $1 AND endpoint_id = $2 AND ($3::text IS NULL OR status = $3) \
           AND ($5::uuid IS NULL OR id < $5) \
         ORDER BY id DESC LIMIT $4"
    )))
    .bind(org_id)
    .bind(endpoint_id)
    .bind(status)
    .bind(limit)
    .bind(before)
    .fetch_all(&mut **tx)
    .await
}

pub async fn attempts(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    delivery_id: Uuid,
) -> Result<Vec<Attempt>, sqlx::Error> {
    sqlx::query_as(
        "SELECT attempt, started_at, duration_ms, status_code, response_body, error, webhook_timestamp \
         FROM webhook_attempts WHERE org_id = $1 AND delivery_id = $2 ORDER BY attempt",
    )
    .bind(org_id)
    .bind(delivery_id)
    .fetch_all(&mut **tx)
    .await
}

/// Puts a finished delivery back in the queue for a new round of attempts; `None` when there
/// is no such delivery, `Some(false)` when it is still pending or running.
pub async fn resend(tx: &mut Tx<'_>, org_id: Uuid, id: Uuid) -> Result<Option<bool>, sqlx::Error> {
    let status: Option<(String,)> = sqlx::query_as(
        "SELECT status FROM webhook_deliveries WHERE org_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((status,)) = status else {
        return Ok(None);
    };
    if !matches!(status.as_str(), "succeeded" | "failed") {
        return Ok(Some(false));
    }
    requeue(tx, org_id, "id = $2", id).await?;
    Ok(Some(true))
}

/// Requeues the endpoint's failed deliveries made since `since`; returns how many.
pub async fn requeue_failed_since(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    endpoint_id: Uuid,
    since: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0, \
                next_attempt_at = now(), finished_at = NULL \
         WHERE org_id = $1 AND endpoint_id = $2 AND status = 'failed' AND created_at >= $3",
    )
    .bind(org_id)
    .bind(endpoint_id)
    .bind(since)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

async fn requeue(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    filter: &'static str,
    id: Uuid,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_deliveries SET status = 'pending', round_attempts = 0, \
                next_attempt_at = now(), finished_at = NULL \
         WHERE org_id = $1 AND {filter}"
    )))
    .bind(org_id)
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// The org's events since `since` that the endpoint's filter takes and that have no delivery
/// to it yet (oldest first, at most `limit`), for a recovery; never events of personal
/// records (see [`super::fan_out`]).
pub async fn undelivered_events_since(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    endpoint_id: Uuid,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DomainEvent>, sqlx::Error> {
    let rows: Vec<crate::effects::worker::EventRow> = sqlx::query_as(
        "SELECT ev.id, ev.org_id, ev.event_type, ev.collection, ev.entity_id, ev.actor_id, \
                ev.occurred_at, ev.data, ev.correlation_id \
         FROM domain_events ev JOIN webhook_endpoints ep ON ep.org_id = ev.org_id AND ep.id = $2 \
         WHERE ev.org_id = $1 AND ev.occurred_at >= $3 AND NOT ev.collection = ANY($5) \
           AND (cardinality(ep.event_types) = 0 OR ev.event_type = ANY(ep.event_types)) \
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                           WHERE d.org_id = ev.org_id AND d.event_id = ev.id AND d.endpoint_id = $2) \
         ORDER BY ev.occurred_at, ev.id LIMIT $4",
    )
    .bind(org_id)
    .bind(endpoint_id)
    .bind(since)
    .bind(limit)
    .bind(syncline_protocol::schema::PERSONAL_COLLECTIONS)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(crate::effects::worker::EventRow::into_event)
        .collect())
}
