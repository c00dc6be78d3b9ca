//! Who calls the REST bridge and what they may read.
//!
//! [`Caller`] is the one place that authenticates a REST request: a user's bearer JWT or an API
//! key ([`super::principal::Principal`]; a key's scopes are checked by [`Caller::require`]). Reads
//! are filtered by the same authorization model as sync: org members read every record through
//! their role, guests only what is shared with them, and personal records (notifications) are
//! read by their owner only.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use syncline_protocol::ErrorCode;
use syncline_protocol::rules::{self, Relation};
use syncline_protocol::schema::{self, CollectionSchema};
use uuid::Uuid;

use super::principal::{Access, Principal};
use crate::AppState;
use crate::authz::model::{OrgAcl, role_relation};
use crate::error::ServerError;

/// The authenticated caller of a REST request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub org_id: Uuid,
    /// How the caller authenticated (an API key acts as its user, narrowed by its scopes).
    pub principal: Principal,
}

impl Caller {
    /// Whether the credential allows reading (or writing) `collection` at all; a user's own
    /// token allows every collection (their relation decides per record).
    pub fn require(&self, collection: &str, write: bool) -> Result<(), ServerError> {
        let access = if write { Access::Write } else { Access::Read };
        self.principal.require(collection, access)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ServerError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        Ok(Self {
            user_id: principal.user_id,
            org_id: principal.org_id,
            principal,
        })
    }
}

/// The synced record collection named in the path, or 404 `unknown_collection`.
pub fn collection(name: &str) -> Result<&'static CollectionSchema, ServerError> {
    schema::collection(name).ok_or_else(|| {
        ServerError::new(
            ErrorCode::UnknownCollection,
            format!("`{name}` is not a record collection"),
        )
    })
}

/// Which records of a collection the caller may read.
#[derive(Debug, Clone)]
pub enum Readable {
    /// Every record (the caller's org role grants read access on all of them).
    All,
    /// Only these (shared with the caller directly or through a team).
    Only(Vec<Uuid>),
}

/// The org's authorization model and the caller's read access to `schema`'s records; callers
/// who are not (or no longer) members get 403 `forbidden`.
pub async fn readable(
    state: &AppState,
    caller: &Caller,
    schema: &CollectionSchema,
) -> Result<(Arc<OrgAcl>, Readable), ServerError> {
    let acl = state.acl.get(&state.db, caller.org_id).await?;
    let role = acl.role(caller.user_id).ok_or_else(|| {
        ServerError::new(ErrorCode::Forbidden, "not a member of this organization")
    })?;
    let needed = rules::read_relation(schema);
    let readable = if schema::is_personal(schema.name) {
        // Personal documents (notifications): the caller's own only, whatever their role.
        let ids = acl
            .personal
            .iter()
            .filter(|(_, owner)| **owner == caller.user_id)
            .map(|(doc, _)| *doc)
            .collect();
        Readable::Only(ids)
    } else if role_relation(role).is_some_and(|r| r >= needed) {
        Readable::All
    } else {
        let ids = acl
            .tuples
            .keys()
            .copied()
            .filter(|doc| may_read(&acl, caller.user_id, *doc, needed))
            .collect();
        Readable::Only(ids)
    };
    Ok((acl, readable))
}

fn may_read(acl: &OrgAcl, user: Uuid, doc: Uuid, needed: Relation) -> bool {
    acl.relation(user, doc).is_some_and(|r| r >= needed)
}

/// Whether the caller may read the record `doc`.
pub fn can_read(acl: &OrgAcl, caller: &Caller, schema: &CollectionSchema, doc: Uuid) -> bool {
    may_read(acl, caller.user_id, doc, rules::read_relation(schema))
}
