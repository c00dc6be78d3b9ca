//! One y-websocket connection: the sync handshake, the client's updates pushed as mutations,
//! committed updates of the document relayed to the client, presence, token expiry.
//!
//! - On open the server sends its sync step 1 (state vector) and the room's current awareness
//!   states. The client's step 1 is answered with step 2, the diff of the stored document
//!   against the client's state vector (y-websocket marks the provider synced on it).
//! - The client's step 2 and updates are pushed through [`merge::apply_push`] as mutations of
//!   this connection's own client id (a fresh UUID per connection, its seqs counting from 1),
//!   so they pass the same authorization as `/sync` pushes and are stored, logged and fanned
//!   out the same way. A step 2 that adds nothing to the document our step 1 described (what a
//!   client with nothing new answers, delete set included: see `noop`) is not pushed.
//! - A refused update is not stored and reaches nobody. A stock y-websocket client cannot undo
//!   it: its document now holds content the server refused, and every later update of its Yjs
//!   client depends on it. So the server says why (a permission-denied message for refusals by
//!   rule) and closes: 4403 for a viewer's edit or a suggester's non-suggestion (final, the app
//!   must reload the document from the server), 4500 when the update depends on changes the
//!   server lacks (y-websocket reconnects and its step 2 sends them), 4413 / 4400 for updates
//!   too large or invalid.
//! - Committed changes of the org arrive from the hub; those of this body, except the ones
//!   this connection pushed, go to the client as sync updates. Gaps and lag are filled from the
//!   change log, as on `/sync`. Authorization entries re-check the user's access: losing it
//!   closes with 4403.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde_bytes::ByteBuf;
use syncline_protocol::{ErrorCode, Mutation, MutationId, ServerMessage};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::Instrument;
use uuid::Uuid;
use yrs::{ReadTxn, Transact};

use super::YjsClose;
use super::access::{self, Access, Refusal};
use super::messages::{self, Incoming};
use super::noop;
use crate::AppState;
use crate::authz::changes::ACL_COLLECTION;
use crate::awareness::Presence;
use crate::error::ServerError;
use crate::hub::{CommittedBatch, CommittedChange};
use crate::merge::{self, Pusher};
use crate::store::{change_log, progress};

/// Why the session ends.
#[derive(Debug)]
enum Stop {
    /// The peer closed or the socket failed: nothing more to send.
    PeerGone,
    Refuse(Refusal),
}

impl Stop {
    fn close(close: YjsClose, reason: impl Into<String>) -> Self {
        Stop::Refuse(Refusal {
            close,
            reason: reason.into(),
            deny: close == YjsClose::Forbidden,
        })
    }
}

impl From<ServerError> for Stop {
    fn from(e: ServerError) -> Self {
        Stop::Refuse(Refusal::from(e))
    }
}

impl From<sqlx::Error> for Stop {
    fn from(e: sqlx::Error) -> Self {
        Stop::from(ServerError::from(e))
    }
}

impl From<Refusal> for Stop {
    fn from(r: Refusal) -> Self {
        Stop::Refuse(r)
    }
}

/// Runs a connection to its end.
pub async fn run(mut socket: WebSocket, state: AppState, doc_id: String, token: Option<String>) {
    let connection_id = Uuid::now_v7();
    let span = tracing::info_span!(
        "yjs_connection",
        %connection_id,
        doc_id = %doc_id,
        user_id = tracing::field::Empty,
        org_id = tracing::field::Empty,
    );
    async move {
        let access = match access::open(&state, &doc_id, token.as_deref()).await {
            Ok(access) => access,
            Err(refusal) => {
                tracing::info!(code = refusal.close.code(), reason = %refusal.reason, "y-websocket connection refused");
                refuse(&mut socket, &refusal).await;
                return;
            }
        };
        let span = tracing::Span::current();
        span.record("user_id", tracing::field::display(access.session.user_id));
        span.record("org_id", tracing::field::display(access.session.org_id));
        tracing::info!(role = ?access.role, "y-websocket session started");
        let presence =
            state
                .awareness
                .connect(access.session.org_id, access.session.user_id, connection_id);
        let mut session = Session {
            socket: &mut socket,
            state: &state,
            access,
            client_id: connection_id,
            last_seq: 0,
            claimed: false,
            live_pos: 0,
            step1_doc: None,
        };
        let stop = Box::pin(session.serve(presence)).await;
        match stop {
            Stop::PeerGone => tracing::info!("y-websocket session ended by peer"),
            Stop::Refuse(refusal) => {
                tracing::info!(code = refusal.close.code(), reason = %refusal.reason, "closing y-websocket session");
                refuse(&mut socket, &refusal).await;
            }
        }
    }
    .instrument(span)
    .await;
}

