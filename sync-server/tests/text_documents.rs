//! Text documents (note and contract bodies, Yjs) over the main protocol: a body needs its
//! record, its updates are authorized by role (viewers refused, suggesters only suggest),
//! relayed live, stored as appended updates compacted into one snapshot, and its plain text is
//! materialized for search.

use automerge::{ActorId, AutoCommit};
use serde_bytes::ByteBuf;
use sync_server::testing::changes::{record_change, s, task_change};
use sync_server::testing::raw::RawClient;
use sync_server::testing::text::TextReplica;
use sync_server::testing::{TestServer, TestUser};
use sync_server::text::store::COMPACT_AFTER;
use syncline_protocol::rules::OrgRole;
use syncline_protocol::schema::{DOCUMENTS, NOTES};
use syncline_protocol::text::suggestions;
use syncline_protocol::{ClientMessage, ErrorCode, Mutation, MutationId, ServerMessage};
use uuid::Uuid;
use yrs::Transact;

/// A connected client with its own mutation counter.
struct Pusher {
    raw: RawClient,
    seq: u64,
}

impl Pusher {
    async fn connect(server: &TestServer, user: &TestUser) -> Self {
        Self {
            raw: RawClient::hello(&server.ws_url(), &user.access_token).await,
            seq: 0,
        }
    }

    /// Pushes one mutation and returns its answer (`Ack` or `Reject`).
    async fn push(&mut self, doc_id: Uuid, collection: &str, payload: Vec<u8>) -> ServerMessage {
        self.seq += 1;
        let mid = MutationId {
            client_id: self.raw.client_id,
            seq: self.seq,
        };
        self.raw
            .send(&ClientMessage::Push {
                mutations: vec![Mutation {
                    mid,
                    doc_id,
                    collection: collection.into(),
                    payload: ByteBuf::from(payload),
                }],
            })
            .await;
        self.raw
            .until(|m| matches!(m, ServerMessage::Ack { mid: a, .. } | ServerMessage::Reject { mid: a, .. } if *a == mid))
            .await
    }

    async fn create_note(&mut self, title: &str) -> Uuid {
        let id = Uuid::now_v7();
        let mut doc = AutoCommit::new().with_actor(ActorId::random());
        let change = record_change(&mut doc, &NOTES, &[("title", s(title))]);
        assert_acked(self.push(id, "notes", change).await);
        id
    }
}

fn assert_acked(answer: ServerMessage) {
    assert!(matches!(answer, ServerMessage::Ack { .. }), "{answer:?}");
}

fn assert_rejected(answer: ServerMessage, expected: ErrorCode) {
    match answer {
        ServerMessage::Reject { code, .. } => assert_eq!(code, expected),
        other => panic!("expected a {expected:?} reject, got {other:?}"),
    }
}

async fn plain_text(server: &TestServer, doc_id: Uuid) -> String {
    let (text,): (String,) = sqlx::query_as("SELECT plain_text FROM text_documents WHERE id = $1")
        .bind(doc_id)
        .fetch_one(&server.db)
        .await
        .expect("text row");
    text
}

#[tokio::test]
async fn a_note_body_syncs_live_in_snapshots_and_as_plain_text() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Member])
        .await;
    let mut owner = Pusher::connect(&server, &users[0]).await;
    let mut reader = RawClient::hello(&server.ws_url(), &users[1].access_token).await;
    reader.subscribe(1, "note_bodies", None).await;

    let note = owner.create_note("Meeting").await;
    let editor = TextReplica::new();
    let update = editor.push_paragraph("Hello world");
    assert_acked(owner.push(note, "note_bodies", update.clone()).await);

    // Live: the reader receives exactly the accepted update.
    let live = reader
        .until(|m| matches!(m, ServerMessage::Change { .. }))
        .await;
    let ServerMessage::Change {
        doc_id,
        collection,
        payload,
        ..
    } = live
    else {
        unreachable!()
    };
    assert_eq!((doc_id, collection.as_str()), (note, "note_bodies"));
    assert_eq!(payload.as_ref(), update.as_slice());
    assert_eq!(plain_text(&server, note).await, "Hello world");

    assert_acked(
        owner
            .push(note, "note_bodies", editor.insert(0, 5, ","))
            .await,
    );
    assert_eq!(plain_text(&server, note).await, "Hello, world");

    // A new subscriber gets the body as a snapshot a Yjs client can load.
    let mut late = RawClient::hello(&server.ws_url(), &users[1].access_token).await;
    let (before, _) = late.subscribe(1, "note_bodies", None).await;
    let snapshot = before
        .iter()
        .find_map(|m| match m {
            ServerMessage::Snapshot { docs, .. } => docs.iter().find(|d| d.doc_id == note),
            _ => None,
        })
        .expect("the body is in the snapshot");
    assert_eq!(snapshot.collection, "note_bodies");
    assert_eq!(
        TextReplica::from_state(&snapshot.state).text(),
        "Hello, world"
    );
}

