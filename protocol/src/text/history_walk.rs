//! The redline walk: the body's nodes and text runs that are visible at either of two
//! snapshots, each labelled by item identity (see the `history` module).
//!
//! How: yrs's `diff_range(hi = to, lo = from)` over a branch lists, in document order, the items
//! visible at either snapshot, and labels text runs added (visible only at `to`) or removed
//! (visible only at `from`). Nodes (items holding a type) come without a label, so their
//! visibility is read from their item id. What `diff_range` cannot show is taken from the
//! document restored at the snapshot where the content was visible: the attributes of a node
//! (deleted nodes' attributes are deleted with them) and the formatting of deleted text (format
//! items are deleted with the text they span, and `diff_range` only applies those visible at
//! `to`).

use std::collections::BTreeMap;

use yrs::branch::{BranchID, BranchPtr};
use yrs::types::text::{ChangeKind, YChange};
use yrs::types::{Attrs, TypeRef};
use yrs::{Any, ID, Map, MapRef, Out, ReadTxn, Snapshot, Text, TransactionMut, XmlTextRef};

use super::BODY;
use super::MAX_DEPTH;
use super::render::{branch_of, entries};

/// How a piece of the body differs between the two revisions of a redline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// Present in both.
    Kept,
    /// Present only in the later (`to`) revision.
    Inserted,
    /// Present only in the earlier (`from`) revision.
    Deleted,
}

/// Formatting attributes (ProseMirror marks) of a run of text, without removed (`null`) ones.
pub type Marks = BTreeMap<String, Any>;

/// A run of text with one change and one set of marks.
#[derive(Debug, Clone, PartialEq)]
pub struct RedlineSpan {
    pub change: Change,
    pub text: String,
    pub marks: Marks,
}

/// A node (`XmlElement`) of the body: its ProseMirror type, attributes and content. The text
/// nodes (`XmlText`) inside it are flattened into its content as spans.
#[derive(Debug, Clone, PartialEq)]
pub struct RedlineNode {
    /// The ProseMirror node type, e.g. `paragraph`, `heading`, `bulletList`.
    pub tag: String,
    /// The node's attributes at the revision where it is visible (`to` unless deleted).
    pub attrs: BTreeMap<String, Any>,
    pub change: Change,
    pub content: Vec<RedlineContent>,
}

/// A piece of the body's or a node's content.
#[derive(Debug, Clone, PartialEq)]
pub enum RedlineContent {
    Node(RedlineNode),
    Text(RedlineSpan),
}

/// Walks the body of the document behind `txn` between two checked snapshots; `from_txn` and
/// `to_txn` read the document restored at each.
pub(super) fn walk<F: ReadTxn, U: ReadTxn>(
    txn: &mut TransactionMut,
    from: &Snapshot,
    to: &Snapshot,
    from_txn: &F,
    to_txn: &U,
) -> Vec<RedlineContent> {
    let Some(root) = BranchID::get_root(&*txn, BODY) else {
        return Vec::new();
    };
    let walk = Walk {
        from,
        to,
        from_txn,
        to_txn,
    };
    walk.children(txn, root, 0)
}

struct Walk<'a, F, U> {
    from: &'a Snapshot,
    to: &'a Snapshot,
    from_txn: &'a F,
    to_txn: &'a U,
}

fn visible(snapshot: &Snapshot, id: &ID) -> bool {
    snapshot.state_map.get(&id.client) > id.clock && !snapshot.delete_set.contains(id)
}

