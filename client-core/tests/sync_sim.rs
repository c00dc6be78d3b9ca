//! Clients exchanging changes through a simulated server (the test plays the server with
//! `FakeServer`): convergence, concurrent edits, snapshots, cursor resumption, duplicate and
//! reordered delivery, and the status machine.

mod common;

use client_core::{Client, Query, ServerMessage, SyncEvent, SyncStatus};
use common::sim::Sim;
use common::{s, temp_client};
use syncline_protocol::record::FieldValue;

fn sim_with(n: usize) -> (Sim, Vec<tempfile::TempDir>) {
    let mut sim = Sim::new();
    let mut dirs = Vec::new();
    for _ in 0..n {
        let (c, _path, dir) = temp_client();
        sim.add(c);
        dirs.push(dir);
    }
    (sim, dirs)
}

/// Rows of every client, which must be identical, and equal to the server's records.
fn assert_converged(sim: &mut Sim) {
    let all: Vec<_> = sim
        .clients
        .iter()
        .map(|c| {
            c.query("tasks", &Query::new().include_deleted(true))
                .expect("query")
        })
        .collect();
    for rows in &all[1..] {
        assert_eq!(rows, &all[0]);
    }
    for row in &all[0] {
        let server = sim.server.record(row.id).expect("server has the record");
        let local: std::collections::BTreeMap<_, _> = row.fields.clone().into_iter().collect();
        assert_eq!(local, server, "row {} differs from the server", row.id);
    }
    for c in &sim.clients {
        assert_eq!(c.pending_count(), 0);
    }
}

