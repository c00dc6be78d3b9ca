//! `/api/v1/api-keys` in the OpenAPI document. The handlers (`super::api_keys`) read and write
//! plain JSON maps, so the shapes are described here by documentation types that mirror them;
//! the Schemathesis test (`sync-server/tests/schemathesis.rs`) checks real responses against
//! them.

use chrono::{DateTime, Utc};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

/// Adds the API key routes.
pub(crate) struct ApiKeys;

impl Modify for ApiKeys {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        openapi.merge(KeysDoc::openapi());
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(list, create, revoke),
    components(schemas(ApiKeyRequest, ApiKey, CreatedApiKey, ApiKeyList))
)]
struct KeysDoc;

/// A new API key: a name to recognise it by and what it may do.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
    /// `<collection>:read` or `<collection>:write` (write implies read), `*` for every
    /// collection, e.g. `["tasks:read", "contacts:write"]`.
    #[schema(
        min_items = 1,
        max_items = 64,
        inline,
        value_type = Vec<String>,
        example = json!(["tasks:read", "contacts:write"])
    )]
    pub scopes: Vec<String>,
}

/// An API key as listed: never its secret.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ApiKey {
    pub id: Uuid,
    pub name: String,
    /// `sk_live_<public id>`: recognises a key, cannot authenticate.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    /// Set once revoked; a revoked key is refused at once.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A created key with its plain `key`, shown this once (only its hash is stored).
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub info: ApiKey,
    /// `sk_live_<public id>_<secret>`: send as `Authorization: Bearer <key>` or `X-API-Key`.
    pub key: String,
}

/// The caller's keys.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ApiKeyList {
    pub data: Vec<ApiKey>,
}

/// Lists the caller's API keys (a user's own token only, not an API key).
#[utoipa::path(
    get,
    path = "/api/v1/api-keys",
    tag = "api-keys",
    operation_id = "list_api_keys",
    responses(
        (status = 200, description = "The caller's keys.", body = ApiKeyList),
        (status = 403, description = "Called with an API key."),
    )
)]
#[allow(dead_code)]
fn list() {}

/// Makes an API key; the response holds the plain key, once.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    tag = "api-keys",
    operation_id = "create_api_key",
    request_body = ApiKeyRequest,
    responses(
        (status = 201, description = "The new key, with its secret.", body = CreatedApiKey),
        (status = 403, description = "Called with an API key."),
        (status = 422, description = "A bad name or scope, or an unknown field."),
    )
)]
#[allow(dead_code)]
fn create() {}

/// Revokes an API key: refused from the next request on.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{id}",
    tag = "api-keys",
    operation_id = "revoke_api_key",
    params(("id" = Uuid, Path, description = "The key's id.")),
    responses(
        (status = 204, description = "Revoked."),
        (status = 403, description = "Called with an API key."),
        (status = 404, description = "No such key of the caller."),
    )
)]
#[allow(dead_code)]
fn revoke() {}
