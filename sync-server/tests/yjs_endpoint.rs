//! The y-websocket endpoint `/yjs/{doc_id}` spoken by a Rust y-protocols client: the sync
//! handshake, updates stored and seen by `/sync` clients (and the other way round), viewers
//! refused with a permission-denied message and nothing stored or relayed, presence relayed
//! between connections, and refusals of bad tokens and unreadable or unknown documents.

mod yjs_client;

use automerge::{ActorId, AutoCommit};
use sync_server::testing::TestServer;
use sync_server::testing::changes::{s, task_change};
use sync_server::testing::raw::RawClient;
use sync_server::testing::text::TextReplica;
use syncline_protocol::rules::OrgRole;
use uuid::Uuid;
use yjs_client::{Pusher, YClient, changes_until_pong, log_len, stored_text};
use yrs::sync::{Awareness, AwarenessUpdate, Message};
use yrs::updates::decoder::Decode;

#[tokio::test]
async fn edits_flow_between_y_websocket_and_sync_clients_and_are_stored() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Member])
        .await;
    let mut owner = Pusher::connect(&server, &users[0]).await;
    let note = owner.create_note("Minutes").await;
    let mut reader = RawClient::hello(&server.ws_url(), &users[1].access_token).await;
    reader.subscribe(1, "note_bodies", None).await;

    let mut y = YClient::synced(&server, note, &users[1]).await;
    assert_eq!(y.replica.text(), "");
    let update = y.replica.push_paragraph("Hello");
    y.send_update(update.clone()).await;

    // Stored, and delivered to `/sync` clients as a change carrying the same update.
    let changes = loop {
        let changes = changes_until_pong(&mut reader, note, 1).await;
        if !changes.is_empty() {
            break changes;
        }
    };
    assert_eq!(changes, vec![update]);
    assert_eq!(stored_text(&server, note).await.as_deref(), Some("Hello"));

    // A `/sync` edit reaches the y-websocket client as a sync update (its own was not echoed:
    // this is the next update it receives).
    let sync_side = TextReplica::from_state(&y.replica.state());
    let edit = sync_side.insert(0, 5, " world");
    owner.push(note, "note_bodies", edit.clone()).await;
    assert_eq!(y.next_update().await, edit);
    assert_eq!(y.replica.text(), "Hello world");

    // A new connection receives the whole document in its step 2.
    let late = YClient::synced(&server, note, &users[0]).await;
    assert_eq!(late.replica.text(), "Hello world");
}

#[tokio::test]
async fn content_a_client_made_offline_is_pushed_by_its_step_2() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let note = Pusher::connect(&server, &users[0])
        .await
        .create_note("Draft")
        .await;
    let mut y = YClient::connect(&server, note, &users[0].access_token).await;
    y.replica.push_paragraph("written before connecting");
    y.sync().await;
    // The step 2 is pushed before the next frame is read: a query's answer follows it.
    let mut other = YClient::synced(&server, note, &users[0]).await;
    if other.replica.text().is_empty() {
        other.next_update().await;
    }
    assert_eq!(other.replica.text(), "written before connecting");
    assert_eq!(
        stored_text(&server, note).await.as_deref(),
        Some("written before connecting")
    );
}

#[tokio::test]
async fn a_viewers_edit_is_refused_with_permission_denied_and_reaches_nobody() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Guest])
        .await;
    let (owner, guest) = (&users[0], &users[1]);
    let mut pusher = Pusher::connect(&server, owner).await;
    let note = pusher.create_note("Contract").await;
    let first = TextReplica::new();
    pusher
        .push(note, "note_bodies", first.push_paragraph("Terms"))
        .await;
    server
        .share(
            reqwest::Method::POST,
            owner,
            "notes",
            note,
            "viewer",
            guest.user_id,
        )
        .await;
    let mut reader = RawClient::hello(&server.ws_url(), &owner.access_token).await;
    reader.subscribe(1, "note_bodies", None).await;
    let mut editor = YClient::synced(&server, note, owner).await;
    let log_before = log_len(&server).await;

    // The viewer reads the document...
    let mut viewer = YClient::synced(&server, note, guest).await;
    assert_eq!(viewer.replica.text(), "Terms");
    // ...but its edit is refused: permission denied, then a final close.
    let edit = viewer.replica.insert(0, 0, "Void ");
    viewer.send_update(edit).await;
    let (denied, code, reason) = viewer.refused().await;
    let denied = denied.expect("a permission-denied message");
    assert!(denied.contains("forbidden"), "{denied}");
    assert_eq!(code, 4403, "{reason}");

    // Nothing stored, logged or relayed to either endpoint.
    assert_eq!(stored_text(&server, note).await.as_deref(), Some("Terms"));
    assert_eq!(log_len(&server).await, log_before);
    assert!(changes_until_pong(&mut reader, note, 7).await.is_empty());
    let marker = first.insert(0, 5, ".");
    pusher.push(note, "note_bodies", marker.clone()).await;
    assert_eq!(
        editor.next_update().await,
        marker,
        "the refused edit never arrived"
    );
    assert_eq!(editor.replica.text(), "Terms.");
}

