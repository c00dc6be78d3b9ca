//! The sync state machine, without IO: transports feed it connection events and decoded
//! server messages, and send the client messages it returns.
//!
//! ```text
//! on_connecting()            -> status Connecting
//! on_connected(token)        -> [Hello, Subscribe per collection, Push(outbox)...]
//! receive(frame bytes)      -> Handled([SyncEvent...]) | Duplicate | Skipped | Gap | Malformed
//! handle(ServerMessage)      -> [SyncEvent...]   (one SQLite transaction each)
//! take_outgoing()            -> [Push(new outbox entries)...] after local writes
//! on_disconnected()          -> status Offline; unanswered pushes are resent next time
//! ```
//!
//! - [`outgoing`]: connection lifecycle and what the client sends.
//! - [`incoming`]: applying server messages to the replica.
//! - [`merge`]: merging server changes into record documents.
//! - [`frames`]: frame numbers: duplicates ignored, a gap ends the connection.
//! - [`coalesce`]: merging unsent updates of one text document before a push.
//! - [`purge`]: evictions (a record and its body go together).
//! - [`reject`]: rebuilding a record document's working state after a rejected change.
//! - [`text`], [`text_reject`]: the same for text documents (Yjs updates), and awareness.
//!
//! Connection state (subscriptions, what was pushed) lives in memory and is reset on every
//! connection; everything that must survive a restart (cursors, outbox, documents) is in SQLite.

mod coalesce;
mod frames;
mod incoming;
mod merge;
mod outgoing;
mod purge;
mod reject;
mod text;
mod text_reject;

use std::collections::BTreeMap;

use syncline_protocol::schema::{COLLECTIONS, TEXT_COLLECTIONS};
use syncline_protocol::{ErrorCode, MutationId};
use uuid::Uuid;

use crate::client::Client;

pub use frames::Received;

/// Connection status as a UI shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyncStatus {
    /// No connection (never connected, disconnected, or sync stopped).
    Offline,
    /// Opening the socket or waiting for `Welcome`.
    Connecting,
    /// Connected, but a subscription has not reached `Synced` or pushed changes await an answer.
    Syncing,
    /// Connected, every subscription is live and nothing local is pending.
    Online,
}

/// The most recent problem with the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// Protocol error code, for `Error` messages.
    pub code: Option<ErrorCode>,
    /// WebSocket close code, when the server closed the connection (see
    /// `syncline_protocol::CloseCode`, e.g. 4001 unauthenticated, 4002 token expired).
    pub close_code: Option<u16>,
    pub message: String,
}

impl LastError {
    pub fn message(message: impl Into<String>) -> Self {
        Self {
            code: None,
            close_code: None,
            message: message.into(),
        }
    }
}

/// Something the UI (or a test) may want to react to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncEvent {
    /// The server accepted the session.
    Welcomed {
        user_id: Uuid,
        org_id: Uuid,
        session_expires_at: i64,
    },
    /// A subscription caught up; `cursor` was persisted.
    Synced {
        sub_id: u32,
        collection: String,
        cursor: u64,
    },
    /// A document's local rows changed because of the server (snapshot, remote change,
    /// rejection rollback).
    DocumentChanged {
        collection: String,
        doc_id: Uuid,
    },
    /// A local change was committed by the server as change `seq`.
    Acked {
        mid: MutationId,
        doc_id: Uuid,
        seq: u64,
    },
    /// A local change was refused (by the server, or locally with `MissingDependency` because
    /// it built on a refused one) and rolled back.
    Rejected {
        doc_id: Uuid,
        mid: MutationId,
        code: ErrorCode,
        message: String,
    },
    /// The document was purged because the user may no longer read it.
    Evicted {
        doc_id: Uuid,
        collection: Option<String>,
    },
    /// The server refused a message without closing the connection.
    ServerError {
        code: ErrorCode,
        message: String,
    },
    Reauthed {
        session_expires_at: i64,
    },
    Pong {
        nonce: u64,
    },
    /// The connection ended (emitted by transports, not by `handle`).
    Disconnected {
        close_code: Option<u16>,
        reason: String,
    },
    /// Something for an open text document's editor (see [`TextEvent`]).
    Text(TextEvent),
}

