//! `/auth/*` routes: register, login, refresh.
//!
//! Each returns the same session body:
//! `{user_id, org_id, access_token, token_type: "Bearer", expires_in, refresh_token}`.
//! Every failure, including a malformed body, uses the error envelope of [`ServerError`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use super::{password, refresh};
use crate::AppState;
use crate::error::ServerError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh_session))
}

pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 1024;
const MAX_EMAIL_LEN: usize = 254;
const MAX_DISPLAY_NAME_CHARS: usize = 100;
/// `orgs.name` has `CHECK (length(name) BETWEEN 1 AND 200)`.
const MAX_ORG_NAME_CHARS: usize = 200;

/// One message for every failed login, so responses don't reveal which emails have accounts.
const LOGIN_FAILED: &str = "invalid email or password";

/// `axum::Json`, except that a rejected body (not JSON, wrong content type, wrong shape) is
/// answered with the error envelope (`400 invalid_input`) instead of axum's plain text.
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let value = match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(value)) => value,
            Err(rejection) => return Err(json_rejection(&rejection)),
        };
        // serde also accepts a struct as an array of its fields; our bodies are objects only.
        if !value.is_object() {
            return Err(invalid_body("expected a JSON object"));
        }
        serde_json::from_value(value)
            .map(Self)
            .map_err(|e| invalid_body(&e.to_string()))
    }
}

fn json_rejection(rejection: &JsonRejection) -> ServerError {
    invalid_body(&rejection.body_text())
}

fn invalid_body(reason: &str) -> ServerError {
    ServerError::new(
        ErrorCode::InvalidInput,
        "request body is not the expected JSON",
    )
    .with_details(json!({ "reason": reason }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub org_name: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// A new session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionResponse {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub refresh_token: String,
}

impl SessionResponse {
    /// Starts a new session: a new refresh-token family and an access token for the org.
    pub async fn start(state: &AppState, user_id: Uuid, org_id: Uuid) -> Result<Self, ServerError> {
        let mut conn = state.db.acquire().await?;
        let refresh_token = refresh::issue(
            &mut conn,
            user_id,
            org_id,
            Uuid::now_v7(),
            state.keys.refresh_ttl,
        )
        .await?;
        Self::new(state, user_id, org_id, refresh_token)
    }

    fn new(
        state: &AppState,
        user_id: Uuid,
        org_id: Uuid,
        refresh_token: String,
    ) -> Result<Self, ServerError> {
        let (access_token, _exp) = state.keys.issue_access(user_id, org_id)?;
        Ok(Self {
            user_id,
            org_id,
            access_token,
            token_type: "Bearer",
            expires_in: state.keys.access_ttl.as_secs(),
            refresh_token,
        })
    }

    /// Tokens must not be cached by browsers or proxies (RFC 6749 §5.1).
    pub fn into_response_with(self, status: StatusCode) -> Response {
        let mut response = (status, Json(self)).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// Field-level validation failures, reported together.
#[derive(Default)]
struct FieldErrors(serde_json::Map<String, serde_json::Value>);

impl FieldErrors {
    fn add(&mut self, field: &str, problem: impl Into<String>) {
        self.0.insert(field.to_owned(), problem.into().into());
    }

    fn into_result(self) -> Result<(), ServerError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let fields: Vec<&str> = self.0.keys().map(String::as_str).collect();
        let message = format!("invalid {}", fields.join(", "));
        Err(ServerError::new(ErrorCode::InvalidInput, message)
            .with_details(json!({ "fields": self.0 })))
    }
}

/// A deliberately loose shape check (`local@domain.tld`, no spaces): the only real check of an
/// address is mail reaching it.
fn email_problem(email: &str) -> Option<&'static str> {
    if email.is_empty() {
        return Some("is required");
    }
    if email.len() > MAX_EMAIL_LEN {
        return Some("is too long");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some("must not contain spaces");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Some("must look like name@example.com");
    };
    let domain_ok = !domain.contains('@')
        && domain.contains('.')
        && domain.split('.').all(|label| !label.is_empty());
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Some("must look like name@example.com");
    }
    None
}

fn password_problem(password: &str) -> Option<String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        Some(format!("must be at least {MIN_PASSWORD_CHARS} characters"))
    } else if chars > MAX_PASSWORD_CHARS {
        Some(format!("must be at most {MAX_PASSWORD_CHARS} characters"))
    } else {
        None
    }
}

/// Trims an optional name; `None` when absent or blank.
fn name_field(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if value.chars().count() > max_chars {
        errors.add(field, format!("must be at most {max_chars} characters"));
    } else if value.chars().any(char::is_control) {
        errors.add(field, "must not contain control characters");
    }
    Some(value.to_owned())
}

