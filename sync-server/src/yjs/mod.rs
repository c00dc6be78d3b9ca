//! The y-websocket endpoint `GET /yjs/{doc_id}?token=JWT`: stock `yjs` + `y-websocket` clients
//! edit the same text documents (note and contract bodies) as clients of `/sync`, under the
//! same authorization.
//!
//! `new WebsocketProvider('ws://host/yjs', docId, ydoc, { params: { token } })` connects to
//! `ws://host/yjs/<docId>?token=...`: the room name is the id of the note or business document
//! whose body is edited (a body has the id of its record). The token is an access token, as in
//! `Hello` (y-websocket cannot send headers, hence the query string).
//!
//! - [`access`]: token, membership, relation to the document and its body collection.
//! - [`messages`]: the y-protocols messages (sync, awareness, auth, query awareness).
//! - [`review_links`]: tokens that let an external reviewer suggest on one document.
//! - [`session`]: the connection loop: the sync handshake, pushing the client's updates
//!   through [`crate::merge::apply_push`] (the same checks as `/sync`: viewers write nothing,
//!   suggesters only suggest), relaying committed updates of the document, presence through
//!   [`crate::awareness`].
//!
//! Refusals are in-band, after the upgrade, so that stock clients see them: a y-protocols
//! permission-denied message with the reason, then a close code from [`YjsClose`]. y-websocket
//! (3.x) stops reconnecting on codes 4400-4499 and emits `closed` with the code and reason; it
//! reconnects on every other code. docs/y-websocket.md has the details.

pub mod access;
pub(crate) mod lib0;
pub mod messages;
mod noop;
pub mod review_links;
mod session;

use std::collections::HashMap;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{get, post};

use crate::AppState;

/// Largest frame a y-websocket client may send (the body of a long contract pasted at once).
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// Close codes of the y-websocket endpoint. The 44xx codes mirror HTTP statuses and are final
/// for y-websocket clients (no reconnect); the others are transient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum YjsClose {
    /// 4400: a frame that is not a y-protocols message, or an update that does not decode.
    Malformed,
    /// 4401: missing, malformed or forged token, or the user is not a member of its org.
    Unauthenticated,
    /// 4403: the user may not read the document (or lost access), or an update was refused
    /// (a viewer's edit, a suggester's non-suggestion).
    Forbidden,
    /// 4404: no such document in the token's org, or a record without a text body.
    NotFound,
    /// 4413: an update larger than the server accepts.
    TooLarge,
    /// 4419: the token expired (at connect or during the session): reconnect with a new one.
    TokenExpired,
    /// 4500: an update depends on changes the server does not have (e.g. edits received from
    /// another tab that have not reached the server yet): reconnecting resynchronizes.
    Resync,
    /// 1013: the database is unavailable or the server is shutting down.
    Unavailable,
}

impl YjsClose {
    pub fn code(self) -> u16 {
        match self {
            Self::Malformed => 4400,
            Self::Unauthenticated => 4401,
            Self::Forbidden => 4403,
            Self::NotFound => 4404,
            Self::TooLarge => 4413,
            Self::TokenExpired => 4419,
            Self::Resync => 4500,
            Self::Unavailable => 1013,
        }
    }
}

/// The endpoint and the review links that open it ([`review_links`]).
pub fn routes() -> Router<AppState> {
    Router::new().route("/yjs/{doc_id}", get(upgrade)).route(
        "/v1/documents/{doc_id}/review-links",
        post(review_links::create),
    )
}

/// Upgrades `GET /yjs/{doc_id}` (any query parameter besides `token` is ignored) and runs the
/// session; every check happens after the upgrade (see the module header).
pub async fn upgrade(
    ws: WebSocketUpgrade,
    Path(doc_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    State(state): State<AppState>,
) -> Response {
    let token = params.get("token").cloned();
    ws.max_message_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket| {
            let origin = crate::effects::outbox::Origin {
                via: "ws",
                ..crate::effects::outbox::Origin::current()
            };
            crate::effects::outbox::ORIGIN.scope(origin, session::run(socket, state, doc_id, token))
        })
}

/// Close reasons must fit a control frame (123 bytes).
fn truncate(reason: &str) -> String {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}
