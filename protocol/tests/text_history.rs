//! Revisions and redlines of text documents (`syncline_protocol::text::{redline, html_at, ...}`):
//! a server document (kept with `skip_gc`) receives edits from browser-like replicas (UTF-16
//! offsets, garbage collection on), snapshots are taken as revisions, and the redline between
//! them must show exactly the items inserted and deleted in between, by identity.

use std::collections::HashMap;
use std::sync::Arc;

use syncline_protocol::text::{
    BODY, Change, HistoryError, INSERTION, RedlineContent, SuggestionMark, decode_snapshot,
    html_at, plain_text, redline, redline_html, snapshot_of, text_at,
};
use yrs::types::Attrs;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{
    Any, ClientID, Doc, OffsetKind, Options, ReadTxn, Snapshot, StateVector, Text, Transact,
    TransactionMut, Update, WriteTxn, Xml, XmlElementPrelim, XmlFragment, XmlFragmentRef, XmlOut,
    XmlTextPrelim, XmlTextRef,
};

/// The server's copy: deleted content retained, UTF-16 offsets, no formatting cleanup.
fn server_doc() -> Doc {
    Doc::with_options(Options {
        skip_gc: true,
        offset_kind: OffsetKind::Utf16,
        cleanup_formatting: false,
        ..Options::with_client_id(ClientID::new(100))
    })
}

/// A browser's replica of `server` (garbage collection on, as in Yjs).
fn replica(server: &Doc, client: u64) -> Doc {
    let doc = Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::with_client_id(ClientID::new(client))
    });
    sync(server, &doc);
    doc
}

/// Sends what `to` lacks from `from`, as one v1 update.
fn sync(from: &Doc, to: &Doc) {
    let sv = to.transact().state_vector();
    let update = from.transact().encode_diff_v1(&sv);
    to.transact_mut()
        .apply_update(Update::decode_v1(&update).expect("decode"))
        .expect("apply");
}

/// One edit on a replica, pushed to the server.
fn edit(client: &Doc, server: &Doc, f: impl FnOnce(&mut TransactionMut, &XmlFragmentRef)) {
    {
        let mut txn = client.transact_mut();
        let body = txn.get_or_insert_xml_fragment(BODY);
        f(&mut txn, &body);
    }
    sync(client, server);
}

fn text_in<T: ReadTxn>(txn: &T, body: &XmlFragmentRef, block: u32) -> XmlTextRef {
    let Some(XmlOut::Element(e)) = body.get(txn, block) else {
        panic!("no block {block}");
    };
    match e.get(txn, 0) {
        Some(XmlOut::Text(t)) => t,
        _ => panic!("block {block} has no text"),
    }
}

fn bold() -> Attrs {
    Attrs::from([(Arc::from("bold"), Any::Map(Arc::new(HashMap::new())))])
}

fn push_block(txn: &mut TransactionMut, body: &XmlFragmentRef, tag: &str, runs: &[(&str, bool)]) {
    let at = body.len(txn);
    let element = body.insert(txn, at, XmlElementPrelim::empty(tag));
    if tag == "heading" {
        element.insert_attribute(txn, "level", Any::from(2.0));
    }
    let text = element.push_back(txn, XmlTextPrelim::new(""));
    for (run, is_bold) in runs {
        let at = text.len(txn);
        // Explicit attributes: a plain insert would continue the formatting to its left.
        let attrs = if *is_bold { bold() } else { Attrs::new() };
        text.insert_with_attributes(txn, at, run, attrs);
    }
}

