//! [`TextEditor`]: edits of one text document inside one Yjs transaction, which becomes one
//! pending mutation. Positions are flat (see the `body` module): UTF-16 code units of the
//! body's plain text, one position between consecutive blocks.
//!
//! Every method checks its positions before touching the document (yrs panics on positions
//! out of range) and returns [`ClientError::InvalidPosition`] instead.

use std::sync::Arc;

use syncline_protocol::text::{
    DELETION, INSERTION, Suggestion, SuggestionMark, accept_all, accept_suggestion, plain_text_in,
    reject_all, reject_suggestion, suggestions,
};
use uuid::Uuid;
use yrs::types::Attrs;
use yrs::types::text::YChange;
use yrs::{
    Any, Out, Text, TransactionMut, XmlElementPrelim, XmlFragment, XmlFragmentRef, XmlTextPrelim,
    XmlTextRef,
};

use super::body::{self, InsertAt, Span};
use crate::clock::now_millis;
use crate::error::{ClientError, Result};

/// Edits one text document within one transaction (see [`crate::TextDoc::edit`]).
pub struct TextEditor<'t, 'doc> {
    pub(crate) txn: &'t mut TransactionMut<'doc>,
    pub(crate) body: XmlFragmentRef,
    pub(crate) doc_id: Uuid,
    /// The welcomed user, author of suggestions.
    pub(crate) user: Option<Uuid>,
    /// Time of the last suggestion mark this replica made: a mark (author, time) identifies a
    /// suggestion, so two suggestions within one millisecond must still differ.
    pub(crate) last_mark: i64,
}

impl std::fmt::Debug for TextEditor<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextEditor")
            .field("doc_id", &self.doc_id)
            .finish_non_exhaustive()
    }
}

/// Attributes that keep suggestion marks of neighbouring text off newly inserted text (yrs
/// would otherwise extend the mark on the left over it, making an edit look like someone's
/// suggestion). A null for a mark that is not in effect costs nothing.
fn without_suggestion_marks() -> Attrs {
    Attrs::from([
        (Arc::from(INSERTION), Any::Null),
        (Arc::from(DELETION), Any::Null),
    ])
}

impl TextEditor<'_, '_> {
    /// The body's length in flat positions.
    pub fn len(&self) -> u32 {
        body::flat_len(&body::blocks(&*self.txn, &self.body))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body's plain text as it stands in this transaction.
    pub fn text(&self) -> String {
        plain_text_in(&*self.txn)
    }

    /// Open suggestions as they stand in this transaction.
    pub fn suggestions(&self) -> Vec<Suggestion> {
        suggestions(&*self.txn)
    }

    fn invalid(&self, message: String) -> ClientError {
        ClientError::InvalidPosition {
            doc_id: self.doc_id,
            message,
        }
    }

    /// Inserts `text` at flat position `pos` with the formatting in effect there, except
    /// suggestion marks. A `"\n"` in `text` is a character, not a new paragraph (see
    /// [`Self::insert_paragraph`]).
    pub fn insert(&mut self, pos: u32, text: &str) -> Result<()> {
        self.insert_with(pos, text, without_suggestion_marks())
    }

    fn insert_with(&mut self, pos: u32, text: &str, attrs: Attrs) -> Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let blocks = body::blocks(&*self.txn, &self.body);
        let at = body::locate_insert(&blocks, pos).ok_or_else(|| {
            self.invalid(format!(
                "position {pos} is outside the text (length {}) or inside an inline node",
                body::flat_len(&blocks)
            ))
        })?;
        let (node, offset) = match at {
            InsertAt::Text(node, offset) => (node, offset),
            InsertAt::NewText(element, index) => {
                (element.insert(self.txn, index, XmlTextPrelim::new("")), 0)
            }
            InsertAt::NewParagraph => {
                let paragraph = self
                    .body
                    .push_back(self.txn, XmlElementPrelim::empty("paragraph"));
                (paragraph.push_back(self.txn, XmlTextPrelim::new("")), 0)
            }
        };
        node.insert_with_attributes(self.txn, offset, text, attrs);
        Ok(())
    }

    /// Deletes `len` positions from `pos`. Block separators in the range stay (paragraphs are
    /// not joined); inline atoms entirely in the range are deleted.
    pub fn delete(&mut self, pos: u32, len: u32) -> Result<()> {
        for span in self.spans(pos, len)?.into_iter().rev() {
            match span {
                Span::Text { node, offset, len } => node.remove_range(self.txn, offset, len),
                Span::Atom { element, index } => element.remove_range(self.txn, index, 1),
            }
        }
        Ok(())
    }

    fn spans(&self, pos: u32, len: u32) -> Result<Vec<Span>> {
        let blocks = body::blocks(&*self.txn, &self.body);
        body::spans(&blocks, pos, len).ok_or_else(|| {
            self.invalid(format!(
                "range {pos}+{len} is outside the text (length {})",
                body::flat_len(&blocks)
            ))
        })
    }

