//! Change payloads that make automerge 0.12 panic, and compressed changes that inflate far
//! beyond their size, pushed over a real WebSocket to a real server.
//!
//! The panicking payloads are the fuzzers' findings in `protocol/fuzz/upstream-panics/` (see
//! `docs/fuzzing.md`): the server runs automerge on them under a panic guard
//! (`sync-server/src/merge/untrusted.rs`). Each must be answered with a `Reject`, not a dropped
//! connection; the connection must keep working; and nothing of the change may be stored. These
//! tests run with debug assertions, so the automerge `debug_assert`s are reached too.

use std::path::{Path, PathBuf};

use automerge::transaction::Transactable;
use automerge::{ActorId, AutoCommit, ROOT};
use serde_bytes::ByteBuf;
use sync_server::merge::{MAX_INFLATED_CHANGE_BYTES, PANIC_REFUSAL};
use sync_server::testing::changes::{s, task_change};
use sync_server::testing::raw::{RawClient, Received};
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::record::FieldValue;
use syncline_protocol::{ClientMessage, ErrorCode, Mutation, MutationId, ServerMessage};
use uuid::Uuid;

/// The fuzzers' base task (`Base::Task` in `protocol/src/fuzzing.rs`): same actor, same writes,
/// time 0, so it has the change hash the committed inputs depend on.
const BASE_ACTOR: [u8; 16] = [0xba; 16];
const ASSIGNEE: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_a551);
const DEPENDENCY: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_0dea);

fn base_task() -> (AutoCommit, Vec<u8>) {
    let mut doc = AutoCommit::new().with_actor(ActorId::from(BASE_ACTOR));
    let change = task_change(
        &mut doc,
        &[
            ("title", s("Write docs")),
            ("status", s("todo")),
            ("assignee_id", Some(FieldValue::Ref(ASSIGNEE))),
            ("depends_on", Some(FieldValue::RefList(vec![DEPENDENCY]))),
        ],
    );
    (doc, change)
}

fn upstream_panics() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../protocol/fuzz/upstream-panics")
}

/// Every committed upstream-panic input as a change payload: `authorize_change` inputs are
/// payloads already; `authorize_edits` inputs are edit scripts, turned into the change they make.
fn hostile_payloads() -> Vec<(String, Vec<u8>)> {
    let mut inputs = Vec::new();
    for target in ["authorize_change", "authorize_edits"] {
        let dir = upstream_panics().join(target);
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        paths.sort();
        assert!(!paths.is_empty(), "no inputs in {}", dir.display());
        for path in paths {
            let bytes = std::fs::read(&path).expect("read input");
            let payload = if target == "authorize_edits" {
                syncline_protocol::fuzzing::change_of_edits(&bytes)
                    .expect("the edits input makes a change without a concurrent edit")
            } else {
                bytes
            };
            let name = path.file_name().expect("file name").to_string_lossy();
            inputs.push((format!("{target}/{name}"), payload));
        }
    }
    inputs
}

/// A connection pushing mutations one push at a time.
struct Pusher {
    c: RawClient,
    seq: u64,
}

impl Pusher {
    async fn connect(server: &TestServer, user: &TestUser) -> Self {
        Self {
            c: RawClient::hello(&server.ws_url(), &user.access_token).await,
            seq: 0,
        }
    }

    /// Pushes the payloads as one push, then pings; returns each mutation's `Ack` or `Reject`.
    /// A dropped connection fails the test: that is what an uncaught panic looks like.
    async fn push(&mut self, what: &str, mutations: &[(Uuid, &[u8])]) -> Vec<ServerMessage> {
        let mutations: Vec<Mutation> = mutations
            .iter()
            .map(|(doc_id, payload)| {
                self.seq += 1;
                Mutation {
                    mid: MutationId {
                        client_id: self.c.client_id,
                        seq: self.seq,
                    },
                    doc_id: *doc_id,
                    collection: "tasks".into(),
                    payload: ByteBuf::from(payload.to_vec()),
                }
            })
            .collect();
        self.c
            .send(&ClientMessage::Push {
                mutations: mutations.clone(),
            })
            .await;
        self.c.send(&ClientMessage::Ping { nonce: self.seq }).await;
        let mut answers = Vec::new();
        loop {
            match self.c.recv().await {
                Received::Message(ServerMessage::Pong { nonce }) if nonce == self.seq => break,
                Received::Message(
                    m @ (ServerMessage::Ack { .. } | ServerMessage::Reject { .. }),
                ) => answers.push(m),
                // Refused mutations of a document the user may not read (never created) are
                // followed by an `Evict`.
                Received::Message(ServerMessage::Evict { .. }) => {}
                Received::Message(other) => panic!("{what}: unexpected {other:?}"),
                Received::Closed(close) => {
                    panic!("{what}: the server dropped the connection ({close:?})")
                }
            }
        }
        let mids: Vec<MutationId> = answers.iter().map(mid_of).collect();
        let sent: Vec<MutationId> = mutations.iter().map(|m| m.mid).collect();
        assert_eq!(mids, sent, "{what}: one answer per mutation, in order");
        answers
    }

