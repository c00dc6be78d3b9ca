//! The native transport (feature `native`): a tokio task that keeps one WebSocket to the sync
//! server, drives the IO-free state machine of [`crate::sync`] with it, and reconnects with
//! exponential backoff and jitter whenever the connection drops.
//!
//! - [`SyncHandle`]: the running sync loop (`spawn`, `notify_local_change`, state and event
//!   channels, token updates, going offline/online, `stop`).
//! - [`NativeClient`]: a shareable client that owns a handle and notifies it after each write;
//!   the easiest way to drive real clients from tests and benchmarks.
//! - [`run`]: the loop itself; [`backoff`]: reconnect delays.

mod backoff;
mod client;
mod handle;
mod run;

pub use backoff::Backoff;
pub use client::NativeClient;
pub use handle::{ConnectionState, SyncConfig, SyncHandle, WaitTimeout};