/// A compact, exact notation of a redline: `=` kept, `+` inserted, `-` deleted; nodes as
/// `tag(attrs)±[content]`, spans as `±"text"{marks}`.
fn sketch(content: &[RedlineContent]) -> String {
    let sigil = |change: Change| match change {
        Change::Kept => "=",
        Change::Inserted => "+",
        Change::Deleted => "-",
    };
    // `items` joined inside `open`..`close`, or nothing when there are none.
    let group = |open: &str, items: Vec<String>, close: &str| match items.is_empty() {
        true => String::new(),
        false => format!("{open}{}{close}", items.join(",")),
    };
    let parts: Vec<String> = content
        .iter()
        .map(|piece| match piece {
            RedlineContent::Node(node) => {
                let attrs = node.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let (tag, change) = (&node.tag, sigil(node.change));
                format!(
                    "{tag}{}{change}[{}]",
                    group("(", attrs, ")"),
                    sketch(&node.content)
                )
            }
            RedlineContent::Text(span) => {
                let marks = span.marks.keys().cloned().collect();
                let (change, text) = (sigil(span.change), &span.text);
                format!("{change}{text:?}{}", group("{", marks, "}"))
            }
        })
        .collect();
    parts.join(" ")
}

struct Story {
    server: Doc,
    rev0: Snapshot,
    rev1: Snapshot,
    rev2: Snapshot,
}

/// rev0: the original; then edits by two replicas (one concurrent with the other), with text
/// inserted after rev0 and deleted before rev2; rev1 sits in the middle.
fn story() -> Story {
    let server = server_doc();
    let alice = replica(&server, 1);
    edit(&alice, &server, |txn, body| {
        push_block(txn, body, "heading", &[("Terms", false)]);
        push_block(txn, body, "paragraph", &[("The quick brown fox", false)]);
        let payment = [("Payment is due in 30 days.", false)];
        push_block(txn, body, "paragraph", &payment);
        push_block(txn, body, "paragraph", &[("Old", true), (" clause", false)]);
    });
    let rev0 = server.transact().snapshot();
    // Bob starts from rev0 and edits offline, concurrently with Alice.
    let bob = replica(&server, 2);

    edit(&alice, &server, |txn, body| {
        let p1 = text_in(txn, body, 1);
        p1.remove_range(txn, 4, 6); // "quick "
        let end = p1.len(txn);
        p1.insert(txn, end, " jumps");
        text_in(txn, body, 2).insert(txn, 0, "TEMP ");
    });
    let rev1 = server.transact().snapshot();

    edit(&alice, &server, |txn, body| {
        text_in(txn, body, 2).remove_range(txn, 0, 5); // "TEMP " again
        body.remove_range(txn, 3, 1); // the whole "Old clause" paragraph
        push_block(txn, body, "paragraph", &[("New", true), (" clause", false)]);
    });
    edit(&bob, &server, |txn, body| {
        let p2 = text_in(txn, body, 2);
        p2.remove_range(txn, 18, 2); // "30"
        p2.insert(txn, 18, "45");
    });
    let rev2 = server.transact().snapshot();
    Story {
        server,
        rev0,
        rev1,
        rev2,
    }
}

#[test]
fn redline_shows_exactly_the_items_inserted_and_deleted_between_two_revisions() {
    let s = story();
    let state = |doc: &Doc| {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    };
    let before = state(&s.server);
    let lines = redline(&s.server, &s.rev0, &s.rev2).expect("redline");
    // The walk splits items at snapshot boundaries inside a write transaction; the document
    // itself must not change.
    assert_eq!(state(&s.server), before);
    // "TEMP " was inserted after rev0 and deleted before rev2: not there at all. Alice deleted
    // the last paragraph, then appended one: Yjs places the new one before the deleted one
    // (both follow the last visible block). A deleted block keeps the formatting it had.
    assert_eq!(
        sketch(&lines),
        [
            r#"heading(level=2)=[="Terms"]"#,
            r#"paragraph=[="The " -"quick " ="brown fox" +" jumps"]"#,
            r#"paragraph=[="Payment is due in " -"30" +"45" =" days."]"#,
            r#"paragraph+[+"New"{bold} +" clause"]"#,
            r#"paragraph-[-"Old"{bold} -" clause"]"#,
        ]
        .join(" ")
    );
    assert_eq!(
        redline_html(&s.server, &s.rev0, &s.rev2).expect("html"),
        "<h2>Terms</h2>\
         <p>The <del>quick </del>brown fox<ins> jumps</ins></p>\
         <p>Payment is due in <del>30</del><ins>45</ins> days.</p>\
         <p data-redline=\"inserted\"><ins><strong>New</strong></ins><ins> clause</ins></p>\
         <p data-redline=\"deleted\"><del><strong>Old</strong></del><del> clause</del></p>"
    );
}