    async fn push_one(&mut self, what: &str, doc_id: Uuid, payload: &[u8]) -> ServerMessage {
        self.push(what, &[(doc_id, payload)])
            .await
            .pop()
            .expect("one answer")
    }
}

fn mid_of(m: &ServerMessage) -> MutationId {
    match m {
        ServerMessage::Ack { mid, .. } | ServerMessage::Reject { mid, .. } => *mid,
        other => panic!("not an answer: {other:?}"),
    }
}

fn is_ack(m: &ServerMessage) -> bool {
    matches!(m, ServerMessage::Ack { .. })
}

/// Whether `m` is the refusal of a change that made automerge panic.
fn is_guarded_panic(m: &ServerMessage) -> bool {
    matches!(m, ServerMessage::Reject { code: ErrorCode::InvalidChange, message, .. }
        if message == PANIC_REFUSAL)
}

/// What the server holds for a document: its change-log rows, its stored state, and its
/// materialized title.
async fn stored(server: &TestServer, doc_id: Uuid) -> (i64, Option<Vec<u8>>, Option<String>) {
    let (log,): (i64,) = sqlx::query_as("SELECT count(*) FROM change_log WHERE doc_id = $1")
        .bind(doc_id)
        .fetch_one(&server.db)
        .await
        .expect("count change_log");
    let state: Option<(Vec<u8>,)> = sqlx::query_as("SELECT state FROM documents WHERE id = $1")
        .bind(doc_id)
        .fetch_optional(&server.db)
        .await
        .expect("read documents");
    let title: Option<(String,)> = sqlx::query_as("SELECT title FROM tasks WHERE id = $1")
        .bind(doc_id)
        .fetch_optional(&server.db)
        .await
        .expect("read tasks");
    (log, state.map(|s| s.0), title.map(|t| t.0))
}

/// The heads of a stored document state.
fn heads(state: &[u8]) -> Vec<automerge::ChangeHash> {
    automerge::Automerge::load(state)
        .expect("stored state loads")
        .get_heads()
}

/// The connection still works: a ping is answered and a valid new task is acked.
async fn still_works(p: &mut Pusher) {
    p.c.send(&ClientMessage::Ping { nonce: 4242 }).await;
    assert_eq!(p.c.message().await, ServerMessage::Pong { nonce: 4242 });
    let mut doc = AutoCommit::new();
    let create = task_change(
        &mut doc,
        &[("title", s("still here")), ("status", s("todo"))],
    );
    let answer = p.push_one("a valid task", Uuid::now_v7(), &create).await;
    assert!(
        is_ack(&answer),
        "a valid task after hostile ones: {answer:?}"
    );
}

#[tokio::test]
async fn upstream_panic_payloads_are_rejected_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let owner = server.register("fuzzy@example.com").await;
    let mut p = Pusher::connect(&server, &owner).await;
    let (mut base_doc, base_change) = base_task();
    let base_heads = base_doc.get_heads();

    for (name, payload) in hostile_payloads() {
        // Against a document being created, and against the fuzzers' stored task.
        let new_doc = Uuid::now_v7();
        let task_doc = Uuid::now_v7();
        let created = p.push_one("the base task", task_doc, &base_change).await;
        assert!(is_ack(&created), "the base task is accepted: {created:?}");
        let on_new = p.push_one(&name, new_doc, &payload).await;
        let on_task = p.push_one(&name, task_doc, &payload).await;
        eprintln!("{name}: new document -> {on_new:?}; stored task -> {on_task:?}");
        for answer in [&on_new, &on_task] {
            assert!(
                matches!(answer, ServerMessage::Reject { .. }),
                "{name}: {answer:?}"
            );
        }
        assert!(
            is_guarded_panic(&on_new) || is_guarded_panic(&on_task),
            "{name} no longer makes automerge panic (fixed upstream? see docs/fuzzing.md)"
        );

        assert_eq!(
            stored(&server, new_doc).await,
            (0, None, None),
            "{name}: nothing stored for the new document"
        );
        let (log, state, title) = stored(&server, task_doc).await;
        assert_eq!(log, 1, "{name}: only the base change is logged");
        assert_eq!(heads(&state.expect("stored task")), base_heads, "{name}");
        assert_eq!(title.as_deref(), Some("Write docs"), "{name}");
    }
    still_works(&mut p).await;
}

