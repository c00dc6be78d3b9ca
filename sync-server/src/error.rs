//! The server's one error type. It carries a stable [`ErrorCode`]; HTTP handlers turn it into
//! the error envelope `{"error": {"code", "message", "details", "correlationId", "timestamp"}}`
//! and the sync endpoint into `Reject`/`Error` messages. Internal causes are logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use syncline_protocol::ErrorCode;

tokio::task_local! {
    /// The correlation id of the HTTP request being served (see [`crate::app`]).
    pub static CORRELATION_ID: String;
}

#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServerError {
    pub code: ErrorCode,
    /// Safe to show to the client.
    pub message: String,
    pub details: Option<serde_json::Value>,
    /// The internal cause, logged and never sent.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ServerError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            source: None,
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// An unexpected failure: the cause is kept for the log, the client sees a generic message.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            code: ErrorCode::Internal,
            message: "internal server error".into(),
            details: None,
            source: Some(cause.into()),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self.code {
            ErrorCode::Unauthenticated
            | ErrorCode::TokenExpired
            | ErrorCode::RefreshTokenReused => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::FieldForbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound | ErrorCode::UnknownCollection => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::MissingRequiredField
            | ErrorCode::InvalidFieldType
            | ErrorCode::InvalidEnumValue
            | ErrorCode::InvalidFieldValue
            | ErrorCode::UnknownField
            | ErrorCode::ServerOwnedField
            | ErrorCode::DependencyCycle
            | ErrorCode::InvalidTransition
            | ErrorCode::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::ImmutableRecord => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// Logs the internal cause, if any, at the point where the error leaves the server.
    pub fn log(&self) {
        match &self.source {
            Some(cause) => tracing::error!(code = %self.code, error = %cause, "request failed"),
            None => tracing::debug!(code = %self.code, message = %self.message, "request refused"),
        }
    }
}

impl From<sqlx::Error> for ServerError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => Self {
                code: ErrorCode::Unavailable,
                message: "database unavailable".into(),
                details: None,
                source: Some(Box::new(e)),
            },
            _ => Self::internal(e),
        }
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        self.log();
        let correlation_id = CORRELATION_ID.try_with(Clone::clone).unwrap_or_default();
        let body = serde_json::json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "details": self.details,
                "correlationId": correlation_id,
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }
        });
        (self.status(), axum::Json(body)).into_response()
    }
}

pub type ServerResult<T> = Result<T, ServerError>;
