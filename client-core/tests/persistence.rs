//! What survives dropping the client and reopening its file: identity, documents, rows, the
//! outbox (pushed again by `on_connected`), cursors, and the automerge actor of new changes.

mod common;

use automerge::{ActorId, Change};
use client_core::{Client, ClientMessage, Query, SyncStatus};
use common::sim::Sim;
use common::{s, temp_client};
use syncline_protocol::Scope;
use syncline_protocol::schema::{COLLECTIONS, TEXT_COLLECTIONS};

#[test]
fn replica_survives_reopen_and_pushes_its_outbox_on_connect() {
    let (mut c, path, _dir) = temp_client();
    let client_id = c.client_id();
    let a = c
        .create("tasks", [("title", s("Offline 1")), ("status", s("todo"))])
        .expect("create");
    let b = c
        .create("tasks", [("title", s("Offline 2")), ("status", s("todo"))])
        .expect("create");
    c.update("tasks", a, [("status", Some(s("done")))])
        .expect("update");
    c.delete("tasks", b).expect("delete");
    let rows_before = c
        .query("tasks", &Query::new().include_deleted(true))
        .expect("query");
    let outbox_before = c.outbox().expect("outbox");
    drop(c);

    let mut c = Client::open(&path).expect("reopen");
    assert_eq!(c.client_id(), client_id);
    assert_eq!(c.pending_count(), 4);
    assert_eq!(c.outbox().expect("outbox"), outbox_before);
    assert_eq!(
        c.query("tasks", &Query::new().include_deleted(true))
            .expect("query"),
        rows_before
    );
    assert_eq!(c.sync_status(), SyncStatus::Offline);

    let messages = c.on_connected("tok").expect("connect");
    assert!(
        matches!(&messages[0], ClientMessage::Hello { token, client_id: id, .. } if token == "tok" && *id == client_id)
    );
    // One subscription per record collection, then per text collection.
    let subscribed: Vec<(u32, &str)> = messages[1..]
        .iter()
        .filter_map(|m| match m {
            ClientMessage::Subscribe {
                sub_id,
                scope: Scope::Collection { collection },
                cursor: None,
            } => Some((*sub_id, collection.as_str())),
            _ => None,
        })
        .collect();
    // Every record collection of the schema, then every text collection.
    let expected: Vec<(u32, &str)> = COLLECTIONS
        .iter()
        .map(|c| c.name)
        .chain(TEXT_COLLECTIONS.iter().map(|c| c.name))
        .zip(1u32..)
        .map(|(name, id)| (id, name))
        .collect();
    assert_eq!(subscribed, expected);
    assert_eq!(
        &subscribed[..4],
        &[
            (1, "tasks"),
            (2, "notes"),
            (3, "documents"),
            (4, "contacts")
        ]
    );
    assert_eq!(
        subscribed.last(),
        Some(&(expected.len() as u32, "document_bodies")),
        "bodies after their records"
    );
    let push = 1 + subscribed.len();
    let ClientMessage::Push { mutations } = &messages[push] else {
        panic!("expected a push, got {:?}", messages[push])
    };
    assert_eq!(messages.len(), push + 1);
    assert_eq!(
        mutations.iter().map(|m| m.mid.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(
        mutations
            .iter()
            .all(|m| m.mid.client_id == client_id && m.collection == "tasks")
    );
    assert_eq!(
        mutations.iter().map(|m| m.doc_id).collect::<Vec<_>>(),
        vec![a, b, a, b]
    );
    // Everything is in flight now: nothing more to send until a new write.
    assert!(c.take_outgoing().expect("outgoing").is_empty());
    c.update("tasks", a, [("title", Some(s("After reconnect")))])
        .expect("update");
    let more = c.take_outgoing().expect("outgoing");
    let [ClientMessage::Push { mutations }] = more.as_slice() else {
        panic!("{more:?}")
    };
    assert_eq!(
        mutations.iter().map(|m| m.mid.seq).collect::<Vec<_>>(),
        vec![5]
    );

    // A disconnect puts every unanswered entry back in line.
    c.on_disconnected();
    let again = c.on_connected("tok").expect("connect");
    let pushed: Vec<u64> = again
        .iter()
        .filter_map(|m| match m {
            ClientMessage::Push { mutations } => Some(mutations.iter().map(|m| m.mid.seq)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(pushed, vec![1, 2, 3, 4, 5]);
}

#[test]
fn reopened_documents_continue_the_same_automerge_actor() {
    let (mut c, path, _dir) = temp_client();
    let id = c
        .create("tasks", [("title", s("Actor")), ("status", s("todo"))])
        .expect("create");
    drop(c);
    let mut c = Client::open(&path).expect("reopen");
    c.update("tasks", id, [("status", Some(s("done")))])
        .expect("update");
    let actor = ActorId::from(c.client_id().as_bytes());
    let changes: Vec<Change> = c
        .outbox()
        .expect("outbox")
        .iter()
        .map(|e| Change::try_from(&e.payload[..]).expect("change"))
        .collect();
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|ch| *ch.actor_id() == actor));
    assert_eq!(
        changes.iter().map(Change::seq).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(changes[1].deps(), &[changes[0].hash()]);
}

#[test]
fn mutation_seqs_are_never_reused_after_acks_and_reopen() {
    let (c, path, _dir) = temp_client();
    let mut sim = Sim::new();
    sim.add(c);
    sim.client(0)
        .create("tasks", [("title", s("One")), ("status", s("todo"))])
        .expect("create");
    sim.connect(0);
    sim.settle();
    assert_eq!(sim.client(0).pending_count(), 0);
    let cursor = sim.client(0).cursor("tasks").expect("cursor");
    assert_eq!(cursor, Some(1));
    let Some(c) = sim.clients.pop() else {
        panic!("client")
    };
    drop(c);

    let mut c = Client::open(&path).expect("reopen");
    c.create("tasks", [("title", s("Two")), ("status", s("todo"))])
        .expect("create");
    assert_eq!(c.outbox().expect("outbox")[0].seq, 2);
    let messages = c.on_connected("tok").expect("connect");
    assert!(messages.iter().any(|m| matches!(
        m,
        ClientMessage::Subscribe {
            cursor: Some(1),
            ..
        }
    )));
}

#[test]
fn a_second_connection_to_the_same_file_is_not_overwritten() {
    let (mut first, path, _dir) = temp_client();
    let id = first
        .create(
            "tasks",
            [("title", s("Shared file")), ("status", s("todo"))],
        )
        .expect("create");
    // `first` now holds the document decoded in its cache.
    first
        .update("tasks", id, [("priority", Some(s("low")))])
        .expect("update");
    let mut second = Client::open(&path).expect("second connection");
    second
        .update("tasks", id, [("status", Some(s("done")))])
        .expect("second writes");
    first
        .update("tasks", id, [("title", Some(s("Renamed")))])
        .expect("first writes again");
    let row = first.get("tasks", id).expect("get").expect("row");
    assert_eq!(
        row.get_str("status"),
        Some("done"),
        "the other connection's change survived"
    );
    assert_eq!(row.get_str("title"), Some("Renamed"));
    assert_eq!(row.get_str("priority"), Some("low"));
    assert_eq!(
        first.pending_count(),
        4,
        "pending count refreshed from the file"
    );
    let seqs: Vec<u64> = first
        .outbox()
        .expect("outbox")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
}
