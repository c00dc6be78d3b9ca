//! The delivery loop: claims due deliveries, sends them, logs every attempt, schedules retries.
//!
//! Retries follow the Standard Webhooks schedule: immediately, then 5 s, 5 min, 30 min, 2 h,
//! 5 h, 10 h and 10 h (eight attempts), each delay with ±20 % jitter and multiplied by
//! `time_scale`. Only a 2xx answer is a success. A 410 disables the endpoint at once; a 429 or
//! 503 with `Retry-After` waits at least that long (scaled too). An endpoint whose attempts
//! have all failed for five days (scaled) is disabled, and `webhook.endpoint_disabled` notifies
//! the org's admins. A delivery whose process died mid-request stays `running` until
//! [`stuck_after`] and is then sent again with the same id and bytes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::AppState;

/// Delays before attempts 1..=8 of a round, unscaled and without jitter.
pub const SCHEDULE: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// Continuous failure for this long (unscaled) disables an endpoint.
pub const DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 3600);
/// The longest `Retry-After` honoured (unscaled); longer asks are cut to this.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// Response bytes kept in the delivery log.
pub const RESPONSE_LOG_BYTES: usize = 20 * 1024;
/// Requests one process sends at once.
const CONCURRENCY: usize = 16;
/// The shortest idle wait of the delivery loop.
const MIN_WAIT: Duration = Duration::from_millis(10);
/// Extra time, beyond the request timeout, before a running delivery counts as abandoned.
const STUCK_GRACE: Duration = Duration::from_secs(5);

/// The delay before the next attempt after `round_attempts` failed ones (jittered, unscaled),
/// or `None` when the round's attempts are used up.
pub fn retry_delay(round_attempts: u32) -> Option<Duration> {
    let nominal = *SCHEDULE.get(usize::try_from(round_attempts).ok()?)?;
    Some(nominal.mul_f64(rand::rng().random_range(0.8..=1.2)))
}

/// A `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// How long a delivery may stay `running` before it is sent again: the request timeout can no
/// longer be running by then, so its process must have died.
pub fn stuck_after(state: &AppState) -> Duration {
    state.effects.webhook_timeout + STUCK_GRACE
}

/// Runs the delivery loop of this process until aborted (with the effect workers).
pub async fn run(state: AppState) {
    let worker_id = format!("{}-{}", std::process::id(), Uuid::now_v7());
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut running = JoinSet::new();
    let reap_every = stuck_after(&state)
        .div_f64(4.0)
        .max(Duration::from_millis(100));
    let mut last_reap: Option<Instant> = None;
    loop {
        while running.try_join_next().is_some() {}
        // Registered before looking for work, so a wake-up during the claim is not lost.
        let notified = super::WAKE.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if last_reap.is_none_or(|at| at.elapsed() >= reap_every) {
            last_reap = Some(Instant::now());
            match reap(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(deliveries = n, "resending abandoned webhook deliveries"),
                Err(e) => tracing::warn!(error = %e, "reaping webhook deliveries failed"),
            }
        }
        let free = slots.available_permits();
        let claimed = if free == 0 {
            Vec::new()
        } else {
            claim(&state, &worker_id, free).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "claiming webhook deliveries failed");
                Vec::new()
            })
        };
        let got = claimed.len();
        for (org_id, id) in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let state = state.clone();
            running.spawn(async move {
                if let Err(e) = super::attempt::attempt(&state, org_id, id).await {
                    // The delivery stays running and is sent again once reaped.
                    tracing::warn!(delivery_id = %id, error = %e, "webhook attempt not recorded");
                }
                drop(permit);
            });
        }
        if got == 0 || slots.available_permits() == 0 {
            // Full: only a finished send frees a slot (due deliveries wait for it).
            let wait = if slots.available_permits() == 0 {
                state.effects.poll_interval
            } else {
                until_next_due(&state).await
            };
            tokio::select! {
                _ = &mut notified => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

/// How long to sleep: until the next pending delivery is due, at most the poll interval and
/// at least [`MIN_WAIT`] (a due delivery another process is claiming must not make this loop
/// spin).
async fn until_next_due(state: &AppState) -> Duration {
    let poll = state.effects.poll_interval;
    let next: Result<(Option<DateTime<Utc>>,), _> =
        sqlx::query_as("SELECT syncline_next_webhook_due()")
            .fetch_one(&state.db)
            .await;
    match next {
        Ok((Some(at),)) => (at - Utc::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .clamp(MIN_WAIT, poll.max(MIN_WAIT)),
        _ => poll,
    }
}

async fn claim(
    state: &AppState,
    worker_id: &str,
    limit: usize,
) -> Result<Vec<(Uuid, Uuid)>, sqlx::Error> {
    sqlx::query_as("SELECT claimed_org, claimed_id FROM syncline_claim_webhook_deliveries($1, $2)")
        .bind(worker_id)
        .bind(i32::try_from(limit).unwrap_or(i32::MAX))
        .fetch_all(&state.db)
        .await
}

/// Gives deliveries abandoned by a dead process back to the queue; returns how many.
pub async fn reap(state: &AppState) -> Result<i32, sqlx::Error> {
    let before = Utc::now()
        - chrono::Duration::from_std(stuck_after(state)).unwrap_or(chrono::Duration::MAX);
    let (n,): (i32,) = sqlx::query_as("SELECT syncline_reap_webhook_deliveries($1)")
        .bind(before)
        .fetch_one(&state.db)
        .await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_the_standard_one_with_bounded_jitter() {
        assert_eq!(
            retry_delay(0),
            Some(Duration::ZERO),
            "first attempt at once"
        );
        for (round, nominal) in SCHEDULE.iter().enumerate().skip(1) {
            let d = retry_delay(u32::try_from(round).expect("small")).expect("scheduled");
            assert!(
                d >= nominal.mul_f64(0.8) && d <= nominal.mul_f64(1.2),
                "{round}: {d:?}"
            );
        }
        assert_eq!(
            retry_delay(8),
            None,
            "eight attempts, then the delivery fails"
        );
    }

    #[test]
    fn parses_retry_after_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2015-10-21T07:27:00Z")
            .expect("date")
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:26:00 GMT", now),
            None,
            "a date in the past"
        );
    }
}
