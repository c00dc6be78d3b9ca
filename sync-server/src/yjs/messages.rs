//! y-protocols messages as the y-websocket provider sends and expects them: one message per
//! WebSocket binary frame, `varUint(type)` then the body.
//!
//! | type | name | body |
//! | --- | --- | --- |
//! | 0 | sync | `varUint(0)` step 1 + `varBytes(state vector)`, `varUint(1)` step 2 + `varBytes(update)`, or `varUint(2)` update + `varBytes(update)` |
//! | 1 | awareness | `varBytes(awareness update)` |
//! | 2 | auth | `varUint(0)` permission denied + `varString(reason)` (`varUint(1)`: granted) |
//! | 3 | query awareness | nothing |
//!
//! Updates are Yjs v1 updates; the state vector is decoded here, its client ids checked to be
//! at most 53 bits before yrs sees them.

use yrs::StateVector;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;

use super::lib0::{Lib0Error, Reader, Writer};

pub const MSG_SYNC: u64 = 0;
pub const MSG_AWARENESS: u64 = 1;
pub const MSG_AUTH: u64 = 2;
pub const MSG_QUERY_AWARENESS: u64 = 3;

pub const SYNC_STEP1: u64 = 0;
pub const SYNC_STEP2: u64 = 1;
pub const SYNC_UPDATE: u64 = 2;

const PERMISSION_DENIED: u64 = 0;

/// A message from a y-websocket client.
#[derive(Debug, PartialEq)]
pub enum Incoming<'a> {
    /// "Here is my state vector": answer with step 2, what the client lacks.
    SyncStep1(StateVector),
    /// The client's answer to our step 1: what we lack.
    SyncStep2(&'a [u8]),
    /// A live local edit.
    Update(&'a [u8]),
    Awareness(&'a [u8]),
    QueryAwareness,
    /// Auth messages and message types this server does not know: ignored, as y-websocket's
    /// own server does.
    Ignored(u64),
}

/// Why a frame did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("malformed y-protocols message: {0}")]
    Lib0(#[from] Lib0Error),
    #[error("unknown sync message type {0}")]
    UnknownSyncType(u64),
    #[error("state vector does not decode")]
    StateVector,
}

/// Decodes one client frame.
pub fn decode(frame: &[u8]) -> Result<Incoming<'_>, MessageError> {
    let mut r = Reader::new(frame);
    match r.var_uint()? {
        MSG_SYNC => match r.var_uint()? {
            SYNC_STEP1 => state_vector(r.var_bytes()?).map(Incoming::SyncStep1),
            SYNC_STEP2 => Ok(Incoming::SyncStep2(r.var_bytes()?)),
            SYNC_UPDATE => Ok(Incoming::Update(r.var_bytes()?)),
            other => Err(MessageError::UnknownSyncType(other)),
        },
        MSG_AWARENESS => Ok(Incoming::Awareness(r.var_bytes()?)),
        MSG_QUERY_AWARENESS => Ok(Incoming::QueryAwareness),
        other => Ok(Incoming::Ignored(other)),
    }
}

/// Decodes a v1 state vector after checking it with the bounds-checked reader (yrs asserts on
/// client ids wider than 53 bits in debug builds).
fn state_vector(bytes: &[u8]) -> Result<StateVector, MessageError> {
    let mut r = Reader::new(bytes);
    let count = r.var_uint()?;
    for _ in 0..count {
        r.var_uint()?;
        r.var_u32()?;
    }
    StateVector::decode_v1(bytes).map_err(|_| MessageError::StateVector)
}

/// `sync step 1`: the server's state vector.
pub fn sync_step1(sv: &StateVector) -> Vec<u8> {
    Writer::new()
        .var_uint(MSG_SYNC)
        .var_uint(SYNC_STEP1)
        .var_bytes(&sv.encode_v1())
        .finish()
}

/// `sync step 2`: what the client lacks (the answer to its step 1; y-websocket marks the
/// provider synced on the first one).
pub fn sync_step2(update: &[u8]) -> Vec<u8> {
    Writer::new()
        .var_uint(MSG_SYNC)
        .var_uint(SYNC_STEP2)
        .var_bytes(update)
        .finish()
}

/// `sync update`: a change committed by someone else.
pub fn sync_update(update: &[u8]) -> Vec<u8> {
    Writer::new()
        .var_uint(MSG_SYNC)
        .var_uint(SYNC_UPDATE)
        .var_bytes(update)
        .finish()
}

/// An awareness update to relay.
pub fn awareness(update: &[u8]) -> Vec<u8> {
    Writer::new()
        .var_uint(MSG_AWARENESS)
        .var_bytes(update)
        .finish()
}

/// y-protocols/auth `writePermissionDenied`.
pub fn permission_denied(reason: &str) -> Vec<u8> {
    Writer::new()
        .var_uint(MSG_AUTH)
        .var_uint(PERMISSION_DENIED)
        .var_string(reason)
        .finish()
}

/// Whether an update changes nothing whatever the document: no structs and an empty delete set
/// (what a client with nothing new answers to our step 1).
pub fn is_empty_update(update: &[u8]) -> bool {
    update == [0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::sync::{Message, SyncMessage};
    use yrs::{Doc, ReadTxn, Text, Transact};

    #[test]
    fn frames_match_yrs_encoding_of_y_protocols() {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        text.push(&mut doc.transact_mut(), "hi");
        let sv = doc.transact().state_vector();
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert_eq!(
            sync_step1(&sv),
            Message::Sync(SyncMessage::SyncStep1(sv.clone())).encode_v1()
        );
        assert_eq!(
            sync_step2(&update),
            Message::Sync(SyncMessage::SyncStep2(update.clone())).encode_v1()
        );
        assert_eq!(
            sync_update(&update),
            Message::Sync(SyncMessage::Update(update.clone())).encode_v1()
        );
        assert_eq!(
            permission_denied("no"),
            Message::Auth(Some("no".into())).encode_v1()
        );
        let frame = Message::Sync(SyncMessage::SyncStep1(sv.clone())).encode_v1();
        assert_eq!(decode(&frame), Ok(Incoming::SyncStep1(sv)));
        let frame = Message::Sync(SyncMessage::Update(update.clone())).encode_v1();
        assert_eq!(decode(&frame), Ok(Incoming::Update(&update[..])));
        assert_eq!(decode(&[3]), Ok(Incoming::QueryAwareness));
        assert_eq!(decode(&[2, 1]), Ok(Incoming::Ignored(2)));
        let empty = Doc::new()
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(is_empty_update(&empty));
    }

    #[test]
    fn hostile_frames_are_errors_not_panics() {
        // A state vector naming a client id wider than 53 bits.
        let sv = Writer::new()
            .var_uint(1)
            .var_uint(1 << 60)
            .var_uint(1)
            .finish();
        let frame = Writer::new()
            .var_uint(MSG_SYNC)
            .var_uint(SYNC_STEP1)
            .var_bytes(&sv)
            .finish();
        assert!(decode(&frame).is_err());
        assert!(decode(&[]).is_err());
        assert!(decode(&[0]).is_err());
        assert!(decode(&[0, 9, 0]).is_err());
        assert!(decode(&[0, 2, 200]).is_err());
        assert!(decode(&[1, 5, 1]).is_err());
    }
}
