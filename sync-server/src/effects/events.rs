//! Domain events from the before/after of a record's fields.
//!
//! Every accepted record change yields `<entity>.created` or `<entity>.updated` (with the
//! changed fields), plus the specific events integrations and notifications care about:
//!
//! | event | when |
//! | --- | --- |
//! | `task.assigned` | `assignee_id` set to a user (at creation or later) |
//! | `task.status_changed` | `status` changed on an existing task |
//! | `task.completed` | `status` became `done` |
//! | `contact.converted` | a contact's `type` went from `lead` to `client` |
//! | `document.status_changed` | a business document's `status` changed |
//! | `comment.created` | a comment was created |
//! | `user.mentioned` | a comment's body mentions a user it did not mention before (one event per user) |
//! | `<entity>.deleted` / `<entity>.restored` | `deleted_at` set / cleared |
//! | `document.suggestion_received` | a suggester's edit of a document body was accepted (see `merge::text`) |

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use syncline_protocol::mentions::mentioned_users;
use syncline_protocol::record::{FieldValue, Record};
use syncline_protocol::schema::CollectionSchema;
use uuid::Uuid;

/// An event before it is stored: type and data (the rest comes from the change).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_type: String,
    pub data: Value,
}

/// The singular entity name of a collection (`tasks` -> `task`).
pub fn entity_name(collection: &str) -> &str {
    collection.strip_suffix('s').unwrap_or(collection)
}

/// A field value as JSON, the way the REST bridge shows it.
pub fn value_json(value: Option<&FieldValue>) -> Value {
    match value {
        None => Value::Null,
        Some(FieldValue::String(s)) => Value::String(s.clone()),
        Some(FieldValue::Int(i)) => Value::from(*i),
        Some(FieldValue::Bool(b)) => Value::Bool(*b),
        Some(FieldValue::Timestamp(ms)) => DateTime::<Utc>::from_timestamp_millis(*ms)
            .map_or(Value::Null, |t| {
                Value::String(crate::rest::records::timestamp(t))
            }),
        Some(FieldValue::Ref(id)) => Value::String(id.to_string()),
        Some(FieldValue::RefList(ids)) => {
            Value::Array(ids.iter().map(|i| Value::String(i.to_string())).collect())
        }
    }
}

/// The record's client fields as a JSON object, with its id.
pub fn record_json(id: Uuid, record: &Record) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(id.to_string()));
    for (name, value) in record {
        out.insert((*name).into(), value_json(Some(value)));
    }
    Value::Object(out)
}

/// `{field: {"from", "to"}}` for every client field whose value differs.
pub fn field_changes(schema: &CollectionSchema, before: Option<&Record>, after: &Record) -> Value {
    let mut changes = Map::new();
    for def in schema.client_fields() {
        let old = before.and_then(|r| r.get(def.name));
        let new = after.get(def.name);
        if old != new {
            changes.insert(
                def.name.into(),
                json!({"from": value_json(old), "to": value_json(new)}),
            );
        }
    }
    Value::Object(changes)
}

fn string<'a>(record: Option<&'a Record>, field: &str) -> Option<&'a str> {
    match record?.get(field) {
        Some(FieldValue::String(s)) => Some(s),
        _ => None,
    }
}

fn reference(record: Option<&Record>, field: &str) -> Option<Uuid> {
    match record?.get(field) {
        Some(FieldValue::Ref(id)) => Some(*id),
        _ => None,
    }
}