#[tokio::test]
async fn a_body_needs_its_record_of_the_parent_collection() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let mut owner = Pusher::connect(&server, &users[0]).await;
    let update = TextReplica::new().push_paragraph("orphan");
    assert_rejected(
        owner
            .push(Uuid::now_v7(), "note_bodies", update.clone())
            .await,
        ErrorCode::MissingDependency,
    );

    let task = Uuid::now_v7();
    let mut doc = AutoCommit::new().with_actor(ActorId::random());
    let change = task_change(&mut doc, &[("title", s("A task")), ("status", s("todo"))]);
    assert_acked(owner.push(task, "tasks", change).await);
    assert_rejected(
        owner.push(task, "note_bodies", update.clone()).await,
        ErrorCode::CollectionMismatch,
    );
    let note = owner.create_note("Note").await;
    assert_rejected(
        owner.push(note, "document_bodies", update.clone()).await,
        ErrorCode::CollectionMismatch,
    );
    assert_rejected(
        owner.push(note, "note_bodies", vec![1, 2, 3]).await,
        ErrorCode::InvalidChange,
    );
    assert_acked(owner.push(note, "note_bodies", update).await);
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM text_documents")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(rows, 1, "refused bodies leave no row");
}

#[tokio::test]
async fn viewers_are_refused_and_suggesters_may_only_suggest() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Guest, OrgRole::Guest])
        .await;
    let (owner_user, viewer_user, suggester_user) = (&users[0], &users[1], &users[2]);
    let mut owner = Pusher::connect(&server, owner_user).await;
    owner.raw.subscribe(1, "note_bodies", None).await;
    let note = owner.create_note("Contract notes").await;
    let editor = TextReplica::new();
    assert_acked(
        owner
            .push(note, "note_bodies", editor.push_paragraph("Pay in 30 days"))
            .await,
    );
    for (user, relation) in [(viewer_user, "viewer"), (suggester_user, "suggester")] {
        server
            .share(
                reqwest::Method::POST,
                owner_user,
                "notes",
                note,
                relation,
                user.user_id,
            )
            .await;
    }

    // The viewer's edit is refused and not stored.
    let mut viewer = Pusher::connect(&server, viewer_user).await;
    let (snap, _) = viewer.raw.subscribe(1, "note_bodies", None).await;
    let state = snap
        .iter()
        .find_map(|m| match m {
            ServerMessage::Snapshot { docs, .. } => docs.first().map(|d| d.state.to_vec()),
            _ => None,
        })
        .expect("the viewer reads the body");
    let viewer_copy = TextReplica::from_state(&state);
    assert_rejected(
        viewer
            .push(note, "note_bodies", viewer_copy.insert(0, 0, "Never "))
            .await,
        ErrorCode::Forbidden,
    );

    // The suggester's real deletion is refused; a marked insertion is accepted.
    let mut suggester = Pusher::connect(&server, suggester_user).await;
    let copy = TextReplica::from_state(&state);
    assert_rejected(
        suggester
            .push(note, "note_bodies", copy.delete(0, 0, 4))
            .await,
        ErrorCode::Forbidden,
    );
    let copy = TextReplica::from_state(&state);
    let suggestion = copy.suggest_insert(0, 14, " net", suggester_user.user_id);
    assert_acked(
        suggester
            .push(note, "note_bodies", suggestion.clone())
            .await,
    );
    let deletion = copy.suggest_delete(0, 0, 4, suggester_user.user_id);
    assert_acked(suggester.push(note, "note_bodies", deletion).await);
    assert_eq!(plain_text(&server, note).await, "Pay in 30 days net");

    // The owner receives the suggestion with its mark, then accepts everything.
    let change = owner
        .raw
        .until(|m| matches!(m, ServerMessage::Change { payload, .. } if payload.as_ref() == suggestion.as_slice()))
        .await;
    let ServerMessage::Change { payload, .. } = change else {
        unreachable!()
    };
    editor.apply(&payload);
    let ServerMessage::Change { payload, .. } = owner
        .raw
        .until(|m| matches!(m, ServerMessage::Change { .. }))
        .await
    else {
        unreachable!()
    };
    editor.apply(&payload);
    let found = suggestions(&editor.doc.transact());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .all(|s| s.mark.author == suggester_user.user_id)
    );
    let accept = editor.edit(|txn, _| {
        syncline_protocol::text::accept_all(txn);
    });
    assert_acked(owner.push(note, "note_bodies", accept).await);
    assert_eq!(plain_text(&server, note).await, "in 30 days net");
}

