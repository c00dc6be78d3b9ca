//! Suggestion enforcement ([`authorize_update`]) on real yrs documents built the way
//! y-prosemirror builds them: `XmlFragment "prosemirror" > XmlElement "paragraph" > XmlText` with
//! marks as formatting attributes. Each client edit is made on its own replica and shipped as a
//! v1 update, exactly as a browser would push it. Resolution, extraction and randomized tests are
//! unit tests in `protocol/src/text/`.

use std::sync::Arc;

use syncline_protocol::ErrorCode;
use syncline_protocol::text::{
    BODY, DELETION, INSERTION, SuggestionMark, TextRole, Violation, authorize_update, plain_text,
};
use uuid::Uuid;
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, Doc, Map, ReadTxn, StateVector, Text, Transact, TransactionMut, Update, WriteTxn, Xml,
    XmlElementPrelim, XmlElementRef, XmlFragment, XmlFragmentRef, XmlOut, XmlTextPrelim,
    XmlTextRef,
};

const OWNER: u64 = 1;

fn user() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)
}

fn other() -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002)
}

fn mark(author: Uuid) -> SuggestionMark {
    SuggestionMark::new(author, 1_760_000_000_000)
}

fn bold() -> Attrs {
    Attrs::from([(Arc::from("bold"), Any::Map(Arc::new(Default::default())))])
}

/// A document with one paragraph per string, written by the owner (client 1).
fn document(paragraphs: &[&str]) -> Doc {
    let doc = Doc::with_client_id(OWNER);
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

/// The text node of paragraph `i`.
fn text_of<T: ReadTxn>(txn: &T, body: &XmlFragmentRef, i: u32) -> XmlTextRef {
    let Some(XmlOut::Element(p)) = body.get(txn, i) else {
        panic!("paragraph {i} missing");
    };
    let Some(XmlOut::Text(t)) = p.get(txn, 0) else {
        panic!("text of paragraph {i} missing");
    };
    t
}

/// Makes an edit on a replica of `doc` (client `client`) and returns the update it produces.
fn edit(doc: &Doc, client: u64, f: impl FnOnce(&mut TransactionMut, &XmlFragmentRef)) -> Vec<u8> {
    let replica = Doc::with_client_id(client);
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let body = replica.get_or_insert_xml_fragment(BODY);
    let sv = {
        let mut txn = replica.transact_mut();
        txn.apply_update(Update::decode_v1(&state).expect("state"))
            .expect("apply");
        txn.state_vector()
    };
    {
        let mut txn = replica.transact_mut();
        f(&mut txn, &body);
    }
    replica.transact().encode_diff_v1(&sv)
}

/// Applies an authorized update to the document, as the server would after `Ok`.
fn apply(doc: &Doc, update: &[u8]) {
    let mut txn = doc.transact_mut();
    txn.apply_update(Update::decode_v1(update).expect("decode"))
        .expect("apply");
}

fn judge(doc: &Doc, update: &[u8], role: TextRole) -> Result<(), (ErrorCode, Option<Violation>)> {
    authorize_update(doc, update, user(), role).map_err(|e| (e.code, e.violation))
}

fn refused(violation: Violation) -> Result<(), (ErrorCode, Option<Violation>)> {
    Err((ErrorCode::Forbidden, Some(violation)))
}

fn insert_marked(txn: &mut TransactionMut, body: &XmlFragmentRef, at: u32, s: &str, by: Uuid) {
    let t = text_of(txn, body, 0);
    t.insert_with_attributes(txn, at, s, mark(by).attrs(INSERTION));
}

#[test]
fn suggested_insertion_with_own_mark_is_accepted() {
    let doc = document(&["Hello world"]);
    let update = edit(&doc, 7, |txn, body| {
        insert_marked(txn, body, 5, " big", user())
    });
    assert_eq!(judge(&doc, &update, TextRole::Suggester), Ok(()));
    apply(&doc, &update);
    assert_eq!(plain_text(&doc), "Hello big world");
}

#[test]
fn insertion_without_mark_or_with_another_author_is_refused() {
    let doc = document(&["Hello world"]);
    let plain = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).insert(txn, 5, " big");
    });
    assert_eq!(
        judge(&doc, &plain, TextRole::Suggester),
        refused(Violation::UnmarkedInsertion)
    );
    let forged = edit(&doc, 7, |txn, body| {
        insert_marked(txn, body, 5, " big", other())
    });
    assert_eq!(
        judge(&doc, &forged, TextRole::Suggester),
        refused(Violation::UnmarkedInsertion)
    );
}

#[test]
fn deleting_existing_text_is_refused() {
    let doc = document(&["Hello world"]);
    let update = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).remove_range(txn, 0, 6);
    });
    assert_eq!(
        judge(&doc, &update, TextRole::Suggester),
        refused(Violation::Deletion)
    );
}

#[test]
fn bolding_existing_text_is_refused() {
    let doc = document(&["Hello world"]);
    let update = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).format(txn, 0, 5, bold());
    });
    assert_eq!(
        judge(&doc, &update, TextRole::Suggester),
        refused(Violation::Formatting)
    );
}

