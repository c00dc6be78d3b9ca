//! Authorization: who may read and write which document.
//!
//! - [`model`]: an org's roles, teams and relation tuples, and the relation they give a user on
//!   a document (viewer < commenter < suggester < editor < owner).
//! - [`cache`]: that model per org in memory, invalidated by every change to it.
//! - [`changes`]: changing roles, teams and tuples; each change is also logged in the change
//!   log (collection `_acl`) so that connections, live or resuming, evict what a user may no
//!   longer read and send what they now may.
//! - [`fresh`]: an org transaction with a model current for it (the write paths).
//! - [`routes`]: the HTTP endpoints for sharing, teams, members and invitations.
//!
//! Field-level rules and the decoding of which fields a change touches live in
//! `syncline_protocol::rules`, shared with clients.

pub mod cache;
pub mod changes;
pub mod fresh;
pub mod model;
pub mod routes;

pub use cache::AclCache;
pub use model::{OrgAcl, Subject};
