//! CBOR encoding of protocol messages.
//!
//! Decoding distinguishes a frame that is not CBOR (or not a map with a `type`) from a
//! well-formed frame of an unknown type, because the server answers them differently: the first
//! closes the connection, the second gets an `Error` and the connection stays open.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::messages::{ClientMessage, ServerMessage};

/// Why a frame could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("frame is not a CBOR map with a text `type`: {0}")]
    Malformed(String),
    #[error("unknown message type `{0}`")]
    UnknownType(String),
    #[error("message `{kind}` has invalid fields: {reason}")]
    InvalidFields { kind: String, reason: String },
    #[error("could not encode message: {0}")]
    Encode(String),
}

/// Message types known to this protocol version, client and server side.
const CLIENT_TYPES: &[&str] = &[
    "hello",
    "subscribe",
    "unsubscribe",
    "push",
    "reauth",
    "ping",
    "awareness",
];
const SERVER_TYPES: &[&str] = &[
    "welcome",
    "snapshot",
    "synced",
    "change",
    "ack",
    "reject",
    "evict",
    "reauthed",
    "pong",
    "error",
    "awareness",
];

/// Encodes any message as one CBOR frame.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::with_capacity(64);
    ciborium::into_writer(message, &mut out).map_err(|e| CodecError::Encode(e.to_string()))?;
    Ok(out)
}

/// Encodes a server message as frame `n` of its connection: the message's map with an `n`
/// entry right after `type`. Server frames are numbered from 1 (`Welcome`) so that a client
/// can tell a duplicated, missing or reordered frame from the next one (docs/protocol.md,
/// "Frame numbers").
pub fn encode_server_frame(n: u64, message: &ServerMessage) -> Result<Vec<u8>, CodecError> {
    let value =
        ciborium::Value::serialized(message).map_err(|e| CodecError::Encode(e.to_string()))?;
    let ciborium::Value::Map(mut entries) = value else {
        return Err(CodecError::Encode("a message must encode as a map".into()));
    };
    let at = usize::from(!entries.is_empty());
    entries.insert(
        at,
        (
            ciborium::Value::Text(FRAME_NUMBER.into()),
            ciborium::Value::Integer(n.into()),
        ),
    );
    encode(&ciborium::Value::Map(entries))
}

/// Decodes a numbered server frame into its number and message.
pub fn decode_server_frame(frame: &[u8]) -> Result<(u64, ServerMessage), CodecError> {
    let value: ciborium::Value =
        ciborium::from_reader(frame).map_err(|e| CodecError::Malformed(e.to_string()))?;
    let n = frame_number_of(&value)?;
    Ok((n, decode_value(value, SERVER_TYPES)?))
}

/// The number of a server frame, even one whose message this version cannot read (a client
/// skips such a frame but must count it).
pub fn server_frame_number(frame: &[u8]) -> Result<u64, CodecError> {
    let value: ciborium::Value =
        ciborium::from_reader(frame).map_err(|e| CodecError::Malformed(e.to_string()))?;
    frame_number_of(&value)
}

fn frame_number_of(value: &ciborium::Value) -> Result<u64, CodecError> {
    value
        .as_map()
        .and_then(|m| {
            m.iter()
                .find_map(|(k, v)| match (k.as_text(), v.as_integer()) {
                    (Some(FRAME_NUMBER), Some(n)) => u64::try_from(n).ok(),
                    _ => None,
                })
        })
        .ok_or_else(|| CodecError::Malformed("missing unsigned integer field `n`".into()))
}

/// The key of a server frame's number.
const FRAME_NUMBER: &str = "n";

/// Decodes a frame sent by a client.
pub fn decode_client(frame: &[u8]) -> Result<ClientMessage, CodecError> {
    decode_known(frame, CLIENT_TYPES)
}

/// Decodes a frame sent by the server.
pub fn decode_server(frame: &[u8]) -> Result<ServerMessage, CodecError> {
    decode_known(frame, SERVER_TYPES)
}

fn decode_known<T: DeserializeOwned>(frame: &[u8], known: &[&str]) -> Result<T, CodecError> {
    let value: ciborium::Value =
        ciborium::from_reader(frame).map_err(|e| CodecError::Malformed(e.to_string()))?;
    decode_value(value, known)
}

fn decode_value<T: DeserializeOwned>(
    value: ciborium::Value,
    known: &[&str],
) -> Result<T, CodecError> {
    let kind = message_type(&value)
        .ok_or_else(|| CodecError::Malformed("missing text field `type`".into()))?
        .to_owned();
    if !known.contains(&kind.as_str()) {
        return Err(CodecError::UnknownType(kind));
    }
    value.deserialized().map_err(|e| CodecError::InvalidFields {
        kind,
        reason: e.to_string(),
    })
}

