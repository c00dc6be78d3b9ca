//! Authorization rules of the synced collections: org roles, per-document relations, who may
//! create a document of each collection and which relation each client field needs to be
//! written, plus the two pure building blocks the server uses to judge a pushed change:
//!
//! - [`touched_fields`]: decodes an automerge change and returns the root-map keys (record
//!   fields) it writes or deletes, attributing edits inside nested objects (the elements of a
//!   list field) to the field that holds them, and adding every key whose value the change
//!   alters (a forged change can overwrite a key without naming it);
//! - [`authorize_write`]: judges those fields against the collection's rules and the user's
//!   relation to the document. A change is judged as a whole: one forbidden field refuses it.
//!
//! Document-level checks that need the database (the user's relation, org role for creation,
//! task dependency cycles) are made by the server; [`creates_cycle`] is the pure part of the
//! cycle check. Server-owned fields are never writable by clients (see also
//! [`crate::record::read_record`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::{Automerge, Change, ChangeHash, ObjId, PatchAction, Prop, ReadDoc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codes::ErrorCode;
use crate::record::{FieldValue, Record, RecordError};
use crate::schema::{COMMENTS, CONTACTS, CollectionSchema, DOCUMENTS, NOTES, NOTIFICATIONS, TASKS};

/// A user's role in an organization, from least to most privileged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    Guest,
    Member,
    Admin,
    Owner,
}

impl OrgRole {
    /// Every role, least privileged first.
    pub const ALL: [Self; 4] = [Self::Guest, Self::Member, Self::Admin, Self::Owner];

    /// The stable string form, identical to the serialized one (and to `org_members.role`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guest => "guest",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

/// A user's relation to one document (Zanzibar-style sharing), from weakest to strongest.
/// Each relation includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Viewer,
    Commenter,
    Suggester,
    Editor,
    Owner,
}

impl Relation {
    /// Every relation, weakest first.
    pub const ALL: [Self; 5] = [
        Self::Viewer,
        Self::Commenter,
        Self::Suggester,
        Self::Editor,
        Self::Owner,
    ];

    /// The stable string form, identical to the serialized one.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Commenter => "commenter",
            Self::Suggester => "suggester",
            Self::Editor => "editor",
            Self::Owner => "owner",
        }
    }
}

/// A role or relation name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind}")]
pub struct ParseNameError {
    /// `"org role"` or `"relation"`.
    pub kind: &'static str,
    pub value: String,
}

impl FromStr for OrgRole {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseNameError {
                kind: "org role",
                value: s.to_owned(),
            })
    }
}

impl FromStr for Relation {
    type Err = ParseNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| ParseNameError {
                kind: "relation",
                value: s.to_owned(),
            })
    }
}

impl fmt::Display for OrgRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who may write one client field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteRule {
    /// The user's relation to the document must be at least this.
    AtLeast(Relation),
    /// Setting the field to `value` is also allowed to the user named by the reference field
    /// `assignee` (before or after the change), whatever their relation to the document as long
    /// as they can read it; any other write needs `otherwise`.
    AssigneeMaySet {
        value: &'static str,
        assignee: &'static str,
        otherwise: Relation,
    },
    /// No client writes it, whatever their relation: the server sets it when it creates the
    /// document (e.g. a notification's text). It is still a field of the CRDT document, so
    /// replicas receive it.
    ServerOnly,
}

/// The write rule of one client field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldRule {
    pub field: &'static str,
    pub write: WriteRule,
}

impl FieldRule {
    const fn at_least(field: &'static str, relation: Relation) -> Self {
        Self {
            field,
            write: WriteRule::AtLeast(relation),
        }
    }

    const fn server_only(field: &'static str) -> Self {
        Self {
            field,
            write: WriteRule::ServerOnly,
        }
    }
}

/// The authorization rules of one collection. Deleting a record is a soft delete, i.e. a write
/// of its `deleted_at` field, and follows that field's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionRules {
    pub collection: &'static str,
    /// Minimum relation to read a document (and to write anything at all).
    pub read: Relation,
    /// Minimum org role to create a document (the server checks it with the org membership).
    pub create: OrgRole,
    /// One rule per client field of the collection's schema (a test checks the coverage).
    pub fields: &'static [FieldRule],
}

impl CollectionRules {
    pub fn field(&self, name: &str) -> Option<&'static FieldRule> {
        self.fields.iter().find(|r| r.field == name)
    }
}

