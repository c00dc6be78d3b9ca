//! Presence relay: y-protocols awareness updates (cursors, selections, user names) of a text
//! document, passed between the connections that have the document open, on every endpoint.
//! Never stored: the relay keeps only the latest state of each awareness client in memory,
//! while its room has members, so that a newcomer sees who is there at once.
//!
//! # Use
//!
//! Each connection calls [`AwarenessRelay::connect`] once and gets a [`Presence`]: it
//! [`join`](Presence::join)s the documents it shows presence on (after checking the user may
//! read them), [`publish`](Presence::publish)es the client's awareness updates, and forwards
//! what [`recv`](Presence::recv) yields — other connections' updates, as `(doc_id, update)` —
//! to its client. Dropping the `Presence` (or [`leave`](Presence::leave)) publishes the removal
//! of every awareness client the connection announced, as y-protocols peers expect when a
//! client goes away without saying so.
//!
//! # Rules
//!
//! - An update is the bytes of y-protocols `encodeAwarenessUpdate`: a list of
//!   `(client id, clock, JSON state)`; the state `null` removes the client. Entries are applied
//!   as y-protocols does (a higher clock wins; `null` at the same clock removes); stale
//!   entries are dropped, the rest are re-encoded and sent to the room's other members.
//! - An awareness client id belongs to the connection that announced it. Another connection of
//!   the same user may take it over (a reconnecting client); other users' updates of it are
//!   dropped, so nobody can move or remove someone else's cursor.
//! - At most [`MAX_CLIENTS_PER_CONNECTION`] ids per connection and room, updates up to
//!   [`MAX_UPDATE_BYTES`], states must be JSON.
//! - Delivery is best effort: a connection that does not keep up loses updates beyond
//!   [`QUEUE`] (clients re-announce their state every 15 s, and states time out after 30 s).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::yjs::lib0::{Lib0Error, Reader, Writer};

/// Largest awareness update accepted.
pub const MAX_UPDATE_BYTES: usize = 64 << 10;
/// Most awareness client ids one connection may announce in one room.
pub const MAX_CLIENTS_PER_CONNECTION: usize = 16;
/// Updates queued per connection before further ones are dropped.
pub const QUEUE: usize = 256;

/// Why an awareness update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwarenessError {
    #[error("awareness update larger than {MAX_UPDATE_BYTES} bytes")]
    TooLarge,
    #[error("malformed awareness update: {0}")]
    Malformed(#[from] Lib0Error),
    #[error("awareness state of client {0} is not JSON")]
    NotJson(u64),
    #[error("document not joined")]
    NotJoined,
}

/// One entry of an awareness update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwarenessEntry {
    pub client: u64,
    pub clock: u32,
    /// The state as JSON text; `"null"` removes the client.
    pub json: Arc<str>,
}

impl AwarenessEntry {
    pub fn is_removal(&self) -> bool {
        self.json.as_ref() == "null"
    }
}

/// Decodes an awareness update, checking sizes and that states are JSON.
pub fn decode_update(update: &[u8]) -> Result<Vec<AwarenessEntry>, AwarenessError> {
    if update.len() > MAX_UPDATE_BYTES {
        return Err(AwarenessError::TooLarge);
    }
    let mut r = Reader::new(update);
    let count = r.var_uint()?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let client = r.var_uint()?;
        let clock = r.var_u32()?;
        let json = r.var_string()?;
        if serde_json::from_str::<serde::de::IgnoredAny>(json).is_err() {
            return Err(AwarenessError::NotJson(client));
        }
        entries.push(AwarenessEntry {
            client,
            clock,
            json: json.into(),
        });
    }
    Ok(entries)
}

/// Encodes entries as one awareness update.
pub fn encode_update(entries: &[AwarenessEntry]) -> Vec<u8> {
    let mut w = Writer::new();
    w.var_uint(entries.len() as u64);
    for e in entries {
        w.var_uint(e.client)
            .var_uint(u64::from(e.clock))
            .var_string(&e.json);
    }
    w.finish()
}

/// What a member receives: another connection's update of a document's awareness.
pub type Delivery = (Uuid, Arc<[u8]>);

struct State {
    clock: u32,
    json: Arc<str>,
    connection: Uuid,
    user: Uuid,
}

#[derive(Default)]
struct Room {
    members: HashMap<Uuid, mpsc::Sender<Delivery>>,
    states: HashMap<u64, State>,
}

impl Room {
    fn send_to_others(&self, doc_id: Uuid, from: Uuid, update: Arc<[u8]>) {
        for (connection, member) in &self.members {
            if *connection != from {
                // Full: the member is not keeping up, and presence is best effort.
                let _ = member.try_send((doc_id, update.clone()));
            }
        }
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        let mut entries: Vec<AwarenessEntry> = self
            .states
            .iter()
            .map(|(client, s)| AwarenessEntry {
                client: *client,
                clock: s.clock,
                json: s.json.clone(),
            })
            .collect();
        entries.sort_by_key(|e| e.client);
        (!entries.is_empty()).then(|| encode_update(&entries))
    }
}

type Rooms = HashMap<(Uuid, Uuid), Room>;

/// The rooms of every document with presence, per org. Cheap to clone (in `AppState`).
#[derive(Clone, Default)]
pub struct AwarenessRelay {
    rooms: Arc<Mutex<Rooms>>,
}

impl std::fmt::Debug for AwarenessRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwarenessRelay").finish_non_exhaustive()
    }
}