fn message_type(value: &ciborium::Value) -> Option<&str> {
    value
        .as_map()?
        .iter()
        .find_map(|(k, v)| match (k.as_text(), v.as_text()) {
            (Some("type"), Some(t)) => Some(t),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use crate::messages::*;
    use serde_bytes::ByteBuf;
    use uuid::Uuid;

    fn roundtrip_client(m: ClientMessage) {
        let bytes = encode(&m).expect("encode");
        assert_eq!(decode_client(&bytes).expect("decode"), m);
    }

    fn roundtrip_server(m: ServerMessage) {
        let bytes = encode(&m).expect("encode");
        assert_eq!(decode_server(&bytes).expect("decode"), m);
        let numbered = encode_server_frame(41, &m).expect("encode frame");
        assert_eq!(
            decode_server_frame(&numbered).expect("decode frame"),
            (41, m.clone())
        );
        // Readers that ignore frame numbers still understand numbered frames.
        assert_eq!(decode_server(&numbered).expect("decode"), m);
    }

    #[test]
    fn frame_number_follows_the_type() {
        let bytes = encode_server_frame(3, &ServerMessage::Pong { nonce: 1 }).expect("encode");
        let value: ciborium::Value = ciborium::from_reader(&bytes[..]).expect("cbor");
        let keys: Vec<_> = value
            .as_map()
            .expect("map")
            .iter()
            .filter_map(|(k, _)| k.as_text().map(str::to_owned))
            .collect();
        assert_eq!(keys, ["type", "n", "nonce"]);
        let unnumbered = encode(&ServerMessage::Pong { nonce: 1 }).expect("encode");
        assert!(matches!(
            decode_server_frame(&unnumbered),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn every_message_roundtrips() {
        let client_id = Uuid::now_v7();
        let doc_id = Uuid::now_v7();
        let mid = MutationId { client_id, seq: 7 };
        roundtrip_client(ClientMessage::Hello {
            protocol_version: 1,
            token: "t".into(),
            client_id,
        });
        roundtrip_client(ClientMessage::Subscribe {
            sub_id: 1,
            scope: Scope::Collection {
                collection: "tasks".into(),
            },
            cursor: Some(42),
        });
        roundtrip_client(ClientMessage::Subscribe {
            sub_id: 2,
            scope: Scope::Document { doc_id },
            cursor: None,
        });
        roundtrip_client(ClientMessage::Unsubscribe { sub_id: 2 });
        roundtrip_client(ClientMessage::Push {
            mutations: vec![Mutation {
                mid,
                doc_id,
                collection: "tasks".into(),
                payload: ByteBuf::from(vec![1, 2, 3]),
            }],
        });
        roundtrip_client(ClientMessage::Reauth { token: "x".into() });
        roundtrip_client(ClientMessage::Ping { nonce: 9 });
        roundtrip_server(ServerMessage::Welcome {
            protocol_version: 1,
            user_id: client_id,
            org_id: doc_id,
            session_expires_at: 1_700_000_000,
        });
        roundtrip_server(ServerMessage::Snapshot {
            sub_id: 1,
            docs: vec![DocSnapshot {
                doc_id,
                collection: "tasks".into(),
                state: ByteBuf::from(vec![0u8; 3]),
            }],
        });
        roundtrip_server(ServerMessage::Synced {
            sub_id: 1,
            cursor: 5,
        });
        roundtrip_server(ServerMessage::Change {
            seq: 5,
            doc_id,
            collection: "tasks".into(),
            payload: ByteBuf::from(vec![9]),
            mid: Some(mid),
        });
        roundtrip_server(ServerMessage::Ack { mid, seq: 5 });
        roundtrip_server(ServerMessage::Reject {
            mid,
            code: ErrorCode::InvalidEnumValue,
            message: "status".into(),
        });
        roundtrip_server(ServerMessage::Evict { doc_id });
        roundtrip_server(ServerMessage::Reauthed {
            session_expires_at: 1,
        });
        roundtrip_server(ServerMessage::Pong { nonce: 1 });
        roundtrip_server(ServerMessage::Error {
            code: ErrorCode::UnknownMessageType,
            message: "m".into(),
        });
    }

    #[test]
    fn uuids_and_payloads_are_byte_strings() {
        let doc_id = Uuid::from_u128(0x0102);
        let bytes = encode(&ServerMessage::Change {
            seq: 1,
            doc_id,
            collection: "tasks".into(),
            payload: ByteBuf::from(vec![0xAA]),
            mid: None,
        })
        .expect("encode");
        let value: ciborium::Value = ciborium::from_reader(&bytes[..]).expect("cbor");
        let map = value.as_map().expect("map");
        let field = |name: &str| {
            map.iter()
                .find(|(k, _)| k.as_text() == Some(name))
                .map(|f| f.1.clone())
        };
        assert_eq!(
            field("doc_id").and_then(|v| v.as_bytes().cloned()),
            Some(doc_id.as_bytes().to_vec())
        );
        assert_eq!(
            field("payload").and_then(|v| v.as_bytes().cloned()),
            Some(vec![0xAA])
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert!(matches!(
            decode_client(&[0xff, 0x00, 0x13]),
            Err(CodecError::Malformed(_))
        ));
        // A CBOR integer, not a map.
        assert!(matches!(
            decode_client(&[0x01]),
            Err(CodecError::Malformed(_))
        ));
    }

    #[test]
    fn unknown_type_is_reported_by_name() {
        let mut frame = Vec::new();
        let value = ciborium::Value::Map(vec![(
            ciborium::Value::Text("type".into()),
            ciborium::Value::Text("teleport".into()),
        )]);
        ciborium::into_writer(&value, &mut frame).expect("encode");
        match decode_client(&frame) {
            Err(CodecError::UnknownType(t)) => assert_eq!(t, "teleport"),
            other => panic!("expected UnknownType, got {other:?}"),
        }
    }

    #[test]
    fn known_type_with_bad_fields_is_invalid_fields() {
        let mut frame = Vec::new();
        let value = ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("type".into()),
                ciborium::Value::Text("ping".into()),
            ),
            (
                ciborium::Value::Text("nonce".into()),
                ciborium::Value::Text("x".into()),
            ),
        ]);
        ciborium::into_writer(&value, &mut frame).expect("encode");
        assert!(matches!(
            decode_client(&frame),
            Err(CodecError::InvalidFields { .. })
        ));
    }
}
