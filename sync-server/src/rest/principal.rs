//! Who calls the REST bridge: a user with their own access token (`Authorization: Bearer
//! <JWT>`) or an integration with an API key (`Authorization: Bearer sk_...` or `X-API-Key`).
//!
//! [`layer`] authenticates every `/api/v1` request once and leaves the [`Principal`] in the
//! request's extensions, where the rate limit, the idempotency layer and the handlers'
//! extractor find it; the extractor authenticates by itself only when the layer did not run.
//! An API key acts as the user who made it, narrowed by its scopes ([`Principal::require`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use super::api_keys_store;
use crate::AppState;
use crate::error::ServerError;

/// The header integrations may use instead of `Authorization: Bearer sk_...`.
pub const API_KEY_HEADER: &str = "x-api-key";

/// What a request wants to do with a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// The user's own access token.
    User,
    /// An API key made by the user; `scopes` are like `tasks:read`, `contacts:write`, `*:read`.
    ApiKey { key_id: Uuid, scopes: Arc<[String]> },
}

/// The authenticated caller of a REST request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The user (for an API key: the user who made it, whose rights it never exceeds).
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub kind: PrincipalKind,
}

impl Principal {
    /// Whether the credential allows `access` to `collection` at all. A user's own token
    /// allows every collection: their relation to each record is checked later, as for sync.
    /// An API key needs `{collection}:{access}` or `*:{access}`; a write scope implies read.
    pub fn require(&self, collection: &str, access: Access) -> Result<(), ServerError> {
        let PrincipalKind::ApiKey { scopes, .. } = &self.kind else {
            return Ok(());
        };
        let allows = |wanted: Access| {
            scopes.iter().any(|scope| {
                scope
                    .split_once(':')
                    .is_some_and(|(c, a)| (c == collection || c == "*") && a == wanted.as_str())
            })
        };
        if allows(access) || (access == Access::Read && allows(Access::Write)) {
            return Ok(());
        }
        let needed = format!("{collection}:{}", access.as_str());
        Err(ServerError::new(
            ErrorCode::Forbidden,
            format!("this API key lacks the scope `{needed}`"),
        )
        .with_details(serde_json::json!({ "required_scope": needed })))
    }

    /// Whether this is an API key (they may not manage API keys).
    pub fn is_api_key(&self) -> bool {
        matches!(self.kind, PrincipalKind::ApiKey { .. })
    }

    /// A stable name for per-principal state (rate limits, idempotency keys): one per API key,
    /// one per user across all of the user's tokens.
    pub fn key(&self) -> String {
        match &self.kind {
            PrincipalKind::User => format!("user:{}", self.user_id),
            PrincipalKind::ApiKey { key_id, .. } => format!("key:{key_id}"),
        }
    }

    /// Authenticates a request from its headers. API keys are looked up in the database on
    /// every request (no cache), so a revoked key is refused at once by every process.
    pub async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Self, ServerError> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let bearer = header(AUTHORIZATION.as_str())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(key) = header(API_KEY_HEADER).map(str::trim) {
            return api_keys_store::authenticate(state, key).await;
        }
        match bearer {
            Some(token) if token.starts_with(api_keys_store::KEY_PREFIX_FAMILY) => {
                api_keys_store::authenticate(state, token).await
            }
            Some(token) => {
                let session = state.keys.verify(token)?;
                Ok(Self {
                    user_id: session.user_id,
                    org_id: session.org_id,
                    kind: PrincipalKind::User,
                })
            }
            None => Err(ServerError::new(
                ErrorCode::Unauthenticated,
                "missing credentials: send `Authorization: Bearer <token or API key>`",
            )),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ServerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(principal) = parts.extensions.get::<Principal>() {
            return Ok(principal.clone());
        }
        let principal = Self::authenticate(&parts.headers, state).await?;
        parts.extensions.insert(principal.clone());
        Ok(principal)
    }
}

/// Whether `path` belongs to the REST bridge's authenticated API (its OpenAPI document is
/// public).
pub fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/v1/") && path != super::openapi::PATH
}

/// Middleware: authenticates `/api/v1` requests once (401 envelope when that fails) and stores
/// the [`Principal`] in the request's extensions for the layers and handlers inside.
pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    if !is_api_path(request.uri().path()) {
        return next.run(request).await;
    }
    match Principal::authenticate(request.headers(), &state).await {
        Ok(principal) => {
            tracing::debug!(principal = %principal.key(), "REST principal");
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[&str]) -> Principal {
        Principal {
            user_id: Uuid::nil(),
            org_id: Uuid::nil(),
            kind: PrincipalKind::ApiKey {
                key_id: Uuid::nil(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            },
        }
    }

    #[test]
    fn users_pass_every_collection() {
        let user = Principal {
            user_id: Uuid::nil(),
            org_id: Uuid::nil(),
            kind: PrincipalKind::User,
        };
        assert!(user.require("tasks", Access::Write).is_ok());
    }

    #[test]
    fn scopes_decide_for_api_keys() {
        let read = key(&["tasks:read"]);
        assert!(read.require("tasks", Access::Read).is_ok());
        let err = read.require("tasks", Access::Write).expect_err("no write");
        assert_eq!(err.code, ErrorCode::Forbidden);
        assert!(err.message.contains("tasks:write"), "{}", err.message);
        assert!(read.require("contacts", Access::Read).is_err());

        let write = key(&["contacts:write"]);
        assert!(
            write.require("contacts", Access::Read).is_ok(),
            "write implies read"
        );
        assert!(write.require("tasks", Access::Read).is_err());

        let all = key(&["*:read"]);
        assert!(all.require("contacts", Access::Read).is_ok());
        assert!(all.require("contacts", Access::Write).is_err());
    }
}
