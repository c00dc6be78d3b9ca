//! Who is told about an event, and what they are told.
//!
//! | event | recipients | about |
//! | --- | --- | --- |
//! | `task.assigned` | the new assignee | the task |
//! | `task.status_changed` | the task's creator and watchers (not when it became `done`: `task.completed` tells them) | the task |
//! | `task.completed` | the task's creator and watchers | the task |
//! | `comment.created` | the commented record's creator and watchers, except users the comment mentions (`user.mentioned` tells them) | the record |
//! | `user.mentioned` | the mentioned user | the commented record |
//! | `document.suggestion_received` | the document's creator and users it is shared with as owners | the document |
//! | `contact.converted` | the contact's `assigned_to` | the contact |
//! | `webhook.endpoint_disabled` | the org's owners and admins | the endpoint |
//!
//! Never the actor, never a user who is not a member, and never a user who may not read the
//! record the notification is about (its text quotes the record).

use serde_json::Value;
use syncline_protocol::mentions::mentioned_users;
use syncline_protocol::rules::{OrgRole, Relation};
use syncline_protocol::schema;
use uuid::Uuid;

use super::watchers;
use crate::AppState;
use crate::authz::{OrgAcl, Subject};
use crate::effects::DomainEvent;
use crate::store::Tx;

/// Longest notification body (characters); longer texts are cut with an ellipsis.
const MAX_BODY_CHARS: usize = 500;

/// What to tell whom about one event.
#[derive(Debug, Clone)]
pub struct Notice {
    /// Distinct, in a stable order, without the actor.
    pub recipients: Vec<Uuid>,
    pub title: String,
    /// Plain text; empty when there is nothing more to say than the title.
    pub body: String,
    /// The record it is about (collection, id): the in-app link.
    pub entity: Option<(String, Uuid)>,
    /// The same as a path, for emails.
    pub link: Option<String>,
}

