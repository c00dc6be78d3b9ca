//! One attempt of a claimed delivery: sign, send through the SSRF guard, and record the
//! outcome (the attempt log row, the delivery's next state, the endpoint's failure history) in
//! one transaction.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use uuid::Uuid;

use super::delivery::{
    DISABLE_AFTER, MAX_RETRY_AFTER, RESPONSE_LOG_BYTES, parse_retry_after, retry_delay,
};
use super::{guard, signature, store};
use crate::AppState;

/// A claimed delivery with what sending it needs.
#[derive(sqlx::FromRow)]
struct Claimed {
    endpoint_id: Uuid,
    msg_id: String,
    body: Vec<u8>,
    attempts: i32,
    round_attempts: i32,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    endpoint_disabled: bool,
}

/// What one attempt gave.
#[derive(Debug, Default)]
struct Outcome {
    status: Option<u16>,
    body: Option<String>,
    error: Option<String>,
    retry_after: Option<Duration>,
}

impl Outcome {
    fn failed(error: impl Into<String>) -> Self {
        Self {
            error: Some(error.into()),
            ..Self::default()
        }
    }
}

/// Sends the claimed delivery `id` once and records what happened; an error leaves it
/// running (reaped later).
pub(super) async fn attempt(state: &AppState, org_id: Uuid, id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    let claimed: Option<Claimed> = sqlx::query_as(
        "SELECT d.endpoint_id, d.msg_id, d.body, d.attempts, d.round_attempts, e.url, e.secret, \
                e.previous_secret, e.previous_secret_expires_at, \
                e.disabled_at IS NOT NULL AS endpoint_disabled \
         FROM webhook_deliveries d \
         JOIN webhook_endpoints e ON e.org_id = d.org_id AND e.id = d.endpoint_id \
         WHERE d.org_id = $1 AND d.id = $2 AND d.status = 'running'",
    )
    .bind(org_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    let Some(claimed) = claimed else {
        return Ok(());
    };
    if claimed.endpoint_disabled {
        // Not sent; a recovery after re-enabling the endpoint sends it.
        let mut tx = crate::db::begin_org(&state.db, org_id).await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = 'failed', last_error = 'the endpoint is disabled', \
                    attempts = attempts - 1, locked_at = NULL, locked_by = NULL, finished_at = now() \
             WHERE org_id = $1 AND id = $2 AND status = 'running'",
        )
        .bind(org_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(());
    }
    let timestamp = Utc::now().timestamp();
    let started_at = Utc::now();
    let clock = Instant::now();
    let outcome = send(state, &claimed, timestamp).await;
    let duration = clock.elapsed();
    record(
        state, org_id, id, &claimed, started_at, duration, timestamp, outcome,
    )
    .await
}

async fn send(state: &AppState, claimed: &Claimed, timestamp: i64) -> Outcome {
    let mut secrets = vec![claimed.secret.as_str()];
    if let (Some(previous), Some(until)) =
        (&claimed.previous_secret, claimed.previous_secret_expires_at)
        && until > Utc::now()
    {
        secrets.push(previous);
    }
    let signature =
        match signature::signature_header(&secrets, &claimed.msg_id, timestamp, &claimed.body) {
            Ok(s) => s,
            Err(e) => return Outcome::failed(e.to_string()),
        };
    let url = match guard::parse(&claimed.url) {
        Ok(url) => url,
        Err(e) => return Outcome::failed(e.to_string()),
    };
    let addrs = match guard::resolve(&url, state.effects.webhook_allow_private).await {
        Ok(addrs) => addrs,
        Err(e) => return Outcome::failed(format!("refused: {e}")),
    };
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(state.effects.webhook_timeout)
        .no_proxy()
        .user_agent(concat!("Syncline-Webhooks/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = url.domain() {
        // Pinned to the addresses just checked: no second lookup can answer differently.
        client = client.resolve_to_addrs(host, &addrs);
    }
    let client = match client.build() {
        Ok(c) => c,
        Err(e) => return Outcome::failed(format!("HTTP client: {e}")),
    };
    let response = client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("webhook-id", &claimed.msg_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(claimed.body.clone())
        .send()
        .await;
    let mut response = match response {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return Outcome::failed(format!(
                "no answer within {:?}",
                state.effects.webhook_timeout
            ));
        }
        Err(e) => return Outcome::failed(format!("request failed: {}", error_chain(&e))),
    };
    let status = response.status().as_u16();
    let retry_after = retry_after(status, response.headers());
    let mut kept = Vec::new();
    let mut error = None;
    while kept.len() < RESPONSE_LOG_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                error = Some(format!("reading the response failed: {}", error_chain(&e)));
                break;
            }
        }
    }
    kept.truncate(RESPONSE_LOG_BYTES);
    Outcome {
        status: Some(status),
        body: Some(String::from_utf8_lossy(&kept).into_owned()),
        error,
        retry_after,
    }
}

