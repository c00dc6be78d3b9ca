//! Liveness and readiness probes.

use axum::extract::State;
use axum::http::StatusCode;

use crate::AppState;

/// The process is up.
pub async fn live() -> StatusCode {
    StatusCode::OK
}

/// The server can serve: its database answers.
pub async fn ready(State(state): State<AppState>) -> StatusCode {
    match sqlx::query("SELECT 1").execute(&state.db).await {
        Ok(_) => StatusCode::OK,
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
