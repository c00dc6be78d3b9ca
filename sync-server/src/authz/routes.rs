//! HTTP endpoints that change who may do what: members and roles, teams, per-document shares,
//! and invitations. Every change goes through [`super::changes::apply`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use syncline_protocol::ErrorCode;
use syncline_protocol::rules::{OrgRole, Relation};
use uuid::Uuid;

use super::changes::{self, AclChange, Share, SubjectRef};
use super::model::OrgAcl;
use crate::AppState;
use crate::auth::bearer::Bearer;
use crate::auth::refresh;
use crate::auth::routes::{ApiJson, SessionResponse};
use crate::error::{ServerError, ServerResult};

/// How long an invitation token stays valid.
const INVITATION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/orgs/{org_id}/members", get(list_members))
        .route(
            "/orgs/{org_id}/members/{user_id}",
            patch(change_role).delete(remove_member),
        )
        .route("/orgs/{org_id}/teams", post(create_team))
        .route(
            "/orgs/{org_id}/teams/{team_id}/members",
            post(add_team_member),
        )
        .route(
            "/orgs/{org_id}/teams/{team_id}/members/{user_id}",
            delete(remove_team_member),
        )
        .route(
            "/orgs/{org_id}/shares",
            get(list_shares).post(grant).delete(revoke),
        )
        .route("/orgs/{org_id}/invitations", post(invite))
        .route("/invitations/accept", post(accept))
}

fn forbidden(message: &str) -> ServerError {
    ServerError::new(ErrorCode::Forbidden, message)
}

/// The org's model and the caller's role in it; non-members get `forbidden`.
async fn caller(
    state: &AppState,
    bearer: &Bearer,
    org_id: Uuid,
) -> ServerResult<(Arc<OrgAcl>, OrgRole)> {
    let acl = state.acl.get(&state.db, org_id).await?;
    let role = acl
        .role(bearer.0.user_id)
        .ok_or_else(|| forbidden("not a member of this organization"))?;
    Ok((acl, role))
}

async fn require_admin(
    state: &AppState,
    bearer: &Bearer,
    org_id: Uuid,
) -> ServerResult<Arc<OrgAcl>> {
    let (acl, role) = caller(state, bearer, org_id).await?;
    if role < OrgRole::Admin {
        return Err(forbidden("only admins and owners may do this"));
    }
    Ok(acl)
}

#[derive(Debug, Serialize)]
struct Member {
    user_id: Uuid,
    email: String,
    display_name: String,
    role: String,
}

async fn list_members(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(org_id): Path<Uuid>,
) -> ServerResult<Json<Vec<Member>>> {
    caller(&state, &bearer, org_id).await?;
    let rows: Vec<(Uuid, String, String, String)> = sqlx::query_as(
        "SELECT u.id, u.email, u.display_name, m.role FROM org_members m JOIN users u ON u.id = m.user_id \
         WHERE m.org_id = $1 ORDER BY m.created_at",
    )
    .bind(org_id)
    .fetch_all(&mut *crate::db::begin_org(&state.db, org_id).await?)
    .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(user_id, email, display_name, role)| Member {
                user_id,
                email,
                display_name,
                role,
            })
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RoleBody {
    role: OrgRole,
}

