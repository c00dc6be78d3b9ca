//! Collection schemas: which fields a record document of each synced collection holds, their
//! types, and which are required or server-owned. The server materializes each field into the
//! column of the collection's typed table named here; a server test checks the tables match.

/// The type of one record field, and how it is stored in the automerge root map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// A string scalar of at most `max_len` characters (last writer wins on concurrent edits).
    String { max_len: usize },
    /// A 64-bit integer scalar.
    Int,
    /// A boolean scalar.
    Bool,
    /// An automerge timestamp scalar (milliseconds since the Unix epoch, UTC).
    Timestamp,
    /// A string scalar restricted to the listed values.
    Enum(&'static [&'static str]),
    /// A string scalar holding the UUID of a document of the named collection.
    Ref(&'static str),
    /// A list object of distinct UUID strings, each naming a document of the named collection.
    /// Edited element by element so that concurrent additions merge; an empty list and an
    /// absent field are the same value (absent).
    RefList(&'static str),
}

/// One field of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldDef {
    /// Key in the record document's root map.
    pub name: &'static str,
    /// Column in the typed Postgres table (differs from `name` where SQL reserves the word).
    pub column: &'static str,
    pub ty: FieldType,
    /// The merged record must hold a non-empty value.
    pub required: bool,
    /// Only the server writes it; it never appears in a client's CRDT document.
    pub server_owned: bool,
}

impl FieldDef {
    const fn client(name: &'static str, ty: FieldType, required: bool) -> Self {
        Self {
            name,
            column: name,
            ty,
            required,
            server_owned: false,
        }
    }
    const fn server(name: &'static str, ty: FieldType) -> Self {
        Self {
            name,
            column: name,
            ty,
            required: false,
            server_owned: true,
        }
    }
    const fn column(mut self, column: &'static str) -> Self {
        self.column = column;
        self
    }
}

/// The schema of one synced record collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CollectionSchema {
    pub name: &'static str,
    /// The typed table the server materializes records into.
    pub table: &'static str,
    pub fields: &'static [FieldDef],
}

impl CollectionSchema {
    pub fn field(&self, name: &str) -> Option<&'static FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Fields a client writes in its CRDT document.
    pub fn client_fields(&self) -> impl Iterator<Item = &'static FieldDef> {
        self.fields.iter().filter(|f| !f.server_owned)
    }
}

pub const TASK_STATUSES: &[&str] = &[
    "backlog",
    "todo",
    "in_progress",
    "in_review",
    "done",
    "cancelled",
];
pub const TASK_PRIORITIES: &[&str] = &["none", "low", "medium", "high", "urgent"];

/// Tasks: the first synced record collection.
pub const TASKS: CollectionSchema = CollectionSchema {
    name: "tasks",
    table: "tasks",
    fields: &[
        FieldDef::client("title", FieldType::String { max_len: 500 }, true),
        FieldDef::client("description", FieldType::String { max_len: 100_000 }, false),
        FieldDef::client("status", FieldType::Enum(TASK_STATUSES), true),
        FieldDef::client("priority", FieldType::Enum(TASK_PRIORITIES), false),
        FieldDef::client("due_date", FieldType::Timestamp, false),
        FieldDef::client("assignee_id", FieldType::Ref("users"), false),
        FieldDef::client("board_id", FieldType::Ref("boards"), false),
        // `column` is an SQL keyword, hence the column name.
        FieldDef::client("column", FieldType::String { max_len: 200 }, false)
            .column("board_column"),
        // A fractional index: tasks sort by it as a string.
        FieldDef::client("position", FieldType::String { max_len: 200 }, false),
        FieldDef::client("parent_id", FieldType::Ref("tasks"), false),
        // Tasks this one depends on (blocked by). The server refuses dependency cycles.
        FieldDef::client("depends_on", FieldType::RefList("tasks"), false),
        // Soft delete: a client deletes by setting it, restores by clearing it.
        FieldDef::client("deleted_at", FieldType::Timestamp, false),
        FieldDef::server("created_by", FieldType::Ref("users")),
        FieldDef::server("created_at", FieldType::Timestamp),
        FieldDef::server("updated_at", FieldType::Timestamp),
    ],
};

/// Notes: a title and metadata as a record document; the body is the text document of the same
/// id in [`NOTE_BODIES`].
pub const NOTES: CollectionSchema = CollectionSchema {
    name: "notes",
    table: "notes",
    fields: &[
        FieldDef::client("title", FieldType::String { max_len: 500 }, true),
        FieldDef::client("pinned", FieldType::Bool, false),
        FieldDef::client("deleted_at", FieldType::Timestamp, false),
        FieldDef::server("created_by", FieldType::Ref("users")),
        FieldDef::server("created_at", FieldType::Timestamp),
        FieldDef::server("updated_at", FieldType::Timestamp),
    ],
};

