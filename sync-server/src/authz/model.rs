//! The authorization model of one org, held in memory: member roles, team memberships and the
//! relation tuples on its documents. A user's relation to a document is the strongest of what
//! their org role grants on every document, their direct tuples, and their teams' tuples.
//!
//! **Personal documents** (the collections of `schema::PERSONAL_COLLECTIONS`, i.e.
//! notifications) are the exception: each belongs to one user, who owns it, and nobody else has
//! any relation to it, org owners included; roles and tuples do not apply. Their ids carry a
//! tag ([`personal_id`]), so a model that does not know a personal document yet (loaded before
//! it was created, in another process) refuses it to everyone instead of granting it by role:
//! a stale model fails closed, and [`super::AclCache::for_change`] reloads.

use std::collections::{HashMap, HashSet};

use syncline_protocol::rules::{OrgRole, Relation};
use uuid::Uuid;

/// Who a tuple grants to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    User(Uuid),
    /// Every member of the team.
    Team(Uuid),
}

/// One org's roles, teams and document tuples.
#[derive(Debug, Default, Clone)]
pub struct OrgAcl {
    pub roles: HashMap<Uuid, OrgRole>,
    /// user -> teams the user belongs to.
    pub teams_of: HashMap<Uuid, HashSet<Uuid>>,
    /// document -> tuples granting on it.
    pub tuples: HashMap<Uuid, Vec<(Relation, Subject)>>,
    /// personal document -> the user it belongs to (see the module docs).
    pub personal: HashMap<Uuid, Uuid>,
    /// The org's `acl_seq` when this model was read: it includes every authorization change up
    /// to that seq.
    pub loaded_seq: u64,
}

/// What an org role grants on every document of the org.
pub fn role_relation(role: OrgRole) -> Option<Relation> {
    match role {
        OrgRole::Owner | OrgRole::Admin => Some(Relation::Owner),
        OrgRole::Member => Some(Relation::Editor),
        // Guests see only what is shared with them.
        OrgRole::Guest => None,
    }
}

/// The tag in the first four bytes of a personal document's id.
const PERSONAL_TAG: [u8; 4] = *b"PRSN";

/// The id of a personal document, derived from `parts` (e.g. an event id and a recipient): the
/// same parts always give the same id, so a creation that runs twice finds the first one. A
/// UUIDv8 (clients create UUIDv7 ids) whose first bytes are a tag and the rest a SHA-256 of the
/// parts.
pub fn personal_id(parts: &[&[u8]]) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"syncline personal document");
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&PERSONAL_TAG);
    bytes[4..].copy_from_slice(&digest[..12]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Whether `doc` has the id shape of a personal document (see [`personal_id`]).
pub fn is_personal_id(doc: Uuid) -> bool {
    doc.get_version_num() == 8 && doc.as_bytes()[..4] == PERSONAL_TAG
}

impl OrgAcl {
    pub fn role(&self, user: Uuid) -> Option<OrgRole> {
        self.roles.get(&user).copied()
    }

    /// The user's strongest relation to the document, `None` when they may not even read it
    /// (including when they are not a member of the org).
    pub fn relation(&self, user: Uuid, doc: Uuid) -> Option<Relation> {
        let role = self.role(user)?;
        if let Some(owner) = self.personal.get(&doc) {
            return (*owner == user).then_some(Relation::Owner);
        }
        if is_personal_id(doc) {
            // Unknown to this model (created after it was loaded): nobody, until reloaded.
            return None;
        }
        let mut best = role_relation(role);
        let teams = self.teams_of.get(&user);
        for (relation, subject) in self.tuples.get(&doc).into_iter().flatten() {
            let applies = match subject {
                Subject::User(u) => *u == user,
                Subject::Team(t) => teams.is_some_and(|ts| ts.contains(t)),
            };
            if applies && best.is_none_or(|b| *relation > b) {
                best = Some(*relation);
            }
        }
        best
    }

    pub fn can_read(&self, user: Uuid, doc: Uuid) -> bool {
        self.relation(user, doc).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl() -> (OrgAcl, Uuid, Uuid, Uuid, Uuid, Uuid) {
        let (owner, member, guest, team, doc) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let mut acl = OrgAcl::default();
        acl.roles.insert(owner, OrgRole::Owner);
        acl.roles.insert(member, OrgRole::Member);
        acl.roles.insert(guest, OrgRole::Guest);
        (acl, owner, member, guest, team, doc)
    }

    #[test]
    fn roles_grant_org_wide_relations_and_guests_nothing() {
        let (acl, owner, member, guest, _, doc) = acl();
        assert_eq!(acl.relation(owner, doc), Some(Relation::Owner));
        assert_eq!(acl.relation(member, doc), Some(Relation::Editor));
        assert_eq!(acl.relation(guest, doc), None);
        assert_eq!(
            acl.relation(Uuid::now_v7(), doc),
            None,
            "non-members get nothing"
        );
    }

    #[test]
    fn direct_and_team_tuples_raise_the_relation_and_never_lower_it() {
        let (mut acl, _, member, guest, team, doc) = acl();
        acl.tuples
            .entry(doc)
            .or_default()
            .push((Relation::Viewer, Subject::User(guest)));
        assert_eq!(acl.relation(guest, doc), Some(Relation::Viewer));
        acl.tuples
            .entry(doc)
            .or_default()
            .push((Relation::Suggester, Subject::Team(team)));
        assert_eq!(
            acl.relation(guest, doc),
            Some(Relation::Viewer),
            "not in the team yet"
        );
        acl.teams_of.entry(guest).or_default().insert(team);
        assert_eq!(acl.relation(guest, doc), Some(Relation::Suggester));
        acl.tuples
            .entry(doc)
            .or_default()
            .push((Relation::Viewer, Subject::User(member)));
        assert_eq!(
            acl.relation(member, doc),
            Some(Relation::Editor),
            "a tuple never lowers a role"
        );
        // A tuple for a user who left the org grants nothing.
        acl.roles.remove(&guest);
        assert_eq!(acl.relation(guest, doc), None);
    }

    #[test]
    fn personal_documents_belong_to_their_owner_only() {
        let (mut acl, owner, member, _, _, _) = acl();
        let doc = personal_id(&[b"event", member.as_bytes()]);
        assert!(is_personal_id(doc));
        assert_eq!(doc, personal_id(&[b"event", member.as_bytes()]), "stable");
        assert!(!is_personal_id(Uuid::now_v7()));
        // Unknown to this model: nobody, not even an org owner.
        assert_eq!(acl.relation(owner, doc), None);
        assert_eq!(acl.relation(member, doc), None);
        acl.personal.insert(doc, member);
        assert_eq!(acl.relation(member, doc), Some(Relation::Owner));
        assert_eq!(acl.relation(owner, doc), None, "org owners do not see it");
        // A share grants nothing on a personal document.
        acl.tuples
            .entry(doc)
            .or_default()
            .push((Relation::Viewer, Subject::User(owner)));
        assert_eq!(acl.relation(owner, doc), None);
        // Its owner loses it when they leave the org.
        acl.roles.remove(&member);
        assert_eq!(acl.relation(member, doc), None);
    }
}
