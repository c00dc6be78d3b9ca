//! Task commands on the local replica. They work offline: each edit is committed to the SQLite
//! file (row + outbox) and pushed by the next `sync` or a running `watch`.

use anyhow::{Context, bail};
use client_core::{Client, Task, TaskDraft, TaskPatch, TaskQuery};
use uuid::Uuid;

/// A local refusal as `code: message`, the code being the protocol's stable error code.
fn refused(e: client_core::ClientError) -> anyhow::Error {
    anyhow::anyhow!("{}: {e}", e.code())
}

/// Finds a task by full id or by the unique end of its id (as printed by `list`; UUIDv7s
/// begin with a timestamp, so their ends are what tells them apart).
pub fn resolve(client: &Client, id: &str) -> anyhow::Result<Uuid> {
    if let Ok(uuid) = Uuid::parse_str(id) {
        return Ok(uuid);
    }
    let all = client.query_tasks(&TaskQuery {
        include_deleted: true,
        ..Default::default()
    })?;
    let matches: Vec<&Task> = all
        .iter()
        .filter(|t| t.id.simple().to_string().ends_with(&id.replace('-', "")))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.id),
        [] => bail!("no task with id {id}"),
        _ => bail!(
            "id {id} matches {} tasks; give more characters",
            matches.len()
        ),
    }
}

pub fn add(
    client: &mut Client,
    title: String,
    status: String,
    priority: Option<String>,
) -> anyhow::Result<Uuid> {
    let mut draft = TaskDraft::new(title, status);
    draft.priority = priority;
    client.create_task(&draft).map_err(refused)
}

/// Sets one field; `-` clears an optional one.
pub fn set(client: &mut Client, id: Uuid, field: &str, value: &str) -> anyhow::Result<()> {
    let clear = value == "-";
    let opt = || (!clear).then(|| value.to_owned());
    let patch = match field {
        "title" => TaskPatch {
            title: Some(value.to_owned()),
            ..Default::default()
        },
        "status" => TaskPatch {
            status: Some(value.to_owned()),
            ..Default::default()
        },
        "description" => TaskPatch {
            description: Some(opt()),
            ..Default::default()
        },
        "priority" => TaskPatch {
            priority: Some(opt()),
            ..Default::default()
        },
        "column" => TaskPatch {
            column: Some(opt()),
            ..Default::default()
        },
        "position" => TaskPatch {
            position: Some(opt()),
            ..Default::default()
        },
        "assignee_id" => TaskPatch {
            assignee_id: Some(if clear {
                None
            } else {
                Some(Uuid::parse_str(value).context("assignee_id must be a UUID")?)
            }),
            ..Default::default()
        },
        other => bail!(
            "cannot set `{other}` here (title, status, description, priority, column, position, assignee_id)"
        ),
    };
    if !client.update_task(id, &patch).map_err(refused)? {
        bail!("task {id} not found");
    }
    Ok(())
}

pub fn list(client: &Client, all: bool) -> anyhow::Result<Vec<Task>> {
    Ok(client.query_tasks(&TaskQuery {
        include_deleted: all,
        ..Default::default()
    })?)
}

/// One line per task: short id, status, priority, title.
pub fn line(task: &Task) -> String {
    let full = task.id.simple().to_string();
    let short = &full[full.len() - 8..];
    let deleted = if task.deleted_at.is_some() {
        " (deleted)"
    } else {
        ""
    };
    format!(
        "{short}  {:<11}  {:<6}  {}{deleted}",
        task.status,
        task.priority.as_deref().unwrap_or("-"),
        task.title
    )
}
