//! The audit log, activity feeds and dead-lettered effects in the OpenAPI document
//! (`crate::audit`, `crate::effects::dead_letters`). The handlers serve plain JSON; the shapes
//! are described here by documentation types that mirror them, and the Schemathesis test checks
//! real responses against them.

use chrono::{DateTime, Utc};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

/// Adds the effects routes.
pub(crate) struct Effects;

impl Modify for Effects {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        openapi.merge(EffectsDoc::openapi());
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(audit_log, activity, dead_letters, replay),
    components(schemas(AuditEntry, AuditPage, PageMeta, DeadLetter, DeadLetterList, Replayed))
)]
struct EffectsDoc;

/// One mutation, as the audit log holds it.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct AuditEntry {
    /// Increasing with time; also the paging cursor.
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor_id: Option<Uuid>,
    /// `create`, `update`, `delete`, `restore` (records) or `edit` (text bodies).
    pub action: String,
    pub collection: String,
    pub entity_id: Uuid,
    /// `{field: {"from": .., "to": ..}}` for every field the mutation changed (`{}` for text).
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
    /// `rest` or `ws`.
    pub via: String,
    pub ip: Option<String>,
    pub correlation_id: Option<String>,
}

/// Paging of the audit log and activity feeds.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct PageMeta {
    pub limit: i64,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A page of audit entries, newest first.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct AuditPage {
    pub data: Vec<AuditEntry>,
    pub meta: PageMeta,
}

/// An effect job that failed for good.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DeadLetter {
    pub event_id: Uuid,
    pub handler: String,
    pub event_type: String,
    pub collection: String,
    pub entity_id: Uuid,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// The org's dead-lettered jobs, newest first (at most 500).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DeadLetterList {
    pub data: Vec<DeadLetter>,
}

/// A job put back in the queue.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Replayed {
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// The org's audit log, newest first (org owners and admins).
#[utoipa::path(
    get,
    path = "/api/v1/audit-log",
    tag = "audit",
    operation_id = "list_audit_log",
    params(
        ("collection" = Option<String>, Query, description = "Only this collection."),
        ("entity_id" = Option<Uuid>, Query, description = "Only this record."),
        ("actor_id" = Option<Uuid>, Query, description = "Only this user's mutations."),
        ("since" = Option<DateTime<Utc>>, Query, description = "At or after this time."),
        ("until" = Option<DateTime<Utc>>, Query, description = "Before this time."),
        ("cursor" = Option<String>, Query, description = "`meta.next_cursor` of the previous page."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)."),
    ),
    responses(
        (status = 200, description = "A page of the log.", body = AuditPage),
        (status = 400, description = "A bad filter or cursor."),
        (status = 403, description = "Not an org owner or admin."),
    )
)]
#[allow(dead_code)]
fn audit_log() {}

/// One record's activity: who changed which fields from what to what, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/{collection}/{id}/activity",
    tag = "audit",
    operation_id = "record_activity",
    params(
        ("collection" = String, Path, description = "A record collection, e.g. `tasks`."),
        ("id" = Uuid, Path, description = "The record's id."),
        ("cursor" = Option<String>, Query, description = "`meta.next_cursor` of the previous page."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)."),
    ),
    responses(
        (status = 200, description = "A page of the record's activity.", body = AuditPage),
        (status = 400, description = "A bad id or cursor."),
        (status = 404, description = "No such collection, or no such record the caller may read."),
    )
)]
#[allow(dead_code)]
fn activity() {}

/// The org's dead-lettered effect jobs (org owners and admins).
#[utoipa::path(
    get,
    path = "/api/v1/effects/dead-letters",
    tag = "effects",
    operation_id = "list_dead_letters",
    params(("handler" = Option<String>, Query, description = "Only this handler's jobs.")),
    responses(
        (status = 200, description = "Dead-lettered jobs.", body = DeadLetterList),
        (status = 403, description = "Not an org owner or admin."),
    )
)]
#[allow(dead_code)]
fn dead_letters() {}

/// Puts a dead-lettered job back in the queue with its attempts reset.
#[utoipa::path(
    post,
    path = "/api/v1/effects/dead-letters/{event_id}/{handler}/replay",
    tag = "effects",
    operation_id = "replay_dead_letter",
    params(
        ("event_id" = Uuid, Path, description = "The event."),
        ("handler" = String, Path, description = "The handler, e.g. `webhooks`."),
    ),
    responses(
        (status = 200, description = "Queued again.", body = Replayed),
        (status = 403, description = "Not an org owner or admin."),
        (status = 404, description = "No dead job for this event and handler."),
    )
)]
#[allow(dead_code)]
fn replay() {}
