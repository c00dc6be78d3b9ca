//! Organizations, teams, shares and invitations (`/orgs/*`, `/invitations/accept`, see
//! [`crate::authz::routes`]) in the OpenAPI document. Their handlers keep their types private,
//! so the shapes are described by documentation types that mirror them (`Share` is the
//! handlers' own `crate::authz::changes::Share` as JSON).
//!
//! Known gap: a path segment that is not a UUID, or a missing `object_id` query, is answered by
//! axum's plain-text 400 there, not the error envelope the document promises for every 4xx.

use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

use crate::auth::routes::SessionResponse;

/// Adds the organization routes.
pub(crate) struct Orgs;

impl Modify for Orgs {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        openapi.merge(OrgsDoc::openapi());
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_members,
        change_role,
        remove_member,
        create_team,
        add_team_member,
        remove_team_member,
        list_shares,
        grant,
        revoke,
        invite,
        accept
    ),
    components(schemas(
        OrgRole, Relation, Member, RoleBody, TeamBody, Created, UserBody, Share, SubjectRef,
        InviteBody, Invitation, AcceptBody
    ))
)]
struct OrgsDoc;

/// A member's role in an organization.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Describes JSON the handlers make; never built here.
pub enum OrgRole {
    Guest,
    Member,
    Admin,
    Owner,
}

/// A relation to one object; each includes the ones before it.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // Describes JSON the handlers make; never built here.
pub enum Relation {
    Viewer,
    Commenter,
    Suggester,
    Editor,
    Owner,
}

/// A member of the organization.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub display_name: String,
    pub role: OrgRole,
}

#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: OrgRole,
}

#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamBody {
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

/// The id of what was created.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Created {
    pub id: Uuid,
}

#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserBody {
    pub user_id: Uuid,
}

/// Who a share is for: a user, or every member of a team.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
#[allow(dead_code)] // Describes JSON the handlers make; never built here.
pub enum SubjectRef {
    User(Uuid),
    Team(Uuid),
}

/// A grant of `relation` on one object (e.g. a task) to a subject.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// The object's collection, e.g. `tasks`.
    pub object_type: String,
    pub object_id: Uuid,
    pub relation: Relation,
    pub subject: SubjectRef,
}

#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteBody {
    #[schema(max_length = 320)]
    pub email: String,
    /// `admin`, `member` or `guest`.
    pub role: OrgRole,
}

/// An invitation: its token is what the invited user accepts.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Invitation {
    pub id: Uuid,
    pub token: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    pub token: String,
}

/// The organization's members (any member).
#[utoipa::path(get, path = "/orgs/{org_id}/members", tag = "orgs",
    params(("org_id" = Uuid, Path)),
    responses((status = 200, description = "The members.", body = Vec<Member>)))]
#[allow(dead_code)]
fn list_members() {}

/// Changes a member's role (admins and owners).
#[utoipa::path(patch, path = "/orgs/{org_id}/members/{user_id}", tag = "orgs",
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = RoleBody,
    responses((status = 204, description = "Changed.")))]
#[allow(dead_code)]
fn change_role() {}

/// Removes a member (admins and owners).
#[utoipa::path(delete, path = "/orgs/{org_id}/members/{user_id}", tag = "orgs",
    params(("org_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Removed.")))]
#[allow(dead_code)]
fn remove_member() {}

/// Creates a team (admins and owners).
#[utoipa::path(post, path = "/orgs/{org_id}/teams", tag = "orgs",
    params(("org_id" = Uuid, Path)), request_body = TeamBody,
    responses((status = 201, description = "The team's id.", body = Created)))]
#[allow(dead_code)]
fn create_team() {}

/// Adds a member to a team (admins and owners).
#[utoipa::path(post, path = "/orgs/{org_id}/teams/{team_id}/members", tag = "orgs",
    params(("org_id" = Uuid, Path), ("team_id" = Uuid, Path)), request_body = UserBody,
    responses((status = 204, description = "Added.")))]
#[allow(dead_code)]
fn add_team_member() {}

/// Removes a member from a team (admins and owners).
#[utoipa::path(delete, path = "/orgs/{org_id}/teams/{team_id}/members/{user_id}", tag = "orgs",
    params(("org_id" = Uuid, Path), ("team_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Removed.")))]
#[allow(dead_code)]
fn remove_team_member() {}

/// The shares of one object the caller may read.
#[utoipa::path(get, path = "/orgs/{org_id}/shares", tag = "orgs",
    params(("org_id" = Uuid, Path), ("object_id" = Uuid, Query)),
    responses((status = 200, description = "The shares.", body = Vec<Share>)))]
#[allow(dead_code)]
fn list_shares() {}

/// Shares an object (its owners, and admins).
#[utoipa::path(post, path = "/orgs/{org_id}/shares", tag = "orgs",
    params(("org_id" = Uuid, Path)), request_body = Share,
    responses((status = 204, description = "Granted.")))]
#[allow(dead_code)]
fn grant() {}

/// Takes a share back.
#[utoipa::path(delete, path = "/orgs/{org_id}/shares", tag = "orgs",
    params(("org_id" = Uuid, Path)), request_body = Share,
    responses((status = 204, description = "Revoked.")))]
#[allow(dead_code)]
fn revoke() {}

/// Invites someone by email (admins and owners).
#[utoipa::path(post, path = "/orgs/{org_id}/invitations", tag = "orgs",
    params(("org_id" = Uuid, Path)), request_body = InviteBody,
    responses((status = 201, description = "The invitation.", body = Invitation)))]
#[allow(dead_code)]
fn invite() {}

/// Accepts an invitation as the signed-in user: a session in the inviting organization.
#[utoipa::path(post, path = "/invitations/accept", tag = "orgs", request_body = AcceptBody,
    responses((status = 200, description = "A session in the organization.", body = SessionResponse)))]
#[allow(dead_code)]
fn accept() {}
