//! Yjs text documents for tests, edited the way y-prosemirror edits them (`XmlFragment
//! "prosemirror" > XmlElement "paragraph" > XmlText`), each edit returned as the v1 update a
//! browser would push.

use uuid::Uuid;
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::{
    Doc, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, TransactionMut, Update,
    XmlElementPrelim, XmlFragment, XmlFragmentRef, XmlOut, XmlTextPrelim, XmlTextRef,
};

use syncline_protocol::text::{BODY, DELETION, INSERTION, SuggestionMark, plain_text};

/// One replica of a text document.
pub struct TextReplica {
    pub doc: Doc,
}

impl Default for TextReplica {
    fn default() -> Self {
        Self::new()
    }
}

impl TextReplica {
    pub fn new() -> Self {
        let doc = Doc::with_options(Options {
            offset_kind: OffsetKind::Utf16,
            ..Options::default()
        });
        doc.get_or_insert_xml_fragment(BODY);
        Self { doc }
    }

    /// A replica holding `state` (a snapshot's state or any update).
    pub fn from_state(state: &[u8]) -> Self {
        let replica = Self::new();
        replica.apply(state);
        replica
    }

    pub fn apply(&self, update: &[u8]) {
        self.doc
            .transact_mut()
            .apply_update(Update::decode_v1(update).expect("a valid update"))
            .expect("the update applies");
    }

    /// Runs an edit and returns its update.
    pub fn edit(&self, f: impl FnOnce(&mut TransactionMut, &XmlFragmentRef)) -> Vec<u8> {
        let body = self.doc.get_or_insert_xml_fragment(BODY);
        let sv = self.doc.transact().state_vector();
        f(&mut self.doc.transact_mut(), &body);
        self.doc.transact().encode_diff_v1(&sv)
    }

    /// Appends a paragraph holding `text`.
    pub fn push_paragraph(&self, text: &str) -> Vec<u8> {
        self.edit(|txn, body| {
            let p = body.push_back(txn, XmlElementPrelim::empty("paragraph"));
            let t = p.push_back(txn, XmlTextPrelim::new(""));
            t.insert(txn, 0, text);
        })
    }

    /// Inserts plain text into paragraph `par` at UTF-16 offset `at`.
    pub fn insert(&self, par: u32, at: u32, text: &str) -> Vec<u8> {
        self.edit(|txn, body| text_of(txn, body, par).insert(txn, at, text))
    }

    /// Deletes `len` characters of paragraph `par` from `at` (a real deletion).
    pub fn delete(&self, par: u32, at: u32, len: u32) -> Vec<u8> {
        self.edit(|txn, body| text_of(txn, body, par).remove_range(txn, at, len))
    }

    /// Suggests inserting `text`: inserted with `author`'s insertion mark.
    pub fn suggest_insert(&self, par: u32, at: u32, text: &str, author: Uuid) -> Vec<u8> {
        let attrs = SuggestionMark::new(author, 1_760_000_000_000).attrs(INSERTION);
        self.edit(|txn, body| text_of(txn, body, par).insert_with_attributes(txn, at, text, attrs))
    }

    /// Suggests deleting `len` characters from `at`: marked with `author`'s deletion mark.
    pub fn suggest_delete(&self, par: u32, at: u32, len: u32, author: Uuid) -> Vec<u8> {
        let attrs: Attrs = SuggestionMark::new(author, 1_760_000_000_000).attrs(DELETION);
        self.edit(|txn, body| text_of(txn, body, par).format(txn, at, len, attrs))
    }

    /// The whole state as one update.
    pub fn state(&self) -> Vec<u8> {
        self.doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    /// The body's plain text (as the server extracts it for search).
    pub fn text(&self) -> String {
        plain_text(&self.doc)
    }
}

fn text_of<T: ReadTxn>(txn: &T, body: &XmlFragmentRef, i: u32) -> XmlTextRef {
    let Some(XmlOut::Element(p)) = body.get(txn, i) else {
        panic!("paragraph {i} does not exist");
    };
    match p.get(txn, 0) {
        Some(XmlOut::Text(t)) => t,
        _ => panic!("paragraph {i} does not start with text"),
    }
}
