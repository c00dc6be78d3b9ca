//! The OpenAPI 3.1 document of the HTTP API, generated from the code with utoipa and served at
//! `GET /api/v1/openapi.json`; `docs/openapi.json` is a committed copy that
//! `sync-server/tests/openapi.rs` keeps in step.
//!
//! Where its parts come from:
//! - the record collections of the REST bridge (`/api/v1/{collection}`): built from the
//!   collection schemas of `syncline-protocol` ([`super::openapi_collections`]), so a field added
//!   to a schema appears here without touching this module;
//! - the other routes: `#[utoipa::path]` descriptions next to stubs ([`super::openapi_routes`])
//!   and `ToSchema` derives on the request and response types;
//! - the rules every operation shares, applied by [`Conventions`] after assembly: the error
//!   envelope on every 4xx/5xx response (`4XX`/`5XX` when an operation lists no such status),
//!   `X-Correlation-Id` on every response, `X-RateLimit-*` on the REST bridge's, and bearer
//!   authentication (a user's JWT access token or an API key) unless an operation opts out.

use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response as OaResponse, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, RefOr, Required};
use utoipa::{Modify, OpenApi, ToSchema};

use super::openapi_collections::Collections;
use super::openapi_effects::Effects;
use super::openapi_keys::ApiKeys;
use super::openapi_orgs::Orgs;
use super::openapi_revisions::Revisions;
use super::openapi_routes::Routes;
use crate::notifications::openapi::Notifications;
use crate::webhooks::openapi::Webhooks;

/// Path of the served document.
pub const PATH: &str = "/api/v1/openapi.json";

/// Names of the security schemes in `components.securitySchemes`.
pub const BEARER: &str = "bearer";
pub const API_KEY: &str = "apiKey";

/// `{"error": {...}}`: the body of every failed request.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

/// One failure: a stable machine-readable `code`, a message for people, optional details
/// (field-level problems under `details.fields`), the request's correlation id and the time.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Stable code, e.g. `invalid_input`, `unauthenticated`, `forbidden`, `not_found`,
    /// `conflict`, `too_large`, `rate_limited`, `idempotency_key_reused`, `internal`
    /// (docs/rest.md lists them).
    #[schema(examples("invalid_input"))]
    pub code: String,
    pub message: String,
    /// Anything that helps fix the request, e.g. `{"fields": {"title": "is required"}}`.
    #[schema(value_type = Option<Object>, required = true)]
    pub details: Option<serde_json::Value>,
    /// The request's `X-Correlation-Id` (taken from the request or made by the server).
    pub correlation_id: String,
    /// When the error happened (RFC 3339, UTC).
    #[schema(format = DateTime)]
    pub timestamp: String,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Syncline HTTP API",
        description = "The REST bridge (`/api/v1`) for integrations, whose writes merge with \
            offline clients' edits, and the account, organization and revision endpoints. \
            See docs/rest.md.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(ErrorEnvelope, ErrorBody)),
    modifiers(&Routes, &Collections, &ApiKeys, &Revisions, &Orgs, &Effects, &Webhooks, &Notifications, &Conventions),
)]
struct ApiDoc;

/// The whole document.
pub fn document() -> OpenApiDoc {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline (what docs/openapi.json holds).
pub fn json() -> &'static str {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut text = serde_json::to_string_pretty(&document())
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        text.push('\n');
        text
    });
    &JSON
}

/// `GET /api/v1/openapi.json` (no authentication).
pub async fn serve() -> Response {
    ([(CONTENT_TYPE, "application/json")], json()).into_response()
}

/// Marks an operation as open to anyone (no `Authorization` needed).
pub(crate) fn public(operation: &mut Operation) {
    operation.security = Some(Vec::new());
}

/// The shared rules, applied to every operation once all of them are in.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key")
                    .description(Some(
                        "`Authorization: Bearer <token>`: a user's access token (a JWT from \
                         `/auth/login`) or an API key (`sk_live_...`, from `POST /api/v1/api-keys`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key in its own header, instead of `Authorization: Bearer`.",
            ))),
        );
        // Either scheme (a list of requirements is a choice).
        openapi.security = Some(
            [BEARER, API_KEY]
                .into_iter()
                .map(|name| SecurityRequirement::new(name, Vec::<String>::new()))
                .collect(),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let bridge = path.starts_with("/api/v1/") && path != PATH;
            for operation in operations(item) {
                apply_conventions(operation, bridge);
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn apply_conventions(operation: &mut Operation, bridge: bool) {
    if bridge {
        operation.parameters.get_or_insert_with(Vec::new).push(
            ParameterBuilder::new()
                .name("X-Correlation-Id")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Echoed on the response and in error bodies; made by the server when absent.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(128))
                        .pattern(Some("^[A-Za-z0-9._:-]+$")),
                ))
                .build(),
        );
    }
    // Statuses an operation lists keep their description; any other 4xx/5xx falls under the
    // ranges, so every error response is documented with the envelope.
    let responses = &mut operation.responses.responses;
    if bridge {
        responses
            .entry("429".into())
            .or_insert_with(|| RefOr::T(error_response("Over the rate limit: retry later.")));
    }
    for (range, description) in [
        ("4XX", "The request was refused."),
        ("5XX", "The server failed or is unavailable."),
    ] {
        responses
            .entry(range.into())
            .or_insert_with(|| RefOr::T(error_response(description)));
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if status.starts_with('4') || status.starts_with('5') {
            response.content.clear();
            response.content.insert(
                "application/json".into(),
                ContentBuilder::new()
                    .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                        "ErrorEnvelope",
                    ))))
                    .build(),
            );
        }
        add_header(
            response,
            "X-Correlation-Id",
            "The request's correlation id (from the request or made by the server).",
        );
        if bridge {
            add_header(
                response,
                "X-RateLimit-Limit",
                "Requests allowed per window for this API key or user.",
            );
            add_header(
                response,
                "X-RateLimit-Remaining",
                "Requests left in the current window.",
            );
        }
        if status == "429" {
            add_header(response, "Retry-After", "Seconds to wait before retrying.");
        }
    }
}

fn add_header(response: &mut OaResponse, name: &str, description: &str) {
    let schema = if name == "X-Correlation-Id" {
        ObjectBuilder::new().schema_type(Type::String)
    } else {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
    };
    response.headers.entry(name.to_owned()).or_insert_with(|| {
        HeaderBuilder::new()
            .schema(schema)
            .description(Some(description))
            .build()
    });
}

/// A response whose body is the error envelope.
pub(crate) fn error_response(description: &str) -> OaResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorEnvelope",
                ))))
                .build(),
        )
        .build()
}