#[tokio::test]
async fn bodies_are_compacted_and_load_the_same_afterwards() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let mut owner = Pusher::connect(&server, &users[0]).await;
    let note = owner.create_note("Log").await;
    let editor = TextReplica::new();
    assert_acked(
        owner
            .push(note, "note_bodies", editor.push_paragraph(""))
            .await,
    );
    let total = COMPACT_AFTER + 10;
    for i in 1..total {
        let update = editor.insert(0, 0, &format!("{i} "));
        assert_acked(owner.push(note, "note_bodies", update).await);
    }
    let (pending, state_len): (i32, i32) =
        sqlx::query_as("SELECT pending_updates, length(state) FROM text_documents WHERE id = $1")
            .bind(note)
            .fetch_one(&server.db)
            .await
            .expect("row");
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM text_updates WHERE doc_id = $1")
        .bind(note)
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert!(state_len > 0, "compacted into one snapshot");
    assert_eq!(i64::from(pending), rows);
    assert_eq!(rows, i64::from(total % COMPACT_AFTER));

    // A restarted server (empty cache) loads snapshot + updates and keeps accepting edits.
    let server = server.restart().await;
    let mut owner = Pusher::connect(&server, &users[0]).await;
    owner.seq = total as u64 + 1;
    assert_acked(
        owner
            .push(note, "note_bodies", editor.insert(0, 0, "! "))
            .await,
    );
    assert_eq!(plain_text(&server, note).await, editor.text());
    let (snap, _) = owner.raw.subscribe(1, "note_bodies", None).await;
    let ServerMessage::Snapshot { docs, .. } = &snap[0] else {
        panic!("{snap:?}")
    };
    assert_eq!(
        TextReplica::from_state(&docs[0].state).text(),
        editor.text()
    );
}

#[tokio::test]
async fn contracts_step_through_their_statuses_and_a_signed_one_is_read_only() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let mut owner = Pusher::connect(&server, &users[0]).await;
    let id = Uuid::now_v7();
    let mut record = AutoCommit::new().with_actor(ActorId::random());
    let create = record_change(
        &mut record,
        &DOCUMENTS,
        &[
            ("title", s("MSA")),
            ("type", s("contract")),
            ("status", s("draft")),
        ],
    );
    assert_acked(owner.push(id, "documents", create).await);
    let body = TextReplica::new();
    assert_acked(
        owner
            .push(id, "document_bodies", body.push_paragraph("Terms"))
            .await,
    );
    let mut skip = record.fork();
    let skip = record_change(&mut skip, &DOCUMENTS, &[("status", s("signed"))]);
    assert_rejected(
        owner.push(id, "documents", skip).await,
        ErrorCode::InvalidTransition,
    );
    for status in ["internal_review", "client_review", "sent", "signed"] {
        let step = record_change(&mut record, &DOCUMENTS, &[("status", s(status))]);
        assert_acked(owner.push(id, "documents", step).await);
    }
    let mut late = record.fork();
    let retitle = record_change(&mut late, &DOCUMENTS, &[("title", s("MSA v2"))]);
    assert_rejected(
        owner.push(id, "documents", retitle).await,
        ErrorCode::ImmutableRecord,
    );
    assert_rejected(
        owner
            .push(id, "document_bodies", body.insert(0, 0, "New "))
            .await,
        ErrorCode::Forbidden,
    );
    assert_eq!(plain_text(&server, id).await, "Terms");
}