/// The `Retry-After` of a 429 or 503 answer.
fn retry_after(status: u16, headers: &HeaderMap) -> Option<Duration> {
    if !matches!(status, 429 | 503) {
        return None;
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, Utc::now()).map(|d| d.min(MAX_RETRY_AFTER))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// Logs the attempt and moves the delivery (and its endpoint) on, in one transaction.
#[allow(clippy::too_many_arguments)]
async fn record(
    state: &AppState,
    org_id: Uuid,
    id: Uuid,
    claimed: &Claimed,
    started_at: DateTime<Utc>,
    duration: Duration,
    timestamp: i64,
    outcome: Outcome,
) -> Result<(), sqlx::Error> {
    let succeeded = outcome.status.is_some_and(|s| (200..300).contains(&s));
    let gone = outcome.status == Some(410);
    let round = u32::try_from(claimed.round_attempts).unwrap_or(u32::MAX);
    let next_at = if succeeded || gone {
        None
    } else {
        retry_delay(round).map(|delay| {
            let delay = state
                .effects
                .scaled(delay.max(outcome.retry_after.unwrap_or_default()));
            Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX)
        })
    };
    let status = match (succeeded, next_at) {
        (true, _) => "succeeded",
        (false, Some(_)) => "pending",
        (false, None) => "failed",
    };
    let error = outcome.error.clone().or_else(|| {
        outcome
            .status
            .filter(|_| !succeeded)
            .map(|s| format!("the endpoint answered {s}"))
    });
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    sqlx::query(
        "INSERT INTO webhook_attempts (org_id, delivery_id, attempt, started_at, duration_ms, \
                status_code, response_body, error, webhook_timestamp) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(org_id)
    .bind(id)
    .bind(claimed.attempts)
    .bind(started_at)
    .bind(i32::try_from(duration.as_millis()).unwrap_or(i32::MAX))
    .bind(outcome.status.map(i32::from))
    .bind(&outcome.body)
    .bind(&error)
    .bind(timestamp)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $3, next_attempt_at = COALESCE($4, next_attempt_at), \
                last_status = $5, last_error = $6, locked_at = NULL, locked_by = NULL, \
                finished_at = CASE WHEN $3 IN ('succeeded', 'failed') THEN now() END \
         WHERE org_id = $1 AND id = $2 AND status = 'running' AND attempts = $7",
    )
    .bind(org_id)
    .bind(id)
    .bind(status)
    .bind(next_at)
    .bind(outcome.status.map(i32::from))
    .bind(&error)
    // A result that comes back after its claim was reaped and claimed again (attempts moved
    // on) must not overwrite the newer claim's state.
    .bind(claimed.attempts)
    .execute(&mut *tx)
    .await?;
    let mut queued = 0;
    if succeeded {
        sqlx::query(
            "UPDATE webhook_endpoints SET failing_since = NULL \
             WHERE org_id = $1 AND id = $2 AND failing_since IS NOT NULL",
        )
        .bind(org_id)
        .bind(claimed.endpoint_id)
        .execute(&mut *tx)
        .await?;
    } else if gone {
        queued += store::disable_and_notify(
            &mut tx,
            state,
            org_id,
            claimed.endpoint_id,
            "the endpoint answered 410 Gone",
        )
        .await?;
    } else {
        // No row: the endpoint was deleted while the request ran.
        let failing_since: Option<(DateTime<Utc>,)> = sqlx::query_as(
            "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, $3) \
             WHERE org_id = $1 AND id = $2 RETURNING failing_since",
        )
        .bind(org_id)
        .bind(claimed.endpoint_id)
        .bind(started_at)
        .fetch_optional(&mut *tx)
        .await?;
        let limit = chrono::Duration::from_std(state.effects.scaled(DISABLE_AFTER))
            .unwrap_or(chrono::Duration::MAX);
        if failing_since.is_some_and(|(since,)| Utc::now() - since >= limit) {
            queued += store::disable_and_notify(
                &mut tx,
                state,
                org_id,
                claimed.endpoint_id,
                "every attempt failed for 5 days",
            )
            .await?;
        }
    }
    tx.commit().await?;
    if queued > 0 {
        state.effect_wakeup.wake();
    }
    match status {
        "succeeded" => tracing::debug!(delivery_id = %id, "webhook delivered"),
        "failed" => {
            tracing::warn!(delivery_id = %id, error = ?error, "webhook delivery failed for good")
        }
        _ => {
            tracing::info!(delivery_id = %id, error = ?error, "webhook attempt failed; will retry")
        }
    }
    Ok(())
}