/// Sends the permission-denied message when due, then the close frame.
async fn refuse(socket: &mut WebSocket, refusal: &Refusal) {
    if refusal.deny {
        let denied = messages::permission_denied(&refusal.reason);
        let _ = socket.send(Message::Binary(denied.into())).await;
    }
    let frame = CloseFrame {
        code: refusal.close.code(),
        reason: super::truncate(&refusal.reason).into(),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

struct Session<'a> {
    socket: &'a mut WebSocket,
    state: &'a AppState,
    access: Access,
    /// The mutation client id of this connection.
    client_id: Uuid,
    /// Seq of the last mutation pushed.
    last_seq: u64,
    /// Whether `client_id` is registered (on the first push).
    claimed: bool,
    /// Every change with seq <= live_pos has been considered for delivery.
    live_pos: u64,
    /// The document our step 1 described, until the client's step 2 answers it.
    step1_doc: Option<yrs::Doc>,
}

impl Session<'_> {
    async fn serve(&mut self, mut presence: Presence) -> Stop {
        let org_id = self.access.session.org_id;
        // Subscribe before reading the current seq and the document, so nothing committed in
        // between is missed (a change both in the document and delivered is applied twice,
        // which Yjs ignores).
        let mut live = self.state.hub.subscribe(org_id);
        match change_log::current(&self.state.db, org_id).await {
            Ok(pos) => self.live_pos = pos,
            Err(e) => return e.into(),
        }
        if let Err(stop) = self.start(&mut presence).await {
            return stop;
        }
        let expires_at = expiry_instant(self.access.session.expires_at);
        loop {
            let step = tokio::select! {
                biased;
                batch = live.recv() => match batch {
                    Ok(batch) => Box::pin(self.deliver(&batch)).await,
                    Err(RecvError::Lagged(_)) => Box::pin(self.catch_up()).await,
                    Err(RecvError::Closed) => Err(Stop::close(YjsClose::Unavailable, "server shutting down")),
                },
                Some((_, update)) = presence.recv() => self.send(messages::awareness(&update)).await,
                frame = self.socket.recv() => match frame {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Err(Stop::PeerGone),
                    Some(Ok(Message::Binary(bytes))) => Box::pin(self.on_frame(&bytes, &mut presence)).await,
                    Some(Ok(Message::Text(_))) => Err(Stop::close(YjsClose::Malformed, "y-protocols frames are binary")),
                    Some(Ok(_)) => Ok(()),
                },
                () = tokio::time::sleep_until(expires_at) => {
                    Err(Stop::close(YjsClose::TokenExpired, "access token expired; reconnect with a fresh token"))
                }
            };
            if let Err(stop) = step {
                return stop;
            }
        }
    }

    /// Our sync step 1 and the room's presence.
    async fn start(&mut self, presence: &mut Presence) -> Result<(), Stop> {
        let doc = self.load().await?;
        let sv = doc.transact().state_vector();
        self.step1_doc = Some(doc);
        self.send(messages::sync_step1(&sv)).await?;
        if let Some(states) = presence.join(self.access.doc_id) {
            self.send(messages::awareness(&states)).await?;
        }
        Ok(())
    }

    async fn send(&mut self, frame: Vec<u8>) -> Result<(), Stop> {
        self.socket
            .send(Message::Binary(frame.into()))
            .await
            .map_err(|_| Stop::PeerGone)
    }

    /// The stored document (empty when the body was never written).
    async fn load(&mut self) -> Result<yrs::Doc, Stop> {
        let org_id = self.access.session.org_id;
        let mut tx = crate::db::begin_org(&self.state.db, org_id).await?;
        let doc = crate::text::store::load_doc(&mut tx, org_id, self.access.doc_id).await?;
        Ok(doc.unwrap_or_else(crate::text::server_doc))
    }

    async fn on_frame(&mut self, bytes: &[u8], presence: &mut Presence) -> Result<(), Stop> {
        let message =
            messages::decode(bytes).map_err(|e| Stop::close(YjsClose::Malformed, e.to_string()))?;
        match message {
            Incoming::SyncStep1(sv) => {
                let doc = self.load().await?;
                let diff = doc.transact().encode_diff_v1(&sv);
                self.send(messages::sync_step2(&diff)).await
            }
            Incoming::SyncStep2(update) => {
                let known = self.step1_doc.take();
                if known.is_some_and(|doc| noop::adds_nothing(&doc, update)) {
                    return Ok(());
                }
                self.push(update).await
            }
            Incoming::Update(update) => self.push(update).await,
            Incoming::Awareness(update) => {
                if let Err(e) = presence.publish(self.access.doc_id, update) {
                    tracing::debug!(error = %e, "awareness update dropped");
                }
                Ok(())
            }
            Incoming::QueryAwareness => match presence.current(self.access.doc_id) {
                Some(states) => self.send(messages::awareness(&states)).await,
                None => Ok(()),
            },
            Incoming::Ignored(kind) => {
                tracing::debug!(kind, "ignored y-protocols message");
                Ok(())
            }
        }
    }

    /// Pushes one update as a mutation of this connection; a refusal ends the session.
    async fn push(&mut self, update: &[u8]) -> Result<(), Stop> {
        if messages::is_empty_update(update) {
            return Ok(());
        }
        let session = self.access.session;
        if !self.claimed {
            // A fresh UUID: no other user can own it.
            progress::claim_client(
                &self.state.db,
                session.org_id,
                self.client_id,
                session.user_id,
            )
            .await?;
            self.claimed = true;
        }
        self.last_seq += 1;
        let mutation = Mutation {
            mid: MutationId {
                client_id: self.client_id,
                seq: self.last_seq,
            },
            doc_id: self.access.doc_id,
            collection: self.access.collection.to_owned(),
            payload: ByteBuf::from(update.to_vec()),
        };
        let pusher = Pusher {
            org_id: session.org_id,
            user_id: session.user_id,
            client_id: self.client_id,
        };
        let outcome = merge::apply_push(self.state, pusher, &[mutation]).await?;
        if let Some(batch) = outcome.batch {
            self.state.hub.publish(batch);
        }
        match outcome.replies.into_iter().next() {
            Some(ServerMessage::Ack { seq, .. }) => {
                tracing::debug!(seq, bytes = update.len(), "update stored");
                Ok(())
            }
            Some(ServerMessage::Reject { code, message, .. }) => {
                tracing::info!(%code, %message, "update refused");
                Err(refused(code, message))
            }
            other => Err(ServerError::internal(format!("unexpected push answer {other:?}")).into()),
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
        let after = self.live_pos;
        for change in batch.changes.iter().filter(|c| c.seq > after) {
            self.forward(change).await?;
        }
        self.live_pos = batch.last_seq;
        Ok(())
    }

    async fn catch_up(&mut self) -> Result<(), Stop> {
        let upto = change_log::current(&self.state.db, self.access.session.org_id).await?;
        self.read_log_until(upto).await
    }

    async fn read_log_until(&mut self, upto: u64) -> Result<(), Stop> {
        const PAGE: i64 = 1000;
        while self.live_pos < upto {
            let page = change_log::read_range(
                &self.state.db,
                self.access.session.org_id,
                self.live_pos,
                upto,
                &change_log::LogFilter::All,
                PAGE,
            )
            .await?;
            let Some(last) = page.last().map(|c| c.seq) else {
                tracing::error!(after = self.live_pos, upto, "change log has a gap");
                return Err(Stop::close(YjsClose::Unavailable, "change log unavailable"));
            };
            for change in &page {
                self.forward(change).await?;
            }
            self.live_pos = last;
        }
        Ok(())
    }

    async fn forward(&mut self, change: &CommittedChange) -> Result<(), Stop> {
        if change.collection == ACL_COLLECTION {
            // At least as new as this entry, even if another server process made the change.
            let acl = self
                .state
                .acl
                .get_fresh(&self.state.db, self.access.session.org_id, change.seq)
                .await?;
            self.access.role = access::role_in(&acl, self.access.session, self.access.doc_id)?;
            return Ok(());
        }
        if change.doc_id != self.access.doc_id
            || change.collection != self.access.collection
            || change.mid.is_some_and(|m| m.client_id == self.client_id)
        {
            return Ok(());
        }
        self.send(messages::sync_update(&change.payload)).await
    }
}

/// How a refused update ends the session.
fn refused(code: ErrorCode, message: String) -> Stop {
    let close = match code {
        ErrorCode::Forbidden | ErrorCode::FieldForbidden => YjsClose::Forbidden,
        ErrorCode::MissingDependency => YjsClose::Resync,
        ErrorCode::TooLarge => YjsClose::TooLarge,
        ErrorCode::NotFound | ErrorCode::UnknownCollection => YjsClose::NotFound,
        ErrorCode::Unavailable | ErrorCode::Internal => YjsClose::Unavailable,
        _ => YjsClose::Malformed,
    };
    Stop::close(close, format!("update refused ({code}): {message}"))
}

fn expiry_instant(expires_at_unix: i64) -> Instant {
    let remaining = expires_at_unix - chrono::Utc::now().timestamp();
    Instant::now() + Duration::from_secs(u64::try_from(remaining).unwrap_or(0))
}
