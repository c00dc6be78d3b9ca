//! Local record operations with no server: create, update, soft delete, restore, get, query,
//! typed task helpers, and refusal of invalid input without storing anything.

mod common;

use client_core::{ClientError, ErrorCode, FieldValue, Query, TaskDraft, TaskPatch, TaskQuery};
use common::{s, temp_client};
use uuid::Uuid;

#[test]
fn create_update_delete_and_query_offline() {
    let (mut c, _path, _dir) = temp_client();
    let assignee = Uuid::now_v7();
    let a = c
        .create(
            "tasks",
            [
                ("title", s("Write spec")),
                ("status", s("todo")),
                ("assignee_id", FieldValue::Ref(assignee)),
            ],
        )
        .expect("create a");
    let b = c
        .create(
            "tasks",
            [
                ("title", s("Review")),
                ("status", s("in_review")),
                ("position", s("b")),
            ],
        )
        .expect("b");
    let d = c
        .create(
            "tasks",
            [
                ("title", s("Ship")),
                ("status", s("todo")),
                ("position", s("a")),
            ],
        )
        .expect("d");
    assert_eq!(c.pending_count(), 3);

    let row = c.get("tasks", a).expect("get").expect("row a");
    assert_eq!(row.get_str("title"), Some("Write spec"));
    assert_eq!(row.get_ref("assignee_id"), Some(assignee));
    assert!(!row.is_deleted());

    assert!(
        c.update(
            "tasks",
            a,
            [("status", Some(s("done"))), ("assignee_id", None)]
        )
        .expect("update")
    );
    let row = c.get("tasks", a).expect("get").expect("row a");
    assert_eq!(row.get_str("status"), Some("done"));
    assert_eq!(row.get_ref("assignee_id"), None);
    assert_eq!(c.pending_count(), 4);

    // Writing the same value again is still a change (a new op); clearing an absent field is not.
    assert!(
        !c.update("tasks", a, [("assignee_id", None::<FieldValue>)])
            .expect("no-op")
    );
    assert_eq!(c.pending_count(), 4);

    let todo = c
        .query("tasks", &Query::new().eq_str("status", "todo"))
        .expect("query");
    assert_eq!(todo.iter().map(|r| r.id).collect::<Vec<_>>(), vec![d]);

    let by_position = c
        .query("tasks", &Query::new().order_by("position"))
        .expect("query");
    // Absent position sorts first, then "a", then "b".
    assert_eq!(
        by_position.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a, d, b]
    );
    let limited = c
        .query("tasks", &Query::new().order_by_desc("position").limit(1))
        .expect("query");
    assert_eq!(limited.iter().map(|r| r.id).collect::<Vec<_>>(), vec![b]);

    assert!(c.delete("tasks", b).expect("delete"));
    assert!(!c.delete("tasks", b).expect("delete twice is a no-op"));
    assert!(
        c.get("tasks", b)
            .expect("get")
            .expect("still stored")
            .is_deleted()
    );
    let visible = c.query("tasks", &Query::new()).expect("query");
    assert_eq!(visible.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a, d]);
    let all = c
        .query("tasks", &Query::new().include_deleted(true))
        .expect("query");
    assert_eq!(all.len(), 3);

    assert!(c.restore("tasks", b).expect("restore"));
    assert_eq!(c.query("tasks", &Query::new()).expect("query").len(), 3);
    assert_eq!(c.pending_count(), 6);

    // Every write is one outbox entry with strictly increasing seqs.
    let seqs: Vec<u64> = c.outbox().expect("outbox").iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
}

