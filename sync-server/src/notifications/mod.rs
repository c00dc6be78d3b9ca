//! Notifications: who is told about a domain event, and how.
//!
//! The [`NotificationsHandler`] runs as an effect handler (see [`crate::effects`]) for the events
//! in [`NOTIFYING_EVENTS`] (and every `*.created`, to make creators watch what they create).
//! Per event it works out the recipients ([`recipients`]): the assignee (`task.assigned`), the
//! record's creator and watchers (`task.status_changed`, `task.completed`, `comment.created`),
//! the mentioned user (`user.mentioned`), the document's creator and owners
//! (`document.suggestion_received`), the contact's `assigned_to` (`contact.converted`), the
//! org's owners and admins (`webhook.endpoint_disabled`); never the actor, never someone who
//! may not read the record. Then, per recipient and per their [`preferences`]:
//!
//! - **in-app**: a record of the synced `notifications` collection, created by the server as
//!   itself ([`crate::merge::system`]). Its id is derived from the event id and the recipient, so
//!   a handler run again after a crash finds it and creates nothing: one notification per event
//!   and recipient, ever. It is a personal document: only the recipient reads it (every device,
//!   offline too), and they may only set or clear `read_at`.
//! - **email**: [`crate::email::enqueue`] in the same transaction (idempotent by event and
//!   recipient as well); digests are the email channel's business.
//!
//! REST ([`routes`]): unread count and mark-all-read, preferences, watching records.

pub(crate) mod openapi;
pub mod preferences;
pub mod recipients;
pub mod routes;
pub mod watchers;

use futures_util::future::BoxFuture;
use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::NOTIFICATIONS;
use uuid::Uuid;

use crate::AppState;
use crate::effects::{DomainEvent, EffectHandler, HandlerError};
use crate::merge::system::{self, Created, PersonalRecord};
use recipients::Notice;

/// The handler's name in `effect_jobs`.
pub const HANDLER: &str = "notifications";

/// Event types that notify someone (preferences exist per type of this list, or `*`).
pub const NOTIFYING_EVENTS: &[&str] = &[
    "task.assigned",
    "task.status_changed",
    "task.completed",
    "comment.created",
    "user.mentioned",
    "document.suggestion_received",
    "contact.converted",
    "webhook.endpoint_disabled",
];

/// The id of the notification of `event_id` for `recipient`.
pub fn notification_id(event_id: Uuid, recipient: Uuid) -> Uuid {
    crate::authz::model::personal_id(&[b"notification", event_id.as_bytes(), recipient.as_bytes()])
}

/// Creates in-app notifications and queues emails for domain events.
#[derive(Debug, Clone, Copy, Default)]
pub struct NotificationsHandler;

impl EffectHandler for NotificationsHandler {
    fn name(&self) -> &'static str {
        HANDLER
    }

    fn wants(&self, event_type: &str) -> bool {
        NOTIFYING_EVENTS.contains(&event_type) || event_type.ends_with(".created")
    }

    fn handle<'a>(
        &'a self,
        state: &'a AppState,
        event: &'a DomainEvent,
        _attempt: u32,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(handle(state, event))
    }
}

async fn handle(state: &AppState, event: &DomainEvent) -> Result<(), HandlerError> {
    recipients::auto_watch(state, event).await?;
    if !NOTIFYING_EVENTS.contains(&event.event_type.as_str()) {
        return Ok(());
    }
    let Some(notice) = recipients::notice(state, event).await? else {
        return Ok(());
    };
    let mut created = 0;
    for recipient in &notice.recipients {
        if deliver(state, event, &notice, *recipient).await? {
            created += 1;
        }
    }
    tracing::debug!(
        event_id = %event.id,
        event_type = %event.event_type,
        recipients = notice.recipients.len(),
        created,
        "notifications handled"
    );
    Ok(())
}

/// Notifies one recipient on the channels they want, in one transaction. Returns whether an
/// in-app notification was created now (false: not wanted, or made by an earlier run).
async fn deliver(
    state: &AppState,
    event: &DomainEvent,
    notice: &Notice,
    recipient: Uuid,
) -> Result<bool, HandlerError> {
    let mut tx = crate::db::begin_org(&state.db, event.org_id).await?;
    let about = notice
        .entity
        .as_ref()
        .map(|(collection, id)| (collection.as_str(), *id));
    let channels =
        preferences::channels(&mut tx, event.org_id, recipient, &event.event_type, about).await?;
    if channels.email {
        email_channel(&mut tx, event, notice, recipient).await?;
    }
    let mut published = None;
    if channels.in_app {
        let mut fields: Vec<(&'static str, FieldValue)> = vec![
            ("recipient_id", FieldValue::Ref(recipient)),
            ("event_type", FieldValue::String(event.event_type.clone())),
            ("event_id", FieldValue::Ref(event.id)),
            ("title", FieldValue::String(notice.title.clone())),
        ];
        if !notice.body.is_empty() {
            fields.push(("body", FieldValue::String(notice.body.clone())));
        }
        if let Some((collection, id)) = &notice.entity {
            fields.push(("entity_collection", FieldValue::String(collection.clone())));
            fields.push(("entity_id", FieldValue::Ref(*id)));
        }
        if let Some(actor) = event.actor_id {
            fields.push(("actor_id", FieldValue::Ref(actor)));
        }
        let record = PersonalRecord {
            schema: &NOTIFICATIONS,
            doc_id: notification_id(event.id, recipient),
            owner: recipient,
            fields: &fields,
        };
        // Last write of the transaction: it takes the org's seq lock until commit.
        match system::create_personal(&mut tx, event.org_id, &record).await? {
            Ok(Created::New(change)) => published = Some(change),
            Ok(Created::Exists) => {}
            Err(refusal) => {
                return Err(HandlerError::Permanent(format!(
                    "notification refused: {}",
                    refusal.message
                )));
            }
        }
    }
    tx.commit().await?;
    Ok(match published {
        Some(change) => {
            (*change).published(state);
            true
        }
        None => false,
    })
}

/// Hands the notification to the email channel (in the caller's transaction).
async fn email_channel(
    tx: &mut crate::store::Tx<'_>,
    event: &DomainEvent,
    notice: &Notice,
    recipient: Uuid,
) -> Result<(), sqlx::Error> {
    let email = crate::email::EmailNotification {
        event_id: event.id,
        event_type: event.event_type.clone(),
        title: notice.title.clone(),
        body: notice.body.clone(),
        link: notice.link.clone(),
    };
    crate::email::enqueue(tx, event.org_id, recipient, &email).await
}