/// One push: the base task, a panicking change to it, then an honest edit of it. The panic must
/// not leave the push's working copy of the document half-changed: the edit applies to the
/// base alone and is stored with it.
#[tokio::test]
async fn a_panic_mid_push_leaves_the_rest_of_the_push_intact() {
    let server = TestServer::start().await;
    let owner = server.register("batch@example.com").await;
    let mut p = Pusher::connect(&server, &owner).await;
    let (mut base_doc, base_change) = base_task();
    let mut panics = 0;

    for (name, payload) in hostile_payloads() {
        let doc_id = Uuid::now_v7();
        let mut edit = base_doc.fork().with_actor(ActorId::random());
        let done = task_change(&mut edit, &[("status", s("done"))]);
        let answers = p
            .push(
                &name,
                &[(doc_id, &base_change), (doc_id, &payload), (doc_id, &done)],
            )
            .await;
        assert!(is_ack(&answers[0]), "{name}: {answers:?}");
        assert!(
            matches!(answers[1], ServerMessage::Reject { .. }),
            "{name}: {answers:?}"
        );
        assert!(is_ack(&answers[2]), "{name}: {answers:?}");
        panics += usize::from(is_guarded_panic(&answers[1]));

        let (log, state, _) = stored(&server, doc_id).await;
        assert_eq!(log, 2, "{name}: the base and the edit are logged");
        assert_eq!(heads(&state.expect("stored")), edit.get_heads(), "{name}");
        let (status,): (String,) = sqlx::query_as("SELECT status FROM tasks WHERE id = $1")
            .bind(doc_id)
            .fetch_one(&server.db)
            .await
            .expect("task row");
        assert_eq!(status, "done", "{name}");
    }
    assert!(
        panics > 0,
        "no input made automerge panic on the stored task"
    );
    still_works(&mut p).await;
}

/// A change with a large string, as automerge sends it (compressed above 256 bytes).
fn compressed_task(description_len: usize) -> Vec<u8> {
    let mut doc = AutoCommit::new();
    doc.put(ROOT, "title", "compressed").expect("put");
    doc.put(ROOT, "status", "todo").expect("put");
    doc.put(ROOT, "description", "z".repeat(description_len))
        .expect("put");
    doc.commit();
    let mut change = doc.get_last_local_change().expect("a change");
    let bytes = change.bytes().into_owned();
    assert_eq!(
        bytes[8], 2,
        "automerge sends it as a compressed change chunk"
    );
    bytes
}

#[tokio::test]
async fn a_change_inflating_past_the_cap_is_refused_as_too_large() {
    let server = TestServer::start().await;
    let owner = server.register("zip@example.com").await;
    let mut p = Pusher::connect(&server, &owner).await;

    // A few kilobytes that inflate to more than the cap.
    let bomb = compressed_task(MAX_INFLATED_CHANGE_BYTES + 1);
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let bomb_doc = Uuid::now_v7();
    let answer = p.push_one("the bomb", bomb_doc, &bomb).await;
    assert!(
        matches!(&answer, ServerMessage::Reject { code: ErrorCode::TooLarge, message, .. }
            if message.contains("inflate")),
        "{answer:?}"
    );
    assert_eq!(stored(&server, bomb_doc).await, (0, None, None));

    // A compressed change below the cap is an ordinary change.
    let fine = compressed_task(50_000);
    let fine_doc = Uuid::now_v7();
    let answer = p.push_one("a compressed change", fine_doc, &fine).await;
    assert!(is_ack(&answer), "{answer:?}");
    let (log, _, title) = stored(&server, fine_doc).await;
    assert_eq!((log, title.as_deref()), (1, Some("compressed")));
    still_works(&mut p).await;
}
