//! Driving real replicas in tests: a client-core replica syncing with a test server, and waits
//! on what it holds.

use std::path::Path;
use std::time::Duration;

use client_core::TaskDraft;
use client_core::native::{NativeClient, SyncConfig};
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::schema::TASKS;
use uuid::Uuid;

use crate::{client_fields, postgres_fields};

/// How long a test waits for sync before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// Opens (or reopens) the replica at `path` and starts syncing it as `user`, retrying fast.
pub fn online(server: &TestServer, user: &TestUser, path: &Path) -> NativeClient {
    let mut config = SyncConfig::new(server.ws_url(), user.access_token.clone());
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(500);
    NativeClient::open(path, config).expect("open replica")
}

/// Waits until the replica holds the task.
pub async fn has_task(c: &NativeClient, id: Uuid) {
    c.wait_for(WAIT, |c| c.get_task(id).ok().flatten().is_some())
        .await
        .expect("task arrives");
}

/// Waits until the replica's task equals the row in Postgres.
pub async fn same_as_server(server: &TestServer, c: &NativeClient, id: Uuid) {
    let pg = postgres_fields(&server.db, &TASKS, id)
        .await
        .expect("read postgres")
        .expect("row in postgres");
    c.wait_for(WAIT, |c| {
        client_fields(c, &TASKS, id).ok().flatten().as_ref() == Some(&pg)
    })
    .await
    .unwrap_or_else(|e| panic!("replica never equalled the server for task {id}: {e:?}"));
}

/// Creates `todo` tasks with these titles and waits until the server acknowledged them all.
pub async fn create_tasks(c: &NativeClient, titles: &[&str]) -> Vec<Uuid> {
    let ids = titles
        .iter()
        .map(|title| {
            c.create_task(&TaskDraft::new(*title, "todo"))
                .expect("create")
        })
        .collect();
    c.wait_synced(WAIT).await.expect("tasks acknowledged");
    ids
}