/// Kinds of business document.
pub const DOCUMENT_TYPES: &[&str] = &["contract", "proposal", "memo", "other"];
/// The life cycle of a document: draft → internal_review → client_review → sent → signed.
pub const DOCUMENT_STATUSES: &[&str] = &[
    "draft",
    "internal_review",
    "client_review",
    "sent",
    "signed",
];

/// Business documents (contracts, ...): metadata and structured contract fields as a record
/// document; the body is the text document of the same id in [`DOCUMENT_BODIES`]. The typed
/// table is `document_records` because `documents` holds the server's CRDT states.
pub const DOCUMENTS: CollectionSchema = CollectionSchema {
    name: "documents",
    table: "document_records",
    fields: &[
        FieldDef::client("title", FieldType::String { max_len: 500 }, true),
        // `type` is an SQL keyword, hence the column name.
        FieldDef::client("type", FieldType::Enum(DOCUMENT_TYPES), true).column("doc_type"),
        FieldDef::client("status", FieldType::Enum(DOCUMENT_STATUSES), true),
        FieldDef::client("counterparty_id", FieldType::Ref("contacts"), false),
        FieldDef::client("payment_terms", FieldType::String { max_len: 500 }, false),
        // Money: minor units (cents) in `amount`, ISO 4217 code in `currency`.
        FieldDef::client("amount", FieldType::Int, false),
        FieldDef::client("currency", FieldType::String { max_len: 3 }, false),
        FieldDef::client("effective_date", FieldType::Timestamp, false),
        FieldDef::client("deleted_at", FieldType::Timestamp, false),
        FieldDef::server("created_by", FieldType::Ref("users")),
        FieldDef::server("created_at", FieldType::Timestamp),
        FieldDef::server("updated_at", FieldType::Timestamp),
    ],
};

/// Kinds of contact.
pub const CONTACT_TYPES: &[&str] = &["lead", "client", "vendor", "partner"];
/// Whether a contact is worked with: `active`, `inactive` (kept, not currently worked with) or
/// `archived` (kept for history only). Archiving is not deleting: `deleted_at` is the trash.
pub const CONTACT_STATUSES: &[&str] = &["active", "inactive", "archived"];

/// Contacts: people and companies an org works with.
///
/// Custom fields are one JSON-object string (`custom_fields`, e.g. `{"industry":"retail"}`),
/// written as a whole (last writer wins): a per-key automerge map would merge concurrent edits of
/// different keys, but needs a new field type in every reader (client SQLite rows, rules,
/// materialization); the string keeps contacts on the existing field types.
pub const CONTACTS: CollectionSchema = CollectionSchema {
    name: "contacts",
    table: "contacts",
    fields: &[
        // `type` is an SQL keyword, hence the column name.
        FieldDef::client("type", FieldType::Enum(CONTACT_TYPES), true).column("contact_type"),
        FieldDef::client("status", FieldType::Enum(CONTACT_STATUSES), true),
        FieldDef::client("first_name", FieldType::String { max_len: 200 }, false),
        FieldDef::client("last_name", FieldType::String { max_len: 200 }, false),
        FieldDef::client("email", FieldType::String { max_len: 320 }, false),
        FieldDef::client("phone", FieldType::String { max_len: 50 }, false),
        FieldDef::client("company", FieldType::String { max_len: 200 }, false),
        FieldDef::client("source", FieldType::String { max_len: 200 }, false),
        FieldDef::client("assigned_to", FieldType::Ref("users"), false),
        FieldDef::client(
            "custom_fields",
            FieldType::String { max_len: 20_000 },
            false,
        ),
        FieldDef::client("deleted_at", FieldType::Timestamp, false),
        FieldDef::server("created_by", FieldType::Ref("users")),
        FieldDef::server("created_at", FieldType::Timestamp),
        FieldDef::server("updated_at", FieldType::Timestamp),
    ],
};

/// The collections a comment may be about.
pub const COMMENTABLE: &[&str] = &["tasks", "notes", "documents", "contacts"];

