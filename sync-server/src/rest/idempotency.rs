//! `Idempotency-Key` on `POST`/`PATCH`/`DELETE` under `/api/v1`: a retried request gets the
//! first response (status, body, `Content-Type`, `Location`, `ETag`) without running again.
//!
//! Keys are scoped to the org and principal (so two integrations cannot collide or read each
//! other's responses) and kept 24 hours. The first request inserts a pending row before it
//! runs; the primary key makes a concurrent duplicate find that row and get 409 instead of
//! running too. The same key with another method, path or body is 422
//! `idempotency_key_reused`. A 5xx response is not kept (the pending row is dropped) so the
//! client's retry runs again; a request whose process died leaves a pending row that is taken
//! over after [`PENDING_TIMEOUT_SECS`].

use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, ETAG, LOCATION};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use super::body::MAX_BODY_BYTES;
use super::principal::Principal;
use crate::AppState;
use crate::db::begin_org;
use crate::error::ServerError;

pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest accepted key (a UUID is 36).
const MAX_KEY_LEN: usize = 255;
const TTL_SECS: f64 = 24.0 * 3600.0;
/// A pending row older than this belongs to a request that will never finish.
pub const PENDING_TIMEOUT_SECS: f64 = 300.0;
/// The response headers kept and replayed (the correlation id and rate limit headers are the
/// retry's own).
const KEPT_HEADERS: [HeaderName; 3] = [CONTENT_TYPE, LOCATION, ETAG];
/// Largest response body kept (REST bridge responses are one record or a page of them).
const MAX_RESPONSE_BYTES: usize = 8 << 20;

/// Whether a request may be made idempotent. Not under `/api/v1/api-keys`: keeping a creation
/// response would store the plain key, which must exist nowhere but in the first response.
fn applies_to(method: &Method, path: &str) -> bool {
    matches!(*method, Method::POST | Method::PATCH | Method::DELETE)
        && !path.starts_with(super::api_keys::PATH)
}

/// The key of a request, if it has one; 400 when it is not 1-255 visible ASCII characters.
fn key_of(request: &Request) -> Result<Option<String>, ServerError> {
    let Some(value) = request.headers().get(HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key)
            if !key.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Ok(Some(key.to_owned()))
        }
        _ => Err(ServerError::new(
            ErrorCode::InvalidInput,
            format!("Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        )),
    }
}

fn request_hash(method: &Method, path_and_query: &str, body: &[u8]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str());
    hasher.update([0]);
    hasher.update(path_and_query);
    hasher.update([0]);
    hasher.update(body);
    hasher.finalize().to_vec()
}