#[test]
fn two_clients_converge() {
    let (mut sim, _dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    sim.settle();
    let a = sim
        .client(0)
        .create("tasks", [("title", s("From A")), ("status", s("todo"))])
        .expect("create");
    let b = sim
        .client(1)
        .create("tasks", [("title", s("From B")), ("status", s("backlog"))])
        .expect("create");
    sim.settle();
    for i in 0..2 {
        assert_eq!(
            sim.client(i)
                .get("tasks", a)
                .expect("get")
                .expect("a")
                .get_str("title"),
            Some("From A")
        );
        assert_eq!(
            sim.client(i)
                .get("tasks", b)
                .expect("get")
                .expect("b")
                .get_str("title"),
            Some("From B")
        );
        assert_eq!(sim.client(i).sync_status(), SyncStatus::Online);
        assert_eq!(sim.client(i).cursor("tasks").expect("cursor"), Some(2));
    }
    assert!(
        sim.take_events(1)
            .iter()
            .any(|e| matches!(e, SyncEvent::DocumentChanged { doc_id, .. } if *doc_id == a))
    );
    assert_converged(&mut sim);
}

#[test]
fn concurrent_edits_to_different_fields_are_both_kept() {
    let (mut sim, _dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    let id = sim
        .client(0)
        .create("tasks", [("title", s("Shared")), ("status", s("todo"))])
        .expect("create");
    sim.settle();
    // Both edit before seeing the other's change.
    sim.client(0)
        .update("tasks", id, [("title", Some(s("Renamed by A")))])
        .expect("a");
    sim.client(1)
        .update("tasks", id, [("status", Some(s("in_progress")))])
        .expect("b");
    sim.settle();
    for i in 0..2 {
        let row = sim.client(i).get("tasks", id).expect("get").expect("row");
        assert_eq!(row.get_str("title"), Some("Renamed by A"));
        assert_eq!(row.get_str("status"), Some("in_progress"));
    }
    assert_converged(&mut sim);
}

#[test]
fn concurrent_edits_to_the_same_field_settle_on_one_value() {
    let (mut sim, _dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    let id = sim
        .client(0)
        .create("tasks", [("title", s("Shared")), ("status", s("todo"))])
        .expect("create");
    sim.settle();
    sim.disconnect(1);
    sim.client(0)
        .update("tasks", id, [("title", Some(s("A wins?")))])
        .expect("a");
    sim.client(1)
        .update("tasks", id, [("title", Some(s("B wins?")))])
        .expect("b");
    sim.settle();
    sim.connect(1);
    sim.settle();
    let a = sim.client(0).get("tasks", id).expect("get").expect("row");
    let b = sim.client(1).get("tasks", id).expect("get").expect("row");
    assert_eq!(a, b);
    assert!(matches!(a.get_str("title"), Some("A wins?" | "B wins?")));
    assert_converged(&mut sim);
}

#[test]
fn offline_client_catches_up_from_its_cursor_and_new_client_from_a_snapshot() {
    let (mut sim, _dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    let ids: Vec<_> = (0..3)
        .map(|i| {
            sim.client(0)
                .create(
                    "tasks",
                    [("title", s(&format!("T{i}"))), ("status", s("todo"))],
                )
                .expect("create")
        })
        .collect();
    sim.settle();
    sim.disconnect(1);
    sim.client(0)
        .update("tasks", ids[0], [("status", Some(s("done")))])
        .expect("update");
    let later = sim
        .client(0)
        .create("tasks", [("title", s("Later")), ("status", s("todo"))])
        .expect("create");
    sim.client(1)
        .update("tasks", ids[1], [("priority", Some(s("high")))])
        .expect("offline edit");
    sim.settle();
    assert_eq!(sim.client(1).sync_status(), SyncStatus::Offline);
    assert!(sim.client(1).get("tasks", later).expect("get").is_none());

    sim.take_events(1);
    sim.connect(1);
    sim.settle();
    assert_eq!(
        sim.client(1)
            .get("tasks", ids[0])
            .expect("get")
            .expect("row")
            .get_str("status"),
        Some("done")
    );
    assert!(sim.client(1).get("tasks", later).expect("get").is_some());
    // Only the missed changes were replayed, not a snapshot.
    let replayed = sim.take_events(1);
    assert!(
        !replayed
            .iter()
            .any(|e| matches!(e, SyncEvent::DocumentChanged { doc_id, .. } if *doc_id == ids[2]))
    );

    // A brand-new replica gets everything as snapshots (two chunks), then live changes.
    let (fresh, _path, _dir) = temp_client();
    let c = sim.add(fresh);
    sim.connect(c);
    sim.settle();
    assert_eq!(
        sim.client(c)
            .query("tasks", &Query::new())
            .expect("query")
            .len(),
        4
    );
    assert_eq!(
        sim.client(c).cursor("tasks").expect("cursor"),
        Some(sim.server.seq)
    );
    sim.client(0)
        .update("tasks", later, [("title", Some(s("Live")))])
        .expect("update");
    sim.settle();
    assert_eq!(
        sim.client(c)
            .get("tasks", later)
            .expect("get")
            .expect("row")
            .get_str("title"),
        Some("Live")
    );
    assert_converged(&mut sim);
}

#[test]
fn duplicate_and_echo_first_delivery_is_harmless() {
    let (mut sim, _dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    sim.settle();
    let id = sim
        .client(0)
        .create("tasks", [("title", s("Echo")), ("status", s("todo"))])
        .expect("create");
    sim.push(0);
    // Deliver the echoed Change before the Ack.
    let ack = sim.inbox[0].pop_front().expect("ack");
    assert!(matches!(ack, ServerMessage::Ack { .. }));
    let echo = sim.inbox[0].pop_front().expect("echo");
    sim.client(0).handle(echo.clone()).expect("echo");
    assert_eq!(
        sim.client(0).pending_count(),
        0,
        "the echo of our own mutation acknowledges it"
    );
    sim.client(0).handle(ack).expect("late ack is a no-op");
    sim.client(0)
        .handle(echo.clone())
        .expect("duplicate change");
    assert_eq!(sim.client(0).pending_count(), 0);
    sim.client(1).handle(echo.clone()).expect("b");
    sim.client(1).handle(echo).expect("b duplicate");
    sim.settle();
    let states = sim
        .client(0)
        .document_states(id)
        .expect("states")
        .expect("doc");
    let mut confirmed =
        automerge::AutoCommit::load(&states.confirmed.expect("confirmed")).expect("load");
    let mut working = automerge::AutoCommit::load(&states.working).expect("load");
    assert_eq!(confirmed.get_heads(), working.get_heads());
    assert_converged(&mut sim);
}

#[test]
fn remote_change_built_on_an_unacked_local_change_confirms_it() {
    let (mut sim, _dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    sim.settle();
    let id = sim
        .client(0)
        .create("tasks", [("title", s("Base")), ("status", s("todo"))])
        .expect("create");
    sim.push(0);
    // A's Ack and echo are delayed; B sees A's change and builds on it.
    let delayed: Vec<ServerMessage> = sim.inbox[0].drain(..).collect();
    while sim.deliver_one(1) {}
    sim.client(1)
        .update("tasks", id, [("status", Some(s("done")))])
        .expect("b edits");
    sim.push(1);
    while sim.deliver_one(1) {}
    // B's change reaches A first.
    while sim.deliver_one(0) {}
    let states = sim
        .client(0)
        .document_states(id)
        .expect("states")
        .expect("doc");
    let confirmed =
        automerge::AutoCommit::load(&states.confirmed.expect("confirmed")).expect("load");
    let record =
        syncline_protocol::record::read_record(&confirmed, &syncline_protocol::schema::TASKS)
            .expect("valid");
    assert_eq!(
        record.get("status"),
        Some(&FieldValue::String("done".into()))
    );
    assert_eq!(
        sim.client(0)
            .get("tasks", id)
            .expect("get")
            .expect("row")
            .get_str("status"),
        Some("done")
    );
    for m in delayed {
        sim.client(0).handle(m).expect("delayed");
    }
    sim.settle();
    assert_converged(&mut sim);
}

#[test]
fn status_follows_the_connection() {
    let (mut c, _path, _dir) = temp_client();
    assert_eq!(c.sync_status(), SyncStatus::Offline);
    c.on_connecting();
    assert_eq!(c.sync_status(), SyncStatus::Connecting);
    let mut sim = Sim::new();
    sim.add(c);
    sim.connect(0);
    assert_eq!(
        sim.client(0).sync_status(),
        SyncStatus::Connecting,
        "until Welcome"
    );
    sim.deliver_one(0);
    assert_eq!(
        sim.client(0).sync_status(),
        SyncStatus::Syncing,
        "subscription not synced yet"
    );
    sim.settle();
    assert_eq!(sim.client(0).sync_status(), SyncStatus::Online);
    assert!(sim.client(0).is_synced());
    sim.client(0)
        .create("tasks", [("title", s("x")), ("status", s("todo"))])
        .expect("create");
    assert_eq!(
        sim.client(0).sync_status(),
        SyncStatus::Syncing,
        "pending push"
    );
    sim.settle();
    assert_eq!(sim.client(0).sync_status(), SyncStatus::Online);

    let events = sim
        .client(0)
        .handle(ServerMessage::Error {
            code: client_core::ErrorCode::UnexpectedMessage,
            message: "huh".into(),
        })
        .expect("error");
    assert!(matches!(events.as_slice(), [SyncEvent::ServerError { .. }]));
    assert_eq!(
        sim.client(0).last_error().and_then(|e| e.code),
        Some(client_core::ErrorCode::UnexpectedMessage)
    );
    sim.disconnect(0);
    assert_eq!(sim.client(0).sync_status(), SyncStatus::Offline);
    assert!(
        sim.client(0).last_error().is_some(),
        "kept until the next Welcome"
    );
    sim.connect(0);
    sim.settle();
    assert!(sim.client(0).last_error().is_none());
    let identity = sim.client(0).session_identity().expect("identity");
    assert_eq!(identity, Some((sim.server.user_id, sim.server.org_id)));
    let _: &Client = &sim.clients[0];
}

#[test]
fn dependencies_added_concurrently_by_two_offline_clients_are_both_kept() {
    use client_core::{TaskDraft, TaskPatch};
    let (mut sim, _dirs) = sim_with(2);
    sim.connect(0);
    sim.connect(1);
    let [x, y, z] = [(); 3].map(|_| uuid::Uuid::now_v7());
    let id = sim
        .client(0)
        .create_task(&TaskDraft {
            depends_on: vec![x],
            ..TaskDraft::new("Blocked", "todo")
        })
        .expect("create");
    sim.settle();
    sim.disconnect(1);
    // A adds y; B, offline, drops x and adds z. Both edit the same list object.
    sim.client(0)
        .update_task(
            id,
            &TaskPatch {
                depends_on: Some(vec![x, y]),
                ..TaskPatch::default()
            },
        )
        .expect("a");
    sim.client(1)
        .update_task(
            id,
            &TaskPatch {
                depends_on: Some(vec![z]),
                ..TaskPatch::default()
            },
        )
        .expect("b");
    sim.settle();
    sim.connect(1);
    sim.settle();
    let a = sim.client(0).get_task(id).expect("get").expect("task");
    let b = sim.client(1).get_task(id).expect("get").expect("task");
    assert_eq!(a, b);
    let mut deps = a.depends_on.clone();
    deps.sort();
    let mut expected = vec![y, z];
    expected.sort();
    assert_eq!(deps, expected, "y and z kept, x removed");
    assert_converged(&mut sim);
}