/// Comments on any record, threaded by `parent_id` (a reply names the comment it answers).
/// The author is `created_by`; `@[Name](user:<uuid>)` in the body mentions a user (see
/// [`crate::mentions`]). Editing sets `edited_at`; deleting sets `deleted_at` (soft).
pub const COMMENTS: CollectionSchema = CollectionSchema {
    name: "comments",
    table: "comments",
    fields: &[
        FieldDef::client("record_collection", FieldType::Enum(COMMENTABLE), true),
        FieldDef::client("record_id", FieldType::Ref("records"), true),
        FieldDef::client("parent_id", FieldType::Ref("comments"), false),
        FieldDef::client("body", FieldType::String { max_len: 20_000 }, true),
        FieldDef::client("edited_at", FieldType::Timestamp, false),
        FieldDef::client("deleted_at", FieldType::Timestamp, false),
        FieldDef::server("created_by", FieldType::Ref("users")),
        FieldDef::server("created_at", FieldType::Timestamp),
        FieldDef::server("updated_at", FieldType::Timestamp),
    ],
};

/// In-app notifications: one record per (event, recipient), created by the server only and
/// readable by the recipient only (on every device, offline too). The recipient marks it read by
/// setting `read_at` (and unread by clearing it); no client writes any other field. The link to
/// what it is about is `entity_collection` + `entity_id`.
pub const NOTIFICATIONS: CollectionSchema = CollectionSchema {
    name: "notifications",
    table: "notifications",
    fields: &[
        FieldDef::client("recipient_id", FieldType::Ref("users"), true),
        FieldDef::client("event_type", FieldType::String { max_len: 100 }, true),
        FieldDef::client("event_id", FieldType::Ref("domain_events"), true),
        FieldDef::client("title", FieldType::String { max_len: 500 }, true),
        FieldDef::client("body", FieldType::String { max_len: 2_000 }, false),
        FieldDef::client(
            "entity_collection",
            FieldType::String { max_len: 100 },
            false,
        ),
        FieldDef::client("entity_id", FieldType::Ref("records"), false),
        FieldDef::client("actor_id", FieldType::Ref("users"), false),
        FieldDef::client("read_at", FieldType::Timestamp, false),
        FieldDef::server("created_by", FieldType::Ref("users")),
        FieldDef::server("created_at", FieldType::Timestamp),
        FieldDef::server("updated_at", FieldType::Timestamp),
    ],
};

/// Collections whose every document belongs to one user (its `recipient_id`) and is readable
/// by that user only, whatever the org roles and shares: the server's authorization model keeps
/// their owners apart from relation tuples.
pub const PERSONAL_COLLECTIONS: &[&str] = &[NOTIFICATIONS.name];

/// Whether documents of `name` are personal (see [`PERSONAL_COLLECTIONS`]).
pub fn is_personal(name: &str) -> bool {
    PERSONAL_COLLECTIONS.contains(&name)
}

/// Every synced record collection.
pub const COLLECTIONS: &[&CollectionSchema] = &[
    &TASKS,
    &NOTES,
    &DOCUMENTS,
    &CONTACTS,
    &COMMENTS,
    &NOTIFICATIONS,
];

/// A collection of text documents (Yjs, see [`crate::text`]): the rich-text body of each record
/// of its `parent` collection. A body has the id of its record, its readers and writers are the
/// record's (by relation: viewers read, suggesters suggest, editors edit), and it can only
/// exist once its record does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextCollection {
    pub name: &'static str,
    pub parent: &'static CollectionSchema,
}

/// Bodies of [`NOTES`].
pub const NOTE_BODIES: TextCollection = TextCollection {
    name: "note_bodies",
    parent: &NOTES,
};

/// Bodies of [`DOCUMENTS`] (contract texts, with redlines).
pub const DOCUMENT_BODIES: TextCollection = TextCollection {
    name: "document_bodies",
    parent: &DOCUMENTS,
};

/// Every synced text collection.
pub const TEXT_COLLECTIONS: &[&TextCollection] = &[&NOTE_BODIES, &DOCUMENT_BODIES];

/// Looks a text collection up by name.
pub fn text_collection(name: &str) -> Option<&'static TextCollection> {
    TEXT_COLLECTIONS.iter().copied().find(|c| c.name == name)
}

/// The text collection holding the bodies of `parent`'s records, if it has one.
pub fn body_collection(parent: &str) -> Option<&'static TextCollection> {
    TEXT_COLLECTIONS
        .iter()
        .copied()
        .find(|c| c.parent.name == parent)
}

/// Whether `name` is a synced collection of either kind.
pub fn is_synced(name: &str) -> bool {
    collection(name).is_some() || text_collection(name).is_some()
}

/// Looks a collection up by name.
pub fn collection(name: &str) -> Option<&'static CollectionSchema> {
    COLLECTIONS.iter().copied().find(|c| c.name == name)
}
