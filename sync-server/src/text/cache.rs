//! Recently written text documents, kept decoded (see [`crate::doc_cache`]). A push *takes* a
//! document out and it is *put* back only after the push committed: a yrs `Doc` is a shared
//! handle, so a rolled-back push must not leave its edits in the cache.

use yrs::Doc;

use crate::doc_cache::VersionedCache;

/// Text documents kept per process. Contract bodies are tens to hundreds of KB decoded.
pub const CAPACITY: usize = 512;

/// Text documents by `(org, document)`, valid for one row version; moved out with `take`.
pub type TextCache = VersionedCache<Doc>;
