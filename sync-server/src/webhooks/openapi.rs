//! `/api/v1/webhooks/...` in the OpenAPI document. The handlers ([`super::routes`]) serve
//! plain JSON; the shapes are described here by documentation types that mirror them (the
//! Schemathesis test checks real responses against them).

use chrono::{DateTime, Utc};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

/// Adds the webhook routes.
pub(crate) struct Webhooks;

impl Modify for Webhooks {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        openapi.merge(WebhooksDoc::openapi());
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_endpoints,
        create_endpoint,
        get_endpoint,
        update_endpoint,
        delete_endpoint,
        rotate_secret,
        recover,
        list_deliveries,
        get_delivery,
        resend
    ),
    components(schemas(
        EndpointRequest,
        EndpointUpdate,
        Endpoint,
        CreatedEndpoint,
        EndpointData,
        CreatedEndpointData,
        EndpointList,
        CountMeta,
        RotatedSecret,
        RotatedSecretData,
        RecoverRequest,
        Recovered,
        RecoveredData,
        Delivery,
        DeliveryList,
        DeliveryListMeta,
        DeliveryData,
        Attempt,
        DeliveryWithAttempts,
        DeliveryWithAttemptsData
    ))
)]
struct WebhooksDoc;

/// A new endpoint.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointRequest {
    /// An `http` or `https` URL without credentials that resolves to public addresses only.
    #[schema(max_length = 2000, example = "https://example.com/webhooks")]
    pub url: String,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// Event types to send, e.g. `["task.created", "task.assigned"]`; empty or absent: all.
    #[schema(max_items = 100, inline, value_type = Vec<String>, example = json!(["task.created"]))]
    pub event_types: Option<Vec<String>>,
}

/// Changes to an endpoint; absent fields stay as they are.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointUpdate {
    #[schema(max_length = 2000)]
    pub url: Option<String>,
    #[schema(max_length = 500)]
    pub description: Option<String>,
    #[schema(max_items = 100, inline, value_type = Vec<String>)]
    pub event_types: Option<Vec<String>>,
    /// `false` stops deliveries; `true` resumes them and clears the failure history.
    pub enabled: Option<bool>,
}

/// An endpoint as admins see it: never its secret.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Endpoint {
    pub id: Uuid,
    pub url: String,
    pub description: String,
    /// Event types sent; empty means every type.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled (410, five days of failures, an admin).
    pub disabled_reason: Option<String>,
    /// Start of the current run of failed attempts.
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the previous secret still signs, after a rotation.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A created endpoint with its secret, shown this once.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_` + base64 of 32 random bytes; the HMAC key is the decoded bytes.
    pub secret: String,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct EndpointData {
    pub data: Endpoint,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CreatedEndpointData {
    pub data: CreatedEndpoint,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CountMeta {
    pub count: i64,
}

/// The org's endpoints, oldest first.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct EndpointList {
    pub data: Vec<Endpoint>,
    pub meta: CountMeta,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The new secret, shown this once.
    pub secret: String,
    /// The old secret signs too (a second signature) until then.
    pub previous_secret_expires_at: DateTime<Utc>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RotatedSecretData {
    pub data: RotatedSecret,
}

/// Which deliveries to send again.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    /// Failed deliveries made since then are requeued; events since then the endpoint never
    /// got are delivered.
    pub since: DateTime<Utc>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Recovered {
    /// Failed deliveries put back in the queue.
    pub requeued: i64,
    /// Deliveries made for events the endpoint had missed.
    pub created: i64,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RecoveredData {
    pub data: Recovered,
}

/// One message to one endpoint.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    /// The `webhook-id` header: the same on every attempt and resend.
    pub msg_id: String,
    /// `pending`, `running`, `succeeded` or `failed`.
    pub status: String,
    pub attempts: i32,
    /// When a pending delivery is next attempted.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DeliveryListMeta {
    pub count: i64,
    pub limit: i64,
    /// Pass as `cursor` for the next (older) page; `null` when this page is not full.
    pub next_cursor: Option<String>,
}

/// An endpoint's deliveries, newest first.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DeliveryList {
    pub data: Vec<Delivery>,
    pub meta: DeliveryListMeta,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DeliveryData {
    pub data: Delivery,
}

/// One attempt, from the delivery log.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Attempt {
    pub attempt: i32,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i32,
    /// `null` when no response came (refused address, connection error, timeout).
    pub status_code: Option<i32>,
    /// The response body, cut at 20 KB.
    pub response_body: Option<String>,
    pub error: Option<String>,
    /// The `webhook-timestamp` sent.
    pub webhook_timestamp: i64,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DeliveryWithAttempts {
    #[serde(flatten)]
    pub delivery: Delivery,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct DeliveryWithAttemptsData {
    pub data: DeliveryWithAttempts,
}

/// Lists the org's webhook endpoints (org owners and admins).
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/endpoints",
    tag = "webhooks",
    operation_id = "list_webhook_endpoints",
    responses(
        (status = 200, description = "The endpoints.", body = EndpointList),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:read`."),
    )
)]
#[allow(dead_code)]
fn list_endpoints() {}

