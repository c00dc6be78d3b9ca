//! Subscriptions of one connection: what they cover, and how a new one is brought up to date.
//!
//! A subscription without cursor first receives the readable documents of its scope, read in
//! one REPEATABLE READ snapshot together with the org's committed seq `S`, so the documents
//! contain exactly the changes up to `S`. Then (or directly, with a cursor `C`) it receives every
//! change of its scope from the log up to the connection's live position (authorization entries
//! included, see [`super::delivery`]), and `Synced` with the cursor the client stores. Live
//! changes after that are forwarded by the session loop.

use std::collections::HashMap;

use futures_util::TryStreamExt;
use serde_bytes::ByteBuf;
use syncline_protocol::schema;
use syncline_protocol::{DocSnapshot, ErrorCode, Scope, ServerMessage};
use uuid::Uuid;

use super::delivery::Delivery;
use super::frames::FrameSocket;
use super::session::{Stop, send};
use crate::AppState;
use crate::store::change_log::{self, LogFilter};
use crate::store::documents::SnapshotRow;
use crate::store::seq_from_db;
use crate::text::store as text_store;

/// Snapshot chunks stay below this many bytes of document state.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Log pages read at once during catch-up.
const CATCH_UP_PAGE: i64 = 1000;

#[derive(Debug, Default)]
pub struct Subscriptions {
    pub(super) scopes: HashMap<u32, Scope>,
}

impl Subscriptions {
    /// Whether any subscription covers a document of `collection`.
    pub fn covers(&self, collection: &str, doc_id: Uuid) -> bool {
        self.covering(collection, doc_id).is_some()
    }

    /// A subscription covering the document, if any.
    pub fn covering(&self, collection: &str, doc_id: Uuid) -> Option<u32> {
        self.scopes.iter().find_map(|(sub_id, scope)| {
            let covers = match scope {
                Scope::Collection { collection: c } => c == collection,
                Scope::Document { doc_id: d } => *d == doc_id,
            };
            covers.then_some(*sub_id)
        })
    }

    /// Collections subscribed as a whole.
    pub fn collections(&self) -> impl Iterator<Item = &str> {
        self.scopes.values().filter_map(|s| match s {
            Scope::Collection { collection } => Some(collection.as_str()),
            Scope::Document { .. } => None,
        })
    }

    pub fn unsubscribe(&mut self, sub_id: u32) {
        self.scopes.remove(&sub_id);
    }
}

/// Validates the scope, sends its snapshot and/or catch-up, then `Synced`.
pub async fn subscribe(
    delivery: &mut Delivery,
    socket: &mut FrameSocket,
    state: &AppState,
    live_pos: u64,
    sub_id: u32,
    scope: Scope,
    cursor: Option<u64>,
) -> Result<(), Stop> {
    if let Some((code, message)) = check_scope(state, delivery.org_id, &scope).await? {
        return send(socket, &ServerMessage::Error { code, message }).await;
    }
    delivery.subs.scopes.insert(sub_id, scope.clone());
    let from = match cursor {
        Some(c) => c,
        None => send_snapshot(delivery, socket, state, sub_id, &scope).await?,
    };
    let filter = match &scope {
        Scope::Collection { collection } => LogFilter::Collection(collection),
        Scope::Document { doc_id } => LogFilter::Document(*doc_id),
    };
    let mut after = from;
    while after < live_pos {
        let page = change_log::read_range(
            &state.db,
            delivery.org_id,
            after,
            live_pos,
            &filter,
            CATCH_UP_PAGE,
        )
        .await?;
        let Some(last) = page.last().map(|c| c.seq) else {
            break;
        };
        for change in &page {
            delivery.forward(socket, state, change).await?;
        }
        after = last;
    }
    send(
        socket,
        &ServerMessage::Synced {
            sub_id,
            cursor: from.max(live_pos),
        },
    )
    .await
}

