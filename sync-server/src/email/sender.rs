//! The email sender of one server process.
//!
//! A loop claims due rows of `email_queue` with `FOR UPDATE SKIP LOCKED` (so the senders of
//! several processes never take the same email, and never build the same digest twice) and
//! marks them `sending`. Due means: a `pending` row whose `run_at` has passed, or a
//! `collecting` digest opened at least one (scaled) period ago. For each claimed email it
//!
//! 1. reads the notification(s) under the org's row-level security; a digest first takes every
//!    notification of its recipient that no digest has taken (`digest_id`), in a transaction
//!    of its own, so that a retry sends the same set;
//! 2. renders ([`super::template`]) and sends ([`super::transport`]);
//! 3. marks the queue row `sent` and its notifications `sent_at`, in one transaction.
//!
//! A failure is retried after the effect workers' backoff (scaled), and after `max_attempts`
//! (or at once for an address that can never work) the row is `dead`. A crash between 2 and 3
//! leaves the row `sending`; the reaper gives it back after `stuck_after` and it is sent again
//! with the same `Message-ID`: delivery is at least once.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use tracing::Instrument;
use uuid::Uuid;

use super::transport::{Transport, TransportError, build_message};
use super::{DigestMode, EmailNotification, template};
use crate::AppState;
use crate::effects::worker::backoff;

/// The most emails claimed per query. A query claims no more than the process sends at once
/// (`workers`), so no claimed email waits in this process while its claim ages towards
/// `stuck_after` (and being reaped and sent twice).
const CLAIM_BATCH: usize = 16;

/// Runs the sender of this process until the task is aborted.
pub async fn run(state: AppState) {
    let transport = match Transport::new(
        state.effects.smtp_url.as_deref(),
        &state.effects.mailbox_dir,
    ) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "email sender not started");
            return;
        }
    };
    // A From address that does not parse would fail every email permanently: better not to
    // send (the queue keeps them) until the configuration is fixed.
    if let Err(e) = state.effects.email_from.parse::<lettre::message::Mailbox>() {
        tracing::error!(from = %state.effects.email_from, error = %e, "email sender not started: SYNCLINE_EMAIL_FROM is not an address");
        return;
    }
    tracing::info!(transport = ?transport, "email sender started");
    let worker_id = format!("{}-{}", std::process::id(), Uuid::now_v7());
    let reap_every = state
        .effects
        .stuck_after
        .min(Duration::from_secs(60))
        .max(Duration::from_millis(50));
    let mut last_reap = tokio::time::Instant::now();
    loop {
        if last_reap.elapsed() >= reap_every {
            last_reap = tokio::time::Instant::now();
            match reap(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(emails = n, "gave stuck emails back to the queue"),
                Err(e) => tracing::warn!(error = %e, "reaping stuck emails failed"),
            }
        }
        let batch = state.effects.workers.clamp(1, CLAIM_BATCH);
        let claimed = match claim(&state, &worker_id, batch as i64).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "claiming emails failed");
                Vec::new()
            }
        };
        let idle = claimed.is_empty();
        // All at once: SMTP round trips dominate.
        futures_util::stream::iter(claimed)
            .for_each_concurrent(batch, |email| {
                process(&state, &transport, &worker_id, email)
            })
            .await;
        if idle {
            tokio::time::sleep(state.effects.poll_interval).await;
        }
    }
}

/// A claimed email.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub kind: String,
    pub attempts: i32,
}

/// Claims up to `limit` due emails for `worker_id`.
pub async fn claim(
    state: &AppState,
    worker_id: &str,
    limit: i64,
) -> Result<Vec<Claimed>, sqlx::Error> {
    let seconds = |mode: DigestMode| {
        mode.period()
            .map_or(0.0, |p| state.effects.scaled(p).as_secs_f64())
    };
    sqlx::query_as(
        "UPDATE email_queue q SET status = 'sending', locked_at = now(), locked_by = $2, \
                attempts = q.attempts + 1 \
         FROM (SELECT id FROM email_queue \
               WHERE (status = 'pending' AND run_at <= now()) \
                  OR (status = 'collecting' AND run_at <= now() - make_interval(secs => \
                        CASE period WHEN 'hourly' THEN $3 ELSE $4 END)) \
               ORDER BY run_at LIMIT $1 FOR UPDATE SKIP LOCKED) due \
         WHERE q.id = due.id \
         RETURNING q.id, q.org_id, q.user_id, q.kind, q.attempts",
    )
    .bind(limit)
    .bind(worker_id)
    .bind(seconds(DigestMode::Hourly))
    .bind(seconds(DigestMode::Daily))
    .fetch_all(&state.db)
    .await
}

/// Why one email was not sent this time.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Gone(String),
}

impl SendError {
    /// Whether retrying cannot help.
    fn permanent(&self) -> bool {
        matches!(
            self,
            Self::Transport(TransportError::Invalid(_)) | Self::Gone(_)
        )
    }
}

async fn process(state: &AppState, transport: &Transport, worker_id: &str, email: Claimed) {
    let span =
        tracing::info_span!("email", id = %email.id, kind = %email.kind, attempt = email.attempts);
    let outcome = send_one(state, transport, &email).instrument(span).await;
    let result = match outcome {
        Ok(items) => mark_sent(state, &email, worker_id, items).await,
        Err(e) => {
            let attempt = u32::try_from(email.attempts).unwrap_or(1).max(1);
            let dead = e.permanent() || attempt >= state.effects.max_attempts;
            if dead {
                tracing::warn!(error = %e, "email dead-lettered");
            } else {
                tracing::info!(error = %e, "email failed; will retry");
            }
            let delay = state.effects.scaled(backoff(attempt));
            mark_failed(state, &email, worker_id, dead, delay, &e.to_string()).await
        }
    };
    if let Err(e) = result {
        // The row stays `sending` and is reaped later (then sent again: at least once).
        tracing::warn!(error = %e, "recording the outcome of an email failed");
    }
}

