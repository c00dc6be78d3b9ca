//! # client-core
//!
//! The offline Syncline client: a replica of the user's synced records in one SQLite file,
//! usable with no server at all, plus the sync state machine that reconciles it with the server
//! over the protocol in `syncline-protocol`.
//!
//! - [`Client`] ([`client`], [`records`], [`tasks`]): open a replica; create, update, soft
//!   delete and query records. Each write is one automerge change, validated against the
//!   collection schema, and committed with its materialized row and outbox entry in one SQLite
//!   transaction.
//! - [`text`]: text documents (note and document bodies, Yjs): [`Client::text`] returns a
//!   [`TextDoc`] handle to read, edit, suggest, resolve suggestions and exchange raw Yjs updates
//!   with an editor.
//! - [`sync`]: the sync state machine without IO (`on_connected`, `handle`, `take_outgoing`,
//!   `on_disconnected`) and the observable [`SyncStatus`] and [`SyncEvent`]s.
//! - `native` (feature `native`): a tokio + tokio-tungstenite transport with reconnect,
//!   backoff and jitter, and [`native::NativeClient`], a shareable client that syncs itself.
//!
//! Storage details are in [`store`]; automerge helpers in [`doc`]. The crate compiles for
//! `wasm32-unknown-unknown` without the `native` feature (the browser transport lives in the
//! `wasm` crate).

mod cache;
mod client;
mod clock;
mod doc;
pub mod error;
pub mod query;
mod records;
pub mod row;
mod store;
pub mod sync;
pub mod tasks;
pub mod text;

#[cfg(feature = "native")]
pub mod native;

pub use client::{Client, DocumentStates};
pub use error::{ClientError, Result};
pub use query::{Filter, Order, Query};
pub use row::{DELETED_AT, Row};
pub use store::outbox::OutboxEntry;
pub use sync::{LastError, Received, SyncEvent, SyncStatus, TextEvent};
pub use tasks::{Task, TaskDraft, TaskPatch, TaskQuery};
pub use text::{TextBlock, TextDoc, TextEditor, TextRun};

// Types of the protocol crate that appear in this API, re-exported for convenience.
pub use syncline_protocol::record::FieldValue;
pub use syncline_protocol::{ClientMessage, ErrorCode, MutationId, ServerMessage};
