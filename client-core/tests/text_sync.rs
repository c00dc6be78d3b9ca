//! Text documents between replicas through the simulated server (which judges updates with the
//! protocol's `authorize_update`): convergence, snapshots, acknowledgement, coalescing of
//! offline edits, compaction of the confirmed state, and awareness relay.

mod common;

use client_core::{Client, ClientMessage, SyncEvent, TextEvent};
use common::sim::Sim;
use common::{note, temp_client};
use uuid::Uuid;
use yrs::updates::decoder::Decode;

fn sim_with(n: usize) -> (Sim, Vec<(std::path::PathBuf, tempfile::TempDir)>) {
    let mut sim = Sim::new();
    let mut dirs = Vec::new();
    for _ in 0..n {
        let (c, path, dir) = temp_client();
        sim.add(c);
        dirs.push((path, dir));
    }
    (sim, dirs)
}

fn text(sim: &mut Sim, i: usize, id: Uuid) -> String {
    sim.client(i).note_body(id).plain_text().expect("text")
}

fn text_updates(events: &[SyncEvent], id: Uuid) -> usize {
    events
        .iter()
        .filter(
            |e| matches!(e, SyncEvent::Text(TextEvent::Updated { doc_id, .. }) if *doc_id == id),
        )
        .count()
}

