//! Rejections roll a document back to its confirmed state plus the pending changes that still
//! apply, drop (and report) the ones that built on the rejected change, and leave the replica
//! converged with the server; evictions purge a document entirely.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use client_core::{ErrorCode, MutationId, Query, ServerMessage, SyncEvent};
use common::sim::Sim;
use common::{s, temp_client};

fn rejected(events: &[SyncEvent]) -> Vec<(u64, ErrorCode)> {
    events
        .iter()
        .filter_map(|e| match e {
            SyncEvent::Rejected { mid, code, .. } => Some((mid.seq, *code)),
            _ => None,
        })
        .collect()
}

/// A sim with one client whose server rejects the mutation seqs in the returned set.
fn rejecting_sim() -> (Sim, Arc<Mutex<HashSet<u64>>>, tempfile::TempDir) {
    let (c, _path, dir) = temp_client();
    let mut sim = Sim::new();
    sim.add(c);
    let refuse = Arc::new(Mutex::new(HashSet::new()));
    let rule = refuse.clone();
    sim.server.reject_when(move |m| {
        rule.lock()
            .expect("lock")
            .contains(&m.mid.seq)
            .then(|| (ErrorCode::Forbidden, "not yours".to_owned()))
    });
    (sim, refuse, dir)
}

#[test]
fn reject_rolls_back_the_document_and_drops_dependent_changes() {
    let (mut sim, refuse, _dir) = rejecting_sim();
    sim.connect(0);
    let t = sim
        .client(0)
        .create("tasks", [("title", s("Original")), ("status", s("todo"))])
        .expect("t"); // seq 1
    let u = sim
        .client(0)
        .create("tasks", [("title", s("Other doc")), ("status", s("todo"))])
        .expect("u"); // seq 2
    sim.settle();
    sim.take_events(0);

    refuse.lock().expect("lock").insert(3);
    sim.client(0)
        .update("tasks", t, [("title", Some(s("Refused title")))])
        .expect("seq 3");
    sim.client(0)
        .update("tasks", t, [("status", Some(s("done")))])
        .expect("seq 4, builds on 3");
    sim.client(0)
        .update("tasks", u, [("status", Some(s("done")))])
        .expect("seq 5, other doc");
    assert_eq!(
        sim.client(0)
            .get("tasks", t)
            .expect("get")
            .expect("row")
            .get_str("title"),
        Some("Refused title")
    );
    sim.settle();

    let events = sim.take_events(0);
    // One report per mutation: 3 by the server, 4 locally as dependent (the server's later
    // missing_dependency answer for 4 finds nothing pending and is ignored).
    assert_eq!(
        rejected(&events),
        vec![(3, ErrorCode::Forbidden), (4, ErrorCode::MissingDependency)]
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SyncEvent::Acked { mid, .. } if mid.seq == 5))
    );
    let row = sim.client(0).get("tasks", t).expect("get").expect("row");
    assert_eq!(row.get_str("title"), Some("Original"));
    assert_eq!(row.get_str("status"), Some("todo"));
    assert_eq!(
        sim.client(0)
            .get("tasks", u)
            .expect("get")
            .expect("row")
            .get_str("status"),
        Some("done")
    );
    assert_eq!(sim.client(0).pending_count(), 0);

    // The rolled-back document accepts new edits, which the server takes (automerge reuses the
    // rejected change's actor sequence number; the server never stored it).
    sim.client(0)
        .update("tasks", t, [("title", Some(s("Second try")))])
        .expect("seq 6");
    sim.settle();
    assert_eq!(sim.client(0).pending_count(), 0);
    let server = sim.server.record(t).expect("server record");
    assert_eq!(server.get("title"), Some(&s("Second try")));
}