impl AwarenessRelay {
    /// A connection's presence in `org_id`, acting for `user_id`; `connection_id` must be
    /// unique among live connections (a fresh UUID per connection).
    pub fn connect(&self, org_id: Uuid, user_id: Uuid, connection_id: Uuid) -> Presence {
        let (sender, inbox) = mpsc::channel(QUEUE);
        Presence {
            relay: self.clone(),
            org_id,
            user_id,
            connection_id,
            sender,
            inbox,
            joined: Vec::new(),
        }
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, Rooms> {
        self.rooms
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Number of documents with presence (for tests: rooms are dropped when empty).
    pub fn room_count(&self) -> usize {
        self.rooms().len()
    }
}

/// One connection's presence. Dropping it leaves every joined document.
pub struct Presence {
    relay: AwarenessRelay,
    org_id: Uuid,
    user_id: Uuid,
    connection_id: Uuid,
    sender: mpsc::Sender<Delivery>,
    inbox: mpsc::Receiver<Delivery>,
    joined: Vec<Uuid>,
}

impl std::fmt::Debug for Presence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Presence")
            .field("connection_id", &self.connection_id)
            .field("joined", &self.joined)
            .finish_non_exhaustive()
    }
}

impl Presence {
    /// Joins a document's room (the caller checked that the user may read it); returns the
    /// current states of its room as one update to send to the client, if any.
    pub fn join(&mut self, doc_id: Uuid) -> Option<Vec<u8>> {
        let mut rooms = self.relay.rooms();
        let room = rooms.entry((self.org_id, doc_id)).or_default();
        room.members
            .entry(self.connection_id)
            .or_insert_with(|| self.sender.clone());
        if !self.joined.contains(&doc_id) {
            self.joined.push(doc_id);
        }
        room.snapshot()
    }

    /// The current states of a joined document's room (the answer to y-protocols' query
    /// awareness message).
    pub fn current(&self, doc_id: Uuid) -> Option<Vec<u8>> {
        self.relay
            .rooms()
            .get(&(self.org_id, doc_id))
            .and_then(Room::snapshot)
    }

    /// Applies the client's update to a joined document's room and relays what changed to the
    /// other members. Entries for ids owned by another user's connection, stale ones and those
    /// beyond [`MAX_CLIENTS_PER_CONNECTION`] are dropped silently (presence is advisory).
    pub fn publish(&self, doc_id: Uuid, update: &[u8]) -> Result<(), AwarenessError> {
        let entries = decode_update(update)?;
        let mut rooms = self.relay.rooms();
        let room = rooms
            .get_mut(&(self.org_id, doc_id))
            .filter(|room| room.members.contains_key(&self.connection_id))
            .ok_or(AwarenessError::NotJoined)?;
        let mut relayed = Vec::new();
        for entry in entries {
            let owned = room
                .states
                .values()
                .filter(|s| s.connection == self.connection_id)
                .count();
            let accepted = match room.states.get(&entry.client) {
                Some(s) if s.user != self.user_id => false,
                Some(s) => s.clock < entry.clock || (s.clock == entry.clock && entry.is_removal()),
                None => !entry.is_removal() && owned < MAX_CLIENTS_PER_CONNECTION,
            };
            if !accepted {
                continue;
            }
            if entry.is_removal() {
                room.states.remove(&entry.client);
            } else {
                room.states.insert(
                    entry.client,
                    State {
                        clock: entry.clock,
                        json: entry.json.clone(),
                        connection: self.connection_id,
                        user: self.user_id,
                    },
                );
            }
            relayed.push(entry);
        }
        if !relayed.is_empty() {
            let bytes: Arc<[u8]> = encode_update(&relayed).into();
            room.send_to_others(doc_id, self.connection_id, bytes);
        }
        Ok(())
    }

    /// The next update of another connection on a joined document. Never `None` while `self`
    /// lives (it holds a sender of its own inbox).
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.inbox.recv().await
    }

    /// Leaves a document: removes the states this connection announced there (telling the
    /// other members) and drops the room when it is empty.
    pub fn leave(&mut self, doc_id: Uuid) {
        self.joined.retain(|d| *d != doc_id);
        let mut rooms = self.relay.rooms();
        leave_room(&mut rooms, self.org_id, doc_id, self.connection_id);
    }
}

fn leave_room(rooms: &mut Rooms, org_id: Uuid, doc_id: Uuid, connection_id: Uuid) {
    let key = (org_id, doc_id);
    let Some(room) = rooms.get_mut(&key) else {
        return;
    };
    room.members.remove(&connection_id);
    let mut removed: Vec<AwarenessEntry> = room
        .states
        .iter()
        .filter(|(_, s)| s.connection == connection_id)
        .map(|(client, s)| AwarenessEntry {
            client: *client,
            clock: s.clock.saturating_add(1),
            json: "null".into(),
        })
        .collect();
    removed.sort_by_key(|e| e.client);
    for entry in &removed {
        room.states.remove(&entry.client);
    }
    if room.members.is_empty() {
        rooms.remove(&key);
    } else if !removed.is_empty() {
        room.send_to_others(doc_id, connection_id, encode_update(&removed).into());
    }
}

impl Drop for Presence {
    fn drop(&mut self) {
        let mut rooms = self.relay.rooms();
        for doc_id in std::mem::take(&mut self.joined) {
            leave_room(&mut rooms, self.org_id, doc_id, self.connection_id);
        }
    }
}

#[cfg(test)]
mod tests;
