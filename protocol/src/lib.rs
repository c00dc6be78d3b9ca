//! # syncline-protocol
//!
//! The contract shared by every Syncline component, with no IO so that it compiles for native
//! targets and `wasm32-unknown-unknown` alike:
//!
//! - [`messages`]: the versioned, multiplexed WebSocket messages (`Hello`, `Push`, `Ack`, ...).
//! - [`codec`]: their binary encoding (CBOR, RFC 8949), decodable by any JavaScript CBOR library.
//! - [`schema`]: collection schemas (field types, required, server-owned, enums).
//! - [`record`]: reading a record document (an automerge map) into typed field values and
//!   validating it against its schema; used by the server (authoritative) and by clients
//!   (optimistic, offline).
//! - [`rules`]: authorization rules (org roles, document relations, who may create a document
//!   and write each field) and the decoding of which fields an automerge change touches.
//! - [`lifecycle`]: record life cycles (a business document's status steps; signed is final).
//! - [`mentions`]: `@[Name](user:<uuid>)` mentions in comment bodies.
//! - [`text`]: collaborative text documents (Yjs): suggestion enforcement, plain text, redlines.
//! - [`codes`]: stable error and close codes.
//!
//! Dependencies point one way: `protocol <- client-core <- wasm/desktop` and
//! `protocol <- sync-server`.

pub mod codec;
pub mod codes;
pub mod fuzzing;
pub mod lifecycle;
pub mod mentions;
pub mod messages;
pub mod record;
pub mod rules;
pub mod schema;
pub mod text;

pub use codec::{
    CodecError, decode_client, decode_server, decode_server_frame, encode, encode_server_frame,
    server_frame_number,
};
pub use codes::{CloseCode, ErrorCode};
pub use messages::*;

/// The protocol version this build speaks. Bumped on any incompatible wire change.
pub const PROTOCOL_VERSION: u32 = 2;
