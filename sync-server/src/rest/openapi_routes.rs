//! OpenAPI descriptions of the HTTP routes outside the record collections: the document itself
//! and `/auth/*`. Each `#[utoipa::path]` sits on a stub named after the real handler (utoipa
//! reads only the attribute), so the handlers' modules stay free of documentation noise; the
//! request and response types are the handlers' own, deriving `ToSchema`.

use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi};

use super::openapi::public;
use crate::auth::routes::{LoginRequest, RefreshRequest, RegisterRequest, SessionResponse};

/// Adds the routes of this module.
pub(crate) struct Routes;

#[derive(OpenApi)]
#[openapi(
    paths(openapi_json, register, login, refresh),
    components(schemas(RegisterRequest, LoginRequest, RefreshRequest, SessionResponse))
)]
struct RoutesDoc;

/// Operations open to callers without a token.
const PUBLIC: &[&str] = &[
    "/api/v1/openapi.json",
    "/auth/register",
    "/auth/login",
    "/auth/refresh",
];

impl Modify for Routes {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let mut routes = RoutesDoc::openapi();
        for path in PUBLIC {
            if let Some(item) = routes.paths.paths.get_mut(*path) {
                for operation in [&mut item.get, &mut item.post].into_iter().flatten() {
                    public(operation);
                }
            }
        }
        openapi.merge(routes);
    }
}

/// This document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
#[allow(dead_code)]
fn openapi_json() {}

/// Creates a user and an org it owns, and signs in.
#[utoipa::path(
    post,
    path = "/auth/register",
    tag = "auth",
    operation_id = "register",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The new session.", body = SessionResponse),
        (status = 400, description = "The body is not the expected JSON, or a field is invalid."),
        (status = 409, description = "The email is already registered."),
    )
)]
#[allow(dead_code)]
fn register() {}

/// Signs in with email and password.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    operation_id = "login",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "The new session.", body = SessionResponse),
        (status = 400, description = "The body is not the expected JSON."),
        (status = 401, description = "Wrong email or password."),
    )
)]
#[allow(dead_code)]
fn login() {}

/// Rotates a refresh token into a new session (reusing a rotated one revokes its family).
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    operation_id = "refresh",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "The new session.", body = SessionResponse),
        (status = 400, description = "The body is not the expected JSON."),
        (status = 401, description = "The refresh token is unknown, expired or reused."),
    )
)]
#[allow(dead_code)]
fn refresh() {}
