//! A protocol-level client with error handling (the one in `sync_server::testing::raw` panics,
//! which is right for tests but not for a process holding 10,000 sockets): used where a row
//! measures the server alone, and for seeding.

use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use automerge::AutoCommit;
use futures_util::{SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use sync_server::testing::changes::{s, task_change};
use syncline_protocol::{
    ClientMessage, Mutation, MutationId, PROTOCOL_VERSION, Scope, ServerMessage, decode_server,
    encode,
};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};
use uuid::Uuid;

/// How long to wait for an expected server message before giving up.
pub const TIMEOUT: Duration = Duration::from_secs(120);

pub struct Raw {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub client_id: Uuid,
    next_seq: u64,
}

impl Raw {
    /// Connects, sends `Hello` and waits for `Welcome`.
    pub async fn hello(url: &str, token: &str) -> Result<Self> {
        Self::hello_with(url, token, None).await
    }

    /// Like [`Raw::hello`] with small socket buffers, for processes holding thousands of idle
    /// connections (tungstenite allocates its 128 KiB read buffer up front).
    pub async fn hello_idle(url: &str, token: &str) -> Result<Self> {
        let config = WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        Self::hello_with(url, token, Some(config)).await
    }

    async fn hello_with(url: &str, token: &str, config: Option<WebSocketConfig>) -> Result<Self> {
        // TCP_NODELAY on the client side: the row measures the server, not Nagle's algorithm.
        let (ws, _) = connect_async_with_config(url, config, true)
            .await
            .context("websocket connect")?;
        let mut raw = Self {
            ws,
            client_id: Uuid::now_v7(),
            next_seq: 1,
        };
        raw.send(&ClientMessage::Hello {
            protocol_version: PROTOCOL_VERSION,
            token: token.to_owned(),
            client_id: raw.client_id,
        })
        .await?;
        match raw.recv(TIMEOUT).await? {
            ServerMessage::Welcome { .. } => Ok(raw),
            other => bail!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, message: &ClientMessage) -> Result<()> {
        let bytes = encode(message).context("encode")?;
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .context("send frame")
    }

    /// The next protocol message; an error on close, socket failure or timeout.
    pub async fn recv(&mut self, timeout: Duration) -> Result<ServerMessage> {
        loop {
            let next = tokio::time::timeout(timeout, self.ws.next())
                .await
                .map_err(|_| anyhow!("no message from the server within {timeout:?}"))?;
            match next {
                None => bail!("connection closed"),
                Some(Err(e)) => bail!("connection failed: {e}"),
                Some(Ok(Message::Binary(b))) => {
                    return decode_server(&b).context("undecodable server frame");
                }
                Some(Ok(Message::Close(frame))) => bail!("server closed the connection: {frame:?}"),
                Some(Ok(_)) => {}
            }
        }
    }

    /// Subscribes to the `tasks` collection from scratch; returns once `Synced` arrived, with
    /// the number of documents the snapshot held and its cursor.
    pub async fn subscribe_tasks(&mut self, sub_id: u32) -> Result<(usize, u64)> {
        self.send(&ClientMessage::Subscribe {
            sub_id,
            scope: Scope::Collection {
                collection: "tasks".into(),
            },
            cursor: None,
        })
        .await?;
        let mut docs = 0;
        loop {
            match self.recv(TIMEOUT).await? {
                ServerMessage::Snapshot { docs: d, .. } => docs += d.len(),
                ServerMessage::Synced { cursor, .. } => return Ok((docs, cursor)),
                ServerMessage::Change { .. } => {}
                other => bail!("unexpected {other:?} while subscribing"),
            }
        }
    }

    /// The next mutation of this client.
    pub fn mutation(&mut self, doc_id: Uuid, payload: Vec<u8>) -> Mutation {
        let seq = self.next_seq;
        self.next_seq += 1;
        Mutation {
            mid: MutationId {
                client_id: self.client_id,
                seq,
            },
            doc_id,
            collection: "tasks".into(),
            payload: ByteBuf::from(payload),
        }
    }

    /// Pushes mutations in one `Push` and waits for one `Ack` each; returns their seqs. Other
    /// messages (changes of subscriptions) are skipped; a `Reject` is an error.
    pub async fn push_all(&mut self, mutations: Vec<Mutation>) -> Result<Vec<u64>> {
        let expected = mutations.len();
        self.send(&ClientMessage::Push { mutations }).await?;
        let mut seqs = Vec::with_capacity(expected);
        while seqs.len() < expected {
            match self.recv(TIMEOUT).await? {
                ServerMessage::Ack { seq, .. } => seqs.push(seq),
                ServerMessage::Reject { code, message, .. } => {
                    bail!("server rejected a mutation: {code} {message}")
                }
                ServerMessage::Error { code, message } => bail!("server error: {code} {message}"),
                _ => {}
            }
        }
        Ok(seqs)
    }

    /// Pushes one change and waits for its `Ack`; returns its seq.
    pub async fn push_one(&mut self, doc_id: Uuid, payload: Vec<u8>) -> Result<u64> {
        let m = self.mutation(doc_id, payload);
        let seqs = self.push_all(vec![m]).await?;
        seqs.first().copied().context("no ack")
    }
}

/// A task document as a client makes it: its id, its automerge document and the change that
/// created it (title, status and priority).
pub fn new_task(title: &str) -> (Uuid, AutoCommit, Vec<u8>) {
    let mut doc = AutoCommit::new();
    let change = task_change(
        &mut doc,
        &[
            ("title", s(title)),
            ("status", s("todo")),
            ("priority", s("medium")),
        ],
    );
    (Uuid::now_v7(), doc, change)
}

/// A change setting the task's title.
pub fn retitle(doc: &mut AutoCommit, title: &str) -> Vec<u8> {
    task_change(doc, &[("title", s(title))])
}
