//! Text documents with real client-core replicas against a real server and Postgres, on what
//! depends on other users: a suggester's replica suggests (authored by its user, accepted by
//! the server's rules) and its other edits are rejected and rolled back; revoking access
//! evicts the note and its body; presence (awareness) is relayed between replicas.

use std::time::Duration;

use client_core::native::NativeClient;
use client_core::{ErrorCode, SyncEvent, TextEvent};
use conflict_tests::harness::{WAIT, online};
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::record::FieldValue;
use syncline_protocol::rules::OrgRole;
use tokio::sync::broadcast;
use uuid::Uuid;

async fn synced(c: &NativeClient) {
    c.wait_synced(WAIT).await.expect("client synced");
}

fn body_text(c: &NativeClient, id: Uuid) -> String {
    c.write(|c| c.note_body(id).plain_text())
        .expect("read the body")
}

/// Polls until the replica's body reads `expected` (reading a body needs `&mut Client`, which
/// `NativeClient::wait_for` does not give).
async fn wait_text(c: &NativeClient, id: Uuid, expected: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = body_text(c, id);
        if text == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "body never read {expected:?}; last {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The owner's note with a one-paragraph body, acknowledged, shared with `guest` as
/// `relation`.
async fn shared_note(
    server: &TestServer,
    owner: &TestUser,
    a: &NativeClient,
    guest: &TestUser,
    relation: &str,
    text: &str,
) -> Uuid {
    synced(a).await;
    let id = a
        .create("notes", [("title", FieldValue::String("Terms".into()))])
        .expect("note");
    a.write(|c| c.note_body(id).insert_paragraph(0, text))
        .expect("body");
    synced(a).await;
    server
        .share(
            reqwest::Method::POST,
            owner,
            "notes",
            id,
            relation,
            guest.user_id,
        )
        .await;
    id
}

/// Events received so far.
fn drain(events: &mut broadcast::Receiver<SyncEvent>) -> Vec<SyncEvent> {
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suggesters_replica_suggests_and_its_other_edits_roll_back() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Guest])
        .await;
    let (owner, guest) = (&users[0], &users[1]);
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, owner, &dir.path().join("owner.db"));
    let b = online(&server, guest, &dir.path().join("guest.db"));
    let id = shared_note(&server, owner, &a, guest, "suggester", "Pay in 30 days").await;
    wait_text(&b, id, "Pay in 30 days").await;
    synced(&b).await;
    let mut events = b.events();

    b.write(|c| {
        let mut body = c.note_body(id);
        body.suggest_insert(7, "within ")?;
        body.suggest_delete(0, 4)
    })
    .expect("suggest");
    synced(&b).await;
    let suggested = "Pay in within 30 days";
    wait_text(&a, id, suggested).await;
    let found = a
        .write(|c| c.note_body(id).suggestions())
        .expect("suggestions");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().all(|s| s.mark.author == guest.user_id));
    assert!(
        !drain(&mut events)
            .iter()
            .any(|e| matches!(e, SyncEvent::Rejected { .. })),
        "suggestions are accepted"
    );

    // A real deletion is not a suggestion: refused, and rolled back on the guest's replica.
    b.write(|c| c.note_body(id).delete(0, 4)).expect("delete");
    synced(&b).await;
    wait_text(&b, id, suggested).await;
    let events = drain(&mut events);
    assert!(
        events.iter().any(|e| matches!(
            e,
            SyncEvent::Rejected {
                code: ErrorCode::Forbidden,
                doc_id,
                ..
            } if *doc_id == id
        )),
        "{events:?}"
    );
    assert!(
        events.iter().any(
            |e| matches!(e, SyncEvent::Text(TextEvent::Reset { doc_id, .. }) if *doc_id == id)
        )
    );

    // The owner accepts; everyone converges on the resolved text.
    a.write(|c| c.note_body(id).accept_all()).expect("accept");
    let resolved = "in within 30 days";
    wait_text(&a, id, resolved).await;
    wait_text(&b, id, resolved).await;
    assert!(
        b.write(|c| c.note_body(id).suggestions())
            .expect("suggestions")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_access_evicts_the_note_and_its_body() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Guest])
        .await;
    let (owner, guest) = (&users[0], &users[1]);
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, owner, &dir.path().join("owner.db"));
    let b = online(&server, guest, &dir.path().join("guest.db"));
    let id = shared_note(&server, owner, &a, guest, "viewer", "Confidential").await;
    wait_text(&b, id, "Confidential").await;

    server
        .share(
            reqwest::Method::DELETE,
            owner,
            "notes",
            id,
            "viewer",
            guest.user_id,
        )
        .await;
    b.wait_for(WAIT, |c| c.get("notes", id).ok().flatten().is_none())
        .await
        .expect("the note is evicted");
    assert!(
        !b.write(|c| c.note_body(id).exists()).expect("body exists?"),
        "the body went with its record"
    );
    let left: i64 = b.read(|c| {
        c.connection()
            .query_row("SELECT count(*) FROM text_confirmed", [], |r| r.get(0))
            .expect("count")
    });
    assert_eq!(left, 0);
}

/// A y-protocols awareness update with one client's state.
fn awareness(client: u8, clock: u8, state: &str) -> Vec<u8> {
    let mut bytes = vec![1, client, clock, u8::try_from(state.len()).expect("short")];
    bytes.extend_from_slice(state.as_bytes());
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_is_relayed_between_replicas() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Guest])
        .await;
    let (owner, guest) = (&users[0], &users[1]);
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, owner, &dir.path().join("owner.db"));
    let b = online(&server, guest, &dir.path().join("guest.db"));
    let id = shared_note(&server, owner, &a, guest, "viewer", "Hello").await;
    wait_text(&b, id, "Hello").await;
    synced(&b).await;
    let mut events = b.events();

    // Rooms are joined by announcing oneself. b hears of a in either order: joining after a, b
    // receives the room's states; joining first, b receives a's announcement.
    assert!(a.write(|c| c.send_awareness(id, awareness(7, 1, r#"{"user":"a"}"#))));
    assert!(b.write(|c| c.send_awareness(id, awareness(8, 1, r#"{"user":"b"}"#))));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let heard = drain(&mut events).into_iter().any(|e| {
            matches!(e, SyncEvent::Text(TextEvent::Awareness { doc_id, update })
                if doc_id == id && update.windows(12).any(|w| w == br#"{"user":"a"}"#))
        });
        if heard {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "b never heard of a");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Presence is never stored: nothing is pending or persisted for it.
    assert_eq!(a.pending_count(), 0);
    assert_eq!(b.pending_count(), 0);
}