/// Tasks: editors edit everything; the assignee may also mark their task done.
pub const TASK_RULES: CollectionRules = CollectionRules {
    collection: TASKS.name,
    read: Relation::Viewer,
    create: OrgRole::Member,
    fields: &[
        FieldRule::at_least("title", Relation::Editor),
        FieldRule::at_least("description", Relation::Editor),
        FieldRule {
            field: "status",
            write: WriteRule::AssigneeMaySet {
                value: "done",
                assignee: "assignee_id",
                otherwise: Relation::Editor,
            },
        },
        FieldRule::at_least("priority", Relation::Editor),
        FieldRule::at_least("due_date", Relation::Editor),
        FieldRule::at_least("assignee_id", Relation::Editor),
        FieldRule::at_least("board_id", Relation::Editor),
        FieldRule::at_least("column", Relation::Editor),
        FieldRule::at_least("position", Relation::Editor),
        FieldRule::at_least("parent_id", Relation::Editor),
        FieldRule::at_least("depends_on", Relation::Editor),
        // Deleting (soft) is for owners: the creator, admins and owners, or an explicit owner share.
        FieldRule::at_least("deleted_at", Relation::Owner),
    ],
};

/// Notes: editors edit; deleting is for owners. (Who may write the body is decided by the same
/// relation, see [`crate::text::TextRole`].)
pub const NOTE_RULES: CollectionRules = CollectionRules {
    collection: NOTES.name,
    read: Relation::Viewer,
    create: OrgRole::Member,
    fields: &[
        FieldRule::at_least("title", Relation::Editor),
        FieldRule::at_least("pinned", Relation::Editor),
        FieldRule::at_least("deleted_at", Relation::Owner),
    ],
};

/// Business documents: editors edit metadata and contract fields; suggesters and commenters
/// work on the body only; deleting is for owners.
pub const DOCUMENT_RULES: CollectionRules = CollectionRules {
    collection: DOCUMENTS.name,
    read: Relation::Viewer,
    create: OrgRole::Member,
    fields: &[
        FieldRule::at_least("title", Relation::Editor),
        FieldRule::at_least("type", Relation::Editor),
        FieldRule::at_least("status", Relation::Editor),
        FieldRule::at_least("counterparty_id", Relation::Editor),
        FieldRule::at_least("payment_terms", Relation::Editor),
        FieldRule::at_least("amount", Relation::Editor),
        FieldRule::at_least("currency", Relation::Editor),
        FieldRule::at_least("effective_date", Relation::Editor),
        FieldRule::at_least("deleted_at", Relation::Owner),
    ],
};

/// Contacts: editors edit every field; deleting is for owners.
pub const CONTACT_RULES: CollectionRules = CollectionRules {
    collection: CONTACTS.name,
    read: Relation::Viewer,
    create: OrgRole::Member,
    fields: &[
        FieldRule::at_least("type", Relation::Editor),
        FieldRule::at_least("status", Relation::Editor),
        FieldRule::at_least("first_name", Relation::Editor),
        FieldRule::at_least("last_name", Relation::Editor),
        FieldRule::at_least("email", Relation::Editor),
        FieldRule::at_least("phone", Relation::Editor),
        FieldRule::at_least("company", Relation::Editor),
        FieldRule::at_least("source", Relation::Editor),
        FieldRule::at_least("assigned_to", Relation::Editor),
        FieldRule::at_least("custom_fields", Relation::Editor),
        FieldRule::at_least("deleted_at", Relation::Owner),
    ],
};

/// Comments: anyone in the org, guests included, may comment; only the author (the creator owns
/// what they create) or an org admin edits or deletes a comment, and what a comment is about
/// never changes after creation (owners only, so in practice the author).
pub const COMMENT_RULES: CollectionRules = CollectionRules {
    collection: COMMENTS.name,
    read: Relation::Viewer,
    create: OrgRole::Guest,
    fields: &[
        FieldRule::at_least("record_collection", Relation::Owner),
        FieldRule::at_least("record_id", Relation::Owner),
        FieldRule::at_least("parent_id", Relation::Owner),
        FieldRule::at_least("body", Relation::Owner),
        FieldRule::at_least("edited_at", Relation::Owner),
        FieldRule::at_least("deleted_at", Relation::Owner),
    ],
};

/// Notifications: created by the server only (their fields are [`WriteRule::ServerOnly`], so no
/// client change can create one); the recipient, the only user with a relation to the document
/// (owner), may set or clear `read_at` and nothing else.
pub const NOTIFICATION_RULES: CollectionRules = CollectionRules {
    collection: NOTIFICATIONS.name,
    read: Relation::Viewer,
    create: OrgRole::Owner,
    fields: &[
        FieldRule::server_only("recipient_id"),
        FieldRule::server_only("event_type"),
        FieldRule::server_only("event_id"),
        FieldRule::server_only("title"),
        FieldRule::server_only("body"),
        FieldRule::server_only("entity_collection"),
        FieldRule::server_only("entity_id"),
        FieldRule::server_only("actor_id"),
        FieldRule::at_least("read_at", Relation::Owner),
    ],
};

