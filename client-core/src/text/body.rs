//! The body seen as flat text: where a flat position falls in the XML tree.
//!
//! Flat positions count UTF-16 code units of the body's text as
//! [`syncline_protocol::text::plain_text`] renders it: text blocks (paragraphs, headings, ...) in
//! document order, one position between consecutive blocks (the `"\n"` separator), a hard
//! break as one position and other inline atoms (images, mentions) as none. A position at the
//! end of one block and the start of the next are therefore different positions.
//!
//! Only text nodes are edited as text; content y-prosemirror never writes (values that are not
//! XML nodes) is not visited, and nesting deeper than [`MAX_DEPTH`] is not descended into.

use syncline_protocol::text::MAX_DEPTH;
use yrs::{ReadTxn, Text, XmlElementRef, XmlFragment, XmlOut, XmlTextRef};

/// Inline nodes that read as a line break (one position).
const BREAKS: [&str; 2] = ["hardBreak", "hard_break"];
/// Inline nodes without text: a block holding only these (and text) is still a text block.
const INLINE_ATOMS: [&str; 5] = ["hardBreak", "hard_break", "image", "mention", "emoji"];
/// Leaf block nodes, which hold no text, not even an empty line.
const LEAF_BLOCKS: [&str; 2] = ["horizontalRule", "horizontal_rule"];

/// The node holding a text block's content.
#[derive(Debug, Clone)]
pub(crate) enum Container {
    /// An element whose children are text nodes and inline atoms (e.g. a paragraph).
    Element(XmlElementRef),
    /// A text node directly among block nodes (y-prosemirror never writes one; read as a
    /// block whose only piece is the node itself).
    BareText,
}

/// One child of a text block.
#[derive(Debug, Clone)]
pub(crate) enum Piece {
    Text(XmlTextRef),
    /// An inline atom: occupies `len` positions but is not editable as text.
    Atom {
        len: u32,
    },
}

/// A text block: its container, its pieces with their child index and length.
#[derive(Debug, Clone)]
pub(crate) struct Block {
    pub container: Container,
    /// (child index in the container, piece, length in positions)
    pub pieces: Vec<(u32, Piece, u32)>,
    pub len: u32,
}

impl Block {
    /// The tag of the block's element (`#text` for a bare text node).
    pub fn tag(&self) -> String {
        match &self.container {
            Container::Element(e) => e.tag().to_string(),
            Container::BareText => "#text".to_owned(),
        }
    }
}

/// Every text block of the body, in document order.
pub(crate) fn blocks<T: ReadTxn, F: XmlFragment>(txn: &T, body: &F) -> Vec<Block> {
    let mut out = Vec::new();
    collect_blocks(txn, body, 0, &mut out);
    out
}

/// The number of flat positions of the body (its plain text's length in UTF-16 units).
pub(crate) fn flat_len(blocks: &[Block]) -> u32 {
    let separators = u32::try_from(blocks.len().saturating_sub(1)).unwrap_or(u32::MAX);
    blocks
        .iter()
        .fold(separators, |sum, b| sum.saturating_add(b.len))
}

fn collect_blocks<T: ReadTxn, F: XmlFragment>(
    txn: &T,
    node: &F,
    depth: usize,
    out: &mut Vec<Block>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    for child in node.children(txn) {
        match child {
            XmlOut::Text(text) => {
                let len = text.len(txn);
                out.push(Block {
                    container: Container::BareText,
                    pieces: vec![(0, Piece::Text(text), len)],
                    len,
                });
            }
            XmlOut::Element(element) if LEAF_BLOCKS.contains(&element.tag().as_ref()) => {}
            XmlOut::Element(element) if is_text_block(txn, &element) => {
                out.push(text_block(txn, element, depth + 1));
            }
            XmlOut::Element(element) => collect_blocks(txn, &element, depth + 1, out),
            XmlOut::Fragment(fragment) => collect_blocks(txn, &fragment, depth + 1, out),
        }
    }
}

