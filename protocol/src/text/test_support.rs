//! Test helpers: documents built the way y-prosemirror builds them (`XmlFragment "prosemirror" >
//! XmlElement "paragraph" > XmlText`, marks as formatting attributes), and client edits made on a
//! replica and shipped as v1 updates, as a browser would push them.

use std::sync::Arc;

use uuid::Uuid;
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::{
    Any, ClientID, Doc, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, TransactionMut,
    Update, XmlElementPrelim, XmlFragment, XmlFragmentRef, XmlOut, XmlTextPrelim, XmlTextRef,
};

use super::{BODY, SuggestionMark};

pub const OWNER: u64 = 1;

pub fn user() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

pub fn other() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002)
}

pub fn mark(author: Uuid) -> SuggestionMark {
    SuggestionMark::new(author, 1_760_000_000_000)
}

pub fn bold() -> Attrs {
    Attrs::from([(Arc::from("bold"), Any::Map(Arc::new(Default::default())))])
}

/// A document with one paragraph per string, written by the owner (client 1), kept as a server
/// should keep it: without formatting cleanup (which would delete format items in nobody's name).
pub fn document(paragraphs: &[&str]) -> Doc {
    let doc = Doc::with_options(Options {
        cleanup_formatting: false,
        ..Options::with_client_id(ClientID::new(OWNER))
    });
    let body = doc.get_or_insert_xml_fragment(BODY);
    let mut txn = doc.transact_mut();
    for text in paragraphs {
        let p = body.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
        let t = p.push_back(&mut txn, XmlTextPrelim::new(""));
        t.insert(&mut txn, 0, text);
    }
    drop(txn);
    doc
}

/// The text node of paragraph `i`, if the paragraph starts with one.
pub fn text_at<T: ReadTxn>(txn: &T, body: &XmlFragmentRef, i: u32) -> Option<XmlTextRef> {
    let Some(XmlOut::Element(p)) = body.get(txn, i) else {
        return None;
    };
    match p.get(txn, 0) {
        Some(XmlOut::Text(t)) => Some(t),
        _ => None,
    }
}

/// The text node of paragraph `i`.
pub fn text_of<T: ReadTxn>(txn: &T, body: &XmlFragmentRef, i: u32) -> XmlTextRef {
    text_at(txn, body, i).expect("paragraph with text")
}

/// A replica of `doc` with client id `client`, counting positions in UTF-16 like Yjs in a
/// browser (the owner's documents count bytes, yrs's default, so both kinds are exercised).
pub fn replica(doc: &Doc, client: u64) -> Doc {
    let copy = Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::with_client_id(ClientID::new(client))
    });
    copy.get_or_insert_xml_fragment(BODY);
    apply(&copy, &full_state(doc));
    copy
}

pub fn full_state(doc: &Doc) -> Vec<u8> {
    doc.transact()
        .encode_state_as_update_v1(&StateVector::default())
}

/// Makes an edit on a replica of `doc` (client `client`) and returns the update it produces.
pub fn edit(
    doc: &Doc,
    client: u64,
    f: impl FnOnce(&mut TransactionMut, &XmlFragmentRef),
) -> Vec<u8> {
    let copy = replica(doc, client);
    let body = copy.get_or_insert_xml_fragment(BODY);
    let sv = copy.transact().state_vector();
    f(&mut copy.transact_mut(), &body);
    copy.transact().encode_diff_v1(&sv)
}

/// Applies an update, as the server does once it is authorized.
pub fn apply(doc: &Doc, update: &[u8]) {
    doc.transact_mut()
        .apply_update(Update::decode_v1(update).expect("decode"))
        .expect("apply");
}
