//! [`Client`]: one replica of the user's data in one SQLite file, usable with no server at all.
//!
//! This file opens the replica and exposes its identity and bookkeeping; record reads and
//! writes live in [`crate::records`], typed task helpers in [`crate::tasks`], and the sync
//! state machine (messages in, messages out, no IO) in [`crate::sync`].

use std::path::Path;

use automerge::ActorId;
use rusqlite::Connection;
use syncline_protocol::schema::{self, CollectionSchema};
use uuid::Uuid;

use crate::cache::{self, DocCache};
use crate::doc;
use crate::error::{ClientError, Result};
use crate::store::outbox::OutboxEntry;
use crate::store::{ddl, documents, meta, outbox, rows};
use crate::sync::SyncSession;
use crate::text::cache::{DEFAULT_TEXT_CAPACITY, TextCache};

/// An offline-capable replica. Not `Sync`: share it as `Arc<Mutex<Client>>` (see
/// `native::NativeClient`).
pub struct Client {
    pub(crate) conn: Connection,
    pub(crate) client_id: Uuid,
    /// automerge actor of every local change: the client id's bytes.
    pub(crate) actor: ActorId,
    /// Outbox entries, kept in memory so status checks need no query.
    pub(crate) pending: u64,
    /// Connection-scoped sync state (lost on restart by design).
    pub(crate) sync: SyncSession,
    /// Recently used record documents, decoded.
    pub(crate) cache: DocCache,
    /// Open text documents, decoded.
    pub(crate) texts: TextCache,
    /// Highest outbox seq this process may have pushed on any connection (every entry present
    /// at open counts as pushed): entries above it were never seen by the server, so unsent
    /// text updates above it may be merged (see `sync::coalesce`).
    pub(crate) pushed_up_to: u64,
    /// Time of the last suggestion mark made here (see `text::TextEditor`).
    pub(crate) last_mark: i64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id)
            .field("pending", &self.pending)
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Opens (creating if needed) the replica stored in the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_connection(Connection::open(path)?)
    }

    /// Opens the replica at `path`, giving it `client_id` if the file is new (an existing
    /// replica keeps its own). For simulations that need reproducible automerge actors.
    pub fn open_as(path: impl AsRef<Path>, client_id: Uuid) -> Result<Self> {
        Self::open_connection(Connection::open(path)?, Some(client_id))
    }

    /// A replica that lives only as long as the value (tests, previews).
    pub fn open_in_memory() -> Result<Self> {
        Self::from_connection(Connection::open_in_memory()?)
    }

    /// Uses an already opened connection, e.g. one on a browser VFS (OPFS) opened by the wasm
    /// bindings with their own flags.
    pub fn from_connection(conn: Connection) -> Result<Self> {
        Self::open_connection(conn, None)
    }

    fn open_connection(mut conn: Connection, new_client_id: Option<Uuid>) -> Result<Self> {
        crate::store::configure(&conn)?;
        let tx = conn.transaction()?;
        let stale = ddl::migrate(&tx)?;
        let client_id = meta::client_id(&tx, new_client_id)?;
        let actor = doc::actor_for(client_id);
        for schema in stale {
            rematerialize(&tx, schema, &actor)?;
        }
        let pending = outbox::count(&tx)?;
        let pushed_up_to = outbox::max_seq(&tx)?;
        tx.commit()?;
        tracing::debug!(%client_id, pending, "replica opened");
        Ok(Self {
            conn,
            client_id,
            actor,
            pending,
            sync: SyncSession::default(),
            cache: DocCache::new(cache::DEFAULT_CAPACITY),
            texts: TextCache::new(DEFAULT_TEXT_CAPACITY),
            pushed_up_to,
            last_mark: 0,
        })
    }

    /// This replica's id, generated on first open and persisted; the `client_id` of `Hello`
    /// and of every mutation id.
    pub fn client_id(&self) -> Uuid {
        self.client_id
    }

    /// How many record documents to keep decoded in memory (default 256). Hot documents with long
    /// histories are expensive to decode; 0 disables the cache.
    pub fn set_document_cache_capacity(&mut self, capacity: usize) {
        self.cache.set_capacity(capacity);
    }

    /// Local changes the server has not acknowledged (or rejected) yet.
    pub fn pending_count(&self) -> u64 {
        self.pending
    }

    /// The pending local changes, in push order.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>> {
        outbox::after(&self.conn, 0)
    }

    /// The cursor of a collection's subscription (`None` before its first complete sync).
    pub fn cursor(&self, collection: &str) -> Result<Option<u64>> {
        meta::cursor(&self.conn, collection)
    }

    /// Forgets a collection's cursor so that the next connection receives a full snapshot
    /// again (e.g. after suspecting the replica missed changes).
    pub fn reset_cursor(&mut self, collection: &str) -> Result<()> {
        if !schema::is_synced(collection) {
            return Err(ClientError::UnknownCollection(collection.to_owned()));
        }
        meta::clear_cursor(&self.conn, collection)
    }

    /// `(user_id, org_id)` of the last session the server welcomed.
    pub fn session_identity(&self) -> Result<Option<(Uuid, Uuid)>> {
        meta::session_identity(&self.conn)
    }

    /// A document's stored automerge states, for tools and tests that inspect or forward raw
    /// CRDT state.
    pub fn document_states(&self, doc_id: Uuid) -> Result<Option<DocumentStates>> {
        Ok(
            documents::load(&self.conn, doc_id)?.map(|d| DocumentStates {
                collection: d.collection,
                confirmed: d.confirmed,
                working: d.working,
            }),
        )
    }

    /// Direct read access to the replica (custom queries, diagnostics). Writes through it
    /// bypass the outbox and are not synced.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// A document's saved automerge states (`AutoCommit::save` format).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentStates {
    pub collection: String,
    /// What the server acknowledged; `None` while nothing was.
    pub confirmed: Option<Vec<u8>>,
    /// Confirmed plus pending local changes.
    pub working: Vec<u8>,
}

/// The schema of a synced collection, or a typed error.
pub(crate) fn schema_of(collection: &str) -> Result<&'static CollectionSchema> {
    schema::collection(collection)
        .ok_or_else(|| ClientError::UnknownCollection(collection.to_owned()))
}

/// First step of every write transaction: when another connection committed to the file,
/// cached documents (records and texts) and the pending count may be stale, so all are
/// refreshed.
pub(crate) fn refresh(
    cache: &mut DocCache,
    texts: &mut TextCache,
    pending: &mut u64,
    conn: &Connection,
) -> Result<()> {
    if cache.check(conn)? {
        texts.clear();
        *pending = outbox::count(conn)?;
    }
    Ok(())
}

/// Rewrites every row of a collection from its documents (after its table gained columns).
fn rematerialize(conn: &Connection, schema: &CollectionSchema, actor: &ActorId) -> Result<()> {
    let ids = documents::ids_in_collection(conn, schema.name)?;
    tracing::info!(
        collection = schema.name,
        docs = ids.len(),
        "re-materializing after a schema upgrade"
    );
    for id in ids {
        if let Some(stored) = documents::load(conn, id)? {
            let working = doc::load(id, Some(&stored.working), actor)?;
            rows::materialize(conn, schema, id, &working)?;
        }
    }
    Ok(())
}
