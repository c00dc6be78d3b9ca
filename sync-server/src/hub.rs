//! In-process fan-out of committed changes to the sync connections of the same org.
//!
//! A batch is published only after its transaction commits, so every sequence number below the
//! batch's first one is already committed and readable. A connection that sees a gap between
//! the last seq it delivered and a batch (batches can be published out of order, and a slow
//! connection can lag behind the broadcast buffer) reads the missing range from the change log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use syncline_protocol::MutationId;
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Batches buffered per org before a slow receiver lags (and falls back to the change log).
const CHANNEL_CAPACITY: usize = 1024;

/// One committed change as it is fanned out.
#[derive(Debug, Clone)]
pub struct CommittedChange {
    pub seq: u64,
    pub doc_id: Uuid,
    pub collection: String,
    pub payload: Vec<u8>,
    pub mid: Option<MutationId>,
}

/// The changes of one committed transaction: seqs `first_seq..=last_seq`, in order.
#[derive(Debug, Clone)]
pub struct CommittedBatch {
    pub org_id: Uuid,
    pub first_seq: u64,
    pub last_seq: u64,
    pub changes: Vec<CommittedChange>,
}

impl CommittedBatch {
    /// A batch without changes saying "everything up to `upto` is committed" (a commit made by
    /// another server process): receivers read what they miss from the change log.
    pub fn marker(org_id: Uuid, upto: u64) -> Self {
        Self {
            org_id,
            first_seq: upto + 1,
            last_seq: upto,
            changes: Vec::new(),
        }
    }
}

/// Per-org broadcast channels.
#[derive(Clone, Default)]
pub struct ChangeHub {
    orgs: Arc<Mutex<HashMap<Uuid, broadcast::Sender<Arc<CommittedBatch>>>>>,
    /// Where local commits are announced to other server processes, once clustering runs.
    announcer: Arc<OnceLock<mpsc::UnboundedSender<(Uuid, u64)>>>,
    /// Set by [`Self::shut_down`].
    closed: Arc<std::sync::atomic::AtomicBool>,
    /// Tells connections still in their handshake (not subscribed yet) about the shutdown.
    shutdown: Arc<tokio::sync::watch::Sender<bool>>,
}

impl std::fmt::Debug for ChangeHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeHub").finish_non_exhaustive()
    }
}

impl ChangeHub {
    /// Receives every batch of `org_id` published from now on. After [`Self::shut_down`] the
    /// receiver is closed at once.
    pub fn subscribe(&self, org_id: Uuid) -> broadcast::Receiver<Arc<CommittedBatch>> {
        let mut orgs = self
            .orgs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return broadcast::channel(1).1;
        }
        orgs.entry(org_id)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Closes every org's channel: each sync session ends with close code 1013 ("server
    /// shutting down", reconnect elsewhere). Upgraded connections outlive the HTTP server's
    /// graceful shutdown, so this is how they learn of it.
    pub fn shut_down(&self) {
        let mut orgs = self
            .orgs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        orgs.clear();
        self.shutdown.send_replace(true);
    }

    /// Resolves once [`Self::shut_down`] was called.
    pub async fn until_shut_down(&self) {
        let mut shutdown = self.shutdown.subscribe();
        // Err: the sender is gone, which only happens when the hub itself is.
        let _ = shutdown.wait_for(|closed| *closed).await;
    }

    /// Announces local commits to `announcer` from now on (see [`crate::cluster`]).
    pub fn set_announcer(&self, announcer: mpsc::UnboundedSender<(Uuid, u64)>) {
        let _ = self.announcer.set(announcer);
    }

    /// Publishes a batch committed by this process to the org's connections, and announces it
    /// to other processes.
    pub fn publish(&self, batch: CommittedBatch) {
        if let Some(announcer) = self.announcer.get() {
            // Err only means clustering stopped (shutdown).
            let _ = announcer.send((batch.org_id, batch.last_seq));
        }
        self.publish_local(batch);
    }

    /// Publishes to this process's connections only (markers from other processes).
    pub fn publish_local(&self, batch: CommittedBatch) {
        let mut orgs = self
            .orgs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(sender) = orgs.get(&batch.org_id) {
            if sender.receiver_count() == 0 {
                // Nobody of this org is connected: drop the channel instead of buffering.
                orgs.remove(&batch.org_id);
            } else {
                // Err only means every receiver went away meanwhile.
                let _ = sender.send(Arc::new(batch));
            }
        }
    }
}