#[tokio::test]
async fn presence_is_relayed_and_removed_when_a_connection_closes() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Member])
        .await;
    let note = Pusher::connect(&server, &users[0])
        .await
        .create_note("Plan")
        .await;
    let mut a = YClient::synced(&server, note, &users[0]).await;
    let mut b = YClient::synced(&server, note, &users[1]).await;

    let mut awareness = Awareness::new(yrs::Doc::with_client_id(11));
    awareness.set_local_state_raw(r#"{"user":{"name":"Ann"}}"#);
    let update = awareness.update().expect("awareness update");
    a.send(Message::Awareness(update)).await;
    let seen = b.next_awareness().await;
    assert_eq!(seen, vec![(11, 1, r#"{"user":{"name":"Ann"}}"#.to_owned())]);

    // A newcomer gets the current states at once, and on request.
    let mut c = YClient::connect(&server, note, &users[1].access_token).await;
    assert_eq!(c.next_awareness().await, seen);
    c.send(Message::AwarenessQuery).await;
    assert_eq!(c.next_awareness().await, seen);

    // Closing the connection removes its client's state for everyone.
    drop(a);
    assert_eq!(b.next_awareness().await, vec![(11, 2, "null".to_owned())]);
    assert_eq!(c.next_awareness().await, vec![(11, 2, "null".to_owned())]);

    // Garbage presence is dropped; the connection stays usable.
    b.send_bytes(vec![1, 3, 1, 2, 3]).await;
    let decoded = AwarenessUpdate::decode_v1(&[0]).expect("empty update");
    b.send(Message::Awareness(decoded)).await;
    let update = b.replica.push_paragraph("still here");
    b.send_update(update).await;
    c.next_update().await;
    assert_eq!(c.replica.text(), "still here");
}

#[tokio::test]
async fn bad_tokens_unknown_and_unreadable_documents_are_refused() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Guest])
        .await;
    let (owner, guest) = (&users[0], &users[1]);
    let mut pusher = Pusher::connect(&server, owner).await;
    let note = pusher.create_note("Secret").await;
    let task = Uuid::now_v7();
    let mut doc = AutoCommit::new().with_actor(ActorId::random());
    pusher
        .push(
            task,
            "tasks",
            task_change(&mut doc, &[("title", s("t")), ("status", s("todo"))]),
        )
        .await;

    let now = chrono::Utc::now().timestamp();
    let expired = server.sign_token(owner.user_id, owner.org_id, now - 100, now - 10);
    let cases: [(String, &str, u16, bool); 7] = [
        (note.to_string(), "not-a-jwt", 4401, false),
        (note.to_string(), "", 4401, false),
        (note.to_string(), &expired, 4419, false),
        // Guests read only what is shared with them.
        (note.to_string(), &guest.access_token, 4403, true),
        (Uuid::now_v7().to_string(), &owner.access_token, 4404, true),
        ("not-a-uuid".to_owned(), &owner.access_token, 4404, true),
        // Tasks have no text body.
        (task.to_string(), &owner.access_token, 4404, true),
    ];
    for (doc, token, expected, denied) in cases {
        let mut c = YClient::connect(&server, &doc, token).await;
        let (reason, code, close_reason) = c.refused().await;
        assert_eq!(code, expected, "{doc} {close_reason}");
        assert_eq!(reason.is_some(), denied, "{doc}: {reason:?}");
    }
    // No body was created by any of them.
    assert_eq!(stored_text(&server, note).await, None);
    // Another org's document does not exist for this org's members.
    let other = server.seed_org("Other", &[OrgRole::Owner]).await;
    let mut c = YClient::connect(&server, note, &other[0].access_token).await;
    assert_eq!(c.refused().await.1, 4404);
}

#[tokio::test]
async fn a_client_with_nothing_new_stores_nothing_when_it_reconnects() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let owner = &users[0];
    let mut pusher = Pusher::connect(&server, owner).await;
    let note = pusher.create_note("Memo").await;
    let body = TextReplica::new();
    pusher
        .push(note, "note_bodies", body.push_paragraph("Hello world"))
        .await;
    pusher.push(note, "note_bodies", body.delete(0, 5, 6)).await;
    let mut first = YClient::synced(&server, note, owner).await;
    assert_eq!(first.replica.text(), "Hello");
    let before = log_len(&server).await;

    // Reconnecting with the same content: its step 2 carries the delete set, and nothing new.
    let mut again = YClient::connect(&server, note, &owner.access_token).await;
    again.replica = TextReplica::from_state(&first.replica.state());
    again.sync().await;
    // Frames are handled in order: once its next edit arrived, the step 2 was handled too.
    let edit = again.replica.insert(0, 5, "!");
    again.send_update(edit.clone()).await;
    assert_eq!(first.next_update().await, edit);
    assert_eq!(
        log_len(&server).await,
        before + 1,
        "only the edit was stored"
    );
    assert_eq!(stored_text(&server, note).await.as_deref(), Some("Hello!"));
}
