//! The sync endpoint `/sync`: one multiplexed WebSocket per client speaking the protocol of
//! `syncline-protocol` (see docs/protocol.md).
//!
//! - [`handshake`]: the first frame must be a `Hello` with a valid token.
//! - [`session`]: the connection loop (client frames, live changes, token expiry).
//! - [`subscriptions`]: snapshots, catch-up from a cursor, and live filtering.
//! - [`presence`]: awareness (cursors, presence) on text documents, relayed, never stored.

mod delivery;
mod frames;
mod handshake;
mod presence;
mod session;
mod subscriptions;

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::response::Response;

use crate::AppState;

/// Largest frame a client may send (a push of many changes).
pub const MAX_FRAME_BYTES: usize = 16 << 20;
/// Per-connection read buffer: small, because tungstenite zero-fills it to full size, so all of
/// it is resident for every idle connection (its default is 128 KiB; docs/benchmarks.md).
const READ_BUFFER_BYTES: usize = 2 << 10;
/// Outgoing frames are buffered up to this before a flush.
const WRITE_BUFFER_BYTES: usize = 16 << 10;

/// Upgrades `GET /sync` to a WebSocket and runs the session on it.
pub async fn upgrade(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    ws.read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            // The connection outlives the request: its pushes are audited with the request's
            // address, as `ws`.
            let origin = crate::effects::outbox::Origin {
                via: "ws",
                ..crate::effects::outbox::Origin::current()
            };
            crate::effects::outbox::ORIGIN.scope(origin, session::run(socket, state))
        })
}