/// Creators watch what they create; commenters watch what they comment on.
pub async fn auto_watch(state: &AppState, event: &DomainEvent) -> Result<(), sqlx::Error> {
    let Some(actor) = event.actor_id else {
        return Ok(());
    };
    let target = if event.event_type == "comment.created" {
        parent_record(&event.data["record"])
    } else if event.event_type.ends_with(".created")
        && schema::collection(&event.collection).is_some()
        && !schema::is_personal(&event.collection)
        && event.collection != "comments"
    {
        Some((event.collection.clone(), event.entity_id))
    } else {
        None
    };
    if let Some((collection, id)) = target {
        let mut tx = crate::db::begin_org(&state.db, event.org_id).await?;
        watchers::watch(&mut tx, event.org_id, &collection, id, actor).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// The recipients and text of a notifying event; `None` when it tells nobody anything.
pub async fn notice(state: &AppState, event: &DomainEvent) -> Result<Option<Notice>, sqlx::Error> {
    let acl = state.acl.get(&state.db, event.org_id).await?;
    let mut tx = crate::db::begin_org(&state.db, event.org_id).await?;
    let notice = build(&mut tx, &acl, event).await?;
    tx.commit().await?;
    Ok(notice)
}

async fn build(
    tx: &mut Tx<'_>,
    acl: &OrgAcl,
    event: &DomainEvent,
) -> Result<Option<Notice>, sqlx::Error> {
    let org = event.org_id;
    let data = &event.data;
    let record = &data["record"];
    let actor = match event.actor_id {
        Some(id) => display_name(tx, id).await?,
        None => "Syncline".to_owned(),
    };
    let own = Some((event.collection.clone(), event.entity_id));
    let (candidates, title, body, entity) = match event.event_type.as_str() {
        "task.assigned" => {
            let Some(assignee) = uuid_at(data, "assignee_id") else {
                return Ok(None);
            };
            let title = format!("{actor} assigned you “{}”", text_at(record, "title"));
            (vec![assignee], title, text_at(record, "description"), own)
        }
        "task.status_changed" | "task.completed" => {
            let to = text_at(data, "to");
            if event.event_type == "task.status_changed" && to == "done" {
                return Ok(None);
            }
            let mut people = watchers::of(tx, org, &event.collection, event.entity_id).await?;
            people.extend(creator(tx, org, event.entity_id).await?);
            let task = text_at(record, "title");
            let title = if event.event_type == "task.completed" {
                format!("{actor} completed “{task}”")
            } else {
                format!("{actor} moved “{task}” to {}", to.replace('_', " "))
            };
            let body = if event.event_type == "task.completed" {
                String::new()
            } else {
                format!("Status: {} → {}", text_at(data, "from"), to)
            };
            (people, title, body, own)
        }
        "comment.created" | "user.mentioned" => {
            let Some((collection, id)) = parent_record(record) else {
                return Ok(None);
            };
            let comment = text_at(record, "body");
            let label = label(tx, org, &collection, id).await?;
            let (people, title) = if event.event_type == "user.mentioned" {
                let Some(user) = uuid_at(data, "mentioned_user_id") else {
                    return Ok(None);
                };
                (vec![user], format!("{actor} mentioned you on “{label}”"))
            } else {
                let mentioned = mentioned_users(&comment);
                let mut people = watchers::of(tx, org, &collection, id).await?;
                people.extend(creator(tx, org, id).await?);
                people.retain(|p| !mentioned.contains(p));
                (people, format!("{actor} commented on “{label}”"))
            };
            (
                people,
                title,
                plain_comment(&comment),
                Some((collection, id)),
            )
        }
        "document.suggestion_received" => {
            let id = event.entity_id;
            let mut people: Vec<Uuid> = creator(tx, org, id).await?.into_iter().collect();
            for (relation, subject) in acl.tuples.get(&id).into_iter().flatten() {
                if let (Relation::Owner, Subject::User(user)) = (relation, subject) {
                    people.push(*user);
                }
            }
            let label = label(tx, org, "documents", id).await?;
            let title = format!("{actor} suggested changes to “{label}”");
            (people, title, String::new(), Some(("documents".into(), id)))
        }
        "contact.converted" => {
            let Some(assigned) = uuid_at(record, "assigned_to") else {
                return Ok(None);
            };
            let label = label(tx, org, "contacts", event.entity_id).await?;
            let title = format!("{actor} converted “{label}” to a client");
            (vec![assigned], title, String::new(), own)
        }
        "webhook.endpoint_disabled" => {
            let people = acl
                .roles
                .iter()
                .filter(|(_, role)| matches!(role, OrgRole::Owner | OrgRole::Admin))
                .map(|(user, _)| *user)
                .collect();
            let title = format!("Webhook endpoint disabled: {}", text_at(data, "url"));
            let body = format!(
                "Deliveries to this endpoint stopped ({}). Re-enable it and recover missed \
                 events from the webhook settings.",
                text_at(data, "reason")
            );
            (people, title, body, own)
        }
        _ => return Ok(None),
    };
    let mut recipients = Vec::new();
    for user in candidates {
        if Some(user) == event.actor_id || recipients.contains(&user) || acl.role(user).is_none() {
            continue;
        }
        if let Some((collection, id)) = &entity
            && schema::collection(collection).is_some()
            && !may_read(tx, acl, org, user, *id).await?
        {
            continue;
        }
        recipients.push(user);
    }
    if recipients.is_empty() {
        return Ok(None);
    }
    recipients.sort_unstable();
    let link = entity.as_ref().map(|(c, id)| format!("/{c}/{id}"));
    Ok(Some(Notice {
        recipients,
        title: truncate(&title, 500),
        body: truncate(&body, MAX_BODY_CHARS),
        entity,
        link,
    }))
}

/// Whether `user` may read the record (by the model, or as its creator, as on the write path).
async fn may_read(
    tx: &mut Tx<'_>,
    acl: &OrgAcl,
    org: Uuid,
    user: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    Ok(acl.can_read(user, id) || creator(tx, org, id).await? == Some(user))
}

/// The `(record_collection, record_id)` a comment is on.
fn parent_record(comment: &Value) -> Option<(String, Uuid)> {
    let collection = comment["record_collection"].as_str()?;
    schema::collection(collection)?;
    Some((collection.to_owned(), uuid_at(comment, "record_id")?))
}

fn uuid_at(value: &Value, key: &str) -> Option<Uuid> {
    value[key].as_str().and_then(|s| Uuid::parse_str(s).ok())
}

fn text_at(value: &Value, key: &str) -> String {
    value[key].as_str().unwrap_or_default().to_owned()
}

/// Who created a document (any collection).
async fn creator(tx: &mut Tx<'_>, org: Uuid, id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
    let row: Option<(Uuid,)> =
        sqlx::query_as("SELECT created_by FROM documents WHERE org_id = $1 AND id = $2")
            .bind(org)
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(row.map(|(u,)| u))
}

async fn display_name(tx: &mut Tx<'_>, user: Uuid) -> Result<String, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as("SELECT display_name FROM users WHERE id = $1")
        .bind(user)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.map_or_else(|| "Someone".to_owned(), |(n,)| n))
}

/// A short human name for a record: its title, or a contact's company or name.
async fn label(
    tx: &mut Tx<'_>,
    org: Uuid,
    collection: &str,
    id: Uuid,
) -> Result<String, sqlx::Error> {
    let sql = match collection {
        "tasks" => "SELECT title FROM tasks WHERE org_id = $1 AND id = $2",
        "notes" => "SELECT title FROM notes WHERE org_id = $1 AND id = $2",
        "documents" => "SELECT title FROM document_records WHERE org_id = $1 AND id = $2",
        "contacts" => {
            "SELECT COALESCE(NULLIF(concat_ws(' ', first_name, last_name), ''), company, email, 'a contact') \
             FROM contacts WHERE org_id = $1 AND id = $2"
        }
        _ => return Ok(format!("a record of {collection}")),
    };
    let row: Option<(Option<String>,)> = sqlx::query_as(sql)
        .bind(org)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row
        .and_then(|(t,)| t)
        .unwrap_or_else(|| "a deleted record".to_owned()))
}

/// A comment as plain text: `@[Name](user:ID)` becomes `@Name`.
pub fn plain_comment(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(start) = rest.find("@[") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let parsed = after.find("](user:").and_then(|close| {
            let name = &after[..close];
            let tail = &after[close + "](user:".len()..];
            let end = tail.find(')')?;
            Uuid::parse_str(&tail[..end]).ok()?;
            Some((name, &tail[end + 1..]))
        });
        match parsed {
            Some((name, tail)) => {
                out.push('@');
                out.push_str(name);
                rest = tail;
            }
            None => {
                out.push_str("@[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_read_as_names_and_long_texts_are_cut() {
        let id = Uuid::now_v7();
        assert_eq!(
            plain_comment(&format!("hi @[Ada Lovelace](user:{id}), see @[x](nope)")),
            "hi @Ada Lovelace, see @[x](nope)"
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }
}