/// The events of one accepted change of record `id`: `before` is the record it replaced (`None`
/// when created), `after` the merged record. Empty when no client field changed.
pub fn derive(
    schema: &CollectionSchema,
    id: Uuid,
    before: Option<&Record>,
    after: &Record,
) -> Vec<NewEvent> {
    // A personal record (a user's notification) is that user's alone: an org-wide event would
    // hand its text to webhooks and other handlers. Its changes are still audited.
    if syncline_protocol::schema::is_personal(schema.name) {
        return Vec::new();
    }
    let changes = field_changes(schema, before, after);
    if before.is_some() && changes.as_object().is_some_and(Map::is_empty) {
        return Vec::new();
    }
    let entity = entity_name(schema.name);
    let base = json!({"record": record_json(id, after), "changes": changes});
    let with = |extra: Value| {
        let mut data = base.clone();
        if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        data
    };
    let mut events = Vec::new();
    let mut push = |event_type: String, data: Value| events.push(NewEvent { event_type, data });
    let created = before.is_none();
    push(
        format!("{entity}.{}", if created { "created" } else { "updated" }),
        base.clone(),
    );
    let was_deleted = before.is_some_and(|r| r.contains_key("deleted_at"));
    let is_deleted = after.contains_key("deleted_at");
    if !created && !was_deleted && is_deleted {
        push(format!("{entity}.deleted"), base.clone());
    }
    if !created && was_deleted && !is_deleted {
        push(format!("{entity}.restored"), base.clone());
    }
    match schema.name {
        "tasks" => {
            let assignee = reference(Some(after), "assignee_id");
            if let Some(assignee) = assignee
                && reference(before, "assignee_id") != Some(assignee)
            {
                push(
                    "task.assigned".into(),
                    with(json!({
                        "assignee_id": assignee.to_string(),
                        "previous_assignee_id": reference(before, "assignee_id").map(|u| u.to_string()),
                    })),
                );
            }
            let (old, new) = (string(before, "status"), string(Some(after), "status"));
            if !created && old != new {
                push(
                    "task.status_changed".into(),
                    with(json!({"from": old, "to": new})),
                );
            }
            if new == Some("done") && old != Some("done") {
                push("task.completed".into(), base.clone());
            }
        }
        "contacts"
            if string(before, "type") == Some("lead")
                && string(Some(after), "type") == Some("client") =>
        {
            push("contact.converted".into(), base.clone());
        }
        "documents" => {
            let (old, new) = (string(before, "status"), string(Some(after), "status"));
            if !created && old != new {
                push(
                    "document.status_changed".into(),
                    with(json!({"from": old, "to": new})),
                );
            }
        }
        _ => {}
    }
    if schema.name == "comments" && !is_deleted {
        let old: Vec<Uuid> = string(before, "body")
            .map(mentioned_users)
            .unwrap_or_default();
        for user in string(Some(after), "body")
            .map(mentioned_users)
            .unwrap_or_default()
        {
            if !old.contains(&user) {
                push(
                    "user.mentioned".into(),
                    with(json!({"mentioned_user_id": user.to_string()})),
                );
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncline_protocol::schema::{COMMENTS, CONTACTS, TASKS};

    fn rec(fields: &[(&'static str, FieldValue)]) -> Record {
        fields.iter().cloned().collect()
    }
    fn s(v: &str) -> FieldValue {
        FieldValue::String(v.into())
    }
    fn types(events: &[NewEvent]) -> Vec<&str> {
        events.iter().map(|e| e.event_type.as_str()).collect()
    }

    #[test]
    fn task_events_follow_the_fields_that_changed() {
        let id = Uuid::now_v7();
        let alice = Uuid::now_v7();
        let created = rec(&[("title", s("a")), ("status", s("todo"))]);
        assert_eq!(types(&derive(&TASKS, id, None, &created)), ["task.created"]);

        let assigned = rec(&[
            ("title", s("a")),
            ("status", s("todo")),
            ("assignee_id", FieldValue::Ref(alice)),
        ]);
        let events = derive(&TASKS, id, Some(&created), &assigned);
        assert_eq!(types(&events), ["task.updated", "task.assigned"]);
        assert_eq!(events[1].data["assignee_id"], alice.to_string());
        assert_eq!(
            events[1].data["changes"]["assignee_id"]["from"],
            Value::Null
        );

        let done = rec(&[
            ("title", s("a")),
            ("status", s("done")),
            ("assignee_id", FieldValue::Ref(alice)),
        ]);
        let events = derive(&TASKS, id, Some(&assigned), &done);
        assert_eq!(
            types(&events),
            ["task.updated", "task.status_changed", "task.completed"]
        );
        assert_eq!(events[1].data["from"], "todo");
        assert!(
            derive(&TASKS, id, Some(&done), &done).is_empty(),
            "no change, no event"
        );
    }

    #[test]
    fn personal_records_raise_no_events() {
        use syncline_protocol::schema::NOTIFICATIONS;
        let id = Uuid::now_v7();
        let unread = rec(&[("title", s("You were assigned"))]);
        let mut read = unread.clone();
        read.insert("read_at", FieldValue::Timestamp(1));
        assert!(derive(&NOTIFICATIONS, id, None, &unread).is_empty());
        assert!(derive(&NOTIFICATIONS, id, Some(&unread), &read).is_empty());
    }

    #[test]
    fn conversions_deletions_and_mentions() {
        let id = Uuid::now_v7();
        let lead = rec(&[("type", s("lead")), ("status", s("active"))]);
        let client = rec(&[("type", s("client")), ("status", s("active"))]);
        assert_eq!(
            types(&derive(&CONTACTS, id, Some(&lead), &client)),
            ["contact.updated", "contact.converted"]
        );
        let mut deleted = client.clone();
        deleted.insert("deleted_at", FieldValue::Timestamp(1));
        assert_eq!(
            types(&derive(&CONTACTS, id, Some(&client), &deleted)),
            ["contact.updated", "contact.deleted"]
        );

        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let body = |text: String| {
            rec(&[
                ("record_collection", s("tasks")),
                ("record_id", FieldValue::Ref(Uuid::nil())),
                ("body", s(&text)),
            ])
        };
        let first = body(format!("hey @[A](user:{a})"));
        let events = derive(&COMMENTS, id, None, &first);
        assert_eq!(types(&events), ["comment.created", "user.mentioned"]);
        assert_eq!(events[1].data["mentioned_user_id"], a.to_string());
        // An edit that adds B mentions B only.
        let edited = body(format!("hey @[A](user:{a}) and @[B](user:{b})"));
        let events = derive(&COMMENTS, id, Some(&first), &edited);
        assert_eq!(types(&events), ["comment.updated", "user.mentioned"]);
        assert_eq!(events[1].data["mentioned_user_id"], b.to_string());
    }
}