#[test]
fn unsent_dependent_changes_are_dropped_locally() {
    let (mut sim, refuse, _dir) = rejecting_sim();
    sim.connect(0);
    let t = sim
        .client(0)
        .create("tasks", [("title", s("Original")), ("status", s("todo"))])
        .expect("t");
    sim.settle();
    refuse.lock().expect("lock").insert(2);
    sim.client(0)
        .update("tasks", t, [("title", Some(s("Bad")))])
        .expect("seq 2");
    sim.push(0);
    // Made after the push, so never sent.
    sim.client(0)
        .update("tasks", t, [("priority", Some(s("high")))])
        .expect("seq 3");
    let reject = sim.inbox[0].pop_front().expect("reject");
    assert!(matches!(
        reject,
        ServerMessage::Reject {
            mid: MutationId { seq: 2, .. },
            ..
        }
    ));
    let events = sim.client(0).handle(reject).expect("reject");
    assert_eq!(
        rejected(&events),
        vec![(2, ErrorCode::Forbidden), (3, ErrorCode::MissingDependency)]
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, SyncEvent::DocumentChanged { doc_id, .. } if *doc_id == t))
    );
    assert_eq!(sim.client(0).pending_count(), 0);
    assert!(sim.client(0).take_outgoing().expect("outgoing").is_empty());
    let row = sim.client(0).get("tasks", t).expect("get").expect("row");
    assert_eq!(
        (row.get_str("title"), row.get_str("priority")),
        (Some("Original"), None)
    );
    let states = sim
        .client(0)
        .document_states(t)
        .expect("states")
        .expect("doc");
    let mut confirmed =
        automerge::AutoCommit::load(&states.confirmed.expect("confirmed")).expect("load");
    let mut working = automerge::AutoCommit::load(&states.working).expect("load");
    assert_eq!(
        working.get_heads(),
        confirmed.get_heads(),
        "working is back to the confirmed state"
    );
}

#[test]
fn rejected_creation_removes_the_document() {
    let (mut sim, refuse, _dir) = rejecting_sim();
    refuse.lock().expect("lock").insert(1);
    let t = sim
        .client(0)
        .create("tasks", [("title", s("Never")), ("status", s("todo"))])
        .expect("offline create");
    sim.client(0)
        .update("tasks", t, [("status", Some(s("done")))])
        .expect("offline edit");
    sim.connect(0);
    sim.settle();
    let events = sim.take_events(0);
    assert_eq!(
        rejected(&events),
        vec![(1, ErrorCode::Forbidden), (2, ErrorCode::MissingDependency)]
    );
    assert!(sim.client(0).get("tasks", t).expect("get").is_none());
    assert!(sim.client(0).document_states(t).expect("states").is_none());
    assert_eq!(sim.client(0).pending_count(), 0);
    assert!(sim.server.record(t).is_none());
}

#[test]
fn evict_purges_document_row_and_pending_changes() {
    let (c, _path, _dir) = temp_client();
    let mut sim = Sim::new();
    sim.add(c);
    sim.connect(0);
    let t = sim
        .client(0)
        .create("tasks", [("title", s("Secret")), ("status", s("todo"))])
        .expect("t");
    let keep = sim
        .client(0)
        .create("tasks", [("title", s("Keep")), ("status", s("todo"))])
        .expect("keep");
    sim.settle();
    sim.client(0)
        .update("tasks", t, [("status", Some(s("done")))])
        .expect("pending");
    assert_eq!(sim.client(0).pending_count(), 1);

    let events = sim
        .client(0)
        .handle(ServerMessage::Evict { doc_id: t })
        .expect("evict");
    assert!(
        matches!(events.as_slice(), [SyncEvent::Evicted { doc_id, collection: Some(c) }] if *doc_id == t && c == "tasks")
    );
    assert_eq!(sim.client(0).pending_count(), 0);
    assert!(sim.client(0).get("tasks", t).expect("get").is_none());
    assert!(sim.client(0).document_states(t).expect("states").is_none());
    assert!(sim.client(0).outbox().expect("outbox").is_empty());
    let ids: Vec<_> = sim
        .client(0)
        .query("tasks", &Query::new())
        .expect("query")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![keep]);
    // Answers for the purged mutation are ignored.
    let mid = MutationId {
        client_id: sim.client(0).client_id(),
        seq: 3,
    };
    let late = ServerMessage::Reject {
        mid,
        code: ErrorCode::Forbidden,
        message: String::new(),
    };
    assert!(sim.client(0).handle(late).expect("late reject").is_empty());
    // Evicting an unknown document is harmless.
    sim.client(0)
        .handle(ServerMessage::Evict { doc_id: t })
        .expect("again");
}
