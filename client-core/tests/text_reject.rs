//! Rejected text updates roll the body back to its confirmed state plus the pending updates
//! that still apply; suggesters' updates pass the server's rules and other edits of theirs are
//! rolled back; evictions and fresh snapshots purge bodies.

mod common;

use std::sync::{Arc, Mutex};

use client_core::{ErrorCode, ServerMessage, SyncEvent, TextEvent};
use common::sim::Sim;
use common::{note, temp_client};
use syncline_protocol::text::TextRole;
use uuid::Uuid;
use yrs::Text;

fn rejected(events: &[SyncEvent]) -> Vec<(u64, ErrorCode)> {
    events
        .iter()
        .filter_map(|e| match e {
            SyncEvent::Rejected { mid, code, .. } => Some((mid.seq, *code)),
            _ => None,
        })
        .collect()
}

fn resets(events: &[SyncEvent], id: Uuid) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, SyncEvent::Text(TextEvent::Reset { doc_id, .. }) if *doc_id == id))
        .count()
}

/// A sim whose server refuses body updates (`Forbidden`) while the returned flag is set.
fn sim_refusing_bodies(n: usize) -> (Sim, Arc<Mutex<bool>>, Vec<tempfile::TempDir>) {
    let mut sim = Sim::new();
    let mut dirs = Vec::new();
    for _ in 0..n {
        let (c, _path, dir) = temp_client();
        sim.add(c);
        dirs.push(dir);
    }
    let refuse = Arc::new(Mutex::new(false));
    let rule = refuse.clone();
    sim.server.reject_when(move |m| {
        (m.collection == "note_bodies" && *rule.lock().expect("lock"))
            .then(|| (ErrorCode::Forbidden, "read only".to_owned()))
    });
    (sim, refuse, dirs)
}

fn text(sim: &mut Sim, i: usize, id: Uuid) -> String {
    sim.client(i).note_body(id).plain_text().expect("text")
}

#[test]
fn reject_rolls_back_and_drops_dependent_updates() {
    let (mut sim, refuse, _dirs) = sim_refusing_bodies(2);
    sim.connect(0);
    sim.connect(1);
    let id = note(sim.client(0), "N");
    let other = note(sim.client(0), "Other");
    sim.client(0)
        .note_body(id)
        .insert(0, "base")
        .expect("insert");
    sim.settle();
    sim.take_events(0);

    *refuse.lock().expect("lock") = true;
    sim.client(0).note_body(id).insert(4, " A").expect("seq 4");
    sim.push(0);
    *refuse.lock().expect("lock") = false;
    // Continues the refused edit's clock: the server cannot integrate it either.
    sim.client(0).note_body(id).insert(6, " B").expect("seq 5");
    sim.client(0)
        .note_body(other)
        .insert(0, "kept")
        .expect("seq 6");
    assert_eq!(text(&mut sim, 0, id), "base A B");
    sim.settle();

    let events = sim.take_events(0);
    assert_eq!(
        rejected(&events),
        vec![(4, ErrorCode::Forbidden), (5, ErrorCode::MissingDependency)]
    );
    assert_eq!(resets(&events, id), 1);
    assert_eq!(text(&mut sim, 0, id), "base");
    assert_eq!(text(&mut sim, 0, other), "kept");
    assert_eq!(sim.client(0).pending_count(), 0);

    // Editing goes on after the rollback (under a new Yjs client id, so the refused clocks are
    // never reused) and converges.
    sim.client(0)
        .note_body(id)
        .insert(4, "!")
        .expect("after rollback");
    sim.settle();
    assert!(rejected(&sim.take_events(0)).is_empty());
    for i in 0..2 {
        assert_eq!(text(&mut sim, i, id), "base!");
        assert_eq!(text(&mut sim, i, other), "kept");
    }
    assert_eq!(sim.server.text(id).as_deref(), Some("base!"));
}

#[test]
fn merged_offline_edits_are_rolled_back_together() {
    let (mut sim, refuse, _dirs) = sim_refusing_bodies(1);
    sim.connect(0);
    let id = note(sim.client(0), "N");
    sim.client(0)
        .note_body(id)
        .insert(0, "kept")
        .expect("insert");
    sim.settle();
    sim.disconnect(0);
    for _ in 0..5 {
        sim.client(0).note_body(id).insert(0, "x").expect("offline");
    }
    *refuse.lock().expect("lock") = true;
    sim.connect(0);
    sim.settle();
    let events = sim.take_events(0);
    assert_eq!(
        rejected(&events).len(),
        1,
        "one merged mutation: {events:?}"
    );
    assert_eq!(text(&mut sim, 0, id), "kept");
    assert_eq!(sim.client(0).pending_count(), 0);
}