#[test]
fn redlines_through_the_middle_revision_show_the_transient_text() {
    let s = story();
    assert_eq!(
        redline_html(&s.server, &s.rev0, &s.rev1).expect("html"),
        "<h2>Terms</h2>\
         <p>The <del>quick </del>brown fox<ins> jumps</ins></p>\
         <p><ins>TEMP </ins>Payment is due in 30 days.</p>\
         <p><strong>Old</strong> clause</p>"
    );
    assert_eq!(
        redline_html(&s.server, &s.rev1, &s.rev2).expect("html"),
        "<h2>Terms</h2>\
         <p>The brown fox jumps</p>\
         <p><del>TEMP </del>Payment is due in <del>30</del><ins>45</ins> days.</p>\
         <p data-redline=\"inserted\"><ins><strong>New</strong></ins><ins> clause</ins></p>\
         <p data-redline=\"deleted\"><del><strong>Old</strong></del><del> clause</del></p>"
    );
    // Reversed, the roles swap.
    assert_eq!(
        redline_html(&s.server, &s.rev1, &s.rev0).expect("html"),
        "<h2>Terms</h2>\
         <p>The <ins>quick </ins>brown fox<del> jumps</del></p>\
         <p><del>TEMP </del>Payment is due in 30 days.</p>\
         <p><strong>Old</strong> clause</p>"
    );
}

#[test]
fn old_revisions_read_back_as_they_were() {
    let s = story();
    assert_eq!(
        html_at(&s.server, &s.rev0).expect("html"),
        "<h2>Terms</h2><p>The quick brown fox</p><p>Payment is due in 30 days.</p>\
         <p><strong>Old</strong> clause</p>"
    );
    assert_eq!(
        text_at(&s.server, &s.rev0).expect("text"),
        "Terms\nThe quick brown fox\nPayment is due in 30 days.\nOld clause"
    );
    assert_eq!(
        text_at(&s.server, &s.rev1).expect("text"),
        "Terms\nThe brown fox jumps\nTEMP Payment is due in 30 days.\nOld clause"
    );
    // The latest revision reads like the live document.
    assert_eq!(
        text_at(&s.server, &s.rev2).expect("text"),
        plain_text(&s.server)
    );
    assert_eq!(
        html_at(&s.server, &s.rev2).expect("html"),
        "<h2>Terms</h2><p>The brown fox jumps</p><p>Payment is due in 45 days.</p>\
         <p><strong>New</strong> clause</p>"
    );
}

#[test]
fn revisions_survive_reloading_the_document_from_its_stored_state() {
    let s = story();
    let (rev0, rev2) = (s.rev0.encode_v1(), snapshot_of(&s.server));
    let expected = redline_html(&s.server, &s.rev0, &s.rev2).expect("html");
    // The server compacts to a v2-encoded state and later reloads it into a skip_gc document.
    let state = s
        .server
        .transact()
        .encode_state_as_update_v2(&StateVector::default());
    let reloaded = server_doc();
    reloaded
        .transact_mut()
        .apply_update(Update::decode_v2(&state).expect("decode"))
        .expect("apply");
    let rev0 = decode_snapshot(&rev0).expect("rev0");
    let rev2 = decode_snapshot(&rev2).expect("rev2");
    assert_eq!(rev2, s.rev2);
    assert_eq!(
        redline_html(&reloaded, &rev0, &rev2).expect("html"),
        expected
    );
    assert_eq!(
        text_at(&reloaded, &rev0).expect("text"),
        "Terms\nThe quick brown fox\nPayment is due in 30 days.\nOld clause"
    );
}