async fn change_role(
    State(state): State<AppState>,
    bearer: Bearer,
    Path((org_id, user_id)): Path<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> ServerResult<StatusCode> {
    let acl = require_admin(&state, &bearer, org_id).await?;
    let caller_role = acl.role(bearer.0.user_id).unwrap_or(OrgRole::Guest);
    let current = acl
        .role(user_id)
        .ok_or_else(|| ServerError::new(ErrorCode::NotFound, "member not found"))?;
    if (current == OrgRole::Owner || body.role == OrgRole::Owner) && caller_role != OrgRole::Owner {
        return Err(forbidden("only owners may make or unmake owners"));
    }
    changes::apply(
        &state,
        org_id,
        bearer.0.user_id,
        AclChange::MemberRoleChanged {
            user_id,
            role: body.role,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_member(
    State(state): State<AppState>,
    bearer: Bearer,
    Path((org_id, user_id)): Path<(Uuid, Uuid)>,
) -> ServerResult<StatusCode> {
    // Members may leave on their own; removing someone else takes an admin.
    if user_id != bearer.0.user_id {
        let acl = require_admin(&state, &bearer, org_id).await?;
        if acl.role(user_id) == Some(OrgRole::Owner)
            && acl.role(bearer.0.user_id) != Some(OrgRole::Owner)
        {
            return Err(forbidden("only owners may remove owners"));
        }
    }
    changes::apply(
        &state,
        org_id,
        bearer.0.user_id,
        AclChange::MemberRemoved { user_id },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamBody {
    name: String,
}

#[derive(Debug, Serialize)]
struct Created {
    id: Uuid,
}

async fn create_team(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(org_id): Path<Uuid>,
    ApiJson(body): ApiJson<TeamBody>,
) -> ServerResult<(StatusCode, Json<Created>)> {
    require_admin(&state, &bearer, org_id).await?;
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            "team name must be 1 to 200 characters",
        ));
    }
    let id = Uuid::now_v7();
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    sqlx::query("INSERT INTO teams (org_id, id, name) VALUES ($1, $2, $3)")
        .bind(org_id)
        .bind(id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(Created { id })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserBody {
    user_id: Uuid,
}

async fn add_team_member(
    State(state): State<AppState>,
    bearer: Bearer,
    Path((org_id, team_id)): Path<(Uuid, Uuid)>,
    ApiJson(body): ApiJson<UserBody>,
) -> ServerResult<StatusCode> {
    let acl = require_admin(&state, &bearer, org_id).await?;
    if acl.role(body.user_id).is_none() {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            "the user is not a member of this organization",
        ));
    }
    team_exists(&state, org_id, team_id).await?;
    changes::apply(
        &state,
        org_id,
        bearer.0.user_id,
        AclChange::TeamMemberAdded {
            team_id,
            user_id: body.user_id,
        },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove_team_member(
    State(state): State<AppState>,
    bearer: Bearer,
    Path((org_id, team_id, user_id)): Path<(Uuid, Uuid, Uuid)>,
) -> ServerResult<StatusCode> {
    require_admin(&state, &bearer, org_id).await?;
    changes::apply(
        &state,
        org_id,
        bearer.0.user_id,
        AclChange::TeamMemberRemoved { team_id, user_id },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn team_exists(state: &AppState, org_id: Uuid, team_id: Uuid) -> ServerResult<()> {
    let found: Option<(Uuid,)> =
        sqlx::query_as("SELECT id FROM teams WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(team_id)
            .fetch_optional(&mut *crate::db::begin_org(&state.db, org_id).await?)
            .await?;
    found
        .map(|_| ())
        .ok_or_else(|| ServerError::new(ErrorCode::NotFound, "team not found"))
}

/// Checks that the caller may share the object at this relation and that object and subject
/// exist in the org. Editors may share up to their own relation; admins and owners anything.
async fn check_share(
    state: &AppState,
    bearer: &Bearer,
    org_id: Uuid,
    share: &Share,
) -> ServerResult<()> {
    let (acl, _) = caller(state, bearer, org_id).await?;
    let mine = acl.relation(bearer.0.user_id, share.object_id);
    if mine.is_none_or(|m| m < Relation::Editor || m < share.relation) {
        return Err(forbidden("you may not share this document at that level"));
    }
    let collection: Option<(String,)> =
        sqlx::query_as("SELECT collection FROM documents WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(share.object_id)
            .fetch_optional(&mut *crate::db::begin_org(&state.db, org_id).await?)
            .await?;
    match collection {
        Some((c,)) if c == share.object_type => {}
        _ => return Err(ServerError::new(ErrorCode::NotFound, "document not found")),
    }
    match share.subject {
        SubjectRef::User(user) if acl.role(user).is_none() => Err(ServerError::new(
            ErrorCode::InvalidInput,
            "the user is not a member of this organization (invite them first)",
        )),
        SubjectRef::Team(team) => team_exists(state, org_id, team).await,
        SubjectRef::User(_) => Ok(()),
    }
}

async fn grant(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(org_id): Path<Uuid>,
    ApiJson(share): ApiJson<Share>,
) -> ServerResult<StatusCode> {
    change_share(&state, &bearer, org_id, AclChange::Grant(share)).await
}

async fn revoke(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(org_id): Path<Uuid>,
    ApiJson(share): ApiJson<Share>,
) -> ServerResult<StatusCode> {
    change_share(&state, &bearer, org_id, AclChange::Revoke(share)).await
}

async fn change_share(
    state: &AppState,
    bearer: &Bearer,
    org_id: Uuid,
    change: AclChange,
) -> ServerResult<StatusCode> {
    if let AclChange::Grant(share) | AclChange::Revoke(share) = &change {
        check_share(state, bearer, org_id, share).await?;
    }
    changes::apply(state, org_id, bearer.0.user_id, change).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct ShareQuery {
    object_id: Uuid,
}

async fn list_shares(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(org_id): Path<Uuid>,
    Query(q): Query<ShareQuery>,
) -> ServerResult<Json<Vec<Share>>> {
    let (acl, _) = caller(&state, &bearer, org_id).await?;
    if !acl.can_read(bearer.0.user_id, q.object_id) {
        return Err(ServerError::new(ErrorCode::NotFound, "document not found"));
    }
    let rows: Vec<(String, Uuid, String, String, Uuid)> = sqlx::query_as(
        "SELECT object_type, object_id, relation, subject_type, subject_id FROM relation_tuples \
         WHERE org_id = $1 AND object_id = $2 ORDER BY created_at",
    )
    .bind(org_id)
    .bind(q.object_id)
    .fetch_all(&mut *crate::db::begin_org(&state.db, org_id).await?)
    .await?;
    let shares = rows
        .into_iter()
        .filter_map(
            |(object_type, object_id, relation, subject_type, subject_id)| {
                Some(Share {
                    object_type,
                    object_id,
                    relation: relation.parse().ok()?,
                    subject: if subject_type == "team" {
                        SubjectRef::Team(subject_id)
                    } else {
                        SubjectRef::User(subject_id)
                    },
                })
            },
        )
        .collect();
    Ok(Json(shares))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InviteBody {
    email: String,
    role: OrgRole,
}

#[derive(Debug, Serialize)]
struct Invitation {
    id: Uuid,
    /// Shown once; only its hash is stored. Delivered by e-mail once notifications exist.
    token: String,
    expires_at: String,
}

async fn invite(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(org_id): Path<Uuid>,
    ApiJson(body): ApiJson<InviteBody>,
) -> ServerResult<(StatusCode, Json<Invitation>)> {
    require_admin(&state, &bearer, org_id).await?;
    if body.role == OrgRole::Owner {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            "invite as admin, member or guest",
        ));
    }
    let email = body.email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 320 {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            "a valid e-mail address is required",
        ));
    }
    let id = Uuid::now_v7();
    let token = refresh::generate();
    let expires_at = chrono::Utc::now() + INVITATION_TTL;
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    sqlx::query(
        "INSERT INTO invitations (org_id, id, email, role, token_hash, invited_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(org_id)
    .bind(id)
    .bind(&email)
    .bind(body.role.as_str())
    .bind(refresh::digest(&token))
    .bind(bearer.0.user_id)
    .bind(expires_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Invitation {
            id,
            token,
            expires_at: expires_at.to_rfc3339(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptBody {
    token: String,
}

async fn accept(
    State(state): State<AppState>,
    bearer: Bearer,
    ApiJson(body): ApiJson<AcceptBody>,
) -> ServerResult<Response> {
    let user_id = bearer.0.user_id;
    let invalid = || {
        ServerError::new(
            ErrorCode::NotFound,
            "invitation not found, expired or already used",
        )
    };
    // The invitation's org is not known yet: find it through the narrow cross-org lookup.
    let row: Option<(Uuid, Uuid, String, String)> =
        sqlx::query_as("SELECT org_id, id, role, email FROM syncline_open_invitation($1)")
            .bind(refresh::digest(&body.token))
            .fetch_optional(&state.db)
            .await?;
    let (org_id, invitation_id, role, email) = row.ok_or_else(invalid)?;
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    let (user_email,): (String,) = sqlx::query_as("SELECT email FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
    if user_email.to_lowercase() != email {
        return Err(forbidden("this invitation is for another e-mail address"));
    }
    let role: OrgRole = role
        .parse()
        .map_err(|_| ServerError::internal("stored invitation role is invalid"))?;
    // Claimed atomically: of two concurrent acceptances one updates the row, the other nothing.
    let claimed = sqlx::query(
        "UPDATE invitations SET accepted_at = now(), accepted_by = $3 \
         WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL AND expires_at > now()",
    )
    .bind(org_id)
    .bind(invitation_id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Err(invalid());
    }
    tx.commit().await?;
    changes::apply(
        &state,
        org_id,
        user_id,
        AclChange::MemberAdded { user_id, role },
    )
    .await?;
    let session = SessionResponse::start(&state, user_id, org_id).await?;
    Ok(session.into_response_with(StatusCode::OK))
}