/// Whether an element holds inline content (or nothing) rather than other blocks.
fn is_text_block<T: ReadTxn>(txn: &T, element: &XmlElementRef) -> bool {
    element.children(txn).all(|child| match child {
        XmlOut::Text(_) => true,
        XmlOut::Element(e) => INLINE_ATOMS.contains(&e.tag().as_ref()),
        XmlOut::Fragment(_) => false,
    })
}

fn text_block<T: ReadTxn>(txn: &T, element: XmlElementRef, depth: usize) -> Block {
    let mut pieces = Vec::new();
    let mut len = 0u32;
    for (index, child) in (0u32..).zip(element.children(txn)) {
        let (piece, piece_len) = match child {
            XmlOut::Text(text) => {
                let n = text.len(txn);
                (Piece::Text(text), n)
            }
            XmlOut::Element(e) if BREAKS.contains(&e.tag().as_ref()) => (Piece::Atom { len: 1 }, 1),
            XmlOut::Element(e) => {
                let n = inline_len(txn, &e, depth + 1);
                (Piece::Atom { len: n }, n)
            }
            XmlOut::Fragment(f) => {
                let n = inline_len(txn, &f, depth + 1);
                (Piece::Atom { len: n }, n)
            }
        };
        len = len.saturating_add(piece_len);
        pieces.push((index, piece, piece_len));
    }
    Block {
        container: Container::Element(element),
        pieces,
        len,
    }
}

/// Positions taken by an inline node's content (0 for atoms without children).
fn inline_len<T: ReadTxn, F: XmlFragment>(txn: &T, node: &F, depth: usize) -> u32 {
    if depth > MAX_DEPTH {
        return 0;
    }
    node.children(txn).fold(0u32, |sum, child| {
        sum.saturating_add(match child {
            XmlOut::Text(t) => t.len(txn),
            XmlOut::Element(e) if BREAKS.contains(&e.tag().as_ref()) => 1,
            XmlOut::Element(e) => inline_len(txn, &e, depth + 1),
            XmlOut::Fragment(f) => inline_len(txn, &f, depth + 1),
        })
    })
}

/// Where text inserted at a flat position goes.
#[derive(Debug, Clone)]
pub(crate) enum InsertAt {
    /// Into an existing text node at an offset.
    Text(XmlTextRef, u32),
    /// Into a new text node created as child `index` of a text block's element (an empty
    /// paragraph, or between inline atoms).
    NewText(XmlElementRef, u32),
    /// The body has no text block: a new paragraph is appended.
    NewParagraph,
}

/// Where inserting at `pos` goes, or `None` if `pos` is past the end or inside an inline node
/// that holds text but is not a text node.
pub(crate) fn locate_insert(blocks: &[Block], pos: u32) -> Option<InsertAt> {
    if blocks.is_empty() {
        return (pos == 0).then_some(InsertAt::NewParagraph);
    }
    let mut start = 0u32;
    for block in blocks {
        let end = start.saturating_add(block.len);
        if pos <= end {
            return locate_in_block(block, pos - start.min(pos));
        }
        start = end.saturating_add(1);
    }
    None
}

fn locate_in_block(block: &Block, offset: u32) -> Option<InsertAt> {
    let mut start = 0u32;
    for (_, piece, len) in &block.pieces {
        if let Piece::Text(text) = piece
            && offset <= start + len
            && offset >= start
        {
            return Some(InsertAt::Text(text.clone(), offset - start));
        }
        start += len;
    }
    // No text node touches the offset: a new one goes before the first piece starting at it.
    let Container::Element(element) = &block.container else {
        return None;
    };
    let mut start = 0u32;
    for (index, _, len) in &block.pieces {
        if start == offset {
            return Some(InsertAt::NewText(element.clone(), *index));
        }
        if start > offset {
            return None;
        }
        start += len;
    }
    let count = block
        .pieces
        .last()
        .map_or(0, |(index, _, _)| index.saturating_add(1));
    (start == offset).then(|| InsertAt::NewText(element.clone(), count))
}

/// A part of a flat range inside one node.
#[derive(Debug, Clone)]
pub(crate) enum Span {
    /// `len` units of a text node from `offset`.
    Text {
        node: XmlTextRef,
        offset: u32,
        len: u32,
    },
    /// An inline atom entirely inside the range: child `index` of `element`.
    Atom { element: XmlElementRef, index: u32 },
}

