//! Updates real Yjs clients produce without anyone meaning to edit, which a suggester's client
//! sends like any other and authorization must accept.

use yrs::{ClientID, Doc, OffsetKind, Options, ReadTxn, Text, Transact};

use super::test_support::{apply, bold, document, edit, full_state, text_of, user};
use super::{BODY, TextRole, authorize_update, plain_text};

/// Yjs (and yrs with `cleanup_formatting`) deletes format items made redundant by a remote
/// update, in the receiving client's name: a deletion that changes nothing visible.
#[test]
fn formatting_cleanup_by_a_suggesters_client_is_accepted() {
    let doc = document(&["abc"]);
    // Two editors bold the same text concurrently: two redundant pairs of format items.
    let first = edit(&doc, 10, |txn, body| {
        text_of(txn, body, 0).format(txn, 0, 3, bold())
    });
    let second = edit(&doc, 11, |txn, body| {
        text_of(txn, body, 0).format(txn, 0, 3, bold())
    });

    // The suggester's client has the first and receives the second from the server.
    let client = Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        cleanup_formatting: true,
        ..Options::with_client_id(ClientID::new(7))
    });
    client.get_or_insert_xml_fragment(BODY);
    apply(&client, &full_state(&doc));
    apply(&client, &first);
    apply(&doc, &first);
    apply(&doc, &second);
    let sv = client.transact().state_vector();
    apply(&client, &second);
    let cleanup = client.transact().encode_diff_v1(&sv);

    // The update deletes something the server still has, so it is a change...
    assert!(authorize_update(&doc, &cleanup, user(), TextRole::Viewer).is_err());
    // ...that a suggester may send.
    assert_eq!(
        authorize_update(&doc, &cleanup, user(), TextRole::Suggester),
        Ok(())
    );
    apply(&doc, &cleanup);
    assert_eq!(plain_text(&doc), "abc");
    let txn = doc.transact();
    let body = txn.get_xml_fragment(BODY).expect("body");
    let runs = text_of(&txn, &body, 0).diff(&txn, |_| ());
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].attributes.as_deref(), Some(&bold()));
}