#[test]
fn a_refused_first_edit_forgets_the_body() {
    let (mut sim, refuse, _dirs) = sim_refusing_bodies(1);
    sim.connect(0);
    let id = note(sim.client(0), "N");
    sim.settle();
    *refuse.lock().expect("lock") = true;
    sim.client(0)
        .note_body(id)
        .insert(0, "never")
        .expect("insert");
    sim.settle();
    assert_eq!(
        rejected(&sim.take_events(0)),
        vec![(2, ErrorCode::Forbidden)]
    );
    assert!(!sim.client(0).note_body(id).exists().expect("exists"));
    assert!(sim.client(0).get("notes", id).expect("get").is_some());
}

#[test]
fn suggesters_push_suggestions_and_other_edits_roll_back() {
    let (mut sim, _refuse, _dirs) = sim_refusing_bodies(2);
    sim.connect(0);
    sim.connect(1);
    let id = note(sim.client(0), "Contract");
    sim.client(0)
        .note_body(id)
        .insert(0, "Pay in 30 days")
        .expect("insert");
    sim.settle();
    sim.server.text_role = TextRole::Suggester;
    sim.client(1)
        .note_body(id)
        .suggest_insert(7, "within ")
        .expect("suggest");
    sim.client(1)
        .note_body(id)
        .suggest_delete(0, 4)
        .expect("suggest");
    sim.settle();
    assert!(rejected(&sim.take_events(1)).is_empty(), "suggestions pass");
    let suggested = text(&mut sim, 0, id);
    assert_eq!(suggested, "Pay in within 30 days");
    let marks = sim.client(0).note_body(id).suggestions().expect("list");
    assert_eq!(marks.len(), 2);
    assert!(marks.iter().all(|s| s.mark.author == sim.server.user_id));

    // A real deletion by a suggester is refused and rolled back on their replica.
    sim.client(1)
        .note_body(id)
        .delete(0, 4)
        .expect("local delete");
    assert_eq!(text(&mut sim, 1, id), "in within 30 days");
    sim.settle();
    let events = sim.take_events(1);
    assert_eq!(rejected(&events).len(), 1);
    assert_eq!(resets(&events, id), 1);
    assert_eq!(text(&mut sim, 1, id), suggested);

    sim.server.text_role = TextRole::Editor;
    sim.client(0).note_body(id).accept_all().expect("accept");
    sim.settle();
    for i in 0..2 {
        assert_eq!(text(&mut sim, i, id), "in within 30 days");
        assert!(
            sim.client(i)
                .note_body(id)
                .suggestions()
                .expect("list")
                .is_empty()
        );
    }
}

fn count(sim: &mut Sim, sql: &str) -> i64 {
    sim.client(0)
        .connection()
        .query_row(sql, [], |r| r.get(0))
        .expect("count")
}

#[test]
fn evict_purges_the_record_its_body_and_their_pending_changes() {
    let (mut sim, _refuse, _dirs) = sim_refusing_bodies(1);
    sim.connect(0);
    let id = note(sim.client(0), "Secret");
    sim.client(0)
        .note_body(id)
        .insert(0, "text")
        .expect("insert");
    sim.settle();
    sim.disconnect(0);
    sim.client(0)
        .note_body(id)
        .insert(0, "more ")
        .expect("pending");
    sim.client(0)
        .update("notes", id, [("title", Some(common::s("Renamed")))])
        .expect("pending");
    assert_eq!(sim.client(0).pending_count(), 2);

    let events = sim
        .client(0)
        .handle(ServerMessage::Evict { doc_id: id })
        .expect("evict");
    assert_eq!(
        events,
        vec![SyncEvent::Evicted {
            doc_id: id,
            collection: Some("notes".to_owned())
        }]
    );
    assert_eq!(sim.client(0).pending_count(), 0);
    assert!(sim.client(0).outbox().expect("outbox").is_empty());
    assert!(sim.client(0).get("notes", id).expect("get").is_none());
    assert!(!sim.client(0).note_body(id).exists().expect("exists"));
    assert_eq!(count(&mut sim, "SELECT count(*) FROM text_documents"), 0);
    assert_eq!(count(&mut sim, "SELECT count(*) FROM text_confirmed"), 0);
}

