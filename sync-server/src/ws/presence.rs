//! Presence (awareness) on the main protocol: a connection's `awareness` messages are relayed
//! through [`crate::awareness`] to every other connection reading the same text document, on
//! this endpoint and on `/yjs/{doc_id}`, and theirs come back as `awareness` messages.
//!
//! A connection joins a document's room with its first `awareness` message for it (and then
//! receives the room's current states at once): readers that show no presence receive none.

use std::collections::HashSet;
use std::sync::Arc;

use serde_bytes::ByteBuf;
use syncline_protocol::ServerMessage;
use uuid::Uuid;

use crate::AppState;
use crate::awareness::{AwarenessError, Presence};

/// The presence of one connection, made on its first `awareness` message (idle connections
/// must stay small).
#[derive(Debug)]
pub struct ConnectionPresence {
    presence: Presence,
    joined: HashSet<Uuid>,
}

impl ConnectionPresence {
    pub fn new(state: &AppState, org_id: Uuid, user_id: Uuid) -> Self {
        Self {
            presence: state.awareness.connect(org_id, user_id, Uuid::now_v7()),
            joined: HashSet::new(),
        }
    }

    /// Publishes the client's update on `doc_id` (the caller checked that the user may read
    /// it). Returns the room's current states to send first when this joins the room.
    pub fn publish(
        &mut self,
        doc_id: Uuid,
        update: &[u8],
    ) -> Result<Option<ServerMessage>, AwarenessError> {
        let mut welcome = None;
        if self.joined.insert(doc_id) {
            welcome = self
                .presence
                .join(doc_id)
                .map(|states| ServerMessage::Awareness {
                    doc_id,
                    update: ByteBuf::from(states),
                });
        }
        self.presence.publish(doc_id, update)?;
        Ok(welcome)
    }

    /// Stops relaying a document (the user lost access to it).
    pub fn leave(&mut self, doc_id: Uuid) {
        if self.joined.remove(&doc_id) {
            self.presence.leave(doc_id);
        }
    }

    /// The next update of another connection, as a message for this one.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        let (doc_id, update): (Uuid, Arc<[u8]>) = self.presence.recv().await?;
        Some(ServerMessage::Awareness {
            doc_id,
            update: ByteBuf::from(update.to_vec()),
        })
    }
}

/// The next presence message for a connection; pending forever without presence.
pub async fn next(presence: &mut Option<ConnectionPresence>) -> Option<ServerMessage> {
    match presence {
        Some(p) => p.recv().await,
        None => std::future::pending().await,
    }
}
