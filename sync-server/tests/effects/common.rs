//! Shared helpers: a recording effect handler and REST shortcuts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use reqwest::Method;
use serde_json::{Value, json};
use sync_server::AppState;
use sync_server::effects::{DomainEvent, EffectHandler, HandlerError};
use sync_server::testing::{TestServer, TestUser};
use uuid::Uuid;

/// What a [`Recorder`] does when run.
#[derive(Debug, Clone, Copy)]
pub enum Behaviour {
    /// Fail (retryably) this many times per event, then succeed.
    FailTimes(u32),
    /// Always fail, retryably.
    AlwaysFail,
    /// Fail permanently.
    Permanent,
}

/// A handler that records every run (event id -> attempts seen) and behaves as told.
#[derive(Clone)]
pub struct Recorder {
    pub name: &'static str,
    pub event_type: &'static str,
    pub behaviour: Arc<Mutex<Behaviour>>,
    pub runs: Arc<Mutex<HashMap<Uuid, Vec<u32>>>>,
    /// Holds every run for this long (to be caught mid-run).
    pub hold: Duration,
}

impl Recorder {
    pub fn new(name: &'static str, event_type: &'static str, behaviour: Behaviour) -> Self {
        Self {
            name,
            event_type,
            behaviour: Arc::new(Mutex::new(behaviour)),
            runs: Arc::default(),
            hold: Duration::ZERO,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().expect("lock") = behaviour;
    }

    pub fn runs_of(&self, event: Uuid) -> Vec<u32> {
        self.runs
            .lock()
            .expect("lock")
            .get(&event)
            .cloned()
            .unwrap_or_default()
    }

    pub fn total_runs(&self) -> usize {
        self.runs.lock().expect("lock").values().map(Vec::len).sum()
    }

    pub fn arc(&self) -> Arc<dyn EffectHandler> {
        Arc::new(self.clone())
    }
}

impl EffectHandler for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }

    fn wants(&self, event_type: &str) -> bool {
        event_type == self.event_type
    }

    fn handle<'a>(
        &'a self,
        _state: &'a AppState,
        event: &'a DomainEvent,
        attempt: u32,
    ) -> BoxFuture<'a, Result<(), HandlerError>> {
        Box::pin(async move {
            tokio::time::sleep(self.hold).await;
            self.runs
                .lock()
                .expect("lock")
                .entry(event.id)
                .or_default()
                .push(attempt);
            let behaviour = *self.behaviour.lock().expect("lock");
            match behaviour {
                Behaviour::FailTimes(n) if attempt <= n => {
                    Err(HandlerError::retry(format!("planned failure {attempt}")))
                }
                Behaviour::FailTimes(_) => Ok(()),
                Behaviour::AlwaysFail => Err(HandlerError::retry("always fails")),
                Behaviour::Permanent => Err(HandlerError::Permanent("cannot ever work".into())),
            }
        })
    }
}

/// Creates a task over REST; returns its id.
pub async fn create_task(server: &TestServer, user: &TestUser, fields: Value) -> Uuid {
    let mut body = json!({"title": "a task", "status": "todo"});
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(f.clone());
    }
    let (status, created) = server
        .api(
            Method::POST,
            "/api/v1/tasks",
            &user.access_token,
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .expect("task id")
}

/// The ids of the org's events of `event_type`, oldest first (read as the database owner).
pub async fn events_of(server: &TestServer, org: Uuid, event_type: &str) -> Vec<(Uuid, Value)> {
    sqlx::query_as(
        "SELECT id, data FROM domain_events WHERE org_id = $1 AND event_type = $2 ORDER BY id",
    )
    .bind(org)
    .bind(event_type)
    .fetch_all(&server.db)
    .await
    .expect("events")
}

/// The status and attempts of one job.
pub async fn job(server: &TestServer, event: Uuid, handler: &str) -> Option<(String, i32)> {
    sqlx::query_as("SELECT status, attempts FROM effect_jobs WHERE event_id = $1 AND handler = $2")
        .bind(event)
        .bind(handler)
        .fetch_optional(&server.db)
        .await
        .expect("job")
}

/// Waits (up to 30 s) until the job reaches `status`.
pub async fn until_job(server: &TestServer, event: Uuid, handler: &str, status: &str) -> i32 {
    for _ in 0..600 {
        if let Some((s, attempts)) = job(server, event, handler).await
            && s == status
        {
            return attempts;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "job {event}/{handler} never reached {status}: {:?}",
        job(server, event, handler).await
    );
}