/// The rules of every synced collection.
pub const RULES: &[&CollectionRules] = &[
    &TASK_RULES,
    &NOTE_RULES,
    &DOCUMENT_RULES,
    &CONTACT_RULES,
    &COMMENT_RULES,
    &NOTIFICATION_RULES,
];

/// A collection with no rules here grants nothing: no reads or writes below `Owner`, creation
/// only by org owners. Every collection of [`crate::schema::COLLECTIONS`] has rules (tested).
const DENY_ALL: CollectionRules = CollectionRules {
    collection: "",
    read: Relation::Owner,
    create: OrgRole::Owner,
    fields: &[],
};

/// The rules of a collection.
pub fn rules(schema: &CollectionSchema) -> &'static CollectionRules {
    RULES
        .iter()
        .copied()
        .find(|r| r.collection == schema.name)
        .unwrap_or(&DENY_ALL)
}

/// The minimum org role needed to create a document of the collection.
pub fn create_role(schema: &CollectionSchema) -> OrgRole {
    rules(schema).create
}

/// The minimum relation needed to read a document of the collection.
pub fn read_relation(schema: &CollectionSchema) -> Relation {
    rules(schema).read
}

/// The root-map keys (record fields) that `change` writes or deletes.
///
/// `merged` must be a document that contains the change (the server's document after applying
/// it): operations on nested objects, such as the elements of a list field, are attributed to
/// the root key that holds the object, found through the object's path in `merged`.
///
/// An operation names its key, but also the operations it overwrites (its predecessors), and
/// automerge does not check that those are operations of the same key: a crafted change can
/// write `status` while deleting `assignee_id` through a predecessor. So the keys whose visible
/// value the change alters in `merged` (an automerge diff across the change) are touched too,
/// whichever operation names them.
///
/// Fails with `invalid_change` when an operation targets an object `merged` does not have, has
/// a shape automerge never produces (an insertion into a map, a mark that is not inserted), or
/// `merged` lacks a change this one depends on.
pub fn touched_fields(
    change: &Change,
    merged: &Automerge,
) -> Result<BTreeSet<String>, RecordError> {
    let expanded = change.decode();
    let mut touched = BTreeSet::new();
    // Nested object (counter, actor) -> the root key holding it; a list edit has many ops on
    // the same object.
    let mut roots: HashMap<ObjectId, String> = HashMap::new();
    for op in &expanded.operations {
        // Shapes automerge applies but never produces, and whose effect on the document the
        // rules cannot judge.
        let malformed = if op.insert && matches!(op.key, Key::Map(_)) {
            Some("an operation inserts into a map")
        } else if !op.insert && matches!(op.action, OpType::MarkBegin(_) | OpType::MarkEnd(_)) {
            Some("a mark overwrites an element instead of being inserted")
        } else {
            None
        };
        if let Some(message) = malformed {
            return Err(RecordError::new(ErrorCode::InvalidChange, "", message));
        }
        match &op.obj {
            ObjectId::Root => match &op.key {
                Key::Map(key) => {
                    touched.insert(key.to_string());
                }
                Key::Seq(_) => {
                    return Err(RecordError::new(
                        ErrorCode::InvalidChange,
                        "",
                        "an operation addresses the root map by list position",
                    ));
                }
            },
            ObjectId::Id(id) => {
                if let Some(key) = roots.get(&op.obj) {
                    touched.insert(key.clone());
                    continue;
                }
                let obj = ObjId::Id(id.counter(), id.actor().clone(), 0);
                let unreachable = || {
                    RecordError::new(
                        ErrorCode::InvalidChange,
                        "",
                        format!("an operation targets object {id}, which the document lacks"),
                    )
                };
                let path = merged.parents(&obj).map_err(|_| unreachable())?.path();
                let Some((_, Prop::Map(key))) = path.first() else {
                    return Err(unreachable());
                };
                roots.insert(op.obj.clone(), key.clone());
                touched.insert(key.clone());
            }
        }
    }
    touched.extend(changed_root_keys(change, merged)?);
    Ok(touched)
}

/// The root keys whose visible value differs between `merged` without `change` and `merged`.
fn changed_root_keys(change: &Change, merged: &Automerge) -> Result<BTreeSet<String>, RecordError> {
    let after = merged.get_heads();
    let hash = change.hash();
    // The heads before the change: the others, plus what it was made on (an ancestor among
    // them changes nothing).
    let before: Vec<ChangeHash> = after
        .iter()
        .filter(|h| **h != hash)
        .chain(change.deps())
        .copied()
        .collect();
    if let Some(missing) = before
        .iter()
        .find(|h| merged.get_change_by_hash(h).is_none())
    {
        return Err(RecordError::new(
            ErrorCode::InvalidChange,
            "",
            format!("the document lacks change {missing}, which this one depends on"),
        ));
    }
    let mut keys = BTreeSet::new();
    for patch in merged.diff(&before, &after) {
        let key = match (patch.path.first(), patch.action) {
            (Some((_, Prop::Map(key))), _) => key.clone(),
            (
                None,
                PatchAction::PutMap { key, .. }
                | PatchAction::DeleteMap { key }
                | PatchAction::Increment {
                    prop: Prop::Map(key),
                    ..
                }
                | PatchAction::Conflict {
                    prop: Prop::Map(key),
                },
            ) => key,
            (_, action) => {
                return Err(RecordError::new(
                    ErrorCode::InvalidChange,
                    "",
                    format!("the change edits the root map as a list ({action})"),
                ));
            }
        };
        keys.insert(key);
    }
    Ok(keys)
}

