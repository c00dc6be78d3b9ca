//! Outbound webhooks per the Standard Webhooks specification.
//!
//! Org admins register endpoints (`/api/v1/webhooks/endpoints`, see [`routes`]) with an
//! optional event-type filter and get a `whsec_` secret once. The [`WebhooksHandler`] effect
//! handler runs once per domain event (the outbox guarantees it runs at least once after the
//! change committed) and fans the event out into one `webhook_deliveries` row per matching
//! endpoint, keyed by (event, endpoint) so a second run adds nothing. Each delivery fixes its
//! body bytes and `webhook-id` (`msg_<event id>`) when it is made: every attempt, retry or
//! manual resend sends identical bytes under the same id, which is what receivers dedupe on.
//!
//! The [`delivery`] loop of every server process claims due deliveries with
//! `FOR UPDATE SKIP LOCKED`, signs (see [`signature`]) and sends them through the SSRF
//! [`guard`], logs each attempt, and retries failures on the spec's schedule.

mod attempt;
pub mod delivery;
pub mod guard;
pub(crate) mod openapi;
mod request;
pub mod routes;
pub mod signature;
pub mod store;

use std::sync::LazyLock;

use chrono::SecondsFormat;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::AppState;
use crate::effects::{DomainEvent, EffectHandler, HandlerError};
pub use routes::routes;

/// The effect handler's name (stored with its jobs).
pub const HANDLER: &str = "webhooks";

/// Wakes the delivery loops of this process when deliveries were queued. Process-wide (not per
/// [`AppState`]) so the handler and the REST routes reach the loop without new state; a loop of
/// another server in the same process woken by mistake just finds nothing due.
static WAKE: LazyLock<Notify> = LazyLock::new(Notify::new);

/// Wakes the delivery loops of this process.
pub fn wake() {
    WAKE.notify_waiters();
}

/// The `webhook-id` of an event's messages, the same for every endpoint and attempt.
pub fn msg_id(event_id: Uuid) -> String {
    format!("msg_{}", event_id.simple())
}

/// The message body of an event: `{"type", "timestamp", "data"}`, where `data` holds the
/// event's ids and its own data (`record`, `changes`, ...).
pub fn message_body(event: &DomainEvent) -> Vec<u8> {
    let mut data = Map::new();
    data.insert("event_id".into(), json!(event.id));
    data.insert("collection".into(), json!(event.collection));
    data.insert("entity_id".into(), json!(event.entity_id));
    data.insert("actor_id".into(), json!(event.actor_id));
    if let Value::Object(extra) = &event.data {
        for (key, value) in extra {
            data.entry(key.clone()).or_insert_with(|| value.clone());
        }
    }
    let body = json!({
        "type": event.event_type,
        "timestamp": event.occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    });
    // Serializing a `Value` cannot fail.
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The effect handler that turns every event into deliveries to the org's endpoints.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebhooksHandler;

impl EffectHandler for WebhooksHandler {
    fn name(&self) -> &'static str {
        HANDLER
    }

    /// Every event: the endpoints' filters are applied when the job runs, so changing a
    /// filter affects events not yet fanned out.
    fn wants(&self, _event_type: &str) -> bool {
        true
    }

    /// Only orgs with an enabled endpoint get a job: most orgs have none, and a job per change
    /// would be claimed and run for nothing. An endpoint created or re-enabled later does not
    /// receive earlier events (as before), except through recovery, which reads the events.
    fn queue_only_if(&self) -> Option<&'static str> {
        Some("EXISTS (SELECT 1 FROM webhook_endpoints WHERE org_id = $1 AND disabled_at IS NULL)")
    }

    fn handle<'a>(
        &'a self,
        state: &'a AppState,
        event: &'a DomainEvent,
        _attempt: u32,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            let made = fan_out(state, event).await?;
            if made > 0 {
                tracing::debug!(event_id = %event.id, deliveries = made, "webhook deliveries queued");
                wake();
            }
            Ok(())
        })
    }
}

/// Makes the deliveries of `event` (idempotent: one per endpoint, ever); returns how many
/// were new.
pub async fn fan_out(state: &AppState, event: &DomainEvent) -> Result<u64, sqlx::Error> {
    // A personal record (a user's notification) is readable by its owner only: org-wide
    // endpoints never get it.
    if syncline_protocol::schema::is_personal(&event.collection) {
        return Ok(0);
    }
    let mut tx = crate::db::begin_org(&state.db, event.org_id).await?;
    // Endpoints made after the event do not get it (no replay of history by accident; a
    // recovery does that on purpose).
    let endpoints: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT id FROM webhook_endpoints \
         WHERE org_id = $1 AND disabled_at IS NULL AND created_at <= $3 \
           AND (cardinality(event_types) = 0 OR $2 = ANY(event_types))",
    )
    .bind(event.org_id)
    .bind(&event.event_type)
    .bind(event.occurred_at)
    .fetch_all(&mut *tx)
    .await?;
    if endpoints.is_empty() {
        tx.commit().await?;
        return Ok(0);
    }
    let endpoint_ids: Vec<Uuid> = endpoints.into_iter().map(|(id,)| id).collect();
    let made = store::insert_deliveries(&mut tx, event, &endpoint_ids).await?;
    tx.commit().await?;
    Ok(made)
}