/// The spans of the flat range `[pos, pos + len)` in document order, or `None` if it ends past
/// the body's end. Block separators in the range are not part of any span (blocks are never
/// joined), nor are atoms only partly inside it.
pub(crate) fn spans(blocks: &[Block], pos: u32, len: u32) -> Option<Vec<Span>> {
    let end = pos.checked_add(len)?;
    if end > flat_len(blocks) {
        return None;
    }
    let mut out = Vec::new();
    let mut block_start = 0u32;
    for block in blocks {
        let mut start = block_start;
        for (index, piece, piece_len) in &block.pieces {
            let from = pos.max(start);
            let to = end.min(start + piece_len);
            match piece {
                Piece::Text(node) if from < to => out.push(Span::Text {
                    node: node.clone(),
                    offset: from - start,
                    len: to - from,
                }),
                Piece::Atom { len: n } if *n > 0 && from == start && to == start + n => {
                    if let Container::Element(element) = &block.container {
                        out.push(Span::Atom {
                            element: element.clone(),
                            index: *index,
                        });
                    }
                }
                _ => {}
            }
            start += piece_len;
        }
        block_start = block_start.saturating_add(block.len).saturating_add(1);
        if block_start > end {
            break;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use syncline_protocol::text::{BODY, plain_text};
    use yrs::{Doc, Transact, WriteTxn, XmlElementPrelim, XmlTextPrelim};

    use super::*;
    use crate::text::editor::TextEditor;

    /// `<paragraph>ab<hardBreak/>cd</paragraph><horizontalRule/><paragraph/>`
    fn document() -> Doc {
        let doc = crate::text::ydoc::new_doc(1);
        {
            let mut txn = doc.transact_mut();
            let body = txn.get_or_insert_xml_fragment(BODY);
            let p = body.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(&mut txn, XmlTextPrelim::new("ab"));
            p.push_back(&mut txn, XmlElementPrelim::empty("hardBreak"));
            p.push_back(&mut txn, XmlTextPrelim::new("cd"));
            body.push_back(&mut txn, XmlElementPrelim::empty("horizontalRule"));
            body.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
        }
        doc
    }

    fn edit(doc: &Doc, f: impl FnOnce(&mut TextEditor<'_, '_>) -> crate::Result<()>) {
        let mut txn = doc.transact_mut();
        let body = txn.get_or_insert_xml_fragment(BODY);
        let mut editor = TextEditor {
            txn: &mut txn,
            body,
            doc_id: uuid::Uuid::nil(),
            user: None,
            last_mark: 0,
        };
        f(&mut editor).expect("edit");
    }

    #[test]
    fn flat_positions_follow_plain_text() {
        let doc = document();
        assert_eq!(plain_text(&doc), "ab\ncd\n");
        {
            let txn = doc.transact();
            let body = txn.get_xml_fragment(BODY).expect("body");
            let blocks = blocks(&txn, &body);
            assert_eq!(blocks.len(), 2, "the rule is no block");
            assert_eq!(flat_len(&blocks), 6);
            assert!(matches!(
                locate_insert(&blocks, 3),
                Some(InsertAt::Text(_, 0))
            ));
            assert!(matches!(
                locate_insert(&blocks, 6),
                Some(InsertAt::NewText(_, 0))
            ));
            assert!(locate_insert(&blocks, 7).is_none());
            // "b", the break, "c": two text spans and the atom.
            let found = spans(&blocks, 1, 3).expect("in range");
            assert_eq!(found.len(), 3);
            assert!(spans(&blocks, 5, 2).is_none());
        }
        edit(&doc, |e| e.insert(6, "new"));
        edit(&doc, |e| e.insert(3, ">"));
        assert_eq!(plain_text(&doc), "ab\n>cd\nnew");
        edit(&doc, |e| e.delete(1, 3));
        assert_eq!(plain_text(&doc), "acd\nnew");
        // Deleting "d", the separator and "n" keeps the blocks apart: "ac" and "ew".
        edit(&doc, |e| e.delete(2, 3));
        assert_eq!(plain_text(&doc), ["ac", "ew"].join("\n"));
    }
}
