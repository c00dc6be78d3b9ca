//! Changes to the authorization model. Each runs in one transaction that also appends an entry
//! of collection [`ACL_COLLECTION`] to the org's change log under the next seq, then invalidates
//! the org's cached model and publishes the entry. Sync sessions read those entries (live, or in
//! catch-up after being offline) to evict documents a user lost and send ones they gained.

use serde::Serialize;
use syncline_protocol::ErrorCode;
use syncline_protocol::rules::{OrgRole, Relation};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ServerError, ServerResult};
use crate::hub::{CommittedBatch, CommittedChange};
use crate::store::{Tx, change_log};

/// The change-log collection of authorization changes (never sent to clients as changes).
pub const ACL_COLLECTION: &str = "_acl";

/// A tuple's subject as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum SubjectRef {
    User(Uuid),
    /// Members of the team.
    Team(Uuid),
}

impl SubjectRef {
    fn parts(self) -> (&'static str, Uuid, Option<&'static str>) {
        match self {
            Self::User(id) => ("user", id, None),
            Self::Team(id) => ("team", id, Some("member")),
        }
    }
}

/// A tuple `object_type:object_id#relation@subject`, as granted, revoked and listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Share {
    pub object_type: String,
    pub object_id: Uuid,
    pub relation: Relation,
    pub subject: SubjectRef,
}

/// One change to who may do what.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum AclChange {
    Grant(Share),
    Revoke(Share),
    TeamMemberAdded { team_id: Uuid, user_id: Uuid },
    TeamMemberRemoved { team_id: Uuid, user_id: Uuid },
    MemberAdded { user_id: Uuid, role: OrgRole },
    MemberRoleChanged { user_id: Uuid, role: OrgRole },
    MemberRemoved { user_id: Uuid },
}

impl AclChange {
    /// The document it concerns, or the org id for org-wide changes.
    pub fn target(&self, org_id: Uuid) -> Uuid {
        match self {
            Self::Grant(share) | Self::Revoke(share) => share.object_id,
            _ => org_id,
        }
    }
}

/// Applies a change, logs it and notifies connections. A change that alters nothing (granting
/// an existing tuple) is a no-op; revoking or removing something absent is `not_found`.
pub async fn apply(
    state: &AppState,
    org_id: Uuid,
    actor: Uuid,
    change: AclChange,
) -> ServerResult<()> {
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    if !execute(&mut tx, org_id, actor, &change).await? {
        return Ok(());
    }
    let payload = serde_json::to_vec(&change).map_err(ServerError::internal)?;
    let seq = change_log::allocate(&mut tx, org_id, 1).await?;
    sqlx::query("UPDATE org_change_seq SET acl_seq = $2 WHERE org_id = $1")
        .bind(org_id)
        .bind(crate::store::seq_to_db(seq))
        .execute(&mut *tx)
        .await?;
    let entry = CommittedChange {
        seq,
        doc_id: change.target(org_id),
        collection: ACL_COLLECTION.into(),
        payload,
        mid: None,
    };
    change_log::append(&mut tx, org_id, actor, std::slice::from_ref(&entry)).await?;
    tx.commit().await?;
    state.acl.invalidate(org_id);
    state.hub.publish(CommittedBatch {
        org_id,
        first_seq: seq,
        last_seq: seq,
        changes: vec![entry],
    });
    tracing::info!(%org_id, %actor, ?change, "authorization changed");
    Ok(())
}

/// Removing something absent is `not_found` (granting something present is a no-op instead).
fn removed(rows: u64, what: &str) -> ServerResult<()> {
    if rows == 0 {
        return Err(ServerError::new(
            ErrorCode::NotFound,
            format!("{what} not found"),
        ));
    }
    Ok(())
}

/// Runs the SQL of a change; returns whether anything changed.
async fn execute(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    actor: Uuid,
    change: &AclChange,
) -> ServerResult<bool> {
    let affected = match change {
        AclChange::Grant(Share { object_type, object_id, relation, subject }) => {
            let (subject_type, subject_id, subject_relation) = subject.parts();
            sqlx::query(
                "INSERT INTO relation_tuples \
                 (org_id, object_type, object_id, relation, subject_type, subject_id, subject_relation, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(org_id)
            .bind(object_type)
            .bind(object_id)
            .bind(relation.as_str())
            .bind(subject_type)
            .bind(subject_id)
            .bind(subject_relation)
            .bind(actor)
            .execute(&mut **tx)
            .await?
            .rows_affected()
        }
        AclChange::Revoke(Share { object_type, object_id, relation, subject }) => {
            let (subject_type, subject_id, _) = subject.parts();
            let n = sqlx::query(
                "DELETE FROM relation_tuples WHERE org_id = $1 AND object_type = $2 AND object_id = $3 \
                 AND relation = $4 AND subject_type = $5 AND subject_id = $6",
            )
            .bind(org_id)
            .bind(object_type)
            .bind(object_id)
            .bind(relation.as_str())
            .bind(subject_type)
            .bind(subject_id)
            .execute(&mut **tx)
            .await?
            .rows_affected();
            removed(n, "share")?;
            n
        }
        AclChange::TeamMemberAdded { team_id, user_id } => sqlx::query(
            "INSERT INTO team_members (org_id, team_id, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(org_id)
        .bind(team_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        AclChange::TeamMemberRemoved { team_id, user_id } => {
            let n = sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND team_id = $2 AND user_id = $3")
                .bind(org_id)
                .bind(team_id)
                .bind(user_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            removed(n, "team member")?;
            n
        }
        AclChange::MemberAdded { user_id, role } => sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected(),
        AclChange::MemberRoleChanged { user_id, role } => {
            let n = sqlx::query("UPDATE org_members SET role = $3 WHERE org_id = $1 AND user_id = $2 AND role <> $3")
                .bind(org_id)
                .bind(user_id)
                .bind(role.as_str())
                .execute(&mut **tx)
                .await?
                .rows_affected();
            ensure_an_owner_remains(tx, org_id).await?;
            n
        }
        AclChange::MemberRemoved { user_id } => {
            let n = sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
                .bind(org_id)
                .bind(user_id)
                .execute(&mut **tx)
                .await?
                .rows_affected();
            removed(n, "member")?;
            // Their team memberships and direct shares go with them.
            sqlx::query("DELETE FROM team_members WHERE org_id = $1 AND user_id = $2")
                .bind(org_id)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM relation_tuples WHERE org_id = $1 AND subject_type = 'user' AND subject_id = $2")
                .bind(org_id)
                .bind(user_id)
                .execute(&mut **tx)
                .await?;
            ensure_an_owner_remains(tx, org_id).await?;
            n
        }
    };
    Ok(affected > 0)
}

async fn ensure_an_owner_remains(tx: &mut Tx<'_>, org_id: Uuid) -> ServerResult<()> {
    let (owners,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM org_members WHERE org_id = $1 AND role = 'owner'")
            .bind(org_id)
            .fetch_one(&mut **tx)
            .await?;
    if owners == 0 {
        return Err(ServerError::new(
            ErrorCode::Conflict,
            "an org keeps at least one owner",
        ));
    }
    Ok(())
}