#[test]
fn marking_text_deleted_is_accepted_and_removing_anothers_mark_is_refused() {
    let doc = document(&["Hello world"]);
    let own = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).format(txn, 6, 5, mark(user()).attrs(DELETION));
    });
    assert_eq!(judge(&doc, &own, TextRole::Suggester), Ok(()));

    // Another user's deletion mark, then the suggester tries to remove or overwrite it.
    let theirs = edit(&doc, 8, |txn, body| {
        text_of(txn, body, 0).format(txn, 0, 5, mark(other()).attrs(DELETION));
    });
    apply(&doc, &theirs);
    let unmark = edit(&doc, 7, |txn, body| {
        let none = Attrs::from([(Arc::from(DELETION), Any::Null)]);
        text_of(txn, body, 0).format(txn, 0, 5, none);
    });
    assert_eq!(
        judge(&doc, &unmark, TextRole::Suggester),
        refused(Violation::Formatting)
    );
    let overwrite = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).format(txn, 0, 11, mark(user()).attrs(DELETION));
    });
    assert_eq!(
        judge(&doc, &overwrite, TextRole::Suggester),
        refused(Violation::Formatting)
    );
}

#[test]
fn suggesters_may_extend_and_withdraw_their_own_suggestions() {
    let doc = document(&["Hello world"]);
    let first = edit(&doc, 7, |txn, body| {
        insert_marked(txn, body, 5, " big", user())
    });
    apply(&doc, &first);
    // Typing inside the own insertion inherits its mark, as in an editor.
    let extend = edit(&doc, 7, |txn, body| {
        let t = text_of(txn, body, 0);
        t.insert(txn, 7, "i");
    });
    assert_eq!(judge(&doc, &extend, TextRole::Suggester), Ok(()));
    apply(&doc, &extend);
    assert_eq!(plain_text(&doc), "Hello biig world");
    // Deleting the own suggested text withdraws it.
    let withdraw = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).remove_range(txn, 5, 5);
    });
    assert_eq!(judge(&doc, &withdraw, TextRole::Suggester), Ok(()));

    // Re-marking over an own deletion mark (Yjs deletes the inner format items) and removing it.
    let del = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).format(txn, 0, 3, mark(user()).attrs(DELETION));
    });
    apply(&doc, &del);
    let wider = edit(&doc, 7, |txn, body| {
        let later = SuggestionMark::new(user(), 1_760_000_000_999);
        text_of(txn, body, 0).format(txn, 0, 5, later.attrs(DELETION));
    });
    assert_eq!(judge(&doc, &wider, TextRole::Suggester), Ok(()));
    let unmark = edit(&doc, 7, |txn, body| {
        let none = Attrs::from([(Arc::from(DELETION), Any::Null)]);
        text_of(txn, body, 0).format(txn, 0, 3, none);
    });
    assert_eq!(judge(&doc, &unmark, TextRole::Suggester), Ok(()));
}

#[test]
fn inserting_in_bold_text_keeps_bold_and_is_accepted() {
    let doc = document(&[""]);
    let setup = edit(&doc, 1, |txn, body| {
        text_of(txn, body, 0).insert_with_attributes(txn, 0, "Strong", bold());
    });
    apply(&doc, &setup);
    let update = edit(&doc, 7, |txn, body| {
        let mut attrs = bold();
        attrs.extend(mark(user()).attrs(INSERTION));
        text_of(txn, body, 0).insert_with_attributes(txn, 3, "XX", attrs);
    });
    assert_eq!(judge(&doc, &update, TextRole::Suggester), Ok(()));
}

#[test]
fn new_paragraphs_need_the_insertion_attribute_and_paragraphs_stay() {
    let doc = document(&["One"]);
    let marked = edit(&doc, 7, |txn, body| {
        let p = body.push_back(txn, XmlElementPrelim::empty("paragraph"));
        p.insert_attribute(txn, INSERTION, mark(user()).to_any());
        let t = p.push_back(txn, XmlTextPrelim::new(""));
        t.insert_with_attributes(txn, 0, "Two", mark(user()).attrs(INSERTION));
    });
    assert_eq!(judge(&doc, &marked, TextRole::Suggester), Ok(()));
    apply(&doc, &marked);
    assert_eq!(plain_text(&doc), "One\nTwo");

    let unmarked = edit(&doc, 7, |txn, body| {
        let p = body.push_back(txn, XmlElementPrelim::empty("paragraph"));
        let t = p.push_back(txn, XmlTextPrelim::new(""));
        t.insert_with_attributes(txn, 0, "Three", mark(user()).attrs(INSERTION));
    });
    assert_eq!(
        judge(&doc, &unmarked, TextRole::Suggester),
        refused(Violation::UnmarkedInsertion)
    );
    // Deleting the owner's paragraph is a real deletion; deleting the own one withdraws it.
    let drop_first = edit(&doc, 7, |txn, body| body.remove_range(txn, 0, 1));
    assert_eq!(
        judge(&doc, &drop_first, TextRole::Suggester),
        refused(Violation::Deletion)
    );
    let drop_own = edit(&doc, 7, |txn, body| body.remove_range(txn, 1, 1));
    assert_eq!(judge(&doc, &drop_own, TextRole::Suggester), Ok(()));
}