fn awareness(client: u64, clock: u32, json: &str) -> Vec<u8> {
    sync_server::awareness::encode_update(&[sync_server::awareness::AwarenessEntry {
        client,
        clock,
        json: json.into(),
    }])
}

#[tokio::test]
async fn presence_is_relayed_between_readers_and_not_to_others() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Member, OrgRole::Guest])
        .await;
    let mut a = Pusher::connect(&server, &users[0]).await;
    let note = a.create_note("Standup").await;
    let mut b = RawClient::hello(&server.ws_url(), &users[1].access_token).await;
    let mut guest = RawClient::hello(&server.ws_url(), &users[2].access_token).await;

    let a_state = awareness(11, 1, r#"{"user":{"name":"Ann"},"cursor":3}"#);
    a.raw
        .send(&ClientMessage::Awareness {
            doc_id: note,
            update: ByteBuf::from(a_state.clone()),
        })
        .await;
    // b joins with its own state and first receives who is there.
    let b_state = awareness(22, 1, r#"{"user":{"name":"Bo"}}"#);
    b.send(&ClientMessage::Awareness {
        doc_id: note,
        update: ByteBuf::from(b_state.clone()),
    })
    .await;
    let ServerMessage::Awareness { doc_id, update } = b.message().await else {
        panic!("b receives the room's states")
    };
    assert_eq!((doc_id, update.to_vec()), (note, a_state));
    let relayed = a
        .raw
        .until(|m| matches!(m, ServerMessage::Awareness { .. }))
        .await;
    assert_eq!(
        relayed,
        ServerMessage::Awareness {
            doc_id: note,
            update: ByteBuf::from(b_state),
        }
    );

    // The guest cannot read the note: refused, and nothing relayed.
    guest
        .send(&ClientMessage::Awareness {
            doc_id: note,
            update: ByteBuf::from(awareness(33, 1, "{}")),
        })
        .await;
    let ServerMessage::Error { code, .. } = guest.message().await else {
        panic!("the guest's presence is refused")
    };
    assert_eq!(code, ErrorCode::Forbidden);
    // Nothing reached a: its next frame answers its own ping.
    a.raw.send(&ClientMessage::Ping { nonce: 5 }).await;
    assert_eq!(a.raw.message().await, ServerMessage::Pong { nonce: 5 });
    // Malformed awareness bytes are an error, not a crash.
    b.send(&ClientMessage::Awareness {
        doc_id: note,
        update: ByteBuf::from(vec![5, 1]),
    })
    .await;
    assert!(matches!(
        b.message().await,
        ServerMessage::Error {
            code: ErrorCode::InvalidInput,
            ..
        }
    ));
}

#[tokio::test]
async fn an_update_that_adds_nothing_is_acknowledged_but_not_stored() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let mut owner = Pusher::connect(&server, &users[0]).await;
    let note = owner.create_note("Echo").await;
    let editor = TextReplica::new();
    assert_acked(
        owner
            .push(note, "note_bodies", editor.push_paragraph("Once"))
            .await,
    );
    let stored = || async {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM text_updates WHERE doc_id = $1")
            .bind(note)
            .fetch_one(&server.db)
            .await
            .expect("count");
        n
    };
    assert_eq!(stored().await, 1);
    // An editor re-sending its whole state (as Yjs does on reconnect) changes nothing.
    assert_acked(owner.push(note, "note_bodies", editor.state()).await);
    assert_eq!(stored().await, 1, "nothing new is appended");
    assert_acked(
        owner
            .push(note, "note_bodies", editor.insert(0, 4, " more"))
            .await,
    );
    assert_eq!(stored().await, 2);
    assert_eq!(plain_text(&server, note).await, "Once more");
}

