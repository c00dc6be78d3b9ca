//! Frame numbers of the server's stream. The server numbers its frames on each connection from
//! 1; the client handles each frame only if it is the next one. A repeat of a handled frame is
//! ignored; a frame after a missing one means the stream can no longer be trusted (a later
//! `Change` would move the cursor past the missing one), so the transport must end the
//! connection and resume from the persisted cursor on a new one.

use syncline_protocol::{CodecError, decode_server_frame, server_frame_number};

use super::SyncEvent;
use crate::client::Client;
use crate::error::Result;

/// What became of a received frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// The next frame: handled, with what happened.
    Handled(Vec<SyncEvent>),
    /// A frame already handled on this connection: ignored.
    Duplicate { n: u64 },
    /// The next frame, but its message is one this version cannot read (a newer server's
    /// message type or field): counted and skipped rather than dropping a working connection.
    Skipped { n: u64, reason: String },
    /// Frames are missing before this one: nothing was applied. The transport must close the
    /// connection and reconnect.
    Gap { expected: u64, got: u64 },
    /// Not a server frame at all: the transport must close the connection.
    Malformed { reason: String },
    /// The frame carried a change whose history this replica lacks. Nothing was applied; the
    /// collection's cursor was cleared, and the transport must close the connection so the
    /// next one starts from a full snapshot.
    Resync,
}

impl Received {
    /// Whether the connection can no longer be used (`Gap`, `Malformed`).
    pub fn breaks_connection(&self) -> bool {
        matches!(
            self,
            Received::Gap { .. } | Received::Malformed { .. } | Received::Resync
        )
    }
}

impl Client {
    /// Decodes and handles one binary frame from the server if it is the next one. Each
    /// handled message is one SQLite transaction, as in [`Client::handle`].
    pub fn receive(&mut self, frame: &[u8]) -> Result<Received> {
        let (n, message) = match decode_server_frame(frame) {
            Ok(decoded) => decoded,
            Err(CodecError::Malformed(reason)) => return Ok(Received::Malformed { reason }),
            Err(e) => match server_frame_number(frame) {
                Ok(n) => match self.check(n) {
                    Ok(()) => {
                        tracing::warn!(n, error = %e, "skipping a server message this client cannot read");
                        self.sync.last_frame = n;
                        return Ok(Received::Skipped {
                            n,
                            reason: e.to_string(),
                        });
                    }
                    Err(other) => return Ok(other),
                },
                Err(e) => {
                    return Ok(Received::Malformed {
                        reason: e.to_string(),
                    });
                }
            },
        };
        if let Err(other) = self.check(n) {
            return Ok(other);
        }
        let events = self.handle(message)?;
        self.sync.last_frame = n;
        if std::mem::take(&mut self.sync.resync) {
            return Ok(Received::Resync);
        }
        Ok(Received::Handled(events))
    }

    /// `Ok` if `n` is the next frame, else what to report instead.
    fn check(&self, n: u64) -> std::result::Result<(), Received> {
        let expected = self.sync.last_frame + 1;
        if n < expected {
            tracing::debug!(n, "duplicate server frame ignored");
            return Err(Received::Duplicate { n });
        }
        if n > expected {
            tracing::warn!(
                expected,
                got = n,
                "server frames missing; the connection must be reset"
            );
            return Err(Received::Gap { expected, got: n });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use syncline_protocol::{ServerMessage, encode, encode_server_frame};
    use uuid::Uuid;

    use super::*;

    fn pong(n: u64, nonce: u64) -> Vec<u8> {
        encode_server_frame(n, &ServerMessage::Pong { nonce }).expect("encode")
    }

    #[test]
    fn handles_the_next_frame_ignores_repeats_and_reports_gaps() -> Result<()> {
        let mut client = Client::open_in_memory()?;
        client.on_connecting();
        client.on_connected("token")?;
        let welcome = encode_server_frame(
            1,
            &ServerMessage::Welcome {
                protocol_version: 2,
                user_id: Uuid::from_u128(1),
                org_id: Uuid::from_u128(2),
                session_expires_at: 0,
            },
        )
        .expect("encode");
        assert!(matches!(client.receive(&welcome)?, Received::Handled(e) if e.len() == 1));
        assert_eq!(client.receive(&welcome)?, Received::Duplicate { n: 1 });
        assert_eq!(
            client.receive(&pong(3, 9))?,
            Received::Gap {
                expected: 2,
                got: 3
            }
        );
        assert_eq!(
            client.receive(&pong(2, 9))?,
            Received::Handled(vec![SyncEvent::Pong { nonce: 9 }])
        );
        // A newer server's message type is counted, so the frame after it is still the next.
        let future = ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("type".into()),
                ciborium::Value::Text("hint".into()),
            ),
            (
                ciborium::Value::Text("n".into()),
                ciborium::Value::Integer(3.into()),
            ),
        ]);
        let future = encode(&future).expect("encode");
        assert!(matches!(
            client.receive(&future)?,
            Received::Skipped { n: 3, .. }
        ));
        assert!(matches!(client.receive(&pong(4, 1))?, Received::Handled(_)));
        // Unnumbered frames are not from a version-2 server.
        let unnumbered = encode(&ServerMessage::Pong { nonce: 1 }).expect("encode");
        assert!(client.receive(&unnumbered)?.breaks_connection());
        // A new connection starts counting again.
        client.on_disconnected();
        client.on_connecting();
        client.on_connected("token")?;
        assert!(matches!(client.receive(&pong(1, 5))?, Received::Handled(_)));
        Ok(())
    }
}