/// `POST /auth/register`: a new user, owner of a new org, signed in.
async fn register(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<Response, ServerError> {
    let email = req.email.trim().to_owned();
    let mut errors = FieldErrors::default();
    if let Some(problem) = email_problem(&email) {
        errors.add("email", problem);
    }
    if let Some(problem) = password_problem(&req.password) {
        errors.add("password", problem);
    }
    let display_name = name_field(
        &mut errors,
        "display_name",
        req.display_name.as_deref(),
        MAX_DISPLAY_NAME_CHARS,
    );
    let org_name = name_field(
        &mut errors,
        "org_name",
        req.org_name.as_deref(),
        MAX_ORG_NAME_CHARS,
    );
    errors.into_result()?;

    let display_name = display_name.unwrap_or_else(|| {
        email
            .split_once('@')
            .map_or_else(|| email.clone(), |(local, _)| local.to_owned())
    });
    let org_name = org_name.unwrap_or_else(|| format!("{display_name}'s workspace"));

    let password_hash = password::hash(req.password).await?;
    let (user_id, org_id, family_id) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());

    let mut tx = state.db.begin().await?;
    // The new org is this transaction's tenant (row-level security keys on it).
    sqlx::query("SELECT set_config('app.org_id', $1, true)")
        .bind(org_id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash) VALUES ($1, $2, $3, $4)",
    )
    .bind(user_id)
    .bind(&email)
    .bind(&display_name)
    .bind(&password_hash)
    .execute(&mut *tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.constraint() == Some("users_email_key") => {
            ServerError::new(
                ErrorCode::Conflict,
                "an account with this email already exists",
            )
            .with_details(json!({ "fields": { "email": "is already registered" } }))
        }
        _ => ServerError::from(e),
    })?;
    sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, $2)")
        .bind(org_id)
        .bind(&org_name)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, 'owner')")
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO org_change_seq (org_id, last_seq) VALUES ($1, 0)")
        .bind(org_id)
        .execute(&mut *tx)
        .await?;
    let refresh_token =
        refresh::issue(&mut tx, user_id, org_id, family_id, state.keys.refresh_ttl).await?;
    tx.commit().await?;

    tracing::info!(%user_id, %org_id, "registered a user and its org");
    let session = SessionResponse::new(&state, user_id, org_id, refresh_token)?;
    Ok(session.into_response_with(StatusCode::CREATED))
}

/// `POST /auth/login`: a new session (a new refresh-token family) in the user's first org.
async fn login(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ServerError> {
    let failed = || ServerError::new(ErrorCode::Unauthenticated, LOGIN_FAILED);
    let email = req.email.trim();
    // Nothing this long was ever registered; refuse before spending a hash on it.
    if email.len() > MAX_EMAIL_LEN || req.password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(failed());
    }
    let user: Option<(Uuid, String)> =
        sqlx::query_as("SELECT id, password_hash FROM users WHERE lower(email) = lower($1)")
            .bind(email)
            .fetch_optional(&state.db)
            .await?;
    let Some((user_id, stored_hash)) = user else {
        password::verify_dummy(req.password).await?;
        return Err(failed());
    };
    if !password::verify(req.password, stored_hash).await? {
        return Err(failed());
    }

    let org_id: Option<Uuid> = sqlx::query_scalar(
        // Memberships are tenant rows; this lookup crosses orgs (see migration 0004).
        "SELECT syncline_first_org($1)",
    )
    .bind(user_id)
    .fetch_one(&state.db)
    .await?;
    let Some(org_id) = org_id else {
        return Err(ServerError::new(
            ErrorCode::Forbidden,
            "this account belongs to no organization",
        ));
    };

    let session = SessionResponse::start(&state, user_id, org_id).await?;
    Ok(session.into_response_with(StatusCode::OK))
}

/// `POST /auth/refresh`: rotates the refresh token and issues a new access token.
async fn refresh_session(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RefreshRequest>,
) -> Result<Response, ServerError> {
    let rotated = refresh::rotate(&state.db, &req.refresh_token, state.keys.refresh_ttl).await?;
    let session = SessionResponse::new(
        &state,
        rotated.user_id,
        rotated.org_id,
        rotated.refresh_token,
    )?;
    Ok(session.into_response_with(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_shapes() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "ünï@exämple.de"] {
            assert_eq!(email_problem(ok), None, "{ok}");
        }
        for bad in [
            "", "plain", "@b.co", "a@", "a@b", "a@b..co", "a@@b.co", "a b@c.de", "a@b.co.",
        ] {
            assert!(email_problem(bad).is_some(), "{bad}");
        }
        assert!(email_problem(&format!("{}@b.co", "a".repeat(65))).is_some());
    }

    #[test]
    fn password_bounds_count_characters() {
        assert!(password_problem("1234567").is_some());
        assert!(password_problem("12345678").is_none());
        assert!(
            password_problem(&"é".repeat(1024)).is_none(),
            "1024 chars, 2048 bytes"
        );
        assert!(password_problem(&"x".repeat(1025)).is_some());
    }
}
