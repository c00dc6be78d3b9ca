//! Collaborative text documents (note and contract bodies): Yjs documents (yrs) edited by stock
//! TipTap/ProseMirror editors through y-prosemirror, with tracked changes ("redlines") that the
//! server enforces. Everything here is pure and IO-free, so the server (authoritative) and
//! clients (optimistic, offline) share it.
//!
//! # Conventions
//!
//! - The body is the `XmlFragment` named [`BODY`] (`"prosemirror"`, y-prosemirror's default;
//!   TipTap's Collaboration extension must be configured with `field: "prosemirror"`). Block nodes
//!   are `XmlElement`s named after the ProseMirror node type, their attributes are the node's
//!   attributes, and runs of text are `XmlText`s whose formatting attributes are the marks.
//! - Tracked changes are ProseMirror marks, which y-prosemirror stores as formatting attributes
//!   whose value is the mark's attributes: a suggested insertion carries [`INSERTION`] and a
//!   suggested deletion [`DELETION`], each valued `{"author": <user uuid>, "time": <unix ms>}`
//!   (see [`SuggestionMark`]). Both marks must be declared non-overlapping in the schema (the
//!   default), otherwise y-prosemirror suffixes the attribute key with a hash.
//! - A suggested new block node carries a node attribute [`INSERTION`] with the same value.
//!
//! # Contents
//!
//! - [`authorize_update`] judges a pushed Yjs update against the user's [`TextRole`];
//!   [`check_update_v1`] is its first step, which every yrs decoding of client bytes needs.
//! - [`plain_text`] extracts the body's text for search.
//! - [`accept_all`], [`reject_all`], [`accept_suggestion`], [`reject_suggestion`] resolve tracked
//!   changes as ordinary Yjs edits, and [`suggestions`] lists them.
//!
//! # Limits of what a suggester can express
//!
//! Yjs has no move, so splitting, joining or re-typing a block (e.g. paragraph → heading) deletes
//! and re-creates content: a real deletion, refused for suggesters. A suggester can insert and
//! mark text, and insert whole new nodes that carry the [`INSERTION`] node attribute; structural
//! suggestions need an editor. Content y-prosemirror never writes (embeds or shared types inside
//! text nodes, values in node lists, list values `diff` cannot show, other root types) cannot be
//! judged and refuses a suggester's update that touches it ([`Violation::Unsupported`]).
//! Formatting attributes on node lists (meaningless to ProseMirror) are not judged.

mod authorize;
mod extract;
mod history;
mod history_html;
mod history_walk;
mod marks;
mod nesting;
mod render;
mod resolve;
mod runs;
mod tree;
mod wire;

#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests_clients;
#[cfg(test)]
mod tests_random;
#[cfg(test)]
mod tests_resolve;

pub use authorize::{EditorUpdate, apply_editor_update, authorize_update};
pub use extract::{Suggestion, SuggestionKind, plain_text, plain_text_in, suggestions};
pub use history::{
    HistoryError, decode_snapshot, html_at, redline, redline_html, snapshot_of, text_at,
};
pub use history_walk::{Change, Marks, RedlineContent, RedlineNode, RedlineSpan};
pub use marks::SuggestionMark;
pub use resolve::{accept_all, accept_suggestion, reject_all, reject_suggestion};
pub use wire::check_update_v1;

use crate::codes::ErrorCode;
use crate::rules::Relation;

/// Name of the root `XmlFragment` that holds a text document's body (y-prosemirror's default).
pub const BODY: &str = "prosemirror";

/// Formatting attribute (ProseMirror mark) of text suggested for insertion, and node attribute
/// of a block node suggested for insertion.
pub const INSERTION: &str = "insertion";

/// Formatting attribute (ProseMirror mark) of existing text suggested for deletion.
pub const DELETION: &str = "deletion";

/// Key of the suggesting user's id (a UUID string) inside a suggestion mark's value.
pub const MARK_AUTHOR: &str = "author";

/// Key of the suggestion's time (unix milliseconds) inside a suggestion mark's value.
pub const MARK_TIME: &str = "time";

/// Deepest nesting of shared types (and of `Any` values) accepted (ProseMirror documents rarely
/// exceed ten levels): [`authorize_update`] refuses updates that exceed it, for every role, with
/// [`ErrorCode::TooLarge`], because yrs deletes nested types recursively and would overflow the
/// stack on deep chains; the readers here stop descending below it.
pub const MAX_DEPTH: usize = 64;

/// What a user may do to a text document, derived from their [`Relation`] to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TextRole {
    /// May read only: any update that changes the document is refused.
    Viewer,
    /// May only add suggestions: insertions marked [`INSERTION`] and [`DELETION`] marks on
    /// existing text, both authored by themselves (and withdraw their own suggestions).
    Suggester,
    /// May change anything, including accepting and rejecting suggestions.
    Editor,
}

impl From<Relation> for TextRole {
    fn from(relation: Relation) -> Self {
        match relation {
            Relation::Viewer | Relation::Commenter => Self::Viewer,
            Relation::Suggester => Self::Suggester,
            Relation::Editor | Relation::Owner => Self::Editor,
        }
    }
}

/// The rule a refused update broke; stable, for tests and for the client's explanation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Violation {
    /// A viewer's update changes the document.
    ReadOnly,
    /// A suggester's update deletes existing content (other than their own suggested insertions).
    Deletion,
    /// A suggester's update inserts content without their own insertion mark.
    UnmarkedInsertion,
    /// A suggester's update changes formatting other than adding or withdrawing their own
    /// deletion mark (bold, other users' marks, ...).
    Formatting,
    /// A suggester's update changes the attributes of an existing node.
    NodeAttributes,
    /// A suggester's update writes outside the body, or content y-prosemirror never produces
    /// (embeds, non-XML types, values in node lists), which cannot be judged as a suggestion.
    Unsupported,
}

/// Why an update to a text document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct TextRefusal {
    /// [`ErrorCode::Forbidden`] for a broken rule, [`ErrorCode::InvalidChange`] for an update
    /// that does not decode or integrate, [`ErrorCode::MissingDependency`] for one that needs
    /// changes the document does not have, [`ErrorCode::TooLarge`] for nesting beyond
    /// [`MAX_DEPTH`].
    pub code: ErrorCode,
    /// The broken rule, for [`ErrorCode::Forbidden`].
    pub violation: Option<Violation>,
    /// A human-readable explanation.
    pub message: String,
}

impl TextRefusal {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            violation: None,
            message: message.into(),
        }
    }

    pub(crate) fn forbidden(violation: Violation, message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::Forbidden,
            violation: Some(violation),
            message: message.into(),
        }
    }

    pub(crate) fn too_deep() -> Self {
        Self::new(
            ErrorCode::TooLarge,
            format!("text document nests nodes deeper than {MAX_DEPTH} levels"),
        )
    }
}
