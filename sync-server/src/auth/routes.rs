//! `/auth/*` routes (to be written).
use axum::Router;

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
}
