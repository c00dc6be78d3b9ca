//! Typed helpers for the `tasks` collection on top of the generic record operations: a
//! [`Task`] struct instead of a field map, drafts and patches with one member per field.
//! Values are still validated by the protocol schema (e.g. `status` must be one of
//! `syncline_protocol::schema::TASK_STATUSES`).

use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::TASKS;
use uuid::Uuid;

use crate::client::Client;
use crate::error::Result;
use crate::query::Query;
use crate::row::Row;

/// A task as materialized locally. Server-owned fields are `None` until known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub status: String,
    pub priority: Option<String>,
    /// Unix milliseconds.
    pub due_date: Option<i64>,
    pub assignee_id: Option<Uuid>,
    pub board_id: Option<Uuid>,
    /// Board column (field `column`).
    pub column: Option<String>,
    /// Fractional index; tasks sort by it as a string.
    pub position: Option<String>,
    pub parent_id: Option<Uuid>,
    /// Tasks this one depends on (is blocked by), in list order; empty when none.
    pub depends_on: Vec<Uuid>,
    pub deleted_at: Option<i64>,
    pub created_by: Option<Uuid>,
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
}

impl Task {
    pub fn from_row(row: &Row) -> Self {
        let text = |f: &str| row.get_str(f).map(str::to_owned);
        Self {
            id: row.id,
            // Required fields are present in every valid record; an invalid one (never
            // accepted by the server) shows empty rather than failing the whole list.
            title: text("title").unwrap_or_default(),
            description: text("description"),
            status: text("status").unwrap_or_default(),
            priority: text("priority"),
            due_date: row.get_timestamp("due_date"),
            assignee_id: row.get_ref("assignee_id"),
            board_id: row.get_ref("board_id"),
            column: text("column"),
            position: text("position"),
            parent_id: row.get_ref("parent_id"),
            depends_on: row.get_ref_list("depends_on"),
            deleted_at: row.get_timestamp("deleted_at"),
            created_by: row.get_ref("created_by"),
            created_at: row.get_timestamp("created_at"),
            updated_at: row.get_timestamp("updated_at"),
        }
    }
}

/// A new task: `title` and `status` are required, the rest optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskDraft {
    pub title: String,
    pub status: String,
    pub description: Option<String>,
    pub priority: Option<String>,
    pub due_date: Option<i64>,
    pub assignee_id: Option<Uuid>,
    pub board_id: Option<Uuid>,
    pub column: Option<String>,
    pub position: Option<String>,
    pub parent_id: Option<Uuid>,
    /// Distinct task ids; may be empty.
    pub depends_on: Vec<Uuid>,
}

impl TaskDraft {
    pub fn new(title: impl Into<String>, status: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            status: status.into(),
            ..Self::default()
        }
    }

    fn fields(&self) -> Vec<(&'static str, FieldValue)> {
        let mut fields = vec![
            ("title", FieldValue::String(self.title.clone())),
            ("status", FieldValue::String(self.status.clone())),
            // Always written, even empty: the list object then exists from the task's first
            // change, so dependencies later added concurrently by several replicas merge into
            // the same list instead of competing to create it.
            ("depends_on", FieldValue::RefList(self.depends_on.clone())),
        ];
        let optional = [
            (
                "description",
                self.description.clone().map(FieldValue::String),
            ),
            ("priority", self.priority.clone().map(FieldValue::String)),
            ("due_date", self.due_date.map(FieldValue::Timestamp)),
            ("assignee_id", self.assignee_id.map(FieldValue::Ref)),
            ("board_id", self.board_id.map(FieldValue::Ref)),
            ("column", self.column.clone().map(FieldValue::String)),
            ("position", self.position.clone().map(FieldValue::String)),
            ("parent_id", self.parent_id.map(FieldValue::Ref)),
        ];
        fields.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        fields
    }
}

/// Changes to a task: `None` leaves a field alone; for optional fields `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub status: Option<String>,
    pub description: Option<Option<String>>,
    pub priority: Option<Option<String>>,
    pub due_date: Option<Option<i64>>,
    pub assignee_id: Option<Option<Uuid>>,
    pub board_id: Option<Option<Uuid>>,
    pub column: Option<Option<String>>,
    pub position: Option<Option<String>>,
    pub parent_id: Option<Option<Uuid>>,
    /// Replaces the whole list (an empty list clears it); only the differences are written, so
    /// concurrent edits of other elements merge.
    pub depends_on: Option<Vec<Uuid>>,
}

impl TaskPatch {
    fn fields(&self) -> Vec<(&'static str, Option<FieldValue>)> {
        let string = |v: &Option<String>| v.clone().map(FieldValue::String);
        let mut fields = Vec::new();
        if let Some(title) = &self.title {
            fields.push(("title", Some(FieldValue::String(title.clone()))));
        }
        if let Some(status) = &self.status {
            fields.push(("status", Some(FieldValue::String(status.clone()))));
        }
        let optional = [
            ("description", self.description.as_ref().map(string)),
            ("priority", self.priority.as_ref().map(string)),
            (
                "due_date",
                self.due_date.map(|v| v.map(FieldValue::Timestamp)),
            ),
            (
                "assignee_id",
                self.assignee_id.map(|v| v.map(FieldValue::Ref)),
            ),
            ("board_id", self.board_id.map(|v| v.map(FieldValue::Ref))),
            ("column", self.column.as_ref().map(string)),
            ("position", self.position.as_ref().map(string)),
            ("parent_id", self.parent_id.map(|v| v.map(FieldValue::Ref))),
            (
                "depends_on",
                self.depends_on
                    .clone()
                    .map(|ids| Some(FieldValue::RefList(ids))),
            ),
        ];
        fields.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))));
        fields
    }
}

/// Common task list filters; results are ordered by `position`, then creation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskQuery {
    pub status: Option<String>,
    pub assignee_id: Option<Uuid>,
    pub board_id: Option<Uuid>,
    pub parent_id: Option<Uuid>,
    pub include_deleted: bool,
    pub limit: Option<u32>,
}

impl TaskQuery {
    fn to_query(&self) -> Query {
        let mut q = Query::new()
            .include_deleted(self.include_deleted)
            .order_by("position");
        if let Some(status) = &self.status {
            q = q.eq_str("status", status);
        }
        for (field, id) in [
            ("assignee_id", self.assignee_id),
            ("board_id", self.board_id),
            ("parent_id", self.parent_id),
        ] {
            if let Some(id) = id {
                q = q.eq(field, FieldValue::Ref(id));
            }
        }
        q.limit = self.limit;
        q
    }
}

impl Client {
    pub fn create_task(&mut self, draft: &TaskDraft) -> Result<Uuid> {
        self.create(TASKS.name, draft.fields())
    }

    /// Returns false when the patch changed nothing.
    pub fn update_task(&mut self, id: Uuid, patch: &TaskPatch) -> Result<bool> {
        self.update(TASKS.name, id, patch.fields())
    }

    pub fn delete_task(&mut self, id: Uuid) -> Result<bool> {
        self.delete(TASKS.name, id)
    }

    pub fn get_task(&self, id: Uuid) -> Result<Option<Task>> {
        Ok(self.get(TASKS.name, id)?.as_ref().map(Task::from_row))
    }

    pub fn query_tasks(&self, query: &TaskQuery) -> Result<Vec<Task>> {
        Ok(self
            .query(TASKS.name, &query.to_query())?
            .iter()
            .map(Task::from_row)
            .collect())
    }
}