#[test]
fn invalid_input_is_refused_with_its_code_and_stores_nothing() {
    let (mut c, _path, _dir) = temp_client();
    let id = c
        .create("tasks", [("title", s("Valid")), ("status", s("todo"))])
        .expect("create");
    let before_row = c.get("tasks", id).expect("get");
    let before_outbox = c.outbox().expect("outbox");

    type Patch = Vec<(&'static str, Option<FieldValue>)>;
    let cases: Vec<(Patch, ErrorCode)> = vec![
        (
            vec![("status", Some(s("nope")))],
            ErrorCode::InvalidEnumValue,
        ),
        (
            vec![("title", Some(FieldValue::Int(3)))],
            ErrorCode::InvalidFieldType,
        ),
        (
            vec![("title", Some(s("   ")))],
            ErrorCode::MissingRequiredField,
        ),
        (vec![("title", None)], ErrorCode::MissingRequiredField),
        (
            vec![("title", Some(s(&"x".repeat(501))))],
            ErrorCode::InvalidFieldValue,
        ),
        (vec![("colour", Some(s("red")))], ErrorCode::UnknownField),
        (
            vec![("created_by", Some(FieldValue::Ref(Uuid::nil())))],
            ErrorCode::ServerOwnedField,
        ),
        // A valid first field does not get stored when a later one fails.
        (
            vec![
                ("description", Some(s("ok"))),
                ("priority", Some(s("extreme"))),
            ],
            ErrorCode::InvalidEnumValue,
        ),
    ];
    for (patch, code) in cases {
        let err = c
            .update("tasks", id, patch.clone())
            .expect_err("must be refused");
        assert_eq!(err.code(), code, "{patch:?}: {err}");
        assert!(matches!(err, ClientError::Invalid { .. }));
    }
    assert_eq!(c.get("tasks", id).expect("get"), before_row);
    assert_eq!(c.outbox().expect("outbox"), before_outbox);
    assert_eq!(c.pending_count(), 1);

    // A create missing a required field stores no document, row or outbox entry.
    let err = c
        .create("tasks", [("title", s("No status"))])
        .expect_err("missing status");
    assert_eq!(err.code(), ErrorCode::MissingRequiredField);
    let err = c
        .create_task(&TaskDraft::new("Bad", "later"))
        .expect_err("bad status");
    assert_eq!(err.code(), ErrorCode::InvalidEnumValue);
    assert_eq!(
        c.query("tasks", &Query::new().include_deleted(true))
            .expect("query")
            .len(),
        1
    );
    assert_eq!(c.pending_count(), 1);

    assert_eq!(
        c.create("widgets", [("title", s("x"))])
            .expect_err("collection")
            .code(),
        ErrorCode::UnknownCollection
    );
    assert_eq!(
        c.update("tasks", Uuid::now_v7(), [("title", Some(s("x")))])
            .expect_err("missing")
            .code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        c.query("tasks", &Query::new().eq_str("colour", "red"))
            .expect_err("filter")
            .code(),
        ErrorCode::UnknownField
    );
    assert_eq!(
        c.query("tasks", &Query::new().eq("status", FieldValue::Int(1)))
            .expect_err("filter type")
            .code(),
        ErrorCode::InvalidFieldType
    );
}

#[test]
fn typed_task_helpers() {
    let (mut c, _path, _dir) = temp_client();
    let me = Uuid::now_v7();
    let mut draft = TaskDraft::new("Typed", "backlog");
    draft.assignee_id = Some(me);
    draft.priority = Some("high".into());
    draft.due_date = Some(1_700_000_000_000);
    let id = c.create_task(&draft).expect("create");
    let other = c
        .create_task(&TaskDraft::new("Other", "todo"))
        .expect("create");

    let task = c.get_task(id).expect("get").expect("task");
    assert_eq!(task.title, "Typed");
    assert_eq!(task.status, "backlog");
    assert_eq!(task.priority.as_deref(), Some("high"));
    assert_eq!(task.due_date, Some(1_700_000_000_000));
    assert_eq!(
        task.created_by, None,
        "server-owned fields stay empty locally"
    );

    let patch = TaskPatch {
        status: Some("in_progress".into()),
        priority: Some(None),
        ..TaskPatch::default()
    };
    assert!(c.update_task(id, &patch).expect("update"));
    let task = c.get_task(id).expect("get").expect("task");
    assert_eq!(task.status, "in_progress");
    assert_eq!(task.priority, None);

    let mine = c
        .query_tasks(&TaskQuery {
            assignee_id: Some(me),
            ..TaskQuery::default()
        })
        .expect("query");
    assert_eq!(mine.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
    let todo = c
        .query_tasks(&TaskQuery {
            status: Some("todo".into()),
            ..TaskQuery::default()
        })
        .expect("query");
    assert_eq!(todo.iter().map(|t| t.id).collect::<Vec<_>>(), vec![other]);

    assert!(c.delete_task(other).expect("delete"));
    assert_eq!(
        c.query_tasks(&TaskQuery::default()).expect("query").len(),
        1
    );
    let all = c
        .query_tasks(&TaskQuery {
            include_deleted: true,
            ..TaskQuery::default()
        })
        .expect("query");
    assert!(all.iter().any(|t| t.id == other && t.deleted_at.is_some()));
}

#[test]
fn row_table_has_a_column_per_field_and_indexes() {
    let (c, _path, _dir) = temp_client();
    let conn = c.connection();
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('tasks')")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut expected = vec!["id".to_owned()];
    expected.extend(
        syncline_protocol::schema::TASKS
            .fields
            .iter()
            .map(|f| f.column.to_owned()),
    );
    assert_eq!(columns, expected);
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'tasks'")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    for wanted in ["tasks_status", "tasks_assignee_id"] {
        assert!(
            indexes.iter().any(|i| i == wanted),
            "{wanted} missing from {indexes:?}"
        );
    }
}

/// The raw SQLite value of a task's `depends_on` column.
fn depends_on_column(path: &std::path::Path, id: Uuid) -> Option<String> {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.query_row(
        "SELECT depends_on FROM tasks WHERE id = ?1",
        [id.hyphenated().to_string()],
        |r| r.get(0),
    )
    .expect("row")
}

#[test]
fn task_dependencies_are_stored_read_back_and_cleared() {
    let (mut c, path, _dir) = temp_client();
    let [x, y] = [Uuid::now_v7(), Uuid::now_v7()];
    let id = c
        .create_task(&TaskDraft {
            depends_on: vec![y, x],
            ..TaskDraft::new("Blocked", "todo")
        })
        .expect("create");
    let task = c.get_task(id).expect("get").expect("task");
    assert_eq!(task.depends_on, vec![y, x], "list order kept");
    assert_eq!(
        depends_on_column(&path, id),
        Some(format!("[\"{y}\",\"{x}\"]")),
        "stored as a JSON array"
    );
    let row = c.get("tasks", id).expect("get").expect("row");
    assert_eq!(
        row.get("depends_on"),
        Some(&FieldValue::RefList(vec![y, x]))
    );

    // A patch replaces the list; an untouched list stays.
    let patch = TaskPatch {
        depends_on: Some(vec![x]),
        ..TaskPatch::default()
    };
    assert!(c.update_task(id, &patch).expect("update"));
    assert!(!c.update_task(id, &patch).expect("same list again"));
    let title = TaskPatch {
        title: Some("Still blocked".into()),
        ..TaskPatch::default()
    };
    assert!(c.update_task(id, &title).expect("title"));
    assert_eq!(
        c.get_task(id).expect("get").expect("task").depends_on,
        vec![x]
    );

    // Empty is absent: no field in the row, NULL in SQLite.
    let clear = TaskPatch {
        depends_on: Some(vec![]),
        ..TaskPatch::default()
    };
    assert!(c.update_task(id, &clear).expect("clear"));
    let task = c.get_task(id).expect("get").expect("task");
    assert!(task.depends_on.is_empty());
    assert_eq!(depends_on_column(&path, id), None);
    assert!(
        c.get("tasks", id)
            .expect("get")
            .expect("row")
            .get("depends_on")
            .is_none()
    );

    // A task without dependencies never had any; queries are unaffected by the column.
    let free = c
        .create_task(&TaskDraft::new("Free", "todo"))
        .expect("create");
    assert!(
        c.get_task(free)
            .expect("get")
            .expect("task")
            .depends_on
            .is_empty()
    );
    let todo = c
        .query_tasks(&TaskQuery {
            status: Some("todo".into()),
            ..TaskQuery::default()
        })
        .expect("query");
    assert_eq!(
        todo.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![id, free]
    );
}

#[test]
fn duplicate_dependencies_are_refused_and_nothing_is_stored() {
    let (mut c, _path, _dir) = temp_client();
    let x = Uuid::now_v7();
    let err = c
        .create_task(&TaskDraft {
            depends_on: vec![x, x],
            ..TaskDraft::new("Twice", "todo")
        })
        .expect_err("duplicate");
    assert_eq!(err.code(), ErrorCode::InvalidFieldValue);
    assert!(
        c.query_tasks(&TaskQuery::default())
            .expect("query")
            .is_empty()
    );
    assert_eq!(c.pending_count(), 0);

    let id = c
        .create_task(&TaskDraft::new("Once", "todo"))
        .expect("create");
    let pending = c.pending_count();
    let err = c
        .update_task(
            id,
            &TaskPatch {
                depends_on: Some(vec![x, x]),
                ..TaskPatch::default()
            },
        )
        .expect_err("duplicate");
    assert_eq!(err.code(), ErrorCode::InvalidFieldValue);
    assert_eq!(c.pending_count(), pending);
    assert!(
        c.get_task(id)
            .expect("get")
            .expect("task")
            .depends_on
            .is_empty()
    );
}

#[test]
fn a_replica_from_before_depends_on_gains_the_column_on_open() {
    let (mut c, path, _dir) = temp_client();
    let x = Uuid::now_v7();
    let id = c
        .create_task(&TaskDraft {
            depends_on: vec![x],
            ..TaskDraft::new("Blocked", "todo")
        })
        .expect("create");
    drop(c);
    // The layout of a replica written before the field existed.
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.execute_batch("ALTER TABLE tasks DROP COLUMN depends_on")
        .expect("drop column");
    drop(conn);

    let c = client_core::Client::open(&path).expect("reopen upgrades");
    assert_eq!(
        c.get_task(id).expect("get").expect("task").depends_on,
        vec![x],
        "re-materialized from the document"
    );
    assert_eq!(depends_on_column(&path, id), Some(format!("[\"{x}\"]")));
}