#[test]
fn node_attributes_and_other_roots_are_off_limits() {
    let doc = document(&["Title"]);
    let level = edit(&doc, 7, |txn, body| {
        let Some(XmlOut::Element(p)) = body.get(txn, 0) else {
            panic!("paragraph");
        };
        p.insert_attribute(txn, "level", Any::from(2.0));
    });
    assert_eq!(
        judge(&doc, &level, TextRole::Suggester),
        refused(Violation::NodeAttributes)
    );
    let elsewhere = edit(&doc, 7, |txn, _| {
        let comments = txn.get_or_insert_map("comments");
        comments.insert(txn, "x", "y");
    });
    assert_eq!(
        judge(&doc, &elsewhere, TextRole::Suggester),
        refused(Violation::Unsupported)
    );
    // An embed inside text is not something y-prosemirror writes.
    let embed = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).insert_embed_with_attributes(
            txn,
            0,
            Any::from("x"),
            mark(user()).attrs(INSERTION),
        );
    });
    assert_eq!(
        judge(&doc, &embed, TextRole::Suggester),
        refused(Violation::Unsupported)
    );
}

#[test]
fn viewers_may_only_resend_known_changes_and_editors_may_do_anything() {
    let doc = document(&["Hello world"]);
    let delete = edit(&doc, 7, |txn, body| {
        text_of(txn, body, 0).remove_range(txn, 0, 6);
        text_of(txn, body, 0).format(txn, 0, 5, bold());
    });
    assert_eq!(
        judge(&doc, &delete, TextRole::Viewer),
        refused(Violation::ReadOnly)
    );
    assert_eq!(judge(&doc, &delete, TextRole::Editor), Ok(()));

    let known = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    assert_eq!(judge(&doc, &known, TextRole::Viewer), Ok(()));
    let empty = Update::new().encode_v1();
    assert_eq!(judge(&doc, &empty, TextRole::Viewer), Ok(()));
    assert_eq!(judge(&doc, &empty, TextRole::Suggester), Ok(()));
}

#[test]
fn malformed_and_out_of_order_updates_are_refused_with_their_codes() {
    let doc = document(&["Hello"]);
    for role in [TextRole::Viewer, TextRole::Suggester, TextRole::Editor] {
        let err =
            authorize_update(&doc, &[0xff, 0xff, 0xff, 0x01], user(), role).expect_err("malformed");
        assert_eq!(err.code, ErrorCode::InvalidChange, "{err}");
    }
    // The second of two updates, without the first.
    let replica = Doc::with_client_id(7);
    apply(
        &replica,
        &doc.transact()
            .encode_state_as_update_v1(&StateVector::default()),
    );
    let body = replica.get_or_insert_xml_fragment(BODY);
    let sv = replica.transact().state_vector();
    {
        let mut txn = replica.transact_mut();
        insert_marked(&mut txn, &body, 0, "a", user());
    }
    let sv2 = replica.transact().state_vector();
    {
        let mut txn = replica.transact_mut();
        insert_marked(&mut txn, &body, 1, "b", user());
    }
    let second = replica.transact().encode_diff_v1(&sv2);
    let err = authorize_update(&doc, &second, user(), TextRole::Suggester).expect_err("gap");
    assert_eq!(err.code, ErrorCode::MissingDependency);
    let both = replica.transact().encode_diff_v1(&sv);
    assert_eq!(judge(&doc, &both, TextRole::Suggester), Ok(()));
}

#[test]
fn a_suggestion_made_on_an_older_version_is_judged_on_the_current_one() {
    let doc = document(&["Hello world"]);
    let stale = edit(&doc, 7, |txn, body| {
        insert_marked(txn, body, 11, "!", user())
    });
    let concurrent = edit(&doc, 1, |txn, body| {
        text_of(txn, body, 0).insert_with_attributes(txn, 0, "Oh. ", bold());
    });
    apply(&doc, &concurrent);
    assert_eq!(judge(&doc, &stale, TextRole::Suggester), Ok(()));
    apply(&doc, &stale);
    assert_eq!(plain_text(&doc), "Oh. Hello world!");
}

#[test]
fn deep_nesting_is_refused_without_overflowing() {
    let doc = document(&["x"]);
    let deep = edit(&doc, 7, |txn, body| {
        let mut node: XmlElementRef = body.push_back(txn, XmlElementPrelim::empty("div"));
        node.insert_attribute(txn, INSERTION, mark(user()).to_any());
        for _ in 0..200 {
            node = node.push_back(txn, XmlElementPrelim::empty("div"));
            node.insert_attribute(txn, INSERTION, mark(user()).to_any());
        }
    });
    let err = authorize_update(&doc, &deep, user(), TextRole::Suggester).expect_err("deep");
    assert_eq!(err.code, ErrorCode::TooLarge);
}
