//! Shared test helpers: a simulated server that speaks the sync protocol in memory
//! ([`server::FakeServer`]), a driver that moves messages between it and several clients
//! ([`sim::Sim`]), and a WebSocket front for it ([`ws::WsServer`]) to test the native transport.
#![allow(dead_code)]

pub mod server;
pub mod sim;
#[cfg(feature = "native")]
pub mod ws;

use std::path::PathBuf;

use client_core::{Client, FieldValue};

/// A replica in a fresh temporary directory (kept alive by the returned guard).
pub fn temp_client() -> (Client, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("replica.sqlite3");
    let client = Client::open(&path).expect("open replica");
    (client, path, dir)
}

pub fn s(value: &str) -> FieldValue {
    FieldValue::String(value.to_owned())
}

/// Logs at `RUST_LOG` level when set, to debug a failing test.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A new note record (a body needs its record first).
pub fn note(client: &mut Client, title: &str) -> uuid::Uuid {
    client.create("notes", [("title", s(title))]).expect("note")
}

/// Tells a replica who its user is, as a server's `Welcome` does.
pub fn welcome(client: &mut Client, user_id: uuid::Uuid) {
    client
        .handle(client_core::ServerMessage::Welcome {
            protocol_version: syncline_protocol::PROTOCOL_VERSION,
            user_id,
            org_id: uuid::Uuid::from_u128(7),
            session_expires_at: 0,
        })
        .expect("welcome");
}