    /// Sets the mark (formatting attribute) `mark` to `value` on the text of a range, or
    /// removes it (`None`). A ProseMirror mark without attributes (bold, italic) is an empty
    /// map: `Any::Map(Default::default())`.
    pub fn format(&mut self, pos: u32, len: u32, mark: &str, value: Option<Any>) -> Result<()> {
        let attrs = Attrs::from([(Arc::from(mark), value.unwrap_or(Any::Null))]);
        for span in self.spans(pos, len)? {
            if let Span::Text { node, offset, len } = span {
                node.format(self.txn, offset, len, attrs.clone());
            }
        }
        Ok(())
    }

    /// Inserts a paragraph holding `text` as child `index` of the body (0 = first).
    pub fn insert_paragraph(&mut self, index: u32, text: &str) -> Result<()> {
        let count = self.body.len(&*self.txn);
        if index > count {
            return Err(self.invalid(format!(
                "paragraph index {index} is past the body's {count} nodes"
            )));
        }
        let paragraph = self
            .body
            .insert(self.txn, index, XmlElementPrelim::empty("paragraph"));
        let node = paragraph.push_back(self.txn, XmlTextPrelim::new(""));
        node.insert(self.txn, 0, text);
        Ok(())
    }

    fn new_mark(&mut self) -> Result<SuggestionMark> {
        let user = self.user.ok_or(ClientError::NoSession)?;
        self.last_mark = now_millis().max(self.last_mark.saturating_add(1));
        Ok(SuggestionMark::new(user, self.last_mark))
    }

    /// Inserts `text` at `pos` as this user's suggested insertion. Returns its mark.
    pub fn suggest_insert(&mut self, pos: u32, text: &str) -> Result<SuggestionMark> {
        let mark = self.new_mark()?;
        let attrs = Attrs::from([
            (Arc::from(INSERTION), mark.to_any()),
            (Arc::from(DELETION), Any::Null),
        ]);
        self.insert_with(pos, text, attrs)?;
        Ok(mark)
    }

    /// Suggests deleting a range: marks its text as this user's suggested deletion. Text that
    /// is this user's own suggested insertion is deleted outright (the suggestion withdrawn),
    /// and text already suggested for deletion keeps its mark. Returns the new mark.
    pub fn suggest_delete(&mut self, pos: u32, len: u32) -> Result<SuggestionMark> {
        let mark = self.new_mark()?;
        let marked = Attrs::from([(Arc::from(DELETION), mark.to_any())]);
        for span in self.spans(pos, len)?.into_iter().rev() {
            let Span::Text { node, offset, len } = span else {
                continue;
            };
            for (start, n, action) in run_actions(&*self.txn, &node, offset, len, mark.author)
                .into_iter()
                .rev()
            {
                match action {
                    RunAction::Withdraw => node.remove_range(self.txn, start, n),
                    RunAction::Mark => node.format(self.txn, start, n, marked.clone()),
                }
            }
        }
        Ok(mark)
    }

    /// Accepts every suggestion; returns the number of edits made.
    pub fn accept_all(&mut self) -> usize {
        accept_all(self.txn)
    }

    /// Rejects every suggestion; returns the number of edits made.
    pub fn reject_all(&mut self) -> usize {
        reject_all(self.txn)
    }

    /// Accepts the suggestions carrying `mark`; returns the number of edits made.
    pub fn accept(&mut self, mark: &SuggestionMark) -> usize {
        accept_suggestion(self.txn, mark)
    }

    /// Rejects the suggestions carrying `mark`; returns the number of edits made.
    pub fn reject(&mut self, mark: &SuggestionMark) -> usize {
        reject_suggestion(self.txn, mark)
    }
}

/// What a suggested deletion does to one run of text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunAction {
    /// The user's own suggested insertion: deleted.
    Withdraw,
    /// Marked as suggested for deletion.
    Mark,
}

/// The runs of `node` inside `[offset, offset + len)` and what a suggested deletion by `user`
/// does to each, as (start, length, action), in order.
fn run_actions<T: yrs::ReadTxn>(
    txn: &T,
    node: &XmlTextRef,
    offset: u32,
    len: u32,
    user: Uuid,
) -> Vec<(u32, u32, RunAction)> {
    let end = offset + len;
    let mut out = Vec::new();
    let mut start = 0u32;
    for run in node.diff(txn, YChange::identity) {
        let run_len = match &run.insert {
            Out::Any(Any::String(s)) => u32::try_from(s.encode_utf16().count()).unwrap_or(u32::MAX),
            _ => 1,
        };
        let (from, to) = (offset.max(start), end.min(start.saturating_add(run_len)));
        if from < to {
            let attrs = run.attributes.as_deref();
            let mark_of = |key: &str| {
                attrs
                    .and_then(|a| a.get(key))
                    .filter(|v| !matches!(v, Any::Null | Any::Undefined))
            };
            let own_insertion = mark_of(INSERTION)
                .and_then(SuggestionMark::parse)
                .is_some_and(|m| m.author == user);
            if own_insertion {
                out.push((from, to - from, RunAction::Withdraw));
            } else if mark_of(DELETION).is_none() {
                out.push((from, to - from, RunAction::Mark));
            }
        }
        start = start.saturating_add(run_len);
        if start >= end {
            break;
        }
    }
    out
}