/// Judges a change that writes the `touched` fields of a document of `schema`, made by
/// `user_id` whose relation to the document is `relation` (`None`: cannot read it).
///
/// `before` is the record before the change (`None` when the change creates the document) and
/// `after` the merged record after it. Whether the user may create the document at all is the
/// server's check (see [`create_role`]). Fails with `forbidden` when the user cannot read the
/// document, `server_owned_field` or `unknown_field` for fields no client may write, and
/// `field_forbidden` naming the first (in name order) field the relation does not allow; the
/// change is refused as a whole.
pub fn authorize_write(
    schema: &CollectionSchema,
    user_id: Uuid,
    relation: Option<Relation>,
    before: Option<&Record>,
    after: &Record,
    touched: &BTreeSet<String>,
) -> Result<(), RecordError> {
    let rules = rules(schema);
    let relation = match relation {
        Some(r) if r >= rules.read => r,
        _ => {
            return Err(RecordError::new(
                ErrorCode::Forbidden,
                "",
                "document not found or not accessible",
            ));
        }
    };
    for name in touched {
        let Some(def) = schema.field(name) else {
            return Err(RecordError::new(
                ErrorCode::UnknownField,
                name,
                "not a field of this collection",
            ));
        };
        if def.server_owned {
            return Err(RecordError::new(
                ErrorCode::ServerOwnedField,
                name,
                "only the server may write this field",
            ));
        }
        let Some(rule) = rules.field(name) else {
            return Err(RecordError::new(
                ErrorCode::FieldForbidden,
                name,
                "no rule allows writing this field",
            ));
        };
        let needed = match rule.write {
            WriteRule::AtLeast(needed) => needed,
            WriteRule::ServerOnly => {
                return Err(RecordError::new(
                    ErrorCode::FieldForbidden,
                    name,
                    "only the server writes this field",
                ));
            }
            WriteRule::AssigneeMaySet {
                value,
                assignee,
                otherwise,
            } => {
                let sets_value =
                    matches!(after.get(name.as_str()), Some(FieldValue::String(s)) if s == value);
                let is_assignee = |r: Option<&Record>| {
                    let assigned = r.and_then(|r| r.get(assignee));
                    assigned == Some(&FieldValue::Ref(user_id))
                };
                if sets_value && (is_assignee(before) || is_assignee(Some(after))) {
                    continue;
                }
                otherwise
            }
        };
        if relation < needed {
            return Err(RecordError::new(
                ErrorCode::FieldForbidden,
                name,
                format!("writing it needs the {needed} relation; the user is a {relation}"),
            ));
        }
    }
    Ok(())
}