/// Middleware: runs after [`super::principal::layer`] (it needs the [`Principal`]).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let principal = match request.extensions().get::<Principal>() {
        Some(p) if applies_to(request.method(), request.uri().path()) => p.clone(),
        _ => return next.run(request).await,
    };
    match key_of(&request) {
        Ok(Some(key)) => run(&state, &principal, key, request, next)
            .await
            .unwrap_or_else(IntoResponse::into_response),
        Ok(None) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

/// The stored state of a key.
#[derive(sqlx::FromRow)]
struct Stored {
    request_hash: Vec<u8>,
    status: Option<i16>,
    headers: Option<serde_json::Value>,
    body: Option<Vec<u8>>,
}

async fn run(
    state: &AppState,
    principal: &Principal,
    key: String,
    request: Request,
    next: Next,
) -> Result<Response, ServerError> {
    let (parts, body) = request.into_parts();
    let body = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ServerError::new(
            ErrorCode::TooLarge,
            format!("the request body may hold at most {MAX_BODY_BYTES} bytes"),
        )
    })?;
    let path = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let hash = request_hash(&parts.method, path, &body);
    let org = principal.org_id;
    let who = principal.key();

    if let Some(stored) = claim(state, org, &who, &key, &hash).await? {
        return replay(stored, &hash);
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;
    let (parts, body) = response.into_parts();
    let body: Bytes = to_bytes(body, MAX_RESPONSE_BYTES)
        .await
        .map_err(ServerError::internal)?;
    // The request ran: its response goes back even if it cannot be kept (a retry then finds
    // the pending row, 409, until it times out).
    if let Err(e) = keep(state, org, &who, &key, &parts, &body).await {
        tracing::error!(error = %e, "could not keep an idempotent response");
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

/// Inserts the pending row; `Some` with the existing row when the key was used already.
async fn claim(
    state: &AppState,
    org: Uuid,
    who: &str,
    key: &str,
    hash: &[u8],
) -> Result<Option<Stored>, ServerError> {
    let mut tx = begin_org(&state.db, org).await?;
    // Expired keys of this principal go first, so an expired key is free again.
    sqlx::query(
        "DELETE FROM idempotency_keys WHERE org_id = $1 AND principal = $2 \
         AND (created_at < now() - make_interval(secs => $3) \
              OR (key = $4 AND status IS NULL AND created_at < now() - make_interval(secs => $5)))",
    )
    .bind(org)
    .bind(who)
    .bind(TTL_SECS)
    .bind(key)
    .bind(PENDING_TIMEOUT_SECS)
    .execute(&mut *tx)
    .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (org_id, principal, key, request_hash) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
    )
    .bind(org)
    .bind(who)
    .bind(key)
    .bind(hash)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    let existing = if inserted {
        None
    } else {
        sqlx::query_as(
            "SELECT request_hash, status, headers, body FROM idempotency_keys \
             WHERE org_id = $1 AND principal = $2 AND key = $3",
        )
        .bind(org)
        .bind(who)
        .bind(key)
        .fetch_optional(&mut *tx)
        .await?
    };
    tx.commit().await?;
    match (inserted, existing) {
        (true, _) => Ok(None),
        (false, Some(stored)) => Ok(Some(stored)),
        // Deleted between the insert and the select (its first request failed with a 5xx).
        (false, None) => Err(in_progress()),
    }
}

fn in_progress() -> ServerError {
    ServerError::new(
        ErrorCode::Conflict,
        "a request with this Idempotency-Key is in progress; retry later",
    )
}

/// The first response again, or 422 for another request under the same key, or 409 while the
/// first one is still running.
fn replay(stored: Stored, hash: &[u8]) -> Result<Response, ServerError> {
    if stored.request_hash != hash {
        return Err(ServerError::new(
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was used with a different request (method, path or body)",
        ));
    }
    let Some(status) = stored.status else {
        return Err(in_progress());
    };
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| ServerError::internal(format!("stored status {status} is invalid")))?;
    let mut response = Response::new(Body::from(stored.body.unwrap_or_default()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let pairs: Vec<(String, String)> = stored
        .headers
        .map(serde_json::from_value)
        .transpose()
        .map_err(ServerError::internal)?
        .unwrap_or_default();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    Ok(response)
}

/// Keeps the response for retries, or drops the pending row after a 5xx so a retry runs.
async fn keep(
    state: &AppState,
    org: Uuid,
    who: &str,
    key: &str,
    parts: &axum::http::response::Parts,
    body: &[u8],
) -> Result<(), sqlx::Error> {
    let mut tx = begin_org(&state.db, org).await?;
    if parts.status.is_server_error() {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE org_id = $1 AND principal = $2 AND key = $3",
        )
        .bind(org)
        .bind(who)
        .bind(key)
        .execute(&mut *tx)
        .await?;
    } else {
        let kept: Vec<(&str, &str)> = KEPT_HEADERS
            .iter()
            .flat_map(|name| {
                parts
                    .headers
                    .get_all(name)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .map(|v| (name.as_str(), v))
            })
            .collect();
        sqlx::query(
            "UPDATE idempotency_keys SET status = $4, headers = $5, body = $6 \
             WHERE org_id = $1 AND principal = $2 AND key = $3",
        )
        .bind(org)
        .bind(who)
        .bind(key)
        .bind(i16::try_from(parts.status.as_u16()).unwrap_or(i16::MAX))
        .bind(serde_json::json!(kept))
        .bind(body)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_outside_api_keys_are_covered() {
        assert!(applies_to(&Method::POST, "/api/v1/tasks"));
        assert!(applies_to(&Method::DELETE, "/api/v1/tasks/x"));
        assert!(!applies_to(&Method::GET, "/api/v1/tasks"));
        assert!(!applies_to(&Method::POST, "/api/v1/api-keys"));
        assert!(!applies_to(&Method::DELETE, "/api/v1/api-keys/x"));
    }

    #[test]
    fn the_hash_covers_method_path_and_body() {
        let base = request_hash(&Method::POST, "/api/v1/tasks", b"{}");
        assert_eq!(base, request_hash(&Method::POST, "/api/v1/tasks", b"{}"));
        assert_ne!(base, request_hash(&Method::PATCH, "/api/v1/tasks", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/api/v1/contacts", b"{}"));
        assert_ne!(base, request_hash(&Method::POST, "/api/v1/tasks", b"{ }"));
        // The separator keeps path and body apart.
        assert_ne!(
            request_hash(&Method::POST, "/a", b"b"),
            request_hash(&Method::POST, "/ab", b"")
        );
    }
}
