//! Server-side effects: the transactional outbox and the workers that act on it.
//!
//! Every accepted change (a WebSocket push or a REST write) is compared field by field with the
//! record it replaced; [`events::derive`] turns the differences into domain events
//! (`task.assigned`, `comment.created`, `user.mentioned`, ...). [`outbox::record`] writes those
//! events, one job per interested [`EffectHandler`], and an audit row per mutation **in the
//! transaction of the change**: an effect exists exactly when its change committed.
//!
//! Workers ([`worker`]) in every server process claim due jobs with `FOR UPDATE SKIP LOCKED`,
//! run the handler, and mark the job done; a failure is retried with exponential backoff and
//! jitter, and after [`EffectsSettings::max_attempts`] the job is dead-lettered (queryable and
//! replayable over REST, see [`dead_letters`]). Jobs whose worker died are reaped back to
//! pending. A handler may therefore run more than once for the same event: handlers are
//! idempotent by event id (their writes are keyed by it).

pub mod dead_letters;
pub mod events;
pub mod handlers;
pub mod outbox;
pub mod settings;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
pub use settings::EffectsSettings;

/// One domain event, as stored in `domain_events` and given to handlers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DomainEvent {
    /// UUIDv7, unique: handlers key their writes by it.
    pub id: Uuid,
    pub org_id: Uuid,
    /// `task.assigned`, `comment.created`, ... (see [`events`]).
    pub event_type: String,
    /// The collection and id of the record the event is about.
    pub collection: String,
    pub entity_id: Uuid,
    /// Who made the change (`None` for changes the server makes on its own).
    pub actor_id: Option<Uuid>,
    pub occurred_at: DateTime<Utc>,
    /// Event-specific data; always holds `record` (the record's fields after the change, as
    /// JSON) and `changes` (`{field: {"from": .., "to": ..}}`), plus what the type adds
    /// (`assignee_id`, `mentioned_user_id`, ...).
    pub data: serde_json::Value,
    /// The HTTP request's correlation id, when the change came over REST.
    pub correlation_id: Option<String>,
}

/// Why a handler did not finish.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Try again later: after `after` if given (e.g. a receiver's `Retry-After`), otherwise
    /// after the worker's exponential backoff.
    #[error("{message}")]
    Retry {
        message: String,
        after: Option<Duration>,
    },
    /// Retrying cannot help (e.g. the event is malformed): dead-letter at once.
    #[error("{0}")]
    Permanent(String),
}

impl HandlerError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self::Retry {
            message: message.into(),
            after: None,
        }
    }
}

impl From<sqlx::Error> for HandlerError {
    fn from(e: sqlx::Error) -> Self {
        Self::retry(format!("database: {e}"))
    }
}

/// Something that acts on domain events. One job per (event, handler) is queued when the
/// handler [`wants`](EffectHandler::wants) the event type; [`handle`](EffectHandler::handle)
/// may run more than once for one event (crash after its work, before the job is marked done),
/// so it must be idempotent by `event.id`.
pub trait EffectHandler: Send + Sync {
    /// Stable name, stored with each job (`notifications`, `webhooks`, ...).
    fn name(&self) -> &'static str;
    /// Whether this handler acts on events of this type (decided when the event is recorded).
    fn wants(&self, event_type: &str) -> bool;
    /// An SQL condition, evaluated in the change's transaction with `$1` = the org's id, that
    /// must hold for a job to be queued at all (e.g. "the org has a webhook endpoint"): spares
    /// a job, a claim and a run per event where the handler would find nothing to do.
    fn queue_only_if(&self) -> Option<&'static str> {
        None
    }
    /// Does the work for one event. `attempt` counts from 1.
    fn handle<'a>(
        &'a self,
        state: &'a AppState,
        event: &'a DomainEvent,
        attempt: u32,
    ) -> BoxFuture<'a, Result<(), HandlerError>>;
}

/// The handlers of this server, by name.
#[derive(Clone, Default)]
pub struct Handlers {
    list: Arc<Vec<Arc<dyn EffectHandler>>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.list.iter().map(|h| h.name()))
            .finish()
    }
}

impl Handlers {
    pub fn new(list: Vec<Arc<dyn EffectHandler>>) -> Self {
        Self {
            list: Arc::new(list),
        }
    }

    /// These handlers and `extra`.
    pub fn with(&self, extra: Vec<Arc<dyn EffectHandler>>) -> Self {
        let mut list: Vec<_> = self.list.iter().cloned().collect();
        list.extend(extra);
        Self::new(list)
    }

    /// Names of the handlers that want `event_type`, each with its queueing condition.
    pub fn wanting<'a>(
        &'a self,
        event_type: &'a str,
    ) -> impl Iterator<Item = (&'static str, Option<&'static str>)> + 'a {
        self.list
            .iter()
            .filter(move |h| h.wants(event_type))
            .map(|h| (h.name(), h.queue_only_if()))
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn EffectHandler>> {
        self.list.iter().find(|h| h.name() == name)
    }
}
