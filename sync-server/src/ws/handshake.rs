//! Authenticating a new connection from its first frame.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use syncline_protocol::{ClientMessage, CloseCode, ErrorCode, PROTOCOL_VERSION, decode_client};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Session;
use crate::store::membership;
use crate::store::progress::{self, ClientOwner};

/// How long a client may take to send its `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// An authenticated connection.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    pub session: Session,
    pub client_id: Uuid,
}

/// Why the handshake failed: the close code and reason to send (`None`: the peer is gone).
pub type Refused = Option<(CloseCode, String)>;

/// Waits for the `Hello` and checks version, token, membership and client id ownership.
pub async fn authenticate(socket: &mut WebSocket, state: &AppState) -> Result<Identity, Refused> {
    let received = tokio::select! {
        received = tokio::time::timeout(HELLO_TIMEOUT, socket.recv()) => received,
        () = state.hub.until_shut_down() => {
            return Err(Some((CloseCode::ServerUnavailable, "server shutting down".into())));
        }
    };
    let frame = match received {
        Err(_) => {
            return Err(Some((
                CloseCode::Unauthenticated,
                "no hello within 10 s".into(),
            )));
        }
        Ok(None | Some(Err(_))) => return Err(None),
        Ok(Some(Ok(frame))) => frame,
    };
    let bytes = match frame {
        Message::Binary(b) => b,
        Message::Close(_) => return Err(None),
        Message::Text(_) => {
            return Err(Some((
                CloseCode::UnsupportedData,
                "the protocol is binary (CBOR)".into(),
            )));
        }
        _ => {
            return Err(Some((
                CloseCode::Unauthenticated,
                "first message must be hello".into(),
            )));
        }
    };
    let (protocol_version, token, client_id) = match decode_client(&bytes) {
        Ok(ClientMessage::Hello {
            protocol_version,
            token,
            client_id,
        }) => (protocol_version, token, client_id),
        Ok(_) => {
            return Err(Some((
                CloseCode::Unauthenticated,
                "first message must be hello".into(),
            )));
        }
        Err(e) => return Err(Some((CloseCode::MalformedFrame, truncate(&e.to_string())))),
    };
    if protocol_version != PROTOCOL_VERSION {
        return Err(Some((
            CloseCode::UnsupportedProtocolVersion,
            format!("server speaks protocol version {PROTOCOL_VERSION}"),
        )));
    }
    let session = state.keys.verify(&token).map_err(|e| {
        let code = if e.code == ErrorCode::TokenExpired {
            CloseCode::TokenExpired
        } else {
            CloseCode::Unauthenticated
        };
        Some((code, e.message))
    })?;
    let unavailable = |e: sqlx::Error| {
        tracing::error!(error = %e, "handshake database query failed");
        Some((
            CloseCode::ServerUnavailable,
            "database unavailable".to_owned(),
        ))
    };
    if membership::role(&state.db, session.org_id, session.user_id)
        .await
        .map_err(unavailable)?
        .is_none()
    {
        return Err(Some((
            CloseCode::Unauthenticated,
            "not a member of the token's organization".into(),
        )));
    }
    match progress::claim_client(&state.db, session.org_id, client_id, session.user_id)
        .await
        .map_err(unavailable)?
    {
        ClientOwner::ThisUser => Ok(Identity { session, client_id }),
        ClientOwner::OtherUser => Err(Some((
            CloseCode::Unauthenticated,
            "client id belongs to another user".into(),
        ))),
    }
}

/// Close reasons must fit a control frame (123 bytes).
pub fn truncate(reason: &str) -> String {
    let mut end = reason.len().min(120);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}