/// Refuses unknown collections and documents of another org or that the user may not read.
async fn check_scope(
    state: &AppState,
    org_id: Uuid,
    scope: &Scope,
) -> Result<Option<(ErrorCode, String)>, Stop> {
    match scope {
        Scope::Collection { collection } => Ok((!schema::is_synced(collection)).then(|| {
            (
                ErrorCode::UnknownCollection,
                format!("`{collection}` is not a synced collection"),
            )
        })),
        Scope::Document { doc_id } => {
            // Row-level security hides other orgs' documents; this narrow lookup tells them apart.
            let (owner,): (Option<Uuid>,) = sqlx::query_as("SELECT syncline_document_org($1)")
                .bind(doc_id)
                .fetch_one(&state.db)
                .await?;
            Ok(match owner {
                Some(org) if org != org_id => Some((
                    ErrorCode::Forbidden,
                    "document not found or not accessible".into(),
                )),
                _ => None,
            })
        }
    }
}

/// Sends the scope's readable documents as of one consistent snapshot; returns its seq.
async fn send_snapshot(
    delivery: &mut Delivery,
    socket: &mut FrameSocket,
    state: &AppState,
    sub_id: u32,
    scope: &Scope,
) -> Result<u64, Stop> {
    let mut tx = state.db.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    // The org is set after the isolation level, which must come first.
    sqlx::query("SELECT set_config('app.org_id', $1, true)")
        .bind(delivery.org_id.to_string())
        .execute(&mut *tx)
        .await?;
    let seqs: Option<(i64, i64)> =
        sqlx::query_as("SELECT last_seq, acl_seq FROM org_change_seq WHERE org_id = $1")
            .bind(delivery.org_id)
            .fetch_optional(&mut *tx)
            .await?;
    let (seq, acl_seq) = seqs.map_or((0, 0), |(s, a)| (seq_from_db(s), seq_from_db(a)));
    // Access as of the snapshot at least: this process's cached model may predate access
    // changes made through another server process (conflict-tests found a promoted user's
    // snapshot filtered by their old role).
    let acl = state
        .acl
        .get_fresh(&state.db, delivery.org_id, acl_seq)
        .await?;
    let rows = match scope {
        Scope::Collection { collection } => sqlx::query_as::<_, SnapshotRow>(
            "SELECT id, collection, state FROM documents WHERE org_id = $1 AND collection = $2 ORDER BY id",
        )
        .bind(delivery.org_id)
        .bind(collection.as_str()),
        Scope::Document { doc_id } => sqlx::query_as::<_, SnapshotRow>(
            "SELECT id, collection, state FROM documents WHERE org_id = $1 AND id = $2::uuid",
        )
        .bind(delivery.org_id)
        .bind(doc_id.to_string()),
    };
    let mut rows = rows.fetch(&mut *tx);
    let mut chunk = Vec::new();
    let mut chunk_bytes = 0;
    while let Some(row) = rows.try_next().await? {
        if !acl.can_read(delivery.user_id, row.id) {
            continue;
        }
        delivery.note_delivered(row.id);
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
    // Text documents (bodies) live in their own table, state merged from its parts.
    let text_ids: Vec<(Uuid,)> = match scope {
        Scope::Collection { collection } if schema::text_collection(collection).is_some() => {
            sqlx::query_as(
                "SELECT id FROM text_documents WHERE org_id = $1 AND collection = $2 ORDER BY id",
            )
            .bind(delivery.org_id)
            .bind(collection.as_str())
            .fetch_all(&mut *tx)
            .await?
        }
        Scope::Collection { .. } => Vec::new(),
        Scope::Document { doc_id } => vec![(*doc_id,)],
    };
    let readable: Vec<Uuid> = text_ids
        .into_iter()
        .map(|(id,)| id)
        .filter(|id| acl.can_read(delivery.user_id, *id))
        .collect();
    for (id, collection, state) in text_store::states(&mut tx, delivery.org_id, &readable).await? {
        delivery.note_delivered(id);
        chunk_bytes += state.len();
        chunk.push(DocSnapshot {
            doc_id: id,
            collection,
            state: ByteBuf::from(state),
        });
        if chunk_bytes >= SNAPSHOT_CHUNK_BYTES {
            let docs = std::mem::take(&mut chunk);
            chunk_bytes = 0;
            send(socket, &ServerMessage::Snapshot { sub_id, docs }).await?;
        }
    }
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
