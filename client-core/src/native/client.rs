//! [`NativeClient`]: a [`Client`] shared behind a mutex together with its running sync loop.
//! Every write through it notifies the loop, so changes are pushed as soon as they are made;
//! waits on sync state make it easy to drive real clients from `#[tokio::test]`s and
//! benchmarks.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use syncline_protocol::record::FieldValue;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::handle::{ConnectionState, SyncConfig, SyncHandle, WaitTimeout};
use crate::client::Client;
use crate::error::Result;
use crate::query::Query;
use crate::row::Row;
use crate::sync::SyncEvent;
use crate::tasks::{Task, TaskDraft, TaskPatch, TaskQuery};

/// How often [`NativeClient::wait_for`] re-checks its condition when nothing was signalled.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// A client that syncs itself in the background while the application uses it.
pub struct NativeClient {
    client: Arc<Mutex<Client>>,
    sync: SyncHandle,
}

impl std::fmt::Debug for NativeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeClient")
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl NativeClient {
    /// Starts syncing `client` (on the current tokio runtime).
    pub fn start(client: Client, config: SyncConfig) -> Self {
        let client = Arc::new(Mutex::new(client));
        let sync = SyncHandle::spawn(Arc::clone(&client), config);
        Self { client, sync }
    }

    /// Opens the replica at `path` and starts syncing it.
    pub fn open(path: impl AsRef<Path>, config: SyncConfig) -> Result<Self> {
        Ok(Self::start(Client::open(path)?, config))
    }

    fn lock(&self) -> MutexGuard<'_, Client> {
        // See `Shared::lock`: a poisoned lock still guards a consistent replica.
        self.client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads from the client.
    pub fn read<R>(&self, f: impl FnOnce(&Client) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the client, then tells the sync loop (a no-op when nothing was written).
    pub fn write<R>(&self, f: impl FnOnce(&mut Client) -> R) -> R {
        let result = f(&mut self.lock());
        self.sync.notify_local_change();
        result
    }

    /// The sync loop.
    pub fn sync(&self) -> &SyncHandle {
        &self.sync
    }

    /// The shared client, e.g. for a second handle or UI thread.
    pub fn shared(&self) -> Arc<Mutex<Client>> {
        Arc::clone(&self.client)
    }

    pub fn client_id(&self) -> Uuid {
        self.read(Client::client_id)
    }

    pub fn create<K: AsRef<str>>(
        &self,
        collection: &str,
        fields: impl IntoIterator<Item = (K, FieldValue)>,
    ) -> Result<Uuid> {
        self.write(|c| c.create(collection, fields))
    }

    pub fn update<K: AsRef<str>>(
        &self,
        collection: &str,
        id: Uuid,
        patch: impl IntoIterator<Item = (K, Option<FieldValue>)>,
    ) -> Result<bool> {
        self.write(|c| c.update(collection, id, patch))
    }

    pub fn delete(&self, collection: &str, id: Uuid) -> Result<bool> {
        self.write(|c| c.delete(collection, id))
    }

    pub fn get(&self, collection: &str, id: Uuid) -> Result<Option<Row>> {
        self.read(|c| c.get(collection, id))
    }

    pub fn query(&self, collection: &str, query: &Query) -> Result<Vec<Row>> {
        self.read(|c| c.query(collection, query))
    }

    pub fn create_task(&self, draft: &TaskDraft) -> Result<Uuid> {
        self.write(|c| c.create_task(draft))
    }

    pub fn update_task(&self, id: Uuid, patch: &TaskPatch) -> Result<bool> {
        self.write(|c| c.update_task(id, patch))
    }

    pub fn delete_task(&self, id: Uuid) -> Result<bool> {
        self.write(|c| c.delete_task(id))
    }

    pub fn get_task(&self, id: Uuid) -> Result<Option<Task>> {
        self.read(|c| c.get_task(id))
    }

    pub fn query_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        self.read(|c| c.query_tasks(query))
    }

    pub fn pending_count(&self) -> u64 {
        self.read(Client::pending_count)
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.sync.current_state()
    }

    /// Sync events from now on.
    pub fn events(&self) -> broadcast::Receiver<SyncEvent> {
        self.sync.events()
    }

    pub fn set_token(&self, token: impl Into<String>) {
        self.sync.set_token(token);
    }

    /// Waits until connected, every subscription synced and every local change acknowledged.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<ConnectionState, WaitTimeout> {
        self.sync.wait_synced(timeout).await
    }

    /// Waits until `predicate` holds for the connection state.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        predicate: impl FnMut(&ConnectionState) -> bool,
    ) -> Result<ConnectionState, WaitTimeout> {
        self.sync.wait_until(timeout, predicate).await
    }

    /// Waits until `predicate` holds for the client's data (e.g. a remote change arrived),
    /// re-checking after every sync event or state change.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&Client) -> bool,
    ) -> Result<(), WaitTimeout> {
        let mut events = self.sync.events();
        let mut state = self.sync.state();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.read(&mut predicate) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WaitTimeout {
                    waited: timeout,
                    last: self.state(),
                });
            }
            tokio::select! {
                _ = events.recv() => {}
                _ = state.changed() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    /// Closes the connection and stops reconnecting; local writes keep working.
    pub async fn go_offline(&self) {
        self.sync.go_offline().await;
    }

    /// Reconnects (and pushes what was written offline).
    pub fn go_online(&self) {
        self.sync.go_online();
    }

    /// Stops the sync loop for good and returns the shared client.
    pub async fn stop(mut self) -> Arc<Mutex<Client>> {
        self.sync.stop().await;
        self.client
    }
}
