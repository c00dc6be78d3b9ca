//! Text documents on the server: the Yjs bodies of notes and business documents (collections
//! [`syncline_protocol::schema::TEXT_COLLECTIONS`]).
//!
//! A body has the id of its record, so every access rule, share and eviction of the record
//! applies to it unchanged; it can only be written once its record exists. A pushed Yjs update
//! goes through the same `Push` transaction as record changes (`crate::merge`, its `text`
//! module): the user's
//! relation to the document gives their [`TextRole`](syncline_protocol::text::TextRole), and
//! [`syncline_protocol::text::authorize_update`] judges the update (viewers write nothing,
//! suggesters only suggest) before it is applied to the server's copy. Accepted updates are
//! appended to `text_updates` and folded into one snapshot every
//! [`store::COMPACT_AFTER`] updates ([`store`]); the body's plain text is kept current in
//! `text_documents.plain_text` for search.
//!
//! The server's copy never garbage-collects deleted content (`skip_gc`), so that revisions
//! (Yjs snapshots) can later be rendered and compared by item identity.

pub mod cache;
pub mod store;

use yrs::{Doc, OffsetKind, Options};

/// A new document with the options of the server's copies: deleted content kept (revisions
/// need it), UTF-16 offsets like JavaScript editors, and no formatting cleanup (a suggester's
/// marks must stay exactly as sent).
pub fn server_doc() -> Doc {
    Doc::with_options(Options {
        skip_gc: true,
        offset_kind: OffsetKind::Utf16,
        cleanup_formatting: false,
        ..Options::default()
    })
}
