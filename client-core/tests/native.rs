//! The native transport against a WebSocket server (the fake server behind tokio-tungstenite):
//! live sync between two clients, offline edits pushed on reconnect, close codes surfaced and
//! retried, token renewal, dropped connections, stop and restart from the file.
#![cfg(feature = "native")]

mod common;

use std::time::Duration;

use client_core::native::{NativeClient, SyncConfig};
use client_core::{Client, SyncEvent, SyncStatus, TaskDraft, TaskPatch};
use common::ws::WsServer;

const WAIT: Duration = Duration::from_secs(10);

fn config(server: &WsServer, token: &str) -> SyncConfig {
    let mut config = SyncConfig::new(server.url(), token);
    config.min_backoff = Duration::from_millis(20);
    config.max_backoff = Duration::from_millis(200);
    config
}

fn start(server: &WsServer, token: &str) -> (NativeClient, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let client = NativeClient::open(dir.path().join("replica.sqlite3"), config(server, token))
        .expect("open");
    (client, dir)
}

#[tokio::test]
async fn two_native_clients_sync_live() {
    common::init_tracing();
    let server = WsServer::start().await;
    let (a, _da) = start(&server, "good");
    let (b, _db) = start(&server, "good");
    a.wait_synced(WAIT).await.expect("a synced");
    b.wait_synced(WAIT).await.expect("b synced");

    let id = a
        .create_task(&TaskDraft::new("Live", "todo"))
        .expect("create");
    assert_eq!(
        a.state().pending,
        1,
        "published at once, so a wait cannot pass early"
    );
    a.wait_synced(WAIT).await.expect("a pushed");
    b.wait_for(WAIT, |c| c.get_task(id).ok().flatten().is_some())
        .await
        .expect("b received");

    let patch = TaskPatch {
        status: Some("done".into()),
        ..TaskPatch::default()
    };
    b.update_task(id, &patch).expect("update");
    a.wait_for(WAIT, |c| {
        c.get_task(id)
            .ok()
            .flatten()
            .is_some_and(|t| t.status == "done")
    })
    .await
    .expect("a received");
    b.wait_synced(WAIT).await.expect("b pushed");
    assert_eq!(a.get_task(id).expect("get"), b.get_task(id).expect("get"));
}

#[tokio::test]
async fn offline_edits_are_pushed_when_back_online() {
    let server = WsServer::start().await;
    let (a, _da) = start(&server, "good");
    a.wait_synced(WAIT).await.expect("synced");
    a.go_offline().await;
    assert_eq!(a.state().status, SyncStatus::Offline);
    let ids: Vec<_> = (0..5)
        .map(|i| {
            a.create_task(&TaskDraft::new(format!("Offline {i}"), "todo"))
                .expect("create")
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.state().pending, 5);
    assert_eq!(a.state().status, SyncStatus::Offline);
    assert!(
        server.with(|s| s.log.is_empty()),
        "nothing was sent while offline"
    );

    a.go_online();
    let state = a.wait_synced(WAIT).await.expect("synced");
    assert_eq!(state.sessions, 2);
    for id in ids {
        assert!(server.with(|s| s.record(id)).is_some());
    }
}

#[tokio::test]
async fn close_codes_are_surfaced_and_a_new_token_reconnects() {
    let server = WsServer::start().await;
    let (a, _da) = start(&server, "stale");
    let mut events = a.events();
    let state = a
        .wait_until(WAIT, |s| {
            s.last_error
                .as_ref()
                .is_some_and(|e| e.close_code == Some(4001))
        })
        .await
        .expect("4001 surfaced");
    assert_ne!(state.status, SyncStatus::Online);
    let disconnected = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(SyncEvent::Disconnected { close_code, .. }) = events.recv().await {
                return close_code;
            }
        }
    })
    .await
    .expect("event");
    assert_eq!(disconnected, Some(4001));
    // Still retrying with backoff: nothing is lost by a bad token.
    let id = a
        .create_task(&TaskDraft::new("Waits for auth", "todo"))
        .expect("create");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.state().pending, 1);

    a.set_token("good");
    let state = a
        .wait_synced(WAIT)
        .await
        .expect("synced after token renewal");
    assert!(state.last_error.is_none());
    assert!(server.with(|s| s.record(id)).is_some());
}

#[tokio::test]
async fn dropped_connections_reconnect_and_resend() {
    let server = WsServer::start().await;
    let (a, _da) = start(&server, "good");
    let (b, _db) = start(&server, "good");
    a.wait_synced(WAIT).await.expect("a");
    b.wait_synced(WAIT).await.expect("b");
    server.drop_connections();
    let id = a
        .create_task(&TaskDraft::new("Across a drop", "todo"))
        .expect("create");
    a.wait_until(WAIT, |s| s.sessions >= 2 && s.is_synced())
        .await
        .expect("a reconnected");
    b.wait_for(WAIT, |c| c.get_task(id).ok().flatten().is_some())
        .await
        .expect("b got it");
    assert!(b.state().sessions >= 2);
}

#[tokio::test]
async fn stop_and_restart_from_the_file() {
    let server = WsServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replica.sqlite3");
    let a = NativeClient::open(&path, config(&server, "good")).expect("open");
    a.wait_synced(WAIT).await.expect("synced");
    let first = a
        .create_task(&TaskDraft::new("Before stop", "todo"))
        .expect("create");
    a.wait_synced(WAIT).await.expect("synced");
    let shared = a.stop().await;
    let id = {
        let mut client = shared.lock().expect("lock");
        assert_eq!(client.sync_status(), SyncStatus::Offline);
        client
            .create_task(&TaskDraft::new("While stopped", "todo"))
            .expect("create")
    };
    drop(shared);

    let a = NativeClient::start(
        Client::open(&path).expect("reopen"),
        config(&server, "good"),
    );
    a.wait_synced(WAIT).await.expect("synced after restart");
    assert!(server.with(|s| s.record(id)).is_some());
    assert!(a.get_task(first).expect("get").is_some());
    // Resumed from the cursor: the server saw each mutation once, in order.
    let received: Vec<u64> = server.with(|s| s.received.iter().map(|m| m.seq).collect());
    assert_eq!(received, vec![1, 2]);
}

#[tokio::test]
async fn a_silent_server_is_detected_by_pings() {
    // Completes the WebSocket handshake, then never reads or writes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            if let Ok(ws) = tokio_tungstenite::accept_async(stream).await {
                held.push(ws);
            }
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = SyncConfig::new(format!("ws://{addr}/sync"), "good");
    config.ping_interval = Some(Duration::from_millis(100));
    config.min_backoff = Duration::from_millis(20);
    let a = NativeClient::open(dir.path().join("r.sqlite3"), config).expect("open");
    let state = a
        .wait_until(WAIT, |s| {
            s.last_error
                .as_ref()
                .is_some_and(|e| e.message.contains("no frame from the server"))
        })
        .await
        .expect("silence detected");
    assert_ne!(state.status, SyncStatus::Online);
    silent.abort();
}