/// Whether making `task` depend on `new_deps` would create a dependency cycle, given the
/// existing dependency edges (`edges(t)`: the tasks `t` depends on).
///
/// Walks depth-first from each new dependency along `edges`; true when the walk reaches `task`
/// (including a task depending on itself). Each task is visited once, so cycles elsewhere in
/// the graph do not loop.
pub fn creates_cycle(task: Uuid, new_deps: &[Uuid], edges: impl Fn(Uuid) -> Vec<Uuid>) -> bool {
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut stack: Vec<Uuid> = new_deps.to_vec();
    while let Some(t) = stack.pop() {
        if t == task {
            return true;
        }
        if seen.insert(t) {
            stack.extend(edges(t).into_iter().filter(|d| !seen.contains(d)));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{put_field, read_record};
    use crate::schema::COLLECTIONS;
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, Automerge, ObjType, ROOT};

    fn s(v: &str) -> FieldValue {
        FieldValue::String(v.into())
    }

    /// A stored task (title, status todo, optionally assigned).
    fn base(assignee: Option<Uuid>) -> AutoCommit {
        let mut doc = AutoCommit::new();
        put_field(&mut doc, &TASKS, "title", Some(&s("Write docs"))).expect("title");
        put_field(&mut doc, &TASKS, "status", Some(&s("todo"))).expect("status");
        if let Some(a) = assignee {
            put_field(&mut doc, &TASKS, "assignee_id", Some(&FieldValue::Ref(a))).expect("a");
        }
        doc.commit();
        doc
    }

    /// Makes one change on a fork of `base` and returns it with the merged document, as the
    /// server sees it after applying the change to its copy.
    fn change_on(base: &mut AutoCommit, edit: impl FnOnce(&mut AutoCommit)) -> (Change, Automerge) {
        let mut fork = base.fork();
        edit(&mut fork);
        let hash = fork.commit().expect("the edit made a change");
        let change = fork.get_change_by_hash(&hash).expect("change").clone();
        let mut merged = base.document().clone();
        merged.apply_changes([change.clone()]).expect("applies");
        (change, merged)
    }

    fn names(set: &BTreeSet<String>) -> Vec<&str> {
        set.iter().map(String::as_str).collect()
    }

    struct Judged {
        before: Record,
        after: Record,
        touched: BTreeSet<String>,
    }

    fn judge(base: &mut AutoCommit, edit: impl FnOnce(&mut AutoCommit)) -> Judged {
        let before = read_record(base, &TASKS).expect("valid before");
        let (change, merged) = change_on(base, edit);
        Judged {
            before,
            after: read_record(&merged, &TASKS).expect("valid after"),
            touched: touched_fields(&change, &merged).expect("decodes"),
        }
    }

    impl Judged {
        fn check(&self, user: Uuid, relation: Option<Relation>) -> Result<(), RecordError> {
            authorize_write(
                &TASKS,
                user,
                relation,
                Some(&self.before),
                &self.after,
                &self.touched,
            )
        }
    }

    #[test]
    fn roles_and_relations_order_parse_and_serialize() {
        assert!(OrgRole::Guest < OrgRole::Member && OrgRole::Admin < OrgRole::Owner);
        assert!(Relation::Viewer < Relation::Commenter);
        assert!(Relation::Suggester < Relation::Editor && Relation::Editor < Relation::Owner);
        for r in OrgRole::ALL {
            assert_eq!(r.as_str().parse::<OrgRole>(), Ok(r));
            assert_eq!(
                serde_json::to_value(r).expect("ser"),
                serde_json::Value::String(r.as_str().into())
            );
        }
        for r in Relation::ALL {
            assert_eq!(r.as_str().parse::<Relation>(), Ok(r));
            assert_eq!(
                serde_json::from_value::<Relation>(serde_json::Value::String(r.as_str().into()))
                    .expect("de"),
                r
            );
        }
        assert_eq!(
            "Editor".parse::<Relation>().expect_err("case").to_string(),
            "`Editor` is not a valid relation"
        );
        assert!("superuser".parse::<OrgRole>().is_err());
    }

    #[test]
    fn every_client_field_of_every_collection_has_exactly_one_rule() {
        for schema in COLLECTIONS {
            let rules = rules(schema);
            assert_eq!(rules.collection, schema.name, "{} has rules", schema.name);
            for def in schema.client_fields() {
                let n = rules.fields.iter().filter(|r| r.field == def.name).count();
                assert_eq!(n, 1, "{}.{} has one rule", schema.name, def.name);
            }
            for rule in rules.fields {
                let def = schema.field(rule.field).expect("rule names a field");
                assert!(!def.server_owned, "{} is server-owned", rule.field);
            }
        }
        assert_eq!(create_role(&TASKS), OrgRole::Member);
        assert_eq!(read_relation(&TASKS), Relation::Viewer);
    }

    #[test]
    fn touched_fields_are_the_root_keys_a_change_writes_or_deletes() {
        let mut doc = base(None);
        let (change, merged) = change_on(&mut doc, |d| {
            put_field(d, &TASKS, "title", Some(&s("New title"))).expect("title");
        });
        let touched = touched_fields(&change, &merged).expect("decodes");
        assert_eq!(names(&touched), ["title"]);

        let mut doc = base(None);
        put_field(&mut doc, &TASKS, "priority", Some(&s("high"))).expect("priority");
        doc.commit();
        let (change, merged) = change_on(&mut doc, |d| {
            put_field(d, &TASKS, "priority", None).expect("clear");
            put_field(d, &TASKS, "status", Some(&s("done"))).expect("status");
        });
        let touched = touched_fields(&change, &merged).expect("decodes");
        assert_eq!(names(&touched), ["priority", "status"]);
    }

    #[test]
    fn edits_inside_a_list_field_map_to_the_key_holding_the_list() {
        let mut doc = base(None);
        let list = doc
            .put_object(ROOT, "depends_on", ObjType::List)
            .expect("list");
        doc.insert(&list, 0, "a").expect("insert");
        doc.commit();
        let (change, merged) = change_on(&mut doc, |d| {
            let (_, list) = d.get(ROOT, "depends_on").expect("get").expect("list");
            d.insert(&list, 1, "b").expect("insert");
            d.delete(&list, 0).expect("delete");
        });
        let touched = touched_fields(&change, &merged).expect("decodes");
        assert_eq!(names(&touched), ["depends_on"]);

        // The typed writer: adding a dependency to an existing list.
        let dep = FieldValue::RefList(vec![Uuid::now_v7()]);
        let mut doc = base(None);
        put_field(
            &mut doc,
            &TASKS,
            "depends_on",
            Some(&FieldValue::RefList(vec![])),
        )
        .expect("empty list");
        doc.commit();
        let (change, merged) = change_on(&mut doc, |d| {
            put_field(d, &TASKS, "depends_on", Some(&dep)).expect("add");
        });
        assert!(change.decode().operations.iter().all(|op| op.insert));
        let touched = touched_fields(&change, &merged).expect("decodes");
        assert_eq!(names(&touched), ["depends_on"]);

        // Objects created by the change itself, nested two deep, still map to their root key.
        let (change, merged) = change_on(&mut doc, |d| {
            let outer = d.put_object(ROOT, "nested", ObjType::Map).expect("map");
            let inner = d.put_object(&outer, "inner", ObjType::List).expect("list");
            d.insert(&inner, 0, 1_i64).expect("insert");
        });
        let touched = touched_fields(&change, &merged).expect("decodes");
        assert_eq!(names(&touched), ["nested"]);
    }

    #[test]
    fn an_op_on_an_object_the_document_lacks_is_an_invalid_change() {
        let mut doc = base(None);
        let (change, _) = change_on(&mut doc, |d| {
            let list = d
                .put_object(ROOT, "depends_on", ObjType::List)
                .expect("list");
            d.insert(&list, 0, "a").expect("insert");
        });
        // Judged against a document that does not contain the change.
        let err = touched_fields(&change, doc.document()).expect_err("unreachable");
        assert_eq!(err.code, ErrorCode::InvalidChange);
    }

    /// Found by the `authorize_change` fuzz target (docs/fuzzing.md): an operation's
    /// predecessors may name operations of another key, which automerge then overwrites.
    #[test]
    fn a_key_overwritten_through_a_predecessor_is_touched() {
        let assignee = Uuid::now_v7();
        let mut doc = base(Some(assignee));
        let before = read_record(&doc, &TASKS).expect("valid before");
        let Some((_, ObjId::Id(counter, actor, _))) = doc.get(ROOT, "assignee_id").expect("get")
        else {
            panic!("assignee_id is an operation");
        };
        // The assignee marks the task done, which they may, and forges the status write to
        // overwrite the assignee_id value too.
        let (honest, _) = change_on(&mut doc, |d| {
            put_field(d, &TASKS, "status", Some(&s("done"))).expect("status");
        });
        let mut forged = honest.decode();
        let op = &mut forged.operations[0];
        assert_eq!(op.key, Key::Map("status".into()));
        let mut pred: Vec<_> = op.pred.iter().cloned().collect();
        pred.push(automerge::legacy::OpId::new(counter, &actor));
        op.pred = pred.into();
        let forged = Change::from(forged);
        let mut merged = doc.document().clone();
        merged
            .apply_changes([forged.clone()])
            .expect("automerge applies it");
        let after = read_record(&merged, &TASKS).expect("valid after");
        assert_eq!(
            after.get("assignee_id"),
            None,
            "the forged write unassigned the task"
        );

        let touched = touched_fields(&forged, &merged).expect("decodes");
        assert_eq!(names(&touched), ["assignee_id", "status"]);
        let err = authorize_write(
            &TASKS,
            assignee,
            Some(Relation::Viewer),
            Some(&before),
            &after,
            &touched,
        )
        .expect_err("a viewer may not unassign");
        assert_eq!(
            (err.code, err.field.as_str()),
            (ErrorCode::FieldForbidden, "assignee_id")
        );
        // The honest change alone touches only status.
        let mut merged = doc.document().clone();
        merged.apply_changes([honest.clone()]).expect("applies");
        let touched = touched_fields(&honest, &merged).expect("decodes");
        assert_eq!(names(&touched), ["status"]);
    }

    /// Found by the `authorize_change` fuzz target: automerge applies operations it never
    /// produces, whose effect the rules cannot judge (a value inserted into a map appears under a
    /// key no operation names).
    #[test]
    fn operation_shapes_automerge_never_produces_are_invalid_changes() {
        let mut doc = base(None);
        let (honest, _) = change_on(&mut doc, |d| {
            put_field(d, &TASKS, "status", Some(&s("done"))).expect("status");
        });
        let forge = |edit: &dyn Fn(&mut automerge::legacy::Op)| {
            let mut forged = honest.decode();
            edit(&mut forged.operations[0]);
            Change::from(forged)
        };
        let inserted_into_map = forge(&|op| op.insert = true);
        let mark_overwriting = forge(&|op| op.action = OpType::MarkEnd(false));
        for forged in [inserted_into_map, mark_overwriting] {
            // Judged before applying: automerge's own debug assertions reject the first one.
            let err = touched_fields(&forged, doc.document()).expect_err("malformed");
            assert_eq!(err.code, ErrorCode::InvalidChange, "{}", err.message);
        }
    }

    #[test]
    fn editors_write_every_client_field_viewers_none() {
        let user = Uuid::now_v7();
        let mut doc = base(None);
        let j = judge(&mut doc, |d| {
            put_field(d, &TASKS, "title", Some(&s("Renamed"))).expect("title");
            put_field(d, &TASKS, "position", Some(&s("a0"))).expect("position");
            put_field(d, &TASKS, "column", Some(&s("Doing"))).expect("column");
        });
        assert_eq!(names(&j.touched), ["column", "position", "title"]);
        assert_eq!(j.check(user, Some(Relation::Editor)), Ok(()));
        assert_eq!(j.check(user, Some(Relation::Owner)), Ok(()));
        for weaker in [Relation::Viewer, Relation::Commenter, Relation::Suggester] {
            let err = j.check(user, Some(weaker)).expect_err("not an editor");
            assert_eq!(err.code, ErrorCode::FieldForbidden);
            assert_eq!(err.field, "column");
        }
        let err = j.check(user, None).expect_err("cannot read");
        assert_eq!(err.code, ErrorCode::Forbidden);
    }

    #[test]
    fn a_change_touching_an_allowed_and_a_forbidden_field_is_refused_whole() {
        let assignee = Uuid::now_v7();
        let mut doc = base(Some(assignee));
        let j = judge(&mut doc, |d| {
            put_field(d, &TASKS, "status", Some(&s("done"))).expect("status");
            put_field(d, &TASKS, "title", Some(&s("Done, renamed"))).expect("title");
        });
        assert_eq!(names(&j.touched), ["status", "title"]);
        // Status alone would be allowed (the assignee marks done); the title is not.
        let err = j
            .check(assignee, Some(Relation::Viewer))
            .expect_err("whole");
        assert_eq!(err.code, ErrorCode::FieldForbidden);
        assert_eq!(err.field, "title");
        assert_eq!(j.check(assignee, Some(Relation::Editor)), Ok(()));
    }

    #[test]
    fn the_assignee_may_mark_done_whatever_their_relation_but_nothing_else() {
        let assignee = Uuid::now_v7();
        let other = Uuid::now_v7();
        let mut doc = base(Some(assignee));
        let done = judge(&mut doc, |d| {
            put_field(d, &TASKS, "status", Some(&s("done"))).expect("status");
        });
        assert_eq!(names(&done.touched), ["status"]);
        assert_eq!(done.check(assignee, Some(Relation::Viewer)), Ok(()));
        assert_eq!(done.check(other, Some(Relation::Editor)), Ok(()));
        let err = done
            .check(other, Some(Relation::Suggester))
            .expect_err("not the assignee");
        assert_eq!(
            (err.code, err.field.as_str()),
            (ErrorCode::FieldForbidden, "status")
        );
        // Readable is still required.
        assert_eq!(
            done.check(assignee, None).expect_err("no access").code,
            ErrorCode::Forbidden
        );

        // Any other status value needs an editor, assignee or not.
        let started = judge(&mut doc, |d| {
            put_field(d, &TASKS, "status", Some(&s("in_progress"))).expect("status");
        });
        let err = started
            .check(assignee, Some(Relation::Viewer))
            .expect_err("not done");
        assert_eq!(
            (err.code, err.field.as_str()),
            (ErrorCode::FieldForbidden, "status")
        );
        assert_eq!(started.check(assignee, Some(Relation::Editor)), Ok(()));

        // The assignee may not reassign the task to themselves (or anyone).
        let mut unassigned = base(None);
        let grab = judge(&mut unassigned, |d| {
            put_field(d, &TASKS, "assignee_id", Some(&FieldValue::Ref(other))).expect("a");
            put_field(d, &TASKS, "status", Some(&s("done"))).expect("status");
        });
        let err = grab
            .check(other, Some(Relation::Viewer))
            .expect_err("assign");
        assert_eq!(err.field, "assignee_id");
    }

    #[test]
    fn the_assignee_after_the_change_counts_as_well_as_before() {
        let assignee = Uuid::now_v7();
        let before: Record = [("title", s("t")), ("status", s("todo"))]
            .into_iter()
            .collect();
        let after: Record = [
            ("title", s("t")),
            ("status", s("done")),
            ("assignee_id", FieldValue::Ref(assignee)),
        ]
        .into_iter()
        .collect();
        let touched: BTreeSet<String> = ["status".to_owned()].into();
        assert_eq!(
            authorize_write(
                &TASKS,
                assignee,
                Some(Relation::Viewer),
                Some(&before),
                &after,
                &touched
            ),
            Ok(())
        );
        // Creation: no record before.
        assert_eq!(
            authorize_write(
                &TASKS,
                assignee,
                Some(Relation::Viewer),
                None,
                &after,
                &touched
            ),
            Ok(())
        );
    }

    #[test]
    fn server_owned_and_unknown_touched_fields_are_refused() {
        let user = Uuid::now_v7();
        let rec: Record = [("title", s("t")), ("status", s("todo"))]
            .into_iter()
            .collect();
        for (field, code) in [
            ("created_by", ErrorCode::ServerOwnedField),
            ("colour", ErrorCode::UnknownField),
        ] {
            let touched: BTreeSet<String> = [field.to_owned()].into();
            let err = authorize_write(
                &TASKS,
                user,
                Some(Relation::Owner),
                Some(&rec),
                &rec,
                &touched,
            )
            .expect_err("refused");
            assert_eq!((err.code, err.field.as_str()), (code, field));
        }
    }

    #[test]
    fn cycles_are_found_through_existing_edges() {
        let [a, b, c, d] = [(); 4].map(|_| Uuid::now_v7());
        // b -> c -> d, and d -> b (an existing cycle not involving a).
        let graph: HashMap<Uuid, Vec<Uuid>> = [(b, vec![c]), (c, vec![d]), (d, vec![b])]
            .into_iter()
            .collect();
        let edges = |t: Uuid| graph.get(&t).cloned().unwrap_or_default();
        assert!(!creates_cycle(a, &[b], edges), "a -> b never returns to a");
        assert!(creates_cycle(a, &[a], edges), "self-dependency");
        assert!(!creates_cycle(a, &[], edges));

        // c -> a exists: a -> b -> c -> a.
        let graph: HashMap<Uuid, Vec<Uuid>> = [(b, vec![c]), (c, vec![a])].into_iter().collect();
        let edges = |t: Uuid| graph.get(&t).cloned().unwrap_or_default();
        assert!(creates_cycle(a, &[d, b], edges));
        assert!(!creates_cycle(a, &[d], edges));
        // The two offline clients' case: A depends on B is stored; B depends on A is a cycle.
        let graph: HashMap<Uuid, Vec<Uuid>> = [(a, vec![b])].into_iter().collect();
        let edges = |t: Uuid| graph.get(&t).cloned().unwrap_or_default();
        assert!(creates_cycle(b, &[a], edges));
    }

    /// A notification as the server creates it: its recipient (owner) may mark it read, nobody
    /// may change its text, and no client change can create one.
    #[test]
    fn notifications_are_written_by_the_server_except_read_at() {
        let recipient = Uuid::now_v7();
        let mut doc = AutoCommit::new();
        for (name, value) in [
            ("recipient_id", FieldValue::Ref(recipient)),
            ("event_type", s("task.assigned")),
            ("event_id", FieldValue::Ref(Uuid::now_v7())),
            ("title", s("You were assigned")),
        ] {
            put_field(&mut doc, &NOTIFICATIONS, name, Some(&value)).expect("field");
        }
        doc.commit();
        let created = doc.get_changes(&[]).first().map(|c| (*c).clone());
        let before = read_record(&doc, &NOTIFICATIONS).expect("valid");
        let judge_edit = |edit: &dyn Fn(&mut AutoCommit)| {
            let mut doc = doc.clone();
            let (change, merged) = change_on(&mut doc, |d| edit(d));
            let after = read_record(&merged, &NOTIFICATIONS).expect("valid after");
            let touched = touched_fields(&change, &merged).expect("decodes");
            authorize_write(
                &NOTIFICATIONS,
                recipient,
                Some(Relation::Owner),
                Some(&before),
                &after,
                &touched,
            )
        };
        let read = judge_edit(&|d| {
            put_field(
                d,
                &NOTIFICATIONS,
                "read_at",
                Some(&FieldValue::Timestamp(1)),
            )
            .expect("r");
        });
        assert_eq!(read, Ok(()));
        let err = judge_edit(&|d| {
            put_field(d, &NOTIFICATIONS, "title", Some(&s("forged"))).expect("title");
        })
        .expect_err("title is the server's");
        assert_eq!(
            (err.code, err.field.as_str()),
            (ErrorCode::FieldForbidden, "title")
        );
        // Creating one, even as its owner: every required field is the server's.
        let created = created.expect("the creating change");
        let touched = touched_fields(&created, doc.document()).expect("decodes");
        let err = authorize_write(
            &NOTIFICATIONS,
            recipient,
            Some(Relation::Owner),
            None,
            &before,
            &touched,
        )
        .expect_err("clients never create notifications");
        assert_eq!(err.code, ErrorCode::FieldForbidden);
    }
}
