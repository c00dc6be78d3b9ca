//! `Authorization: Bearer <access token>` for HTTP endpoints.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use syncline_protocol::ErrorCode;

use super::Session;
use crate::AppState;
use crate::error::ServerError;

/// The verified session of the request's bearer token.
#[derive(Debug, Clone, Copy)]
pub struct Bearer(pub Session);

impl FromRequestParts<AppState> for Bearer {
    type Rejection = ServerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ServerError::new(ErrorCode::Unauthenticated, "missing bearer token"))?;
        state.keys.verify(token.trim()).map(Bearer)
    }
}
