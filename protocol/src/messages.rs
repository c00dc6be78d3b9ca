//! Wire messages of the sync protocol (version [`crate::PROTOCOL_VERSION`]).
//!
//! Every frame is one CBOR map with a `type` key naming the message; see `docs/protocol.md` for
//! the byte-level layout. UUIDs travel as 16-byte CBOR byte strings (RFC 9562 binary form) and
//! CRDT payloads as CBOR byte strings, so a browser can decode frames with any CBOR library.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use uuid::Uuid;

use crate::codes::ErrorCode;

/// Identifies one mutation of one client: `(client_id, seq)` with `seq` strictly increasing per
/// client from 1. The server acknowledges a retransmitted mutation again without re-applying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MutationId {
    pub client_id: Uuid,
    pub seq: u64,
}

/// What a subscription covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scope {
    /// Every readable document of a collection.
    Collection { collection: String },
    /// One document.
    Document { doc_id: Uuid },
}

/// One local change of one document, pushed by a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutation {
    pub mid: MutationId,
    pub doc_id: Uuid,
    pub collection: String,
    /// For record documents: the bytes of one automerge change. For text documents
    /// ([`crate::schema::TEXT_COLLECTIONS`]): one Yjs update, lib0 v1 encoding.
    pub payload: ByteBuf,
}

/// A document's compacted state at the time of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocSnapshot {
    pub doc_id: Uuid,
    pub collection: String,
    /// The full saved automerge document; for a text document, its whole state as one Yjs
    /// update (v1), which a Yjs client applies with `Y.applyUpdate`.
    pub state: ByteBuf,
}

/// Messages a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// First message on every connection. The token never goes in the URL.
    Hello {
        protocol_version: u32,
        token: String,
        client_id: Uuid,
    },
    /// Start receiving a scope. Without a cursor the server sends snapshots first; with one it
    /// sends every change of the scope committed after it.
    Subscribe {
        sub_id: u32,
        scope: Scope,
        cursor: Option<u64>,
    },
    Unsubscribe {
        sub_id: u32,
    },
    /// Local changes, processed in order; each is answered by `Ack` or `Reject`.
    Push {
        mutations: Vec<Mutation>,
    },
    /// Renew the session with a fresh access token.
    Reauth {
        token: String,
    },
    Ping {
        nonce: u64,
    },
    /// Presence and cursors on a text document: a y-protocols awareness update (the bytes
    /// `y-protocols/awareness` `encodeAwarenessUpdate` produces). Relayed to the document's other
    /// readers on every endpoint, never stored, never acknowledged.
    Awareness {
        doc_id: Uuid,
        update: ByteBuf,
    },
}

/// Messages the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        protocol_version: u32,
        user_id: Uuid,
        org_id: Uuid,
        /// Unix seconds at which the session's token expires.
        session_expires_at: i64,
    },
    /// A chunk of compacted documents for a subscription without cursor. Several chunks may
    /// follow each other; `Synced` ends them.
    Snapshot {
        sub_id: u32,
        docs: Vec<DocSnapshot>,
    },
    /// The subscription is up to date: every change up to `cursor` in its scope was sent.
    Synced {
        sub_id: u32,
        cursor: u64,
    },
    /// A committed change. `seq` is the per-org sequence number; `mid` names the mutation that
    /// produced it, when it came from a client.
    Change {
        seq: u64,
        doc_id: Uuid,
        collection: String,
        payload: ByteBuf,
        mid: Option<MutationId>,
    },
    /// The mutation was merged and committed as change `seq`.
    Ack {
        mid: MutationId,
        seq: u64,
    },
    /// The mutation was refused and not stored. Mutations depending on it will be refused too.
    Reject {
        mid: MutationId,
        code: ErrorCode,
        message: String,
    },
    /// The user may no longer read this document: purge it locally.
    Evict {
        doc_id: Uuid,
    },
    /// A session renewal succeeded.
    Reauthed {
        session_expires_at: i64,
    },
    Pong {
        nonce: u64,
    },
    /// A message was refused without closing the connection.
    Error {
        code: ErrorCode,
        message: String,
    },
    /// Another user's presence on a text document this connection reads (see
    /// [`ClientMessage::Awareness`]).
    Awareness {
        doc_id: Uuid,
        update: ByteBuf,
    },
}