#[test]
fn two_replicas_converge_through_the_server() {
    let (mut sim, _dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    sim.settle();
    let id = note(sim.client(0), "Shared");
    sim.client(0)
        .note_body(id)
        .insert(0, "Hello")
        .expect("insert");
    sim.settle();
    assert_eq!(text(&mut sim, 1, id), "Hello");
    let events = sim.take_events(1);
    assert_eq!(text_updates(&events, id), 1);
    assert!(events.iter().any(
        |e| matches!(e, SyncEvent::DocumentChanged { collection, doc_id } if collection == "note_bodies" && *doc_id == id)
    ));
    // The writer's own change comes back as an acknowledgement, not as an update to apply.
    assert_eq!(text_updates(&sim.take_events(0), id), 0);

    // Concurrent edits on both sides, including a batch.
    sim.client(0).note_body(id).insert(5, " world").expect("a");
    sim.client(1)
        .note_body(id)
        .edit(|e| {
            e.insert(0, ">> ")?;
            e.insert(8, "!")
        })
        .expect("b");
    sim.settle();
    let expected = sim.server.text(id).expect("server body");
    // Both inserted right after "Hello": Yjs orders them by client id.
    assert!(
        [">> Hello world!", ">> Hello! world"].contains(&expected.as_str()),
        "{expected}"
    );
    let sv = |sim: &mut Sim, i: usize| {
        let bytes = sim.client(i).note_body(id).state_vector().expect("sv");
        yrs::StateVector::decode_v1(&bytes).expect("decode")
    };
    for i in 0..2 {
        assert_eq!(text(&mut sim, i, id), expected);
        assert_eq!(sim.client(i).pending_count(), 0);
        // The same Yjs state (encodings may differ in how blocks are split).
        assert_eq!(sv(&mut sim, i), sv(&mut sim, 0));
        assert_eq!(
            sim.client(i).note_body(id).xml().expect("xml"),
            format!("<paragraph>{expected}</paragraph>")
        );
    }
    assert!(
        sim.client(1)
            .cursor("note_bodies")
            .expect("cursor")
            .is_some()
    );
}

#[test]
fn a_new_replica_gets_bodies_in_its_snapshot_and_keeps_them_offline() {
    let (mut sim, dirs) = sim_with(2);
    sim.connect(0);
    let id = note(sim.client(0), "N");
    sim.client(0)
        .note_body(id)
        .insert(0, "from the snapshot")
        .expect("insert");
    sim.client(0)
        .note_body(id)
        .format(
            0,
            4,
            "bold",
            Some(client_core::text::Any::Map(Default::default())),
        )
        .expect("bold");
    sim.settle();
    sim.connect(1);
    sim.settle();
    assert_eq!(text(&mut sim, 1, id), "from the snapshot");
    assert_eq!(
        sim.client(1).note_body(id).xml().expect("xml"),
        "<paragraph><bold>from</bold> the snapshot</paragraph>"
    );
    assert!(text_updates(&sim.take_events(1), id) >= 1);
    // Confirmed state is on disk: the replica reopens with it and no pending change.
    sim.disconnect(1);
    let reopened = Client::open(&dirs[1].0).expect("reopen");
    sim.clients[1] = reopened;
    assert_eq!(text(&mut sim, 1, id), "from the snapshot");
    assert_eq!(sim.client(1).pending_count(), 0);
}

#[test]
fn offline_edits_are_merged_pushed_on_reconnect_and_survive_a_restart() {
    let (mut sim, dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    let id = note(sim.client(0), "N");
    sim.settle();
    sim.disconnect(0);
    for (i, word) in ["one ", "two ", "three "].iter().enumerate() {
        let at = sim.client(0).note_body(id).len().expect("len");
        sim.client(0)
            .note_body(id)
            .insert(at, word)
            .expect("offline edit");
        assert_eq!(sim.client(0).pending_count(), i as u64 + 1);
    }
    // A restart while offline: the edits are on disk.
    let reopened = Client::open(&dirs[0].0).expect("reopen");
    sim.clients[0] = reopened;
    assert_eq!(text(&mut sim, 0, id), "one two three ");
    sim.client(0)
        .note_body(id)
        .insert(0, "zero ")
        .expect("edit after restart");
    assert_eq!(sim.client(0).pending_count(), 4);

    let received = sim.server.received.len();
    sim.connect(0);
    // Entries present when the replica opened may have been sent before: only the edit made
    // since then is merged ... and it is alone, so four mutations go out.
    assert_eq!(sim.server.received.len() - received, 4);
    sim.settle();
    assert_eq!(sim.server.text(id).as_deref(), Some("zero one two three "));
    assert_eq!(text(&mut sim, 1, id), "zero one two three ");
    assert_eq!(sim.client(0).pending_count(), 0);

    // Edits made offline in this process are merged into one mutation.
    sim.disconnect(0);
    for _ in 0..10 {
        sim.client(0)
            .note_body(id)
            .insert(0, "x")
            .expect("offline edit");
    }
    assert_eq!(sim.client(0).pending_count(), 10);
    let received = sim.server.received.len();
    sim.connect(0);
    assert_eq!(sim.server.received.len() - received, 1);
    assert_eq!(sim.client(0).pending_count(), 1);
    sim.settle();
    assert_eq!(text(&mut sim, 1, id), "xxxxxxxxxxzero one two three ");
    assert_eq!(sim.client(0).pending_count(), 0);
}

#[test]
fn confirmed_state_is_compacted_and_reloads() {
    let (mut sim, dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    let id = note(sim.client(0), "Long");
    sim.settle();
    let mut model = String::new();
    // More confirmed updates than the log keeps before folding them into the base.
    for i in 0..4200u32 {
        let ch = char::from(b'a' + (i % 26) as u8);
        let pos = (i * 7) % (model.len() as u32 + 1);
        sim.client(0)
            .note_body(id)
            .insert(pos, &ch.to_string())
            .expect("edit");
        model.insert(pos as usize, ch);
        // Pushed one by one, so that each is its own mutation and remote change.
        sim.push(0);
        if i % 100 == 99 {
            sim.settle();
        }
    }
    sim.settle();
    for (i, (path, _)) in dirs.iter().enumerate() {
        let logged: i64 = sim
            .client(i)
            .connection()
            .query_row("SELECT count(*) FROM text_confirmed", [], |r| r.get(0))
            .expect("count");
        assert!(logged < 4096, "replica {i} folded its log ({logged} left)");
        let based: i64 = sim
            .client(i)
            .connection()
            .query_row(
                "SELECT count(*) FROM text_documents WHERE base IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(based, 1);
        sim.disconnect(i);
        sim.clients[i] = Client::open(path).expect("reopen");
        assert_eq!(text(&mut sim, i, id), model);
    }
}

#[test]
fn awareness_is_relayed_live_and_never_stored() {
    let (mut sim, _dirs) = sim_with(2);
    let id = note(sim.client(0), "N");
    // Not connected: dropped.
    assert!(!sim.client(0).send_awareness(id, vec![1, 2, 3]));
    sim.connect(0);
    sim.connect(1);
    sim.settle();
    sim.take_events(0);
    sim.take_events(1);
    assert!(sim.client(0).send_awareness(id, vec![4, 5, 6]));
    let out = sim.client(0).take_outgoing().expect("outgoing");
    assert!(
        matches!(out.as_slice(), [ClientMessage::Awareness { doc_id, update }] if *doc_id == id && update.as_slice() == [4, 5, 6])
    );
    for m in out {
        sim.send_to_server(0, m);
    }
    sim.settle();
    let events = sim.take_events(1);
    assert_eq!(
        events,
        vec![SyncEvent::Text(TextEvent::Awareness {
            doc_id: id,
            update: vec![4, 5, 6]
        })]
    );
    assert!(sim.take_events(0).is_empty(), "not echoed to the sender");
    assert_eq!(sim.client(0).pending_count(), 0);
}
