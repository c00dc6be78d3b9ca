//! What a connection sends of the org's committed changes: only changes of documents the user
//! may read and its subscriptions cover, and, for authorization changes that concern the user,
//! `Evict` for documents they lost and a snapshot of documents they gained.
//!
//! The connection remembers which documents it sent. Authorization entries are part of the
//! change log (collection `_acl`), so a client resuming from a cursor after being offline still
//! sees every change of access that happened meanwhile, in order.

use std::collections::HashSet;

use serde_bytes::ByteBuf;
use syncline_protocol::{CloseCode, DocSnapshot, ServerMessage};
use uuid::Uuid;

use super::frames::FrameSocket;
use super::session::{Stop, send};
use super::subscriptions::Subscriptions;
use crate::AppState;
use crate::authz::changes::{ACL_COLLECTION, AclChange, SubjectRef};
use crate::hub::CommittedChange;
use crate::merge;
use crate::text::store as text_store;
use syncline_protocol::schema;

#[derive(Debug)]
pub struct Delivery {
    pub subs: Subscriptions,
    pub user_id: Uuid,
    pub org_id: Uuid,
    /// Documents sent to the client on this connection.
    delivered: HashSet<Uuid>,
}

impl Delivery {
    pub fn new(user_id: Uuid, org_id: Uuid) -> Self {
        Self {
            subs: Subscriptions::default(),
            user_id,
            org_id,
            delivered: HashSet::new(),
        }
    }

    /// The document was evicted outside an authorization change (see `session::push`).
    pub fn forget(&mut self, doc_id: Uuid) {
        self.delivered.remove(&doc_id);
    }

    pub fn note_delivered(&mut self, doc_id: Uuid) {
        self.delivered.insert(doc_id);
    }

    /// Sends one committed change if the user may read it and a subscription covers it.
    pub async fn forward(
        &mut self,
        socket: &mut FrameSocket,
        state: &AppState,
        change: &CommittedChange,
    ) -> Result<(), Stop> {
        if change.collection == ACL_COLLECTION {
            return self.on_acl_change(socket, state, change).await;
        }
        if !self.subs.covers(&change.collection, change.doc_id) {
            return Ok(());
        }
        // A personal document (notification) newer than the cached model reloads it first.
        let acl = (state.acl)
            .for_change(&state.db, self.org_id, change.doc_id, change.seq)
            .await?;
        if !acl.can_read(self.user_id, change.doc_id) {
            return Ok(());
        }
        self.delivered.insert(change.doc_id);
        send(socket, &merge::change_message(change)).await
    }

