//! # sync-server
//!
//! The Syncline server. Clients connect over one multiplexed WebSocket (`/sync`), authenticate
//! with a JWT in their `Hello`, subscribe to scopes and push automerge changes. Every change is
//! checked against its collection schema, merged into the document stored in PostgreSQL, and
//! materialized into the collection's typed table in the same transaction that appends it to
//! the per-org change log under a gap-free sequence number. Committed changes fan out to every
//! connection of the org through an in-process [`hub`].
//!
//! Modules:
//! - [`config`], [`embedded_pg`], [`db`]: where the database comes from (a private PostgreSQL
//!   cluster by default, or `DATABASE_URL`), migrations.
//! - [`auth`]: accounts, argon2id passwords, JWT access tokens, rotating refresh tokens.
//! - [`ws`]: the sync protocol per connection; [`store`]: the SQL behind it.
//! - [`hub`], [`cluster`]: fan-out of commits to connections, in this process and across
//!   processes sharing the database.
//! - [`effects`]: the transactional outbox (domain events, audit rows) and its workers.
//! - [`app`]: the axum router; [`error`]: the one error type mapped to HTTP and WS codes.
//!
//! The server depends on `syncline-protocol` only, never on `client-core`.

pub mod app;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod awareness;
pub mod cluster;
pub mod config;
pub mod db;
pub mod doc_cache;
pub mod effects;
pub mod email;
pub mod embedded_pg;
pub mod error;
pub mod faults;
pub mod health;
pub mod hub;
pub mod merge;
pub mod notifications;
pub mod plain_errors;
pub mod rest;
pub mod revisions;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;
pub mod text;
pub mod webhooks;
pub mod ws;
pub mod yjs;

pub use app::{AppState, router};
pub use error::ServerError;