#[test]
fn a_fresh_snapshot_without_the_body_drops_it() {
    let (mut sim, _refuse, _dirs) = sim_refusing_bodies(1);
    sim.connect(0);
    let id = note(sim.client(0), "N");
    sim.client(0)
        .note_body(id)
        .insert(0, "text")
        .expect("insert");
    sim.settle();
    // The server no longer has the body (e.g. it was purged): a fresh snapshot omits it.
    sim.server.texts.remove(&id);
    sim.disconnect(0);
    sim.client(0).reset_cursor("note_bodies").expect("reset");
    sim.connect(0);
    sim.settle();
    let events = sim.take_events(0);
    assert!(events.contains(&SyncEvent::Evicted {
        doc_id: id,
        collection: Some("note_bodies".to_owned())
    }));
    assert!(!sim.client(0).note_body(id).exists().expect("exists"));
    assert!(sim.client(0).get("notes", id).expect("get").is_some());
}

/// An editor's update that builds on refused text (its insertion's origin is that text) is not
/// a clock gap: it only shows as pending once applied, and the rebuild starts over without it;
/// an independent editor update after it survives.
#[test]
fn an_editor_update_built_on_refused_text_is_dropped() {
    let (mut sim, refuse, _dirs) = sim_refusing_bodies(1);
    sim.connect(0);
    let id = note(sim.client(0), "N");
    sim.client(0)
        .note_body(id)
        .insert(0, "base")
        .expect("insert");
    sim.settle();

    *refuse.lock().expect("lock") = true;
    sim.client(0)
        .note_body(id)
        .insert(4, " refused")
        .expect("seq 3");
    sim.push(0);
    *refuse.lock().expect("lock") = false;
    // A browser editor loaded the body with the refused text and typed after it.
    let state = sim.client(0).note_body(id).encode_state().expect("state");
    let built_on = editor_edit(&state, 4242, |txn, t| t.insert(txn, 12, "!"));
    sim.client(0)
        .note_body(id)
        .apply_update(&built_on)
        .expect("seq 4")
        .expect("recorded");
    sim.push(0);
    // Another editor's edit at the start does not depend on it.
    let independent = editor_edit(&state, 4343, |txn, t| t.insert(txn, 0, ">"));
    sim.client(0)
        .note_body(id)
        .apply_update(&independent)
        .expect("seq 5")
        .expect("recorded");
    sim.push(0);
    assert_eq!(text(&mut sim, 0, id), ">base refused!");

    sim.settle();
    let events = sim.take_events(0);
    assert_eq!(
        rejected(&events),
        vec![(3, ErrorCode::Forbidden), (4, ErrorCode::MissingDependency)]
    );
    assert_eq!(text(&mut sim, 0, id), ">base");
    assert_eq!(sim.server.text(id).as_deref(), Some(">base"));
    assert_eq!(sim.client(0).pending_count(), 0);
}

/// An edit made by an editor (Yjs client `client`) that loaded `state`: its update.
fn editor_edit(
    state: &[u8],
    client: u64,
    edit: impl FnOnce(&mut yrs::TransactionMut, &yrs::XmlTextRef),
) -> Vec<u8> {
    use yrs::updates::decoder::Decode;
    use yrs::{ReadTxn, Transact, Update, WriteTxn, XmlFragment, XmlOut};

    let editor = yrs::Doc::with_options(yrs::Options {
        offset_kind: yrs::OffsetKind::Utf16,
        ..yrs::Options::with_client_id(yrs::ClientID::new(client))
    });
    editor
        .transact_mut()
        .apply_update(Update::decode_v1(state).expect("decode"))
        .expect("apply");
    let before = editor.transact().state_vector();
    {
        let mut txn = editor.transact_mut();
        let body = txn.get_or_insert_xml_fragment("prosemirror");
        let Some(XmlOut::Element(p)) = body.get(&txn, 0) else {
            panic!("paragraph")
        };
        let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
            panic!("text")
        };
        edit(&mut txn, &t);
    }
    editor.transact().encode_diff_v1(&before)
}
