//! The y-websocket endpoint `/yjs/{doc_id}` spoken by a Rust y-protocols client: the sync
//! handshake, updates stored and seen by `/sync` clients (and the other way round), viewers
//! refused with a permission-denied message and nothing stored or relayed, presence relayed
//! between connections, and refusals of bad tokens and unreadable or unknown documents.

use std::time::Duration;

use automerge::{ActorId, AutoCommit};
use futures_util::{SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use sync_server::testing::changes::{record_change, s, task_change};
use sync_server::testing::raw::RawClient;
use sync_server::testing::text::TextReplica;
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::rules::OrgRole;
use syncline_protocol::schema::NOTES;
use syncline_protocol::{ClientMessage, Mutation, MutationId, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;
use yrs::sync::{Awareness, AwarenessUpdate, Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Transact};

const TIMEOUT: Duration = Duration::from_secs(15);

/// What the server sent.
#[derive(Debug)]
enum Frame {
    Message(Message),
    Closed(u16, String),
}

/// A y-websocket client: a text replica and its socket.
struct YClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    replica: TextReplica,
}

impl YClient {
    async fn connect(server: &TestServer, doc: impl std::fmt::Display, token: &str) -> Self {
        let url = format!("ws://{}/yjs/{doc}?token={token}", server.addr);
        let (ws, _) = connect_async(url).await.expect("websocket connect");
        Self {
            ws,
            replica: TextReplica::new(),
        }
    }

    /// Connects and completes the sync handshake: answers the server's step 1 with what it
    /// lacks, and applies its step 2.
    async fn synced(server: &TestServer, doc: Uuid, user: &TestUser) -> Self {
        let mut c = Self::connect(server, doc, &user.access_token).await;
        c.sync().await;
        c
    }

    async fn sync(&mut self) {
        let sv = self.replica.doc.transact().state_vector();
        self.send(Message::Sync(SyncMessage::SyncStep1(sv))).await;
        let (mut answered, mut synced) = (false, false);
        while !(answered && synced) {
            match self.recv().await {
                Frame::Message(Message::Sync(SyncMessage::SyncStep1(sv))) => {
                    let diff = self.replica.doc.transact().encode_diff_v1(&sv);
                    self.send(Message::Sync(SyncMessage::SyncStep2(diff))).await;
                    answered = true;
                }
                Frame::Message(Message::Sync(SyncMessage::SyncStep2(update))) => {
                    self.replica.apply(&update);
                    synced = true;
                }
                Frame::Message(Message::Sync(SyncMessage::Update(update))) => {
                    self.replica.apply(&update)
                }
                Frame::Message(_) => {}
                closed => panic!("closed during the handshake: {closed:?}"),
            }
        }
    }

    async fn send(&mut self, message: Message) {
        self.send_bytes(message.encode_v1()).await;
    }

    async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(WsMessage::Binary(bytes.into()))
            .await
            .expect("send frame");
    }

    async fn send_update(&mut self, update: Vec<u8>) {
        self.send(Message::Sync(SyncMessage::Update(update))).await;
    }

    async fn recv(&mut self) -> Frame {
        loop {
            let next = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for the server");
            match next {
                None | Some(Err(_)) => return Frame::Closed(1006, String::new()),
                Some(Ok(WsMessage::Binary(b))) => {
                    return Frame::Message(Message::decode_v1(&b).expect("a y-protocols message"));
                }
                Some(Ok(WsMessage::Close(frame))) => {
                    let (code, reason) = frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.to_string())
                    });
                    return Frame::Closed(code, reason);
                }
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next sync update, applied to the replica.
    async fn next_update(&mut self) -> Vec<u8> {
        loop {
            match self.recv().await {
                Frame::Message(Message::Sync(SyncMessage::Update(update))) => {
                    self.replica.apply(&update);
                    return update;
                }
                Frame::Message(_) => {}
                closed => panic!("expected an update, got {closed:?}"),
            }
        }
    }

    /// The next awareness update's `(client, clock, json)` entries, sorted.
    async fn next_awareness(&mut self) -> Vec<(u64, u32, String)> {
        loop {
            if let Frame::Message(Message::Awareness(update)) = self.recv().await {
                let mut entries: Vec<_> = update
                    .clients
                    .iter()
                    .map(|(id, e)| (id.get(), e.clock, e.json.to_string()))
                    .collect();
                entries.sort();
                return entries;
            }
        }
    }

    /// Expects an optional permission-denied message and then the close.
    async fn refused(&mut self) -> (Option<String>, u16, String) {
        let mut denied = None;
        loop {
            match self.recv().await {
                Frame::Message(Message::Auth(reason)) => denied = reason,
                Frame::Message(_) => {}
                Frame::Closed(code, reason) => return (denied, code, reason),
            }
        }
    }
}

/// A `/sync` client pushing mutations with its own counter.
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

    async fn push(&mut self, doc_id: Uuid, collection: &str, payload: Vec<u8>) {
        self.seq += 1;
        let mid = MutationId {
            client_id: self.raw.client_id,
            seq: self.seq,
        };
        let mutations = vec![Mutation {
            mid,
            doc_id,
            collection: collection.into(),
            payload: ByteBuf::from(payload),
        }];
        self.raw.send(&ClientMessage::Push { mutations }).await;
        let answer = self
            .raw
            .until(|m| matches!(m, ServerMessage::Ack { mid: a, .. } | ServerMessage::Reject { mid: a, .. } if *a == mid))
            .await;
        assert!(matches!(answer, ServerMessage::Ack { .. }), "{answer:?}");
    }

    async fn create_note(&mut self, title: &str) -> Uuid {
        let id = Uuid::now_v7();
        let mut doc = AutoCommit::new().with_actor(ActorId::random());
        self.push(
            id,
            "notes",
            record_change(&mut doc, &NOTES, &[("title", s(title))]),
        )
        .await;
        id
    }
}

async fn stored_text(server: &TestServer, doc_id: Uuid) -> Option<String> {
    sqlx::query_as::<_, (String,)>("SELECT plain_text FROM text_documents WHERE id = $1")
        .bind(doc_id)
        .fetch_optional(&server.db)
        .await
        .expect("query")
        .map(|(t,)| t)
}

async fn log_len(server: &TestServer) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM change_log")
        .fetch_one(&server.db)
        .await
        .expect("count");
    n
}

/// Reads `/sync` messages up to a Pong (a barrier: every committed change came first) and
/// returns the changes of `doc_id` among them.
async fn changes_until_pong(raw: &mut RawClient, doc_id: Uuid, nonce: u64) -> Vec<Vec<u8>> {
    raw.send(&ClientMessage::Ping { nonce }).await;
    let mut changes = Vec::new();
    loop {
        match raw.message().await {
            ServerMessage::Pong { nonce: n } if n == nonce => return changes,
            ServerMessage::Change {
                doc_id: d, payload, ..
            } if d == doc_id => {
                changes.push(payload.into_vec());
            }
            _ => {}
        }
    }
}

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