fn marks_of(attrs: Option<&Attrs>) -> Marks {
    attrs
        .into_iter()
        .flatten()
        .filter(|(_, v)| !matches!(v, Any::Null | Any::Undefined))
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn change_of(ychange: Option<&YChange>) -> Change {
    match ychange.map(|c| c.kind) {
        None => Change::Kept,
        Some(ChangeKind::Added) => Change::Inserted,
        Some(ChangeKind::Removed) => Change::Deleted,
    }
}

/// Appends a span, merging it into the previous one when change and marks are equal.
fn push_span(out: &mut Vec<RedlineContent>, change: Change, text: &str, marks: Marks) {
    if text.is_empty() {
        return;
    }
    if let Some(RedlineContent::Text(last)) = out.last_mut()
        && last.change == change
        && last.marks == marks
    {
        last.text.push_str(text);
        return;
    }
    out.push(RedlineContent::Text(RedlineSpan {
        change,
        text: text.to_owned(),
        marks,
    }));
}

impl<F: ReadTxn, U: ReadTxn> Walk<'_, F, U> {
    fn runs(
        &self,
        txn: &mut TransactionMut,
        branch: BranchPtr,
    ) -> Vec<yrs::types::text::Diff<YChange>> {
        XmlTextRef::from(branch).diff_range(txn, Some(self.to), Some(self.from), YChange::identity)
    }

    /// The content of a node list (the body or an element).
    fn children(
        &self,
        txn: &mut TransactionMut,
        branch: BranchPtr,
        depth: usize,
    ) -> Vec<RedlineContent> {
        let mut out = Vec::new();
        if depth > MAX_DEPTH {
            return out;
        }
        for run in self.runs(txn, branch) {
            let Some(child) = branch_of(&run.insert) else {
                // Strings directly in a node list (y-prosemirror never writes them) read as text.
                if let Out::Any(Any::String(s)) = &run.insert {
                    let marks = marks_of(run.attributes.as_deref());
                    push_span(&mut out, change_of(run.ychange.as_ref()), s, marks);
                }
                continue;
            };
            let BranchID::Nested(id) = child.id() else {
                continue;
            };
            let change = match (visible(self.from, &id), visible(self.to, &id)) {
                (true, true) => Change::Kept,
                (false, true) => Change::Inserted,
                (true, false) => Change::Deleted,
                (false, false) => continue,
            };
            match child.type_ref() {
                TypeRef::XmlText => self.text(txn, child, &id, change, &mut out),
                TypeRef::XmlElement(tag) => {
                    let node = RedlineNode {
                        tag: tag.to_string(),
                        attrs: self.attributes(&id, change),
                        change,
                        content: self.children(txn, child, depth + 1),
                    };
                    out.push(RedlineContent::Node(node));
                }
                // Types y-prosemirror never writes have no place in a redline.
                _ => {}
            }
        }
        out
    }

    /// The runs of a text node, appended to its parent's content.
    fn text(
        &self,
        txn: &mut TransactionMut,
        node: BranchPtr,
        id: &ID,
        change: Change,
        out: &mut Vec<RedlineContent>,
    ) {
        // The node's runs at `from`, to give deleted text the formatting it had then.
        let mut old = Aligner::default();
        if change != Change::Inserted
            && let Some(before) = BranchID::get_nested(self.from_txn, id)
        {
            old.runs = entries(self.from_txn, before)
                .into_iter()
                .filter_map(|r| match r.insert {
                    Out::Any(Any::String(s)) => {
                        Some((s.to_string(), marks_of(r.attributes.as_deref())))
                    }
                    _ => None,
                })
                .collect();
        }
        for run in self.runs(txn, node) {
            let Out::Any(Any::String(s)) = &run.insert else {
                continue; // embeds inside text: y-prosemirror never writes them
            };
            let marks = marks_of(run.attributes.as_deref());
            match change_of(run.ychange.as_ref()) {
                Change::Inserted => push_span(out, Change::Inserted, s, marks),
                Change::Kept => {
                    old.take(s, &marks);
                    push_span(out, Change::Kept, s, marks);
                }
                Change::Deleted => {
                    for (piece, marks) in old.take(s, &marks) {
                        push_span(out, Change::Deleted, &piece, marks);
                    }
                }
            }
        }
    }

    /// A node's attributes, read where it is visible.
    fn attributes(&self, id: &ID, change: Change) -> BTreeMap<String, Any> {
        fn read<T: ReadTxn>(txn: &T, id: &ID) -> BTreeMap<String, Any> {
            let Some(branch) = BranchID::get_nested(txn, id) else {
                return BTreeMap::new();
            };
            MapRef::from(branch)
                .iter(txn)
                .filter_map(|(k, v)| match v {
                    Out::Any(any) => Some((k.to_owned(), any)),
                    _ => None,
                })
                .collect()
        }
        match change {
            Change::Deleted => read(self.from_txn, id),
            Change::Kept | Change::Inserted => read(self.to_txn, id),
        }
    }
}

/// Lines up the kept and deleted runs of a text node with its runs at `from` (their text, in
/// order, is exactly the node's text at `from`), to read the formatting they had then.
#[derive(Default)]
struct Aligner {
    runs: Vec<(String, Marks)>,
    run: usize,
    /// Byte offset into `runs[run]`.
    at: usize,
    /// The texts stopped matching (not expected): later pieces keep their `to` formatting.
    lost: bool,
}

impl Aligner {
    /// Consumes `text` and returns it in pieces with their formatting at `from`, or with
    /// `fallback` where that cannot be read.
    fn take(&mut self, text: &str, fallback: &Marks) -> Vec<(String, Marks)> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let current = self.runs.get(self.run).filter(|_| !self.lost);
            let Some((old, marks)) = current else {
                self.lost = true;
                pieces.push((rest.to_owned(), fallback.clone()));
                break;
            };
            let available = old.get(self.at..).unwrap_or_default();
            if rest.starts_with(available) {
                pieces.push((available.to_owned(), marks.clone()));
                rest = &rest[available.len()..];
                self.run += 1;
                self.at = 0;
            } else if available.starts_with(rest) {
                pieces.push((rest.to_owned(), marks.clone()));
                self.at += rest.len();
                rest = "";
            } else {
                self.lost = true;
            }
        }
        pieces
    }
}
