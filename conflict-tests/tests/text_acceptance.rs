//! Acceptance tests of collaborative text documents with real clients: client-core replicas
//! with SQLite files, a real server and Postgres. Offline concurrent edits of a note converge
//! everywhere (Postgres's plain text included), and the B4 editing trace replayed through one
//! client arrives at another with exactly the trace's end content.

use std::time::Duration;

use client_core::native::NativeClient;
use conflict_tests::harness::{WAIT, online};
use conflict_tests::trace::{Patch, load_b4};
use sync_server::testing::TestServer;
use syncline_protocol::record::FieldValue;
use uuid::Uuid;

async fn synced(c: &NativeClient) {
    c.wait_synced(WAIT).await.expect("client synced");
}

fn body_text(c: &NativeClient, id: Uuid) -> String {
    c.write(|c| c.note_body(id).plain_text())
        .expect("read the body")
}

/// Waits until the replica's body reads `expected`, re-checking after every sync event; on
/// timeout returns what it holds.
async fn wait_text(
    c: &NativeClient,
    id: Uuid,
    expected: &str,
    timeout: Duration,
) -> Result<(), String> {
    let mut events = c.events();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let text = body_text(c, id);
        if text == expected {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(text);
        }
        let _ = tokio::time::timeout_at(deadline, events.recv()).await;
    }
}

async fn postgres_text(server: &TestServer, id: Uuid) -> Option<String> {
    sqlx::query_as::<_, (String,)>("SELECT plain_text FROM text_documents WHERE id = $1")
        .bind(id)
        .fetch_optional(&server.db)
        .await
        .expect("query plain text")
        .map(|(t,)| t)
}

/// Creates a note whose body is one paragraph of `text`, and waits until it is acknowledged.
async fn create_note(c: &NativeClient, title: &str, text: &str) -> Uuid {
    synced(c).await;
    let id = c
        .create("notes", [("title", FieldValue::String(title.into()))])
        .expect("create the note");
    c.write(|c| c.note_body(id).insert_paragraph(0, text))
        .expect("write the body");
    synced(c).await;
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_of_one_note_converge_everywhere() {
    let server = TestServer::start().await;
    let user = server.register("notes@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, &user, &dir.path().join("a.db"));
    let b = online(&server, &user, &dir.path().join("b.db"));
    let original = "The parties agree. Payment is due in 30 days. This note is final.";
    let id = create_note(&a, "Terms", original).await;
    wait_text(&b, id, original, WAIT)
        .await
        .expect("b receives the body");

    a.go_offline().await;
    b.go_offline().await;
    // a inserts at the start and deletes the middle sentence; b appends at the end.
    a.write(|c| {
        let mut body = c.note_body(id);
        body.insert(0, "Draft: ")?;
        let text = body.plain_text()?;
        let start = text.find("Payment").expect("sentence") as u32;
        body.delete(start, "Payment is due in 30 days. ".len() as u32)
    })
    .expect("a edits offline");
    b.write(|c| {
        let mut body = c.note_body(id);
        let end = body.len()?;
        body.insert(end, " Signed by both.")
    })
    .expect("b edits offline");
    assert_eq!(a.pending_count(), 2, "a's two edits wait in its outbox");
    assert_eq!(b.pending_count(), 1);

    a.go_online();
    b.go_online();
    let expected = "Draft: The parties agree. This note is final. Signed by both.";
    for c in [&a, &b] {
        synced(c).await;
        if let Err(got) = wait_text(c, id, expected, WAIT).await {
            panic!("replica does not converge: {got:?}");
        }
    }
    assert_eq!(body_text(&a, id), body_text(&b, id));
    assert_eq!(postgres_text(&server, id).await.as_deref(), Some(expected));

    // A third replica starting from nothing gets the same text from the server's snapshot.
    let c = online(&server, &user, &dir.path().join("c.db"));
    wait_text(&c, id, expected, WAIT)
        .await
        .expect("a fresh replica loads the merged body");
}

/// Trace patches applied per local transaction (one pushed mutation each): what an editor
/// flushing every second or so while someone types produces, coarser to keep CI short.
const PATCHES_PER_EDIT: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_b4_trace_replayed_through_one_client_arrives_at_another() {
    let trace = load_b4().expect("the B4 trace (../shared/data/automerge-paper.json.gz)");
    let server = TestServer::start().await;
    let user = server.register("trace@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = online(&server, &user, &dir.path().join("writer.db"));
    let reader = online(&server, &user, &dir.path().join("reader.db"));
    let id = create_note(&writer, "Paper", &trace.start).await;

    for chunk in trace.patches.chunks(PATCHES_PER_EDIT) {
        writer
            .write(|c| {
                c.note_body(id).edit(|e| {
                    for Patch(pos, delete, insert) in chunk {
                        if *delete > 0 {
                            e.delete(*pos, *delete)?;
                        }
                        if !insert.is_empty() {
                            e.insert(*pos, insert)?;
                        }
                    }
                    Ok(())
                })
            })
            .expect("replay a chunk of the trace");
    }
    assert_eq!(body_text(&writer, id), trace.end, "the writer's own replay");
    synced(&writer).await;
    if let Err(got) = wait_text(&reader, id, &trace.end, Duration::from_secs(120)).await {
        panic!(
            "the reader's text differs from endContent ({} vs {} chars)",
            got.len(),
            trace.end.len()
        );
    }
    assert_eq!(
        postgres_text(&server, id).await.as_deref(),
        Some(trace.end.as_str())
    );
}
