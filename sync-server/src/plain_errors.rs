//! Turns error responses that are not the error envelope into it.
//!
//! axum's extractors answer a bad path parameter, query string or body with a plain-text 400,
//! 413, 415 or 422 before any handler runs (e.g. `Path<Uuid>` on `/orgs/not-a-uuid/members`).
//! Every HTTP error must be the envelope with a stable code, so this layer rewrites any 4xx
//! response whose body is not JSON, keeping its status and using its text as the message.
//! WebSocket upgrades and successful responses pass untouched.

use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use syncline_protocol::ErrorCode;

use crate::error::ServerError;

/// Longest plain-text message kept (extractor messages are one line).
const MAX_MESSAGE: usize = 4096;

pub async fn layer(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json || status == StatusCode::TOO_MANY_REQUESTS {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_MESSAGE).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::TooLarge,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthenticated,
        StatusCode::FORBIDDEN => ErrorCode::Forbidden,
        _ => ErrorCode::InvalidInput,
    };
    let message = if message.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_owned()
    } else {
        message
    };
    let mut envelope = ServerError::new(code, message).into_response();
    // The original status stands (e.g. 415 for a missing JSON content type).
    *envelope.status_mut() = status;
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            envelope.headers_mut().insert(name.clone(), value.clone());
        }
    }
    envelope
}