/// Registers an endpoint; the response holds its secret, once.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints",
    tag = "webhooks",
    operation_id = "create_webhook_endpoint",
    request_body = EndpointRequest,
    responses(
        (status = 201, description = "The endpoint with its secret.", body = CreatedEndpointData),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:write`."),
        (status = 422, description = "A bad or refused URL, a bad event type, an unknown field."),
    )
)]
#[allow(dead_code)]
fn create_endpoint() {}

/// One endpoint.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    operation_id = "get_webhook_endpoint",
    params(("id" = Uuid, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The endpoint.", body = EndpointData),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:read`."),
        (status = 404, description = "No such endpoint in the org."),
    )
)]
#[allow(dead_code)]
fn get_endpoint() {}

/// Changes an endpoint (URL, description, filter) or enables/disables it.
#[utoipa::path(
    patch,
    path = "/api/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    operation_id = "update_webhook_endpoint",
    params(("id" = Uuid, Path, description = "The endpoint's id.")),
    request_body = EndpointUpdate,
    responses(
        (status = 200, description = "The endpoint as it is now.", body = EndpointData),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:write`."),
        (status = 404, description = "No such endpoint in the org."),
        (status = 422, description = "A bad field."),
    )
)]
#[allow(dead_code)]
fn update_endpoint() {}

/// Deletes an endpoint with its deliveries and their log.
#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/endpoints/{id}",
    tag = "webhooks",
    operation_id = "delete_webhook_endpoint",
    params(("id" = Uuid, Path, description = "The endpoint's id.")),
    responses(
        (status = 204, description = "Deleted."),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:write`."),
        (status = 404, description = "No such endpoint in the org."),
    )
)]
#[allow(dead_code)]
fn delete_endpoint() {}

/// Gives the endpoint a new secret; the old one keeps signing for 24 hours.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints/{id}/rotate-secret",
    tag = "webhooks",
    operation_id = "rotate_webhook_secret",
    params(("id" = Uuid, Path, description = "The endpoint's id.")),
    responses(
        (status = 200, description = "The new secret, shown this once.", body = RotatedSecretData),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:write`."),
        (status = 404, description = "No such endpoint in the org."),
    )
)]
#[allow(dead_code)]
fn rotate_secret() {}

/// Sends again what the endpoint failed to get or missed since a time.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/endpoints/{id}/recover",
    tag = "webhooks",
    operation_id = "recover_webhook_deliveries",
    params(("id" = Uuid, Path, description = "The endpoint's id.")),
    request_body = RecoverRequest,
    responses(
        (status = 200, description = "Deliveries queued.", body = RecoveredData),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:write`."),
        (status = 404, description = "No such endpoint in the org."),
        (status = 409, description = "The endpoint is disabled."),
        (status = 422, description = "`since` is missing or not a timestamp."),
    )
)]
#[allow(dead_code)]
fn recover() {}

/// The endpoint's deliveries, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/endpoints/{id}/deliveries",
    tag = "webhooks",
    operation_id = "list_webhook_deliveries",
    params(
        ("id" = Uuid, Path, description = "The endpoint's id."),
        ("status" = Option<String>, Query, description = "`pending`, `running`, `succeeded` or `failed`."),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "At most this many (default 100)."),
        ("cursor" = Option<String>, Query, description = "`meta.next_cursor` of the previous page."),
    ),
    responses(
        (status = 200, description = "Deliveries.", body = DeliveryList),
        (status = 400, description = "A bad status, limit or cursor."),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:read`."),
        (status = 404, description = "No such endpoint in the org."),
    )
)]
#[allow(dead_code)]
fn list_deliveries() {}

/// One delivery with the log of its attempts.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/deliveries/{id}",
    tag = "webhooks",
    operation_id = "get_webhook_delivery",
    params(("id" = Uuid, Path, description = "The delivery's id.")),
    responses(
        (status = 200, description = "The delivery and its attempts.", body = DeliveryWithAttemptsData),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:read`."),
        (status = 404, description = "No such delivery in the org."),
    )
)]
#[allow(dead_code)]
fn get_delivery() {}

/// Sends a finished delivery again (same `webhook-id`, same bytes).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/deliveries/{id}/resend",
    tag = "webhooks",
    operation_id = "resend_webhook_delivery",
    params(("id" = Uuid, Path, description = "The delivery's id.")),
    responses(
        (status = 202, description = "Queued for a new round of attempts.", body = DeliveryData),
        (status = 403, description = "Not an org owner or admin, or an API key without `*:write`."),
        (status = 404, description = "No such delivery in the org."),
        (status = 409, description = "The delivery is still being attempted."),
    )
)]
#[allow(dead_code)]
fn resend() {}
