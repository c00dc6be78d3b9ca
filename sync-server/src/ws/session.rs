//! One sync connection after its handshake: reads client frames, forwards the org's committed
//! changes to matching subscriptions in seq order, and closes the socket when the token expires.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use syncline_protocol::{
    ClientMessage, CloseCode, CodecError, ErrorCode, Mutation, PROTOCOL_VERSION, ServerMessage,
    decode_client,
};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::Instrument;

use super::delivery::Delivery;
use super::frames::FrameSocket;
use super::handshake::{self, Identity, truncate};
use super::presence::{self, ConnectionPresence};
use super::subscriptions;
use crate::AppState;
use crate::error::ServerError;
use crate::hub::CommittedBatch;
use crate::merge::{self, Pusher};
use crate::store::change_log;

/// Most mutations accepted in one `Push`.
pub const MAX_MUTATIONS_PER_PUSH: usize = 1000;

/// Why the session ends.
#[derive(Debug)]
pub enum Stop {
    /// The peer closed or the socket failed: nothing more to send.
    PeerGone,
    /// Close with this code and reason.
    Close(CloseCode, String),
}

impl From<ServerError> for Stop {
    fn from(e: ServerError) -> Self {
        e.log();
        Stop::Close(CloseCode::ServerUnavailable, truncate(&e.message))
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::from(ServerError::from(e))
    }
}

/// Runs a connection to its end.
pub async fn run(socket: WebSocket, state: AppState) {
    let mut socket = FrameSocket::new(socket);
    let span = tracing::info_span!(
        "sync_connection",
        user_id = tracing::field::Empty,
        org_id = tracing::field::Empty,
        client_id = tracing::field::Empty
    );
    async move {
        let identity = match Box::pin(handshake::authenticate(socket.raw(), &state)).await {
            Ok(identity) => identity,
            Err(refused) => {
                if let Some((code, reason)) = refused {
                    tracing::info!(code = code.code(), %reason, "handshake refused");
                    socket.close(code, reason).await;
                }
                return;
            }
        };
        let span = tracing::Span::current();
        span.record("user_id", tracing::field::display(identity.session.user_id));
        span.record("org_id", tracing::field::display(identity.session.org_id));
        span.record("client_id", tracing::field::display(identity.client_id));
        tracing::info!("sync session started");
        match serve(&mut socket, &state, identity).await {
            Stop::PeerGone => tracing::info!("sync session ended by peer"),
            Stop::Close(code, reason) => {
                tracing::info!(code = code.code(), %reason, "closing sync session");
                socket.close(code, reason).await;
            }
        }
    }
    .instrument(span)
    .await;
}

/// Sends one message as the connection's next numbered frame.
pub async fn send(socket: &mut FrameSocket, message: &ServerMessage) -> Result<(), Stop> {
    socket.send(message).await
}

struct Connection<'a> {
    socket: &'a mut FrameSocket,
    state: &'a AppState,
    identity: Identity,
    delivery: Delivery,
    /// Every change with seq <= live_pos has been considered for delivery.
    live_pos: u64,
    expires_at: Instant,
    /// Presence on text documents, made on the connection's first `awareness` message (most
    /// connections never send one, and idle connections must stay small).
    presence: Option<ConnectionPresence>,
}

async fn serve(socket: &mut FrameSocket, state: &AppState, identity: Identity) -> Stop {
    let org_id = identity.session.org_id;
    // Subscribe before reading the current seq, so no batch committed in between is missed.
    let mut live = state.hub.subscribe(org_id);
    let live_pos = match change_log::current(&state.db, org_id).await {
        Ok(pos) => pos,
        Err(e) => return e.into(),
    };
    let mut conn = Connection {
        socket,
        state,
        identity,
        delivery: Delivery::new(identity.session.user_id, org_id),
        live_pos,
        expires_at: expiry_instant(identity.session.expires_at),
        presence: None,
    };
    let welcome = ServerMessage::Welcome {
        protocol_version: PROTOCOL_VERSION,
        user_id: identity.session.user_id,
        org_id,
        session_expires_at: identity.session.expires_at,
    };
    if let Err(stop) = send(conn.socket, &welcome).await {
        return stop;
    }
    loop {
        // Biased, committed changes first: a session delivers what is committed (its own
        // pushes' changes included) before it reads the client's next frame, so the order of
        // frames on a connection follows from the order of events (the simulation in
        // conflict-tests replays runs frame for frame).
        let step = tokio::select! {
            biased;
            batch = live.recv() => match batch {
                Ok(batch) => Box::pin(conn.deliver(&batch)).await,
                // Lagged: catch up from the log up to what is committed now.
                Err(RecvError::Lagged(_)) => Box::pin(conn.catch_up_live()).await,
                Err(RecvError::Closed) => Err(Stop::Close(CloseCode::ServerUnavailable, "server shutting down".into())),
            },
            frame = conn.socket.recv() => match frame {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Err(Stop::PeerGone),
                // Work on a frame or batch is boxed: an idle connection's future then holds only the
                // loop, not the state of the merge, subscribe and delivery paths (memory per
                // connection, docs/benchmarks.md).
                Some(Ok(Message::Binary(bytes))) => Box::pin(conn.on_frame(&bytes)).await,
                Some(Ok(Message::Text(_))) => {
                    Err(Stop::Close(CloseCode::UnsupportedData, "the protocol is binary (CBOR)".into()))
                }
                Some(Ok(_)) => Ok(()), // ping/pong are answered by the socket itself
            },
            Some(message) = presence::next(&mut conn.presence) => Box::pin(conn.forward_presence(message)).await,
            () = tokio::time::sleep_until(conn.expires_at) => {
                Err(Stop::Close(CloseCode::TokenExpired, "session token expired; reconnect with a fresh token".into()))
            }
        };
        if let Err(stop) = step {
            return stop;
        }
    }
}

