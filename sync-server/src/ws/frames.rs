//! A connection's socket as the session uses it: every message the server sends is numbered
//! (`n`, from 1 for `Welcome`), so the client can tell the next frame from a duplicated,
//! missing or reordered one and never acts on a frame that follows a missing one
//! (docs/protocol.md, "Frame numbers").

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use syncline_protocol::{CloseCode, ServerMessage, encode_server_frame};

use super::handshake::truncate;
use super::session::Stop;
use crate::error::ServerError;

#[derive(Debug)]
pub struct FrameSocket {
    socket: WebSocket,
    /// Number of the last frame sent.
    sent: u64,
}

impl FrameSocket {
    pub fn new(socket: WebSocket) -> Self {
        Self { socket, sent: 0 }
    }

    /// The socket itself, for the handshake (which reads the `Hello` and sends no message).
    pub fn raw(&mut self) -> &mut WebSocket {
        &mut self.socket
    }

    /// Encodes and sends one message as the next frame.
    pub async fn send(&mut self, message: &ServerMessage) -> Result<(), Stop> {
        let n = self.sent + 1;
        let bytes =
            encode_server_frame(n, message).map_err(|e| Stop::from(ServerError::internal(e)))?;
        self.socket
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|_| Stop::PeerGone)?;
        self.sent = n;
        Ok(())
    }

    pub async fn recv(&mut self) -> Option<Result<Message, axum::Error>> {
        self.socket.recv().await
    }

    /// Sends a close frame; errors are moot, the connection ends either way.
    pub async fn close(&mut self, code: CloseCode, reason: String) {
        let frame = CloseFrame {
            code: code.code(),
            reason: truncate(&reason).into(),
        };
        let _ = self.socket.send(Message::Close(Some(frame))).await;
    }
}
