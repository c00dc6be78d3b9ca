//! Resolving suggestions (accept/reject, all or one), listing them, and plain-text extraction,
//! on documents built as y-prosemirror builds them.

use yrs::{Any, Doc, GetString, ReadTxn, Text, Transact, Xml, XmlElementPrelim, XmlFragment};
use yrs::{XmlOut, XmlTextPrelim};

use super::test_support::{OWNER, apply, document, edit, full_state, mark, other, text_of, user};
use super::{
    BODY, DELETION, INSERTION, SuggestionKind, SuggestionMark, accept_all, accept_suggestion,
    plain_text, reject_all, reject_suggestion, suggestions,
};

fn insert_marked(txn: &mut yrs::TransactionMut, body: &yrs::XmlFragmentRef, at: u32, s: &str) {
    let t = text_of(txn, body, 0);
    t.insert_with_attributes(txn, at, s, mark(user()).attrs(INSERTION));
}

/// The document used by the resolution tests: an insertion by `user`, a deletion by `other`.
fn redlined() -> Doc {
    let doc = document(&["The quick fox"]);
    let ins = edit(&doc, 7, |txn, body| insert_marked(txn, body, 9, " brown"));
    apply(&doc, &ins);
    let del = edit(&doc, 8, |txn, body| {
        text_of(txn, body, 0).format(txn, 4, 5, mark(other()).attrs(DELETION));
    });
    apply(&doc, &del);
    doc
}

#[test]
fn accept_all_and_reject_all_resolve_every_suggestion() {
    let doc = redlined();
    assert_eq!(plain_text(&doc), "The quick brown fox");
    let found = suggestions(&doc.transact());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().any(|s| s.kind == SuggestionKind::Deletion
        && s.mark == mark(other())
        && s.text == "quick"));
    assert!(found.iter().any(|s| s.kind == SuggestionKind::Insertion
        && s.mark == mark(user())
        && s.text == " brown"));

    let accepted = redlined();
    assert_eq!(accept_all(&mut accepted.transact_mut()), 2);
    assert_eq!(plain_text(&accepted), "The  brown fox");
    assert!(suggestions(&accepted.transact()).is_empty());

    let rejected = redlined();
    assert_eq!(reject_all(&mut rejected.transact_mut()), 2);
    assert_eq!(plain_text(&rejected), "The quick fox");
    assert!(suggestions(&rejected.transact()).is_empty());
    let txn = rejected.transact();
    let body = txn.get_xml_fragment(BODY).expect("body");
    assert_eq!(text_of(&txn, &body, 0).get_string(&txn), "The quick fox");
}

#[test]
fn single_suggestions_resolve_by_author_and_time() {
    let doc = redlined();
    assert_eq!(accept_suggestion(&mut doc.transact_mut(), &mark(user())), 1);
    assert_eq!(plain_text(&doc), "The quick brown fox");
    assert_eq!(
        reject_suggestion(&mut doc.transact_mut(), &mark(other())),
        1
    );
    assert!(suggestions(&doc.transact()).is_empty());
    assert_eq!(plain_text(&doc), "The quick brown fox");
    // Nothing matches a mark no one made.
    let nobody = SuggestionMark::new(other(), 5);
    assert_eq!(accept_suggestion(&mut doc.transact_mut(), &nobody), 0);
}

#[test]
fn suggested_nodes_are_accepted_or_removed_whole() {
    let doc = document(&["One"]);
    let add = edit(&doc, 7, |txn, body| {
        let p = body.push_back(txn, XmlElementPrelim::empty("paragraph"));
        p.insert_attribute(txn, INSERTION, mark(user()).to_any());
        let t = p.push_back(txn, XmlTextPrelim::new(""));
        t.insert_with_attributes(txn, 0, "Two", mark(user()).attrs(INSERTION));
    });
    apply(&doc, &add);
    let accepted = Doc::with_client_id(9);
    apply(&accepted, &full_state(&doc));
    accept_all(&mut accepted.transact_mut());
    assert_eq!(plain_text(&accepted), "One\nTwo");
    {
        let txn = accepted.transact();
        let body = txn.get_xml_fragment(BODY).expect("body");
        let Some(XmlOut::Element(p)) = body.get(&txn, 1) else {
            panic!("paragraph");
        };
        assert!(p.get_attribute(&txn, INSERTION).is_none());
    }
    reject_all(&mut doc.transact_mut());
    assert_eq!(plain_text(&doc), "One");
}

#[test]
fn plain_text_separates_blocks_and_reads_breaks() {
    let doc = Doc::with_client_id(OWNER);
    let body = doc.get_or_insert_xml_fragment(BODY);
    {
        let mut txn = doc.transact_mut();
        let h = body.push_back(&mut txn, XmlElementPrelim::empty("heading"));
        h.insert_attribute(&mut txn, "level", Any::from(1.0));
        h.push_back(&mut txn, XmlTextPrelim::new("Terms"));
        let list = body.push_back(&mut txn, XmlElementPrelim::empty("bulletList"));
        for item in ["first", "second"] {
            let li = list.push_back(&mut txn, XmlElementPrelim::empty("listItem"));
            let p = li.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(&mut txn, XmlTextPrelim::new(item));
        }
        body.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
        let p = body.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
        let t = p.push_back(&mut txn, XmlTextPrelim::new("line"));
        t.insert_with_attributes(&mut txn, 4, " struck", mark(other()).attrs(DELETION));
        p.push_back(&mut txn, XmlElementPrelim::empty("hardBreak"));
        p.push_back(&mut txn, XmlTextPrelim::new("next"));
    }
    assert_eq!(
        plain_text(&doc),
        "Terms\nfirst\nsecond\n\nline struck\nnext"
    );
    assert_eq!(plain_text(&Doc::new()), "");
}