    async fn on_acl_change(
        &mut self,
        socket: &mut FrameSocket,
        state: &AppState,
        entry: &CommittedChange,
    ) -> Result<(), Stop> {
        let Ok(change) = serde_json::from_slice::<AclChange>(&entry.payload) else {
            tracing::error!(
                seq = entry.seq,
                "undecodable authorization entry in the change log"
            );
            return Ok(());
        };
        // At least as new as this entry, even if another server process made the change.
        let acl = state
            .acl
            .get_fresh(&state.db, self.org_id, entry.seq)
            .await?;
        let me = self.user_id;
        let concerns_me = match &change {
            AclChange::Grant(share) | AclChange::Revoke(share) => match share.subject {
                SubjectRef::User(u) => u == me,
                SubjectRef::Team(t) => acl.teams_of.get(&me).is_some_and(|ts| ts.contains(&t)),
            },
            AclChange::TeamMemberAdded { user_id, .. }
            | AclChange::TeamMemberRemoved { user_id, .. }
            | AclChange::MemberAdded { user_id, .. }
            | AclChange::MemberRoleChanged { user_id, .. }
            | AclChange::MemberRemoved { user_id } => *user_id == me,
        };
        if !concerns_me {
            return Ok(());
        }
        // Documents whose readability this change may have flipped for me.
        let mut candidates: Vec<Uuid> = match &change {
            AclChange::Grant(share) | AclChange::Revoke(share) => vec![share.object_id],
            AclChange::TeamMemberAdded { team_id, .. }
            | AclChange::TeamMemberRemoved { team_id, .. } => sqlx::query_as::<_, (Uuid,)>(
                "SELECT DISTINCT object_id FROM relation_tuples \
                     WHERE org_id = $1 AND subject_type = 'team' AND subject_id = $2 ORDER BY object_id",
            )
            .bind(self.org_id)
            .bind(team_id)
            .fetch_all(&mut *crate::db::begin_org(&state.db, self.org_id).await?)
            .await?
            .into_iter()
            .map(|(id,)| id)
            .collect(),
            _ => {
                // A body has its record's id: subscribing to bodies makes their records' ids
                // candidates.
                let collections: Vec<String> = self
                    .subs
                    .collections()
                    .map(|c| schema::text_collection(c).map_or(c, |t| t.parent.name).to_owned())
                    .collect();
                sqlx::query_as::<_, (Uuid,)>(
                    "SELECT id FROM documents WHERE org_id = $1 AND collection = ANY($2)",
                )
                .bind(self.org_id)
                .bind(&collections)
                .fetch_all(&mut *crate::db::begin_org(&state.db, self.org_id).await?)
                .await?
                .into_iter()
                .map(|(id,)| id)
                .chain(self.delivered.iter().copied())
                .collect()
            }
        };
        // One answer per document, in a stable order (replays of the simulation compare frames).
        candidates.sort_unstable();
        candidates.dedup();
        // A change that may widen access sends the current state of every candidate the user
        // can read, even one this connection already sent changes of: during catch-up those
        // changes were filtered by today's access, so a document gained at this entry may have
        // reached the client as later changes without its history (conflict-tests found it).
        let may_widen = matches!(
            change,
            AclChange::Grant(_)
                | AclChange::TeamMemberAdded { .. }
                | AclChange::MemberAdded { .. }
                | AclChange::MemberRoleChanged { .. }
        );
        let mut gained = Vec::new();
        for doc_id in candidates {
            if acl.can_read(me, doc_id) {
                if may_widen || !self.delivered.contains(&doc_id) {
                    gained.push(doc_id);
                }
            } else {
                self.delivered.remove(&doc_id);
                send(socket, &ServerMessage::Evict { doc_id }).await?;
            }
        }
        if acl.role(me).is_none() {
            return Err(Stop::Close(
                CloseCode::Unauthenticated,
                "no longer a member of this organization".into(),
            ));
        }
        self.send_gained(socket, state, &gained).await
    }

    /// Sends the current state of documents the user can now read, per covering subscription.
    async fn send_gained(
        &mut self,
        socket: &mut FrameSocket,
        state: &AppState,
        docs: &[Uuid],
    ) -> Result<(), Stop> {
        if docs.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Uuid, String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, collection, state FROM documents WHERE org_id = $1 AND id = ANY($2) AND state <> '\\x'::bytea ORDER BY id",
        )
        .bind(self.org_id)
        .bind(docs)
        .fetch_all(&mut *crate::db::begin_org(&state.db, self.org_id).await?)
        .await?;
        let mut tx = crate::db::begin_org(&state.db, self.org_id).await?;
        let bodies = text_store::states(&mut tx, self.org_id, docs).await?;
        drop(tx);
        for (doc_id, collection, doc_state) in rows.into_iter().chain(bodies) {
            let Some(sub_id) = self.subs.covering(&collection, doc_id) else {
                continue;
            };
            self.delivered.insert(doc_id);
            let docs = vec![DocSnapshot {
                doc_id,
                collection,
                state: ByteBuf::from(doc_state),
            }];
            send(socket, &ServerMessage::Snapshot { sub_id, docs }).await?;
        }
        Ok(())
    }
}
