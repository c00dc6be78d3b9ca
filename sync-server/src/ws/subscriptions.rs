//! Subscriptions of one connection: what they cover, and how a new one is brought up to date.
//!
//! A subscription without cursor first receives the compacted documents of its scope, read in
//! one REPEATABLE READ snapshot together with the org's committed seq `S`, so the documents
//! contain exactly the changes up to `S`. Then (or directly, with a cursor `C`) it receives every
//! change of its scope from the log up to the connection's live position, and `Synced` with the
//! cursor the client stores. Live changes after that are forwarded by the session loop.

use std::collections::HashMap;

use axum::extract::ws::WebSocket;
use futures_util::TryStreamExt;
use serde_bytes::ByteBuf;
use syncline_protocol::schema;
use syncline_protocol::{DocSnapshot, ErrorCode, Scope, ServerMessage};
use uuid::Uuid;

use super::session::{Stop, send};
use crate::AppState;
use crate::hub::CommittedChange;
use crate::merge;
use crate::store::change_log::{self, LogFilter};
use crate::store::documents::SnapshotRow;
use crate::store::seq_from_db;

/// Snapshot chunks stay below this many bytes of document state.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Log pages read at once during catch-up.
const CATCH_UP_PAGE: i64 = 1000;

/// What a subscription needs from its connection while it starts.
pub struct Context<'a> {
    pub socket: &'a mut WebSocket,
    pub state: &'a AppState,
    pub org_id: Uuid,
    /// The connection's live position: later changes reach the subscription live.
    pub live_pos: u64,
}

#[derive(Debug, Default)]
pub struct Subscriptions {
    scopes: HashMap<u32, Scope>,
}

impl Subscriptions {
    /// Whether any subscription covers the change.
    pub fn matches(&self, change: &CommittedChange) -> bool {
        self.scopes.values().any(|scope| covers(scope, change))
    }

    pub fn unsubscribe(&mut self, sub_id: u32) {
        self.scopes.remove(&sub_id);
    }

    /// Validates the scope, sends its snapshot and/or catch-up, then `Synced`.
    pub async fn subscribe(
        &mut self,
        ctx: Context<'_>,
        sub_id: u32,
        scope: Scope,
        cursor: Option<u64>,
    ) -> Result<(), Stop> {
        if let Some((code, message)) = check_scope(ctx.state, ctx.org_id, &scope).await? {
            return send(ctx.socket, &ServerMessage::Error { code, message }).await;
        }
        let from = match cursor {
            Some(c) => c,
            None => send_snapshot(ctx.socket, ctx.state, ctx.org_id, sub_id, &scope).await?,
        };
        let filter = match &scope {
            Scope::Collection { collection } => LogFilter::Collection(collection),
            Scope::Document { doc_id } => LogFilter::Document(*doc_id),
        };
        let mut after = from;
        while after < ctx.live_pos {
            let page = change_log::read_range(
                &ctx.state.db,
                ctx.org_id,
                after,
                ctx.live_pos,
                &filter,
                CATCH_UP_PAGE,
            )
            .await?;
            let Some(last) = page.last().map(|c| c.seq) else {
                break;
            };
            for change in &page {
                send(ctx.socket, &merge::change_message(change)).await?;
            }
            after = last;
        }
        let synced = from.max(ctx.live_pos);
        self.scopes.insert(sub_id, scope);
        send(
            ctx.socket,
            &ServerMessage::Synced {
                sub_id,
                cursor: synced,
            },
        )
        .await
    }
}

fn covers(scope: &Scope, change: &CommittedChange) -> bool {
    match scope {
        Scope::Collection { collection } => *collection == change.collection,
        Scope::Document { doc_id } => *doc_id == change.doc_id,
    }
}

/// Refuses unknown collections and documents of another org.
async fn check_scope(
    state: &AppState,
    org_id: Uuid,
    scope: &Scope,
) -> Result<Option<(ErrorCode, String)>, Stop> {
    match scope {
        Scope::Collection { collection } => {
            Ok(schema::collection(collection).is_none().then(|| {
                (
                    ErrorCode::UnknownCollection,
                    format!("`{collection}` is not a synced collection"),
                )
            }))
        }
        Scope::Document { doc_id } => {
            let owner: Option<(Uuid,)> =
                sqlx::query_as("SELECT org_id FROM documents WHERE id = $1")
                    .bind(doc_id)
                    .fetch_optional(&state.db)
                    .await?;
            Ok(match owner {
                Some((org,)) if org != org_id => Some((
                    ErrorCode::Forbidden,
                    "document not found or not accessible".into(),
                )),
                _ => None,
            })
        }
    }
}

/// Sends the scope's documents as of one consistent snapshot; returns that snapshot's seq.
async fn send_snapshot(
    socket: &mut WebSocket,
    state: &AppState,
    org_id: Uuid,
    sub_id: u32,
    scope: &Scope,
) -> Result<u64, Stop> {
    let mut tx = state.db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let seq: Option<(i64,)> =
        sqlx::query_as("SELECT last_seq FROM org_change_seq WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await?;
    let seq = seq.map_or(0, |(s,)| seq_from_db(s));
    let rows = match scope {
        Scope::Collection { collection } => sqlx::query_as::<_, SnapshotRow>(
            "SELECT id, collection, state FROM documents WHERE org_id = $1 AND collection = $2",
        )
        .bind(org_id)
        .bind(collection.as_str()),
        Scope::Document { doc_id } => sqlx::query_as::<_, SnapshotRow>(
            "SELECT id, collection, state FROM documents WHERE org_id = $1 AND id = $2::uuid",
        )
        .bind(org_id)
        .bind(doc_id.to_string()),
    };
    let mut rows = rows.fetch(&mut *tx);
    let mut chunk = Vec::new();
    let mut chunk_bytes = 0;
    while let Some(row) = rows.try_next().await? {
        chunk_bytes += row.state.len();
        chunk.push(DocSnapshot {
            doc_id: row.id,
            collection: row.collection,
            state: ByteBuf::from(row.state),
        });
        if chunk_bytes >= SNAPSHOT_CHUNK_BYTES {
            let docs = std::mem::take(&mut chunk);
            chunk_bytes = 0;
            send(socket, &ServerMessage::Snapshot { sub_id, docs }).await?;
        }
    }
    drop(rows);
    tx.commit().await?;
    if !chunk.is_empty() {
        send(
            socket,
            &ServerMessage::Snapshot {
                sub_id,
                docs: chunk,
            },
        )
        .await?;
    }
    Ok(seq)
}
