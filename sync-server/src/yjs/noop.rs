//! Whether a client's sync step 2 brings the server anything new.
//!
//! A Yjs sync step 2 is the diff against the server's state vector, but Yjs always appends the
//! sender's whole delete set, so a client that has nothing new still answers a non-empty update
//! whenever the document has deletions. Pushed, it would be stored, logged and fanned out on
//! every (re)connection. The session drops such an update when every item and every deletion it
//! carries is already in the document the server's step 1 described.

use std::panic::{AssertUnwindSafe, catch_unwind};

use syncline_protocol::text::check_update_v1;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ID, IdSet, ReadTxn, Transact, Update};

/// True when `update` (v1) adds no item and deletes nothing that `doc` has not deleted. Any
/// doubt (an update that does not decode) answers false: the push path then judges it.
pub fn adds_nothing(doc: &Doc, update: &[u8]) -> bool {
    if check_update_v1(update).is_err() {
        return false;
    }
    // yrs's decoder is written for trusted peers (see protocol::text::authorize).
    catch_unwind(AssertUnwindSafe(|| {
        let Ok(update) = Update::decode_v1(update) else {
            return false;
        };
        let snapshot = doc.transact().snapshot();
        let mut known = IdSet::default();
        for (client, clock) in snapshot.state_map.iter() {
            known.insert(ID::new(*client, 0), *clock);
        }
        update.insertions(true).diff(&known).is_empty()
            && update.delete_set().diff(&snapshot.delete_set).is_empty()
    }))
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{GetString, Text, WriteTxn};

    fn synced_copy(doc: &Doc) -> Doc {
        let copy = Doc::new();
        let state = doc
            .transact()
            .encode_state_as_update_v1(&yrs::StateVector::default());
        copy.transact_mut()
            .apply_update(Update::decode_v1(&state).expect("decodes"))
            .expect("applies");
        copy
    }

    fn step2(client: &Doc, server: &Doc) -> Vec<u8> {
        let sv = server.transact().state_vector();
        client.transact().encode_diff_v1(&sv)
    }

    #[test]
    fn a_synced_clients_answer_adds_nothing_even_with_deletions() {
        let server = Doc::new();
        {
            let mut txn = server.transact_mut();
            let text = txn.get_or_insert_text("t");
            text.insert(&mut txn, 0, "hello world");
            text.remove_range(&mut txn, 0, 6);
        }
        let client = synced_copy(&server);
        let answer = step2(&client, &server);
        assert_ne!(answer, [0, 0], "the delete set is always sent");
        assert!(adds_nothing(&server, &answer));

        // A new insertion, or a new deletion, is something.
        let text = client.get_or_insert_text("t");
        text.insert(&mut client.transact_mut(), 5, "!");
        assert!(!adds_nothing(&server, &step2(&client, &server)));
        let client = synced_copy(&server);
        let text = client.get_or_insert_text("t");
        text.remove_range(&mut client.transact_mut(), 0, 1);
        assert_eq!(text.get_string(&client.transact()), "orld");
        assert!(!adds_nothing(&server, &step2(&client, &server)));
        assert!(!adds_nothing(&server, &[1, 2, 3]));
    }
}
