//! [`SyncHandle`]: the application's side of a running sync loop. It exposes the connection
//! state as a `watch` channel, sync events as a `broadcast`, and lets the application wake the
//! loop after local writes, renew the token, go offline and back online, and stop.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, broadcast, watch};
use tokio::task::JoinHandle;

use super::run;
use crate::client::Client;
use crate::sync::{LastError, SyncEvent, SyncStatus};

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The sync endpoint, e.g. `ws://127.0.0.1:8080/sync`.
    pub url: String,
    /// Access token sent in `Hello` (never in the URL). Renew with [`SyncHandle::set_token`].
    pub token: String,
    /// First reconnect delay (before jitter).
    pub min_backoff: Duration,
    /// Largest reconnect delay.
    pub max_backoff: Duration,
    /// Gives up on a connection attempt (TCP + WebSocket handshake) after this long.
    pub connect_timeout: Duration,
    /// Sends a `Ping` this often on an idle connection so proxies and NATs keep it open and a
    /// dead peer is noticed; `None` disables it.
    pub ping_interval: Option<Duration>,
}

impl SyncConfig {
    pub fn new(url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: token.into(),
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(30)),
        }
    }
}

/// What the UI shows about sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionState {
    pub status: SyncStatus,
    /// Local changes not yet acknowledged.
    pub pending: u64,
    pub last_error: Option<LastError>,
    /// Whether the application wants to be online (see [`SyncHandle::set_online`]).
    pub online_requested: bool,
    /// Sessions the server welcomed since the loop started (reconnects included).
    pub sessions: u64,
}

impl ConnectionState {
    /// Connected, every subscription caught up and every local change acknowledged.
    pub fn is_synced(&self) -> bool {
        self.status == SyncStatus::Online && self.pending == 0
    }
}

/// A wait for a connection state ran out of time.
#[derive(Debug, Clone, thiserror::Error)]
#[error("timed out after {waited:?} waiting for the sync state; last state: {last:?}")]
pub struct WaitTimeout {
    pub waited: Duration,
    pub last: ConnectionState,
}

/// What the application asks of the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Control {
    pub online: bool,
    pub stop: bool,
}

/// State shared by the handle and the loop task.
#[derive(Clone)]
pub(super) struct Shared {
    pub client: Arc<Mutex<Client>>,
    pub state: watch::Sender<ConnectionState>,
    pub events: broadcast::Sender<SyncEvent>,
    pub notify: Arc<Notify>,
}

impl Shared {
    /// Locks the client. A panic while holding the lock cannot leave SQLite half-written
    /// (every operation is one transaction), so a poisoned lock is still usable.
    pub fn lock(&self) -> MutexGuard<'_, Client> {
        self.client
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes the client's status, pending count and last error.
    pub fn publish(&self, client: &Client) {
        let status = client.sync_status();
        let pending = client.pending_count();
        let last_error = client.last_error().cloned();
        self.state.send_if_modified(|s| {
            let changed = s.status != status || s.pending != pending || s.last_error != last_error;
            s.status = status;
            s.pending = pending;
            s.last_error = last_error;
            changed
        });
    }

    pub fn emit(&self, events: Vec<SyncEvent>) {
        for event in events {
            // No receiver is not an error: nobody is listening.
            let _ = self.events.send(event);
        }
    }
}

/// Events buffered per receiver before a slow one starts missing them.
const EVENT_CAPACITY: usize = 1024;

/// A running sync loop. Dropping it stops the loop (without waiting); prefer [`Self::stop`].
pub struct SyncHandle {
    shared: Shared,
    control: watch::Sender<Control>,
    token: watch::Sender<String>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for SyncHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHandle")
            .field("state", &*self.shared.state.borrow())
            .finish_non_exhaustive()
    }
}

impl SyncHandle {
    /// Starts syncing `client` on the current tokio runtime (panics outside one).
    pub fn spawn(client: Arc<Mutex<Client>>, config: SyncConfig) -> Self {
        let initial = {
            let c = client.lock().unwrap_or_else(|p| p.into_inner());
            ConnectionState {
                status: c.sync_status(),
                pending: c.pending_count(),
                last_error: c.last_error().cloned(),
                online_requested: true,
                sessions: 0,
            }
        };
        let shared = Shared {
            client,
            state: watch::channel(initial).0,
            events: broadcast::channel(EVENT_CAPACITY).0,
            notify: Arc::new(Notify::new()),
        };
        let (control, control_rx) = watch::channel(Control {
            online: true,
            stop: false,
        });
        let (token, token_rx) = watch::channel(config.token.clone());
        let task = tokio::spawn(run::run(shared.clone(), config, control_rx, token_rx));
        Self {
            shared,
            control,
            token,
            task: Some(task),
        }
    }

    /// Tells the loop that the outbox grew: it pushes the new entries if connected. Also
    /// publishes the new pending count at once, so a following wait sees it. Locks the client:
    /// never call it while holding the client's lock.
    pub fn notify_local_change(&self) {
        {
            let client = self.shared.lock();
            self.shared.publish(&client);
        }
        self.shared.notify.notify_one();
    }

    /// The connection state, updated as it changes.
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.subscribe()
    }

    pub fn current_state(&self) -> ConnectionState {
        self.shared.state.borrow().clone()
    }

    /// Sync events from now on (rejections, evictions, remote changes, disconnects).
    pub fn events(&self) -> broadcast::Receiver<SyncEvent> {
        self.shared.events.subscribe()
    }

    /// Replaces the access token: sent as `Reauth` on a live connection, used by the next
    /// `Hello` otherwise (and a loop waiting to reconnect retries at once).
    pub fn set_token(&self, token: impl Into<String>) {
        self.token.send_replace(token.into());
    }

    /// Goes offline (closes the connection, stops reconnecting) or back online. Local writes
    /// keep working offline and are pushed when back online.
    pub fn set_online(&self, online: bool) {
        self.control.send_modify(|c| c.online = online);
        self.shared
            .state
            .send_modify(|s| s.online_requested = online);
    }

    /// Goes offline and waits until the connection is closed.
    pub async fn go_offline(&self) {
        self.set_online(false);
        let mut state = self.state();
        // Err only if the loop is gone, which is offline as well.
        let _ = state.wait_for(|s| s.status == SyncStatus::Offline).await;
    }

    pub fn go_online(&self) {
        self.set_online(true);
    }

    /// Waits until `predicate` holds for the connection state, at most `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut predicate: impl FnMut(&ConnectionState) -> bool,
    ) -> Result<ConnectionState, WaitTimeout> {
        let mut state = self.state();
        let outcome = tokio::time::timeout(timeout, state.wait_for(|s| predicate(s)))
            .await
            .map(|r| r.map(|s| s.clone()));
        match outcome {
            Ok(Ok(s)) => Ok(s),
            _ => Err(WaitTimeout {
                waited: timeout,
                last: state.borrow().clone(),
            }),
        }
    }

    /// Waits until connected with every subscription synced and the outbox empty.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<ConnectionState, WaitTimeout> {
        self.wait_until(timeout, ConnectionState::is_synced).await
    }

    /// Stops the loop: closes the connection and waits for the task to end.
    pub async fn stop(&mut self) {
        self.control.send_modify(|c| c.stop = true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "sync task ended abnormally");
        }
    }

    /// The shared client this loop syncs.
    pub fn client(&self) -> &Arc<Mutex<Client>> {
        &self.shared.client
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        self.control.send_modify(|c| c.stop = true);
    }
}
