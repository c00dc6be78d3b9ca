//! Read-only views of a text document's body for UIs and tests: text blocks with their
//! formatted runs, in the flat-position model of the `body` module.

use std::collections::BTreeMap;

use yrs::types::text::YChange;
use yrs::{Any, Out, ReadTxn, Text, Xml, XmlFragment};

use super::body::{self, Container, Piece};

/// One text block of the body (a paragraph, heading, list item's paragraph, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct TextBlock {
    /// The block node's type, e.g. `paragraph`, `heading` (`#text` for a bare text node).
    pub tag: String,
    /// The block node's attributes (e.g. a heading's `level`), as strings.
    pub attributes: BTreeMap<String, String>,
    pub runs: Vec<TextRun>,
}

impl TextBlock {
    /// The block's text: its runs' text concatenated (a hard break reads as `"\n"`).
    pub fn text(&self) -> String {
        self.runs.iter().map(|r| r.text.as_str()).collect()
    }
}

/// A run of text with one set of marks, or an inline node.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRun {
    pub text: String,
    /// Formatting attributes (ProseMirror marks) in effect, without removed (null) ones.
    pub marks: BTreeMap<String, Any>,
    /// For an inline node (hard break, image, ...): its type; `text` is then `"\n"` for a
    /// break and empty otherwise.
    pub node: Option<String>,
}

/// The body's text blocks.
pub(crate) fn text_blocks<T: ReadTxn>(txn: &T) -> Vec<TextBlock> {
    let Some(body) = txn.get_xml_fragment(syncline_protocol::text::BODY) else {
        return Vec::new();
    };
    body::blocks(txn, &body)
        .into_iter()
        .map(|block| {
            let attributes = match &block.container {
                Container::Element(e) => e
                    .attributes(txn)
                    .map(|(k, v)| (k.to_owned(), v.to_string(txn)))
                    .collect(),
                Container::BareText => BTreeMap::new(),
            };
            let mut runs = Vec::new();
            for (index, piece, len) in &block.pieces {
                match piece {
                    Piece::Text(node) => {
                        runs.extend(node.diff(txn, YChange::identity).into_iter().map(|d| {
                            TextRun {
                                text: match &d.insert {
                                    Out::Any(Any::String(s)) => s.to_string(),
                                    other => other.clone().to_string(txn),
                                },
                                marks: d
                                    .attributes
                                    .map(|a| {
                                        a.iter()
                                            .filter(|(_, v)| {
                                                !matches!(v, Any::Null | Any::Undefined)
                                            })
                                            .map(|(k, v)| (k.to_string(), v.clone()))
                                            .collect()
                                    })
                                    .unwrap_or_default(),
                                node: None,
                            }
                        }))
                    }
                    Piece::Atom { .. } => {
                        let tag = match &block.container {
                            Container::Element(e) => {
                                e.get(txn, *index).and_then(|child| match child {
                                    yrs::XmlOut::Element(c) => Some(c.tag().to_string()),
                                    _ => None,
                                })
                            }
                            Container::BareText => None,
                        };
                        runs.push(TextRun {
                            text: if *len == 1 {
                                "\n".to_owned()
                            } else {
                                String::new()
                            },
                            marks: BTreeMap::new(),
                            node: tag,
                        });
                    }
                }
            }
            TextBlock {
                tag: block.tag(),
                attributes,
                runs,
            }
        })
        .collect()
}