#[tokio::test]
async fn a_suggestion_on_a_contract_raises_suggestion_received_and_edits_are_audited() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Guest])
        .await;
    let (owner_user, reviewer_user) = (&users[0], &users[1]);
    let mut owner = Pusher::connect(&server, owner_user).await;
    let id = Uuid::now_v7();
    let mut record = AutoCommit::new().with_actor(ActorId::random());
    let create = record_change(
        &mut record,
        &DOCUMENTS,
        &[
            ("title", s("NDA")),
            ("type", s("contract")),
            ("status", s("draft")),
        ],
    );
    assert_acked(owner.push(id, "documents", create).await);
    let body = TextReplica::new();
    let first = body.push_paragraph("Term: 2 years");
    assert_acked(owner.push(id, "document_bodies", first).await);
    server
        .share(
            reqwest::Method::POST,
            owner_user,
            "documents",
            id,
            "suggester",
            reviewer_user.user_id,
        )
        .await;
    let mut reviewer = Pusher::connect(&server, reviewer_user).await;
    let suggestion = body.suggest_insert(0, 13, " maximum", reviewer_user.user_id);
    assert_acked(reviewer.push(id, "document_bodies", suggestion).await);

    let events: Vec<(String, Option<Uuid>, serde_json::Value)> = sqlx::query_as(
        "SELECT event_type, actor_id, data FROM domain_events \
         WHERE entity_id = $1 AND event_type LIKE 'document.suggestion%'",
    )
    .bind(id)
    .fetch_all(&server.db)
    .await
    .expect("events");
    assert_eq!(events.len(), 1, "only the suggester's edit: {events:?}");
    assert_eq!(events[0].0, "document.suggestion_received");
    assert_eq!(events[0].1, Some(reviewer_user.user_id));
    assert_eq!(
        events[0].2["suggester_id"],
        reviewer_user.user_id.to_string()
    );
    let audit: Vec<(String, String, Option<Uuid>)> = sqlx::query_as(
        "SELECT action, collection, actor_id FROM audit_log WHERE entity_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&server.db)
    .await
    .expect("audit");
    assert_eq!(
        audit,
        vec![
            (
                "create".into(),
                "documents".into(),
                Some(owner_user.user_id)
            ),
            (
                "edit".into(),
                "document_bodies".into(),
                Some(owner_user.user_id)
            ),
            (
                "edit".into(),
                "document_bodies".into(),
                Some(reviewer_user.user_id)
            ),
        ]
    );
}

#[tokio::test]
async fn an_editors_update_with_missing_dependencies_is_refused_and_leaves_no_trace() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let mut owner = Pusher::connect(&server, &users[0]).await;
    let note = owner.create_note("Draft").await;
    let editor = TextReplica::new();
    assert_acked(
        owner
            .push(note, "note_bodies", editor.push_paragraph("Hello"))
            .await,
    );
    let other = TextReplica::from_state(&editor.state());
    let first = editor.insert(0, 5, " big");
    let second = editor.insert(0, 9, " world");
    // Editors' updates are applied in place and judged afterwards: this one needs `first`.
    assert_rejected(
        owner.push(note, "note_bodies", second.clone()).await,
        ErrorCode::MissingDependency,
    );
    // The server's copy was rebuilt: a later edit lands on the stored state, nothing pending.
    assert_acked(
        owner
            .push(note, "note_bodies", other.insert(0, 0, "Oh "))
            .await,
    );
    assert_eq!(plain_text(&server, note).await, "Oh Hello");
    assert_acked(owner.push(note, "note_bodies", first).await);
    assert_acked(owner.push(note, "note_bodies", second).await);
    assert_eq!(plain_text(&server, note).await, "Oh Hello big world");
    let restarted = server.restart().await;
    assert_eq!(plain_text(&restarted, note).await, "Oh Hello big world");
}
