//! The authorization model of one org, held in memory: member roles, team memberships and the
//! relation tuples on its documents. A user's relation to a document is the strongest of what
//! their org role grants on every document, their direct tuples, and their teams' tuples.

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

impl OrgAcl {
    pub fn role(&self, user: Uuid) -> Option<OrgRole> {
        self.roles.get(&user).copied()
    }

    /// The user's strongest relation to the document, `None` when they may not even read it
    /// (including when they are not a member of the org).
    pub fn relation(&self, user: Uuid, doc: Uuid) -> Option<Relation> {
        let role = self.role(user)?;
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
}