#[test]
fn documents_without_retained_deletions_and_foreign_snapshots_are_refused() {
    let s = story();
    let collected = Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::with_client_id(ClientID::new(7))
    });
    sync(&s.server, &collected);
    assert_eq!(
        redline(&collected, &s.rev0, &s.rev2),
        Err(HistoryError::NotRetained)
    );
    assert_eq!(text_at(&collected, &s.rev0), Err(HistoryError::NotRetained));

    // A snapshot of a state this document never had.
    let small = server_doc();
    {
        let mut txn = small.transact_mut();
        let body = txn.get_or_insert_xml_fragment(BODY);
        push_block(&mut txn, &body, "paragraph", &[("hi", false)]);
    }
    assert_eq!(html_at(&small, &s.rev2), Err(HistoryError::UnknownState));
    assert!(matches!(
        decode_snapshot(&[0xff, 0xff, 0xff]),
        Err(HistoryError::InvalidSnapshot(_))
    ));
    // A transaction already open on this thread is reported, not deadlocked on.
    let _open = s.server.transact();
    assert_eq!(
        redline(&s.server, &s.rev0, &s.rev2),
        Err(HistoryError::Busy)
    );
}

#[test]
fn html_is_escaped_and_links_are_filtered() {
    let server = server_doc();
    let alice = replica(&server, 1);
    let link = |href: &str| {
        let mut m = HashMap::new();
        m.insert("href".to_owned(), Any::from(href));
        Attrs::from([(Arc::from("link"), Any::Map(Arc::new(m)))])
    };
    edit(&alice, &server, |txn, body| {
        let script = [("<script>alert(\"x\") & 'y'</script>", false)];
        push_block(txn, body, "paragraph", &script);
        let text = text_in(txn, body, 0);
        let end = text.len(txn);
        text.insert_with_attributes(txn, end, " safe", link("https://example.com/?a=1&b=\"2\""));
        let end = text.len(txn);
        text.insert_with_attributes(txn, end, " evil", link("javascript:alert(1)"));
        let end = text.len(txn);
        let author = uuid::Uuid::from_u128(7);
        let mark = SuggestionMark::new(author, 1_760_000_000_000);
        text.insert_with_attributes(txn, end, " maybe", mark.attrs(INSERTION));
    });
    let now = server.transact().snapshot();
    assert_eq!(
        html_at(&server, &now).expect("html"),
        "<p>&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;\
         <a href=\"https://example.com/?a=1&amp;b=&quot;2&quot;\"> safe</a> evil\
         <span class=\"suggestion-insertion\" \
         data-author=\"00000000-0000-0000-0000-000000000007\"> maybe</span></p>"
    );
}

#[test]
fn nested_blocks_formatting_and_utf16_offsets() {
    let server = server_doc();
    let alice = replica(&server, 1);
    let body = alice.get_or_insert_xml_fragment(BODY);
    let (list, text) = {
        let mut txn = alice.transact_mut();
        let list = body.push_back(&mut txn, XmlElementPrelim::empty("bulletList"));
        let item = list.push_back(&mut txn, XmlElementPrelim::empty("listItem"));
        let p = item.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
        (list, p.push_back(&mut txn, XmlTextPrelim::new("a😀b")))
    };
    sync(&alice, &server);
    let before = server.transact().snapshot();
    {
        let mut txn = alice.transact_mut();
        let item = list.push_back(&mut txn, XmlElementPrelim::empty("listItem"));
        let p = item.push_back(&mut txn, XmlElementPrelim::empty("paragraph"));
        p.push_back(&mut txn, XmlTextPrelim::new("two"));
        text.insert(&mut txn, 3, "X"); // after the emoji: two UTF-16 units
        text.format(&mut txn, 0, 1, bold()); // a formatting change alone is not a redline
    }
    sync(&alice, &server);
    let after = server.transact().snapshot();
    assert_eq!(
        redline_html(&server, &before, &after).expect("html"),
        "<ul><li><p><strong>a</strong>😀<ins>X</ins>b</p></li>\
         <li data-redline=\"inserted\"><p data-redline=\"inserted\"><ins>two</ins></p></li></ul>"
    );
    assert_eq!(text_at(&server, &after).expect("text"), "a😀Xb\ntwo");
}
