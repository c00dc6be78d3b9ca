//! A Rust y-websocket client (y-protocols over tokio-tungstenite) and a `/sync` pusher, shared by
//! the y-websocket endpoint tests.

#![allow(dead_code)] // each test crate uses part of it

use std::time::Duration;

use automerge::{ActorId, AutoCommit};
use futures_util::{SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use sync_server::testing::changes::{record_change, s};
use sync_server::testing::raw::RawClient;
use sync_server::testing::text::TextReplica;
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::schema::NOTES;
use syncline_protocol::{ClientMessage, Mutation, MutationId, ServerMessage};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use uuid::Uuid;
use yrs::sync::{Message, SyncMessage};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Transact};

pub const TIMEOUT: Duration = Duration::from_secs(15);

/// What the server sent.
#[derive(Debug)]
pub enum Frame {
    Message(Message),
    Closed(u16, String),
}

/// A y-websocket client: a text replica and its socket.
pub struct YClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub replica: TextReplica,
}

impl YClient {
    pub async fn connect(server: &TestServer, doc: impl std::fmt::Display, token: &str) -> Self {
        let url = format!("ws://{}/yjs/{doc}?token={token}", server.addr);
        let (ws, _) = connect_async(url).await.expect("websocket connect");
        Self {
            ws,
            replica: TextReplica::new(),
        }
    }

    /// Connects and completes the sync handshake: answers the server's step 1 with what it
    /// lacks, and applies its step 2.
    pub async fn synced(server: &TestServer, doc: Uuid, user: &TestUser) -> Self {
        let mut c = Self::connect(server, doc, &user.access_token).await;
        c.sync().await;
        c
    }

    pub async fn sync(&mut self) {
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

    pub async fn send(&mut self, message: Message) {
        self.send_bytes(message.encode_v1()).await;
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(WsMessage::Binary(bytes.into()))
            .await
            .expect("send frame");
    }

    pub async fn send_update(&mut self, update: Vec<u8>) {
        self.send(Message::Sync(SyncMessage::Update(update))).await;
    }

    pub async fn recv(&mut self) -> Frame {
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
    pub async fn next_update(&mut self) -> Vec<u8> {
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
    pub async fn next_awareness(&mut self) -> Vec<(u64, u32, String)> {
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
    pub async fn refused(&mut self) -> (Option<String>, u16, String) {
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
pub struct Pusher {
    pub raw: RawClient,
    pub seq: u64,
}

impl Pusher {
    pub async fn connect(server: &TestServer, user: &TestUser) -> Self {
        Self {
            raw: RawClient::hello(&server.ws_url(), &user.access_token).await,
            seq: 0,
        }
    }

    pub async fn push(&mut self, doc_id: Uuid, collection: &str, payload: Vec<u8>) {
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

    pub async fn create_note(&mut self, title: &str) -> Uuid {
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

pub async fn stored_text(server: &TestServer, doc_id: Uuid) -> Option<String> {
    sqlx::query_as::<_, (String,)>("SELECT plain_text FROM text_documents WHERE id = $1")
        .bind(doc_id)
        .fetch_optional(&server.db)
        .await
        .expect("query")
        .map(|(t,)| t)
}

pub async fn log_len(server: &TestServer) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM change_log")
        .fetch_one(&server.db)
        .await
        .expect("count");
    n
}

/// Reads `/sync` messages up to a Pong (a barrier: every committed change came first) and
/// returns the changes of `doc_id` among them.
pub async fn changes_until_pong(raw: &mut RawClient, doc_id: Uuid, nonce: u64) -> Vec<Vec<u8>> {
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
