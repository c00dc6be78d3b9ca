//! Recently written record documents, kept decoded (see [`crate::doc_cache`]).

use automerge::Automerge;

use crate::doc_cache::VersionedCache;

/// Documents kept per process. A task document is a few KB decoded; this bounds the cache to
/// tens of MB.
pub const CAPACITY: usize = 4096;

/// Record documents by `(org, document)`, valid for one row version; copied out with `get`.
pub type DocCache = VersionedCache<Automerge>;
