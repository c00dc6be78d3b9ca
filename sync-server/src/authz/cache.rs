//! Per-org cache of the authorization model, loaded on first use and dropped whenever a role,
//! team membership or tuple of the org changes in this process (every such change goes through
//! [`crate::authz::changes`], which invalidates after commit).
//!
//! Other server processes do not see that invalidation, so each model remembers the org's
//! `acl_seq` it was read at, and callers that must be current ([`AclCache::get_fresh`]: the
//! write path, and connections reading an authorization entry of the log) ask for a model at
//! least as new as the authorization change they know of.
//!
//! Personal documents (notifications) are part of the model: creating one bumps the org's
//! `acl_seq` like any authorization change, and a connection forwarding a change of a personal
//! document its model does not know yet reloads first ([`AclCache::for_change`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlx::PgPool;
use syncline_protocol::rules::{OrgRole, Relation};
use uuid::Uuid;

use super::model::{OrgAcl, Subject};

#[derive(Default)]
struct Entries {
    acls: HashMap<Uuid, Arc<OrgAcl>>,
    /// Bumped by every invalidation, so a load that raced with a change is not cached.
    generations: HashMap<Uuid, u64>,
}

#[derive(Clone, Default)]
pub struct AclCache {
    entries: Arc<Mutex<Entries>>,
}

impl std::fmt::Debug for AclCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AclCache").finish_non_exhaustive()
    }
}

impl AclCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The org's model, from the cache or freshly loaded.
    pub async fn get(&self, db: &PgPool, org_id: Uuid) -> Result<Arc<OrgAcl>, sqlx::Error> {
        self.get_fresh(db, org_id, 0).await
    }

    /// The org's model including at least the authorization changes up to `acl_seq`.
    pub async fn get_fresh(
        &self,
        db: &PgPool,
        org_id: Uuid,
        acl_seq: u64,
    ) -> Result<Arc<OrgAcl>, sqlx::Error> {
        let generation = {
            let entries = self.lock();
            if let Some(acl) = entries
                .acls
                .get(&org_id)
                .filter(|a| a.loaded_seq >= acl_seq)
            {
                return Ok(acl.clone());
            }
            entries.generations.get(&org_id).copied().unwrap_or(0)
        };
        let acl = Arc::new(load(db, org_id).await?);
        let mut entries = self.lock();
        let newer_cached = entries
            .acls
            .get(&org_id)
            .is_some_and(|a| a.loaded_seq > acl.loaded_seq);
        if entries.generations.get(&org_id).copied().unwrap_or(0) == generation && !newer_cached {
            entries.acls.insert(org_id, acl.clone());
        }
        Ok(acl)
    }

    /// The org's model for deciding who may read the committed change of `doc_id` at `seq`:
    /// the cached one, unless `doc_id` is a personal document it does not know (created after
    /// it was loaded, possibly by another process), then one at least as new as `seq`.
    pub async fn for_change(
        &self,
        db: &PgPool,
        org_id: Uuid,
        doc_id: Uuid,
        seq: u64,
    ) -> Result<Arc<OrgAcl>, sqlx::Error> {
        let acl = self.get(db, org_id).await?;
        if super::model::is_personal_id(doc_id)
            && !acl.personal.contains_key(&doc_id)
            && acl.loaded_seq < seq
        {
            return self.get_fresh(db, org_id, seq).await;
        }
        Ok(acl)
    }

    /// Forgets the org's model; the next `get` reloads it.
    pub fn invalidate(&self, org_id: Uuid) {
        let mut entries = self.lock();
        entries.acls.remove(&org_id);
        *entries.generations.entry(org_id).or_insert(0) += 1;
    }
}

async fn load(db: &PgPool, org_id: Uuid) -> Result<OrgAcl, sqlx::Error> {
    let mut acl = OrgAcl::default();
    let mut tx = crate::db::begin_org(db, org_id).await?;
    // Read first: the model below includes at least every change up to this seq.
    let seq: Option<(i64,)> =
        sqlx::query_as("SELECT acl_seq FROM org_change_seq WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut *tx)
            .await?;
    acl.loaded_seq = seq.map_or(0, |(s,)| crate::store::seq_from_db(s));
    let roles: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT user_id, role FROM org_members WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(&mut *tx)
            .await?;
    for (user, role) in roles {
        if let Ok(role) = role.parse::<OrgRole>() {
            acl.roles.insert(user, role);
        }
    }
    let teams: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT user_id, team_id FROM team_members WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(&mut *tx)
            .await?;
    for (user, team) in teams {
        acl.teams_of.entry(user).or_default().insert(team);
    }
    let tuples: Vec<(Uuid, String, String, Uuid)> = sqlx::query_as(
        "SELECT object_id, relation, subject_type, subject_id FROM relation_tuples WHERE org_id = $1",
    )
    .bind(org_id)
    .fetch_all(&mut *tx)
    .await?;
    for (object, relation, subject_type, subject_id) in tuples {
        let Ok(relation) = relation.parse::<Relation>() else {
            continue;
        };
        let subject = if subject_type == "team" {
            Subject::Team(subject_id)
        } else {
            Subject::User(subject_id)
        };
        acl.tuples
            .entry(object)
            .or_default()
            .push((relation, subject));
    }
    let personal: Vec<(Uuid, Uuid)> =
        sqlx::query_as("SELECT id, recipient_id FROM notifications WHERE org_id = $1")
            .bind(org_id)
            .fetch_all(&mut *tx)
            .await?;
    acl.personal.extend(personal);
    tx.commit().await?;
    Ok(acl)
}

/// The org's latest authorization change (0 when none), read in the caller's transaction.
pub async fn acl_seq(tx: &mut crate::store::Tx<'_>, org_id: Uuid) -> Result<u64, sqlx::Error> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT acl_seq FROM org_change_seq WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map_or(0, |(s,)| crate::store::seq_from_db(s)))
}
