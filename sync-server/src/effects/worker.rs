//! The effect workers of one server process.
//!
//! A loop claims due jobs (`status = 'pending' AND run_at <= now()`) with
//! `FOR UPDATE SKIP LOCKED`, so workers of several processes never take the same job, marks
//! them running, and runs each job's handler. Success marks the job done; failure puts it back
//! to pending at `now + backoff(attempts)` (exponential with ±20 % jitter, capped) or, after
//! `max_attempts` or a permanent failure, dead-letters it. A reaper gives jobs that stayed
//! running longer than `stuck_after` (their process died) back to the queue.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{DomainEvent, EffectsSettings, HandlerError};
use crate::AppState;

/// Jobs claimed per query.
const CLAIM_BATCH: i64 = 16;
/// The longest retry delay, before scaling.
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
/// The first retry delay, before scaling.
const FIRST_BACKOFF: Duration = Duration::from_secs(2);

/// Wakes idle workers when this process commits a change that queued jobs.
#[derive(Clone, Default, Debug)]
pub struct Wakeup(Arc<Notify>);

impl Wakeup {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// The running workers; dropping it stops them (a job cut short is reaped later).
#[derive(Debug)]
pub struct Workers {
    tasks: JoinSet<()>,
}

impl Workers {
    /// Stops the workers now, as a crash would.
    pub fn abort(&mut self) {
        self.tasks.abort_all();
    }
}

/// Starts the workers of this process (none when `settings.workers == 0`).
pub fn start(state: &AppState) -> Workers {
    let mut tasks = JoinSet::new();
    let settings = state.effects.clone();
    if settings.workers > 0 {
        let worker_id = format!("{}-{}", std::process::id(), Uuid::now_v7());
        tasks.spawn(claim_loop(state.clone(), worker_id));
        tasks.spawn(reap_loop(state.clone()));
        tasks.spawn(crate::webhooks::delivery::run(state.clone()));
        tasks.spawn(crate::email::sender::run(state.clone()));
    }
    Workers { tasks }
}

/// The delay before attempt `attempts + 1`, unscaled: 2 s, 4 s, 8 s, ... with ±20 % jitter.
pub fn backoff(attempts: u32) -> Duration {
    let exp = FIRST_BACKOFF
        .saturating_mul(
            1u32.checked_shl(attempts.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(MAX_BACKOFF);
    let jitter = rand::rng().random_range(0.8..=1.2);
    exp.mul_f64(jitter)
}

async fn claim_loop(state: AppState, worker_id: String) {
    let settings = state.effects.clone();
    let slots = Arc::new(Semaphore::new(settings.workers));
    let mut running = JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits().min(CLAIM_BATCH as usize);
        let claimed = if free == 0 {
            Vec::new()
        } else {
            match claim(&state, &worker_id, free as i64).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming effect jobs failed");
                    Vec::new()
                }
            }
        };
        let got = claimed.len();
        for job in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let state = state.clone();
            running.spawn(async move {
                run_job(&state, job).await;
                drop(permit);
            });
        }
        if got == 0 || slots.available_permits() == 0 {
            // Idle (or full): wait for a local commit, a finished job, or the poll interval.
            tokio::select! {
                _ = state.effect_wakeup.0.notified() => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(settings.poll_interval) => {}
            }
        }
    }
}

/// A claimed job.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Job {
    org_id: Uuid,
    event_id: Uuid,
    handler: String,
    attempts: i32,
}

async fn claim(state: &AppState, worker_id: &str, limit: i64) -> Result<Vec<Job>, sqlx::Error> {
    sqlx::query_as(
        "UPDATE effect_jobs j SET status = 'running', locked_at = now(), locked_by = $2, \
                attempts = j.attempts + 1 \
         FROM (SELECT org_id, event_id, handler FROM effect_jobs \
               WHERE status = 'pending' AND run_at <= now() \
               ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) due \
         WHERE j.org_id = due.org_id AND j.event_id = due.event_id AND j.handler = due.handler \
         RETURNING j.org_id, j.event_id, j.handler, j.attempts",
    )
    .bind(limit)
    .bind(worker_id)
    .fetch_all(&state.db)
    .await
}

async fn run_job(state: &AppState, job: Job) {
    let span = tracing::info_span!("effect", handler = %job.handler, event_id = %job.event_id, attempt = job.attempts);
    let _entered = span.enter();
    let attempt = u32::try_from(job.attempts).unwrap_or(1).max(1);
    let result = match load_event(state, job.org_id, job.event_id).await {
        Ok(Some(event)) => match state.effect_handlers.get(&job.handler) {
            Some(handler) => handler.handle(state, &event, attempt).await,
            None => Err(HandlerError::Permanent(format!(
                "no handler named `{}` in this server",
                job.handler
            ))),
        },
        Ok(None) => Err(HandlerError::Permanent("the event no longer exists".into())),
        Err(e) => Err(HandlerError::from(e)),
    };
    if let Err(e) = finish(state, &job, attempt, result).await {
        // The job stays running and is reaped later.
        tracing::warn!(error = %e, "recording the outcome of an effect job failed");
    }
}

