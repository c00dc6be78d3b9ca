//! The sync endpoint (being written).
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

use crate::AppState;

pub async fn upgrade(ws: WebSocketUpgrade, State(_state): State<AppState>) -> Response {
    ws.on_upgrade(|_socket| async {})
}
