//! Reading a text document's body: its plain text (for search and previews) and its open
//! suggestions (for review lists). Both tolerate any document, including content y-prosemirror
//! never writes, and stop descending at [`MAX_DEPTH`].

use yrs::branch::{BranchID, BranchPtr};
use yrs::types::TypeRef;
use yrs::{Any, Doc, Out, ReadTxn, Transact, Xml, XmlElementRef};

use super::marks::{mark_in, mark_of_out};
use super::render::{branch_of, entries};
use super::{BODY, DELETION, INSERTION, MAX_DEPTH, SuggestionMark};

/// Inline nodes that read as a line break.
const BREAKS: [&str; 2] = ["hardBreak", "hard_break"];

/// Inline nodes without text (a block holding only these is still a text block).
const INLINE_ATOMS: [&str; 5] = ["hardBreak", "hard_break", "image", "mention", "emoji"];

/// Leaf block nodes, which contribute no text (not even an empty line).
const LEAF_BLOCKS: [&str; 2] = ["horizontalRule", "horizontal_rule"];

/// The plain text of `doc`'s body, for search: text blocks (paragraphs, headings, list items'
/// paragraphs, ...) separated by `"\n"`, like ProseMirror's `textBetween(.., "\n")`; hard breaks
/// read as `"\n"`; marks and attributes are ignored. Text suggested for deletion is still text
/// (it is in the document until an editor accepts the deletion), and suggested insertions are
/// included too.
///
/// Opens a read transaction: do not call while this thread holds a write transaction on `doc`.
pub fn plain_text(doc: &Doc) -> String {
    plain_text_in(&doc.transact())
}

/// [`plain_text`] within an open transaction.
pub fn plain_text_in<T: ReadTxn>(txn: &T) -> String {
    let mut out = PlainText::default();
    if let Some(root) = BranchID::get_root(txn, BODY) {
        out.blocks(txn, root, 0);
    }
    out.text
}

#[derive(Default)]
struct PlainText {
    text: String,
    started: bool,
}

impl PlainText {
    fn start_block(&mut self) {
        if self.started {
            self.text.push('\n');
        }
        self.started = true;
    }

    fn blocks<T: ReadTxn>(&mut self, txn: &T, branch: BranchPtr, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for run in entries(txn, branch) {
            match (&run.insert, branch_of(&run.insert)) {
                (Out::Any(Any::String(s)), _) => {
                    self.start_block();
                    self.text.push_str(s);
                }
                (_, Some(child)) => match child.type_ref() {
                    TypeRef::XmlText => {
                        self.start_block();
                        self.inline(txn, child, depth + 1);
                    }
                    TypeRef::XmlElement(tag) if LEAF_BLOCKS.contains(&tag.as_ref()) => {}
                    TypeRef::XmlElement(_) if is_text_block(txn, child) => {
                        self.start_block();
                        self.inline(txn, child, depth + 1);
                    }
                    _ => self.blocks(txn, child, depth + 1),
                },
                _ => {}
            }
        }
    }

    fn inline<T: ReadTxn>(&mut self, txn: &T, branch: BranchPtr, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        for run in entries(txn, branch) {
            match (&run.insert, branch_of(&run.insert)) {
                (Out::Any(Any::String(s)), _) => self.text.push_str(s),
                (_, Some(child)) => match child.type_ref() {
                    TypeRef::XmlElement(tag) if BREAKS.contains(&tag.as_ref()) => {
                        self.text.push('\n');
                    }
                    _ => self.inline(txn, child, depth + 1),
                },
                _ => {}
            }
        }
    }
}

/// Whether an element holds inline content (text, or only inline atoms, or nothing) rather than
/// other blocks.
fn is_text_block<T: ReadTxn>(txn: &T, element: BranchPtr) -> bool {
    entries(txn, element)
        .iter()
        .all(|run| match (&run.insert, branch_of(&run.insert)) {
            (Out::Any(_), _) => true,
            (_, Some(child)) => match child.type_ref() {
                TypeRef::XmlText => true,
                TypeRef::XmlElement(tag) => INLINE_ATOMS.contains(&tag.as_ref()),
                _ => false,
            },
            _ => false,
        })
}

/// Kind of an open suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SuggestionKind {
    /// Text suggested for insertion.
    Insertion,
    /// Text suggested for deletion.
    Deletion,
    /// A node suggested for insertion (its `insertion` attribute); the suggestion's `text` is the
    /// node's type, e.g. `paragraph`.
    NodeInsertion,
}

/// One open suggestion: a run of text carrying a well-formed suggestion mark, or a node carrying
/// a well-formed `insertion` attribute. Adjacent runs of one text node with the same kind and
/// mark are merged; the same mark may appear several times (e.g. across paragraphs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion {
    pub kind: SuggestionKind,
    pub mark: SuggestionMark,
    pub text: String,
}

/// The open suggestions of the body, in document order (a suggested node before its content).
pub fn suggestions<T: ReadTxn>(txn: &T) -> Vec<Suggestion> {
    let mut found = Vec::new();
    if let Some(root) = BranchID::get_root(txn, BODY) {
        collect(txn, root, &mut found, 0);
    }
    found
}

fn collect<T: ReadTxn>(txn: &T, branch: BranchPtr, found: &mut Vec<Suggestion>, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    // Open runs of this node, so that adjacent runs with one mark merge.
    let mut open: [Option<usize>; 2] = [None, None];
    for run in entries(txn, branch) {
        if let Some(child) = branch_of(&run.insert) {
            open = [None, None];
            if let TypeRef::XmlElement(tag) = child.type_ref() {
                let mark = XmlElementRef::from(child)
                    .get_attribute(txn, INSERTION)
                    .as_ref()
                    .and_then(mark_of_out);
                if let Some(mark) = mark {
                    found.push(Suggestion {
                        kind: SuggestionKind::NodeInsertion,
                        mark,
                        text: tag.to_string(),
                    });
                }
            }
            collect(txn, child, found, depth + 1);
            continue;
        }
        let Out::Any(Any::String(s)) = &run.insert else {
            open = [None, None];
            continue;
        };
        let attrs = run.attributes.as_deref();
        for (slot, (kind, key)) in [
            (SuggestionKind::Insertion, INSERTION),
            (SuggestionKind::Deletion, DELETION),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(mark) = mark_in(attrs, key) else {
                open[slot] = None;
                continue;
            };
            match open[slot].and_then(|i| found.get_mut(i)) {
                Some(last) if last.mark == mark => last.text.push_str(s),
                _ => {
                    open[slot] = Some(found.len());
                    found.push(Suggestion {
                        kind,
                        mark,
                        text: s.to_string(),
                    });
                }
            }
        }
    }
}