/// What an editor bound to a text document (e.g. y-prosemirror through the browser bindings)
/// must apply. Emitted alongside the usual `DocumentChanged`/`Rejected`/`Evicted` events.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextEvent {
    /// Content from the server was applied to the working state: `update` (Yjs lib0 v1, a
    /// remote change or a whole snapshot state) applied to the editor's document brings it
    /// up to date. Not emitted for the replica's own changes coming back.
    Updated {
        collection: String,
        doc_id: Uuid,
        update: Vec<u8>,
    },
    /// Local edits were rolled back (a rejection): the working state lost content an editor
    /// may still show, which Yjs cannot undo incrementally. The editor must reload its
    /// document from `TextDoc::encode_state`.
    Reset { collection: String, doc_id: Uuid },
    /// Another user's presence on the document: a y-protocols awareness update to apply to the
    /// editor's awareness (`applyAwarenessUpdate`).
    Awareness { doc_id: Uuid, update: Vec<u8> },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Phase {
    #[default]
    Offline,
    Connecting,
    AwaitingWelcome,
    Welcomed,
}

/// One subscription of the current connection.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    pub collection: &'static str,
    /// `Synced` arrived on this connection: the change stream is now gap-free and each
    /// `Change` may advance the persisted cursor.
    pub synced: bool,
    /// For a subscription without a cursor: the documents its snapshot listed so far. The
    /// snapshot is everything the user may read in the scope, so at `Synced` the replica drops
    /// the documents the server had sent or acknowledged that were not listed: ones it lost
    /// access to while no `Evict` could reach it (those with pending changes once these are
    /// answered).
    pub snapshot: Option<std::collections::HashSet<uuid::Uuid>>,
}

/// Connection-scoped state.
#[derive(Debug, Default)]
pub(crate) struct SyncSession {
    pub phase: Phase,
    pub subs: BTreeMap<u32, Subscription>,
    /// Highest outbox seq pushed on this connection; entries above it are unsent.
    pub sent_up_to: u64,
    /// Number of the last server frame handled on this connection (frames start at 1).
    pub last_frame: u64,
    /// A change arrived without its history: the connection must be reset (`Received::Resync`).
    pub resync: bool,
    /// Awareness updates to send with the next `take_outgoing` (never persisted: presence is
    /// only meaningful live).
    pub awareness_out: Vec<(uuid::Uuid, Vec<u8>)>,
    pub last_error: Option<LastError>,
}

impl SyncSession {
    pub fn sub_for(&self, collection: &str) -> Option<&Subscription> {
        self.subs.values().find(|s| s.collection == collection)
    }
}

/// The subscriptions every connection opens: one per synced collection, numbered from 1 in
/// schema order, record collections first, then text collections (a body's record is then
/// known before the body arrives).
pub fn subscriptions() -> impl Iterator<Item = (u32, &'static str)> {
    COLLECTIONS
        .iter()
        .map(|c| c.name)
        .chain(TEXT_COLLECTIONS.iter().map(|c| c.name))
        .zip(1u32..)
        .map(|(name, id)| (id, name))
}

impl Client {
    /// The current connection status.
    pub fn sync_status(&self) -> SyncStatus {
        match self.sync.phase {
            Phase::Offline => SyncStatus::Offline,
            Phase::Connecting | Phase::AwaitingWelcome => SyncStatus::Connecting,
            Phase::Welcomed => {
                if self.pending > 0 || self.sync.subs.values().any(|s| !s.synced) {
                    SyncStatus::Syncing
                } else {
                    SyncStatus::Online
                }
            }
        }
    }

    /// The most recent connection problem; cleared when a server welcomes a new session.
    pub fn last_error(&self) -> Option<&LastError> {
        self.sync.last_error.as_ref()
    }

    /// Records a connection problem seen by the transport (connect failure, close code).
    pub fn set_last_error(&mut self, error: LastError) {
        self.sync.last_error = Some(error);
    }

    /// Whether every subscription of the current connection reached `Synced`.
    pub fn is_synced(&self) -> bool {
        self.sync.phase == Phase::Welcomed && self.sync.subs.values().all(|s| s.synced)
    }
}