/// Renders and sends one claimed email; returns how many notifications it carried (0: a digest
/// with nothing left to tell, not sent).
async fn send_one(
    state: &AppState,
    transport: &Transport,
    email: &Claimed,
) -> Result<i32, SendError> {
    let items = if email.kind == "digest" {
        take_for_digest(state, email).await?
    } else {
        load_single(state, email).await?
    };
    if items.is_empty() {
        return Ok(0);
    }
    let (to_email, to_name): (String, String) =
        sqlx::query_as("SELECT email, display_name FROM users WHERE id = $1")
            .bind(email.user_id)
            .fetch_optional(&state.db)
            .await?
            .ok_or_else(|| SendError::Gone("the recipient no longer exists".into()))?;
    let rendered = if email.kind == "digest" {
        template::digest(&to_name, &items)
    } else {
        template::single(&to_name, &items[0])
    };
    let message = build_message(
        email.id,
        &state.effects.email_from,
        &to_name,
        &to_email,
        &rendered,
    )?;
    transport.send(email.id, &message).await?;
    tracing::info!(items = items.len(), "email sent");
    Ok(i32::try_from(items.len()).unwrap_or(i32::MAX))
}

#[derive(sqlx::FromRow)]
struct Item {
    event_id: Uuid,
    event_type: String,
    title: String,
    body: String,
    link: Option<String>,
}

impl From<Item> for EmailNotification {
    fn from(i: Item) -> Self {
        Self {
            event_id: i.event_id,
            event_type: i.event_type,
            title: i.title,
            body: i.body,
            link: i.link,
        }
    }
}

async fn load_single(
    state: &AppState,
    email: &Claimed,
) -> Result<Vec<EmailNotification>, SendError> {
    let mut tx = crate::db::begin_org(&state.db, email.org_id).await?;
    let item: Option<Item> = sqlx::query_as(
        "SELECT event_id, event_type, title, body, link FROM email_outbox \
         WHERE org_id = $1 AND id = $2",
    )
    .bind(email.org_id)
    .bind(email.id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    match item {
        Some(item) => Ok(vec![item.into()]),
        None => Err(SendError::Gone("the notification no longer exists".into())),
    }
}

/// Gives the digest every waiting notification of its recipient, then returns all it holds
/// (also those a previous attempt took), oldest first.
async fn take_for_digest(
    state: &AppState,
    email: &Claimed,
) -> Result<Vec<EmailNotification>, SendError> {
    let mut tx = crate::db::begin_org(&state.db, email.org_id).await?;
    sqlx::query(
        "UPDATE email_outbox SET digest_id = $3 \
         WHERE org_id = $1 AND user_id = $2 AND digest <> 'off' AND digest_id IS NULL",
    )
    .bind(email.org_id)
    .bind(email.user_id)
    .bind(email.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let mut tx = crate::db::begin_org(&state.db, email.org_id).await?;
    let items: Vec<Item> = sqlx::query_as(
        "SELECT event_id, event_type, title, body, link FROM email_outbox \
         WHERE org_id = $1 AND digest_id = $2 ORDER BY created_at, id",
    )
    .bind(email.org_id)
    .bind(email.id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(items.into_iter().map(Into::into).collect())
}

async fn mark_sent(
    state: &AppState,
    email: &Claimed,
    worker_id: &str,
    items: i32,
) -> Result<(), sqlx::Error> {
    let mut tx = crate::db::begin_org(&state.db, email.org_id).await?;
    sqlx::query(
        "UPDATE email_queue SET status = 'sent', sent_at = now(), items = $3, last_error = NULL, \
                locked_at = NULL, locked_by = NULL \
         WHERE id = $1 AND status = 'sending' AND locked_by = $2",
    )
    .bind(email.id)
    .bind(worker_id)
    .bind(items)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE email_outbox SET sent_at = now() \
         WHERE org_id = $1 AND (id = $2 OR digest_id = $2) AND sent_at IS NULL",
    )
    .bind(email.org_id)
    .bind(email.id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

async fn mark_failed(
    state: &AppState,
    email: &Claimed,
    worker_id: &str,
    dead: bool,
    delay: Duration,
    error: &str,
) -> Result<(), sqlx::Error> {
    let run_at = Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
    sqlx::query(
        "UPDATE email_queue SET status = CASE WHEN $3 THEN 'dead' ELSE 'pending' END, \
                run_at = $4, last_error = $5, locked_at = NULL, locked_by = NULL \
         WHERE id = $1 AND status = 'sending' AND locked_by = $2",
    )
    .bind(email.id)
    .bind(worker_id)
    .bind(dead)
    .bind(run_at)
    .bind(error)
    .execute(&state.db)
    .await?;
    Ok(())
}

/// Gives emails `sending` for longer than `stuck_after` (their process died) back to the
/// queue; returns how many.
pub async fn reap(state: &AppState) -> Result<u64, sqlx::Error> {
    let stuck_before = Utc::now()
        - chrono::Duration::from_std(state.effects.stuck_after).unwrap_or(chrono::Duration::MAX);
    let done = sqlx::query(
        "UPDATE email_queue SET status = 'pending', run_at = now(), locked_at = NULL, \
                locked_by = NULL, last_error = 'the sender stopped before marking it sent' \
         WHERE status = 'sending' AND locked_at < $1",
    )
    .bind(stuck_before)
    .execute(&state.db)
    .await?;
    Ok(done.rows_affected())
}
