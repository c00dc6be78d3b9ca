//! The [`FakeServer`] behind a real WebSocket (tokio-tungstenite), to test the native
//! transport: handshake with token check and close codes, replies, fan-out of committed
//! changes to every connection, and forced disconnects.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use syncline_protocol::{
    ClientMessage, CloseCode, ServerMessage, decode_client, encode_server_frame,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

use super::server::FakeServer;

pub struct WsServer {
    pub addr: SocketAddr,
    pub server: Arc<Mutex<FakeServer>>,
    token: Arc<Mutex<String>>,
    kick: broadcast::Sender<()>,
    /// Connections that completed the handshake.
    pub sessions: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WsServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = self.kick.send(());
    }
}

impl WsServer {
    /// Listens on a free local port; accepts the token `"good"` until told otherwise.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = Arc::new(Mutex::new(FakeServer::default()));
        let token = Arc::new(Mutex::new("good".to_owned()));
        let (changes, _) = broadcast::channel::<ServerMessage>(4096);
        let (kick, _) = broadcast::channel::<()>(16);
        let sessions = Arc::new(AtomicUsize::new(0));
        let task = {
            let (server, token, kick, sessions) = (
                server.clone(),
                token.clone(),
                kick.clone(),
                sessions.clone(),
            );
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let conn = Connection {
                        server: server.clone(),
                        token: token.clone(),
                        changes: changes.clone(),
                        kick: kick.subscribe(),
                        sessions: sessions.clone(),
                    };
                    tokio::spawn(conn.serve(stream));
                }
            })
        };
        Self {
            addr,
            server,
            token,
            kick,
            sessions,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    pub fn accept_token(&self, token: &str) {
        *self.token.lock().expect("lock") = token.to_owned();
    }

    /// Drops every open connection without a close frame (a network failure).
    pub fn drop_connections(&self) {
        let _ = self.kick.send(());
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeServer) -> R) -> R {
        f(&mut self.server.lock().expect("lock"))
    }
}

struct Connection {
    server: Arc<Mutex<FakeServer>>,
    token: Arc<Mutex<String>>,
    changes: broadcast::Sender<ServerMessage>,
    kick: broadcast::Receiver<()>,
    sessions: Arc<AtomicUsize>,
}

impl Connection {
    async fn serve(mut self, stream: TcpStream) {
        let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
            return;
        };
        let (mut sink, mut stream) = ws.split();
        let hello = match stream.next().await {
            Some(Ok(Message::Binary(b))) => decode_client(&b).ok(),
            _ => None,
        };
        let Some(hello @ ClientMessage::Hello { .. }) = hello else {
            return;
        };
        let ClientMessage::Hello { token, .. } = &hello else {
            return;
        };
        if *token != *self.token.lock().expect("lock") {
            let frame = CloseFrame {
                code: CloseCode::Unauthenticated.code().into(),
                reason: "bad token".into(),
            };
            let _ = sink.send(Message::Close(Some(frame))).await;
            return;
        }
        // Subscribe to fan-out before answering anything, so no committed change is missed.
        let mut changes = self.changes.subscribe();
        self.sessions.fetch_add(1, Ordering::SeqCst);
        let mut pending = vec![hello];
        // Server frames are numbered from 1 on each connection (docs/protocol.md).
        let mut sent = 0u64;
        let mut frame = |message: &ServerMessage| {
            sent += 1;
            Message::Binary(encode_server_frame(sent, message).expect("encode").into())
        };
        loop {
            for message in pending.drain(..) {
                let out = self.server.lock().expect("lock").receive(message);
                for reply in out.replies {
                    if sink.send(frame(&reply)).await.is_err() {
                        return;
                    }
                }
                for change in out.broadcast {
                    let _ = self.changes.send(change);
                }
            }
            tokio::select! {
                frame = stream.next() => match frame {
                    Some(Ok(Message::Binary(b))) => match decode_client(&b) {
                        Ok(m) => pending.push(m),
                        Err(_) => return,
                    },
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                },
                change = changes.recv() => match change {
                    Ok(change) => {
                        if sink.send(frame(&change)).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                _ = self.kick.recv() => return,
            }
        }
    }
}
