//! Connection lifecycle and the messages a client sends: the handshake, one subscription per
//! synced collection (resuming from its persisted cursor), pushes of the outbox, and awareness
//! updates of open text documents.
//!
//! Pushes are split into several `Push` messages past a count or size bound so that a client
//! coming back from a long offline period does not send one frame the server refuses as too
//! large. The server processes them in order, so splitting changes nothing else.

use serde_bytes::ByteBuf;
use syncline_protocol::{ClientMessage, Mutation, MutationId, PROTOCOL_VERSION, Scope};

use super::{Phase, Subscription, subscriptions};
use crate::client::Client;
use crate::error::Result;
use crate::store::meta;
use crate::store::outbox::{self, OutboxEntry};

/// At most this many mutations per `Push`.
pub const MAX_PUSH_MUTATIONS: usize = 256;
/// A `Push` is closed once its payloads reach this many bytes.
pub const MAX_PUSH_BYTES: usize = 512 * 1024;

impl Client {
    /// The transport started opening a connection.
    pub fn on_connecting(&mut self) {
        self.sync.phase = Phase::Connecting;
    }

    /// The socket is open: returns `Hello`, a `Subscribe` per synced collection and the whole
    /// outbox as `Push`es, in the order they must be sent. Every outbox entry is then in flight.
    pub fn on_connected(&mut self, token: &str) -> Result<Vec<ClientMessage>> {
        let mut messages = vec![ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            token: token.to_owned(),
            client_id: self.client_id,
        }];
        self.sync.subs.clear();
        for (sub_id, collection) in subscriptions() {
            let cursor = meta::cursor(&self.conn, collection)?;
            self.sync.subs.insert(
                sub_id,
                Subscription {
                    collection,
                    synced: false,
                    snapshot: cursor.is_none().then(Default::default),
                },
            );
            messages.push(ClientMessage::Subscribe {
                sub_id,
                scope: Scope::Collection {
                    collection: collection.to_owned(),
                },
                cursor,
            });
        }
        self.sync.phase = Phase::AwaitingWelcome;
        self.sync.sent_up_to = 0;
        self.sync.last_frame = 0;
        self.sync.resync = false;
        self.sync.awareness_out.clear();
        messages.extend(self.take_outgoing()?);
        tracing::debug!(client_id = %self.client_id, pending = self.pending, "connected; handshake queued");
        Ok(messages)
    }

    /// `Push`es of the outbox entries not yet sent on this connection (none while offline),
    /// then queued awareness updates (see [`Client::send_awareness`]). Call after local writes
    /// while connected. Unsent updates of one text document are merged first (see
    /// `coalesce`).
    pub fn take_outgoing(&mut self) -> Result<Vec<ClientMessage>> {
        if matches!(self.sync.phase, Phase::Offline | Phase::Connecting) {
            return Ok(Vec::new());
        }
        self.coalesce_unsent()?;
        let entries = outbox::after(&self.conn, self.sync.sent_up_to)?;
        if let Some(last) = entries.last() {
            self.sync.sent_up_to = last.seq;
            self.pushed_up_to = self.pushed_up_to.max(last.seq);
        }
        let mut messages = push_messages(self.client_id, entries);
        messages.extend(self.sync.awareness_out.drain(..).map(|(doc_id, update)| {
            ClientMessage::Awareness {
                doc_id,
                update: ByteBuf::from(update),
            }
        }));
        Ok(messages)
    }

    /// Every pending mutation again, for a transport that waited too long for an answer on a
    /// live connection (a frame may have been lost on the way). Safe: the server answers a
    /// mutation it already has like the first time.
    pub fn resend_unanswered(&mut self) -> Result<Vec<ClientMessage>> {
        if self.sync.phase != Phase::Welcomed {
            return Ok(Vec::new());
        }
        self.sync.sent_up_to = 0;
        self.take_outgoing()
    }

    /// The connection is gone: nothing is in flight any more, and unanswered pushes will be
    /// sent again on the next connection (the server answers a retransmitted mutation like the
    /// first time, so this is safe).
    pub fn on_disconnected(&mut self) {
        self.sync.phase = Phase::Offline;
        self.sync.awareness_out.clear();
        self.sync.subs.clear();
        self.sync.sent_up_to = 0;
        self.sync.last_frame = 0;
        self.sync.resync = false;
    }
}

fn push_messages(client_id: uuid::Uuid, entries: Vec<OutboxEntry>) -> Vec<ClientMessage> {
    let mut messages = Vec::new();
    let mut batch: Vec<Mutation> = Vec::new();
    let mut bytes = 0;
    for entry in entries {
        bytes += entry.payload.len();
        batch.push(Mutation {
            mid: MutationId {
                client_id,
                seq: entry.seq,
            },
            doc_id: entry.doc_id,
            collection: entry.collection,
            payload: ByteBuf::from(entry.payload),
        });
        if batch.len() >= MAX_PUSH_MUTATIONS || bytes >= MAX_PUSH_BYTES {
            messages.push(ClientMessage::Push {
                mutations: std::mem::take(&mut batch),
            });
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        messages.push(ClientMessage::Push { mutations: batch });
    }
    messages
}
