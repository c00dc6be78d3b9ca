//! Accepting and rejecting suggestions, as ordinary Yjs edits in the caller's transaction (an
//! editor's action: the resulting update is pushed and authorized like any other).
//!
//! - Accepting an insertion removes its [`INSERTION`] mark (and a suggested node's `insertion`
//!   attribute); accepting a deletion deletes the marked text.
//! - Rejecting an insertion deletes the marked text (and suggested nodes); rejecting a deletion
//!   removes its [`DELETION`] mark.
//!
//! Text carrying both marks (an insertion someone else suggested deleting) is deleted when the
//! deletion is accepted or the insertion rejected. Positions are computed from the body's
//! formatted runs; a node holding list values no editor displays (which would shift them) is
//! left untouched, so resolving never panics on a valid document.

use std::collections::BTreeMap;
use std::sync::Arc;

use yrs::branch::{BranchID, BranchPtr};
use yrs::types::{Attrs, TypeRef};
use yrs::{Any, OffsetKind, Out, Text, TransactionMut, Xml, XmlElementRef, XmlFragment};
use yrs::{XmlFragmentRef, XmlTextRef};

use super::marks::{has_attr, mark_in, mark_of_out};
use super::render::{branch_of, entries, hidden, units};
use super::{BODY, DELETION, INSERTION, MAX_DEPTH, SuggestionMark};

/// Accepts every suggestion in the body. Returns the number of edits made.
pub fn accept_all(txn: &mut TransactionMut) -> usize {
    resolve(txn, Decision::Accept, None)
}

/// Rejects every suggestion in the body. Returns the number of edits made.
pub fn reject_all(txn: &mut TransactionMut) -> usize {
    resolve(txn, Decision::Reject, None)
}

/// Accepts the suggestions carrying `mark` (one author's change at one time), as insertion or
/// deletion. Returns the number of edits made.
pub fn accept_suggestion(txn: &mut TransactionMut, mark: &SuggestionMark) -> usize {
    resolve(txn, Decision::Accept, Some(mark))
}

/// Rejects the suggestions carrying `mark`. Returns the number of edits made.
pub fn reject_suggestion(txn: &mut TransactionMut, mark: &SuggestionMark) -> usize {
    resolve(txn, Decision::Reject, Some(mark))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    Accept,
    Reject,
}

/// One planned edit; text edits are by position in the node's own offset units.
#[derive(Debug)]
enum Edit {
    DeleteText {
        index: u32,
        len: u32,
    },
    Unmark {
        index: u32,
        len: u32,
        key: &'static str,
    },
    DeleteChild {
        index: u32,
    },
    RemoveNodeMark,
}

struct Plan<'m> {
    decision: Decision,
    only: Option<&'m SuggestionMark>,
    kind: OffsetKind,
    /// Edits per node, in increasing position.
    edits: BTreeMap<BranchID, (BranchPtr, Vec<Edit>)>,
}

impl Plan<'_> {
    /// Whether `value` is a suggestion mark this resolution is about.
    fn selects(&self, value: Option<&Attrs>, key: &str) -> bool {
        match self.only {
            None => has_attr(value, key),
            Some(mark) => mark_in(value, key).as_ref() == Some(mark),
        }
    }

    fn push(&mut self, node: BranchPtr, edit: Edit) {
        self.edits
            .entry(node.id())
            .or_insert_with(|| (node, Vec::new()))
            .1
            .push(edit);
    }

    fn visit(&mut self, txn: &TransactionMut, node: BranchPtr, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let runs = entries(txn, node);
        if hidden(node, &runs, self.kind) != 0 {
            return;
        }
        let is_text = matches!(node.type_ref(), TypeRef::XmlText);
        let mut index = 0u32;
        for run in &runs {
            let len = units(&run.insert, self.kind);
            let attrs = run.attributes.as_deref();
            if let Some(child) = branch_of(&run.insert) {
                let node_mark = matches!(child.type_ref(), TypeRef::XmlElement(_))
                    .then(|| XmlElementRef::from(child).get_attribute(txn, INSERTION))
                    .flatten();
                let selected = node_mark.as_ref().is_some_and(|value| match self.only {
                    None => !matches!(value, Out::Any(Any::Null | Any::Undefined)),
                    Some(mark) => mark_of_out(value).as_ref() == Some(mark),
                });
                match (selected, self.decision) {
                    (true, Decision::Reject) => self.push(node, Edit::DeleteChild { index }),
                    (true, Decision::Accept) => {
                        self.push(child, Edit::RemoveNodeMark);
                        self.visit(txn, child, depth + 1);
                    }
                    (false, _) => self.visit(txn, child, depth + 1),
                }
            } else if is_text && len > 0 {
                let inserted = self.selects(attrs, INSERTION);
                let deleted = self.selects(attrs, DELETION);
                let edit = match self.decision {
                    Decision::Accept if deleted => Some(Edit::DeleteText { index, len }),
                    Decision::Accept if inserted => Some(Edit::Unmark {
                        index,
                        len,
                        key: INSERTION,
                    }),
                    Decision::Reject if inserted => Some(Edit::DeleteText { index, len }),
                    Decision::Reject if deleted => Some(Edit::Unmark {
                        index,
                        len,
                        key: DELETION,
                    }),
                    _ => None,
                };
                if let Some(edit) = edit {
                    self.push(node, edit);
                }
            }
            index = index.saturating_add(len);
        }
    }
}

fn resolve(txn: &mut TransactionMut, decision: Decision, only: Option<&SuggestionMark>) -> usize {
    let Some(root) = BranchID::get_root(txn, BODY) else {
        return 0;
    };
    let mut plan = Plan {
        decision,
        only,
        kind: txn.doc().offset_kind(),
        edits: BTreeMap::new(),
    };
    plan.visit(txn, root, 0);
    let mut count = 0;
    for (node, edits) in plan.edits.into_values() {
        // Back to front, so that earlier positions stay valid.
        for edit in edits.into_iter().rev() {
            count += 1;
            match edit {
                Edit::DeleteText { index, len } => {
                    XmlTextRef::from(node).remove_range(txn, index, len);
                }
                Edit::Unmark { index, len, key } => {
                    let unset = Attrs::from([(Arc::from(key), Any::Null)]);
                    XmlTextRef::from(node).format(txn, index, len, unset);
                }
                Edit::DeleteChild { index } => {
                    XmlFragmentRef::from(node).remove_range(txn, index, 1);
                }
                Edit::RemoveNodeMark => {
                    XmlElementRef::from(node).remove_attribute(txn, &INSERTION);
                }
            }
        }
    }
    count
}