fn expiry_instant(expires_at_unix: i64) -> Instant {
    let remaining = expires_at_unix - chrono::Utc::now().timestamp();
    Instant::now() + Duration::from_secs(u64::try_from(remaining).unwrap_or(0))
}

impl Connection<'_> {
    async fn on_frame(&mut self, bytes: &[u8]) -> Result<(), Stop> {
        let message = match decode_client(bytes) {
            Ok(m) => m,
            Err(CodecError::Malformed(reason)) => {
                return Err(Stop::Close(CloseCode::MalformedFrame, reason));
            }
            Err(e @ CodecError::UnknownType(_)) => {
                return self
                    .error(ErrorCode::UnknownMessageType, e.to_string())
                    .await;
            }
            Err(e) => return self.error(ErrorCode::MalformedFrame, e.to_string()).await,
        };
        match message {
            ClientMessage::Hello { .. } => {
                self.error(ErrorCode::UnexpectedMessage, "already authenticated")
                    .await
            }
            ClientMessage::Subscribe {
                sub_id,
                scope,
                cursor,
            } => {
                subscriptions::subscribe(
                    &mut self.delivery,
                    self.socket,
                    self.state,
                    self.live_pos,
                    sub_id,
                    scope,
                    cursor,
                )
                .await
            }
            ClientMessage::Unsubscribe { sub_id } => {
                self.delivery.subs.unsubscribe(sub_id);
                Ok(())
            }
            ClientMessage::Push { mutations } => self.push(&mutations).await,
            ClientMessage::Reauth { token } => self.reauth(&token).await,
            // A Ping is also a barrier: the Pong follows every change committed before the Ping
            // arrived, even one this connection has not heard of yet (a commit on another
            // server process whose notification is still on its way). Clients and tests use
            // it to know they have seen everything (docs/protocol.md).
            ClientMessage::Ping { nonce } => {
                self.catch_up_live().await?;
                send(self.socket, &ServerMessage::Pong { nonce }).await
            }
            ClientMessage::Awareness { doc_id, update } => {
                self.relay_awareness(doc_id, update.into_vec()).await
            }
        }
    }

    /// Relays presence on a text document the user may read (never stored).
    async fn relay_awareness(&mut self, doc_id: uuid::Uuid, update: Vec<u8>) -> Result<(), Stop> {
        let acl = self
            .state
            .acl
            .get(&self.state.db, self.identity.session.org_id)
            .await?;
        if !acl.can_read(self.identity.session.user_id, doc_id) {
            return self
                .error(ErrorCode::Forbidden, "document not found or not accessible")
                .await;
        }
        let session = self.identity.session;
        let presence = self.presence.get_or_insert_with(|| {
            ConnectionPresence::new(self.state, session.org_id, session.user_id)
        });
        match presence.publish(doc_id, &update) {
            Ok(Some(states)) => send(self.socket, &states).await,
            Ok(None) => Ok(()),
            Err(e) => {
                self.error(
                    ErrorCode::InvalidInput,
                    format!("awareness update refused: {e}"),
                )
                .await
            }
        }
    }

    /// Sends another connection's presence, unless the user lost access to the document
    /// meanwhile (then the connection leaves its room).
    async fn forward_presence(&mut self, message: ServerMessage) -> Result<(), Stop> {
        let ServerMessage::Awareness { doc_id, .. } = &message else {
            return Ok(());
        };
        let session = self.identity.session;
        let acl = self.state.acl.get(&self.state.db, session.org_id).await?;
        if !acl.can_read(session.user_id, *doc_id) {
            if let Some(presence) = self.presence.as_mut() {
                presence.leave(*doc_id);
            }
            return Ok(());
        }
        send(self.socket, &message).await
    }

    async fn error(&mut self, code: ErrorCode, message: impl Into<String>) -> Result<(), Stop> {
        send(
            self.socket,
            &ServerMessage::Error {
                code,
                message: message.into(),
            },
        )
        .await
    }

    async fn push(&mut self, mutations: &[Mutation]) -> Result<(), Stop> {
        if mutations.len() > MAX_MUTATIONS_PER_PUSH {
            return self
                .error(
                    ErrorCode::TooLarge,
                    format!("at most {MAX_MUTATIONS_PER_PUSH} mutations per push"),
                )
                .await;
        }
        let pusher = Pusher {
            org_id: self.identity.session.org_id,
            user_id: self.identity.session.user_id,
            client_id: self.identity.client_id,
        };
        let outcome = merge::apply_push(self.state, pusher, mutations).await?;
        if let Some(batch) = outcome.batch {
            self.state.hub.publish(batch);
        }
        for reply in &outcome.replies {
            send(self.socket, reply).await?;
        }
        // A client may hold documents it can no longer read that no `Evict` reached: its own
        // offline creations after losing access, or a replica that resubscribed with a fresh
        // snapshot (which only lists what it may read). Answering a mutation on such a document
        // is the moment to tell it, so no replica keeps a document it may not read.
        let acl = self
            .state
            .acl
            .get(&self.state.db, self.identity.session.org_id)
            .await?;
        let mut evicted = std::collections::HashSet::new();
        for mutation in mutations {
            if !acl.can_read(self.identity.session.user_id, mutation.doc_id)
                && evicted.insert(mutation.doc_id)
            {
                tracing::debug!(doc_id = %mutation.doc_id, "evicting a document the user may not read");
                self.delivery.forget(mutation.doc_id);
                send(
                    self.socket,
                    &ServerMessage::Evict {
                        doc_id: mutation.doc_id,
                    },
                )
                .await?;
            }
        }
        Ok(())
    }

    async fn reauth(&mut self, token: &str) -> Result<(), Stop> {
        match self.state.keys.verify(token) {
            Ok(s)
                if s.user_id == self.identity.session.user_id
                    && s.org_id == self.identity.session.org_id =>
            {
                self.identity.session.expires_at = s.expires_at;
                self.expires_at = expiry_instant(s.expires_at);
                send(
                    self.socket,
                    &ServerMessage::Reauthed {
                        session_expires_at: s.expires_at,
                    },
                )
                .await
            }
            Ok(_) => {
                self.error(
                    ErrorCode::Forbidden,
                    "token is for another user or organization",
                )
                .await
            }
            Err(e) => self.error(e.code, e.message).await,
        }
    }

    /// Forwards a committed batch, first reading any seqs between `live_pos` and the batch from
    /// the log (batches may be published out of order, and all lower seqs are committed).
    async fn deliver(&mut self, batch: &Arc<CommittedBatch>) -> Result<(), Stop> {
        if batch.last_seq <= self.live_pos {
            return Ok(());
        }
        if batch.first_seq > self.live_pos + 1 {
            self.read_log_until(batch.first_seq - 1).await?;
        }
        for change in batch.changes.iter().filter(|c| c.seq > self.live_pos) {
            self.delivery
                .forward(self.socket, self.state, change)
                .await?;
        }
        self.live_pos = batch.last_seq;
        Ok(())
    }

    async fn catch_up_live(&mut self) -> Result<(), Stop> {
        let upto = change_log::current(&self.state.db, self.identity.session.org_id).await?;
        self.read_log_until(upto).await
    }

    /// Sends the matching changes in `(live_pos, upto]` from the log and advances `live_pos`.
    async fn read_log_until(&mut self, upto: u64) -> Result<(), Stop> {
        const PAGE: i64 = 1000;
        let org_id = self.identity.session.org_id;
        while self.live_pos < upto {
            let page = change_log::read_range(
                &self.state.db,
                org_id,
                self.live_pos,
                upto,
                &change_log::LogFilter::All,
                PAGE,
            )
            .await?;
            let Some(last) = page.last().map(|c| c.seq) else {
                // Cannot happen while the invariant holds (seqs up to `upto` are committed).
                tracing::error!(after = self.live_pos, upto, "change log has a gap");
                return Err(Stop::Close(
                    CloseCode::ServerUnavailable,
                    "change log unavailable".into(),
                ));
            };
            for change in &page {
                self.delivery
                    .forward(self.socket, self.state, change)
                    .await?;
            }
            self.live_pos = last;
        }
        Ok(())
    }
}