/// Loads an event under its org's row-level security.
pub async fn load_event(
    state: &AppState,
    org_id: Uuid,
    event_id: Uuid,
) -> Result<Option<DomainEvent>, sqlx::Error> {
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    let row: Option<EventRow> = sqlx::query_as(
        "SELECT id, org_id, event_type, collection, entity_id, actor_id, occurred_at, data, correlation_id \
         FROM domain_events WHERE org_id = $1 AND id = $2",
    )
    .bind(org_id)
    .bind(event_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(EventRow::into_event))
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    id: Uuid,
    org_id: Uuid,
    event_type: String,
    collection: String,
    entity_id: Uuid,
    actor_id: Option<Uuid>,
    occurred_at: chrono::DateTime<Utc>,
    data: serde_json::Value,
    correlation_id: Option<String>,
}

impl EventRow {
    pub(crate) fn into_event(self) -> DomainEvent {
        DomainEvent {
            id: self.id,
            org_id: self.org_id,
            event_type: self.event_type,
            collection: self.collection,
            entity_id: self.entity_id,
            actor_id: self.actor_id,
            occurred_at: self.occurred_at,
            data: self.data,
            correlation_id: self.correlation_id,
        }
    }
}

async fn finish(
    state: &AppState,
    job: &Job,
    attempt: u32,
    result: Result<(), HandlerError>,
) -> Result<(), sqlx::Error> {
    let settings: &EffectsSettings = &state.effects;
    let (status, run_at, error) = match result {
        Ok(()) => ("done", None, None),
        Err(HandlerError::Permanent(message)) => ("dead", None, Some(message)),
        Err(HandlerError::Retry { message, .. }) if attempt >= settings.max_attempts => {
            ("dead", None, Some(message))
        }
        Err(HandlerError::Retry { message, after }) => {
            let delay = after.unwrap_or_else(|| settings.scaled(backoff(attempt)));
            let at =
                Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            ("pending", Some(at), Some(message))
        }
    };
    match status {
        "done" => tracing::debug!("effect done"),
        "dead" => tracing::warn!(error = ?error, "effect dead-lettered"),
        _ => tracing::info!(error = ?error, "effect failed; will retry"),
    }
    sqlx::query(
        "UPDATE effect_jobs SET status = $4, run_at = COALESCE($5, run_at), last_error = $6, \
                locked_at = NULL, locked_by = NULL, \
                finished_at = CASE WHEN $4 IN ('done', 'dead') THEN now() END \
         WHERE org_id = $1 AND event_id = $2 AND handler = $3 AND status = 'running'",
    )
    .bind(job.org_id)
    .bind(job.event_id)
    .bind(&job.handler)
    .bind(status)
    .bind(run_at)
    .bind(error)
    .execute(&state.db)
    .await?;
    Ok(())
}

async fn reap_loop(state: AppState) {
    let every = state
        .effects
        .stuck_after
        .min(Duration::from_secs(60))
        .max(Duration::from_millis(50));
    loop {
        tokio::time::sleep(every).await;
        match reap(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "gave stuck effect jobs back to the queue"),
            Err(e) => tracing::warn!(error = %e, "reaping stuck effect jobs failed"),
        }
    }
}

/// Gives jobs running for longer than `stuck_after` back to the queue; returns how many.
pub async fn reap(state: &AppState) -> Result<u64, sqlx::Error> {
    let stuck_before = Utc::now()
        - chrono::Duration::from_std(state.effects.stuck_after).unwrap_or(chrono::Duration::MAX);
    let done = sqlx::query(
        "UPDATE effect_jobs SET status = 'pending', run_at = now(), locked_at = NULL, locked_by = NULL, \
                last_error = 'the worker running it stopped' \
         WHERE status = 'running' AND locked_at < $1",
    )
    .bind(stuck_before)
    .execute(&state.db)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_exponentially_with_bounded_jitter() {
        for attempt in 1..=20u32 {
            let nominal = FIRST_BACKOFF
                .saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX))
                .min(MAX_BACKOFF);
            let d = backoff(attempt);
            assert!(
                d >= nominal.mul_f64(0.8) && d <= nominal.mul_f64(1.2),
                "attempt {attempt}: {d:?}"
            );
        }
        assert!(backoff(3) > backoff(1));
    }
}
