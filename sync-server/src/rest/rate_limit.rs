//! Rate limits of the REST bridge: one quota per API key and one per user (shared by all of the
//! user's tokens), `SYNCLINE_RATE_LIMIT_PER_MINUTE` requests a minute (GCRA from `governor`:
//! a full quota may be spent at once, then it refills evenly over the minute).
//!
//! Every `/api/v1` response carries `X-RateLimit-Limit` and `X-RateLimit-Remaining`; a request
//! over the quota gets 429 `rate_limited` with `Retry-After` (seconds) and is not executed.
//! The counters live in this process: behind a load balancer each node enforces the quota on
//! its own, so a principal may get up to `nodes × quota` — acceptable for abuse protection.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use syncline_protocol::ErrorCode;

use super::principal::Principal;
use crate::AppState;
use crate::error::ServerError;

/// Requests a minute per principal unless configured otherwise.
pub const DEFAULT_PER_MINUTE: u32 = 600;

/// How many checks pass between sweeps of principals whose quota is full again (the map
/// would otherwise keep one entry per principal ever seen).
const SWEEP_EVERY: u64 = 4096;

static LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// What a check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed { limit: u32, remaining: u32 },
    Limited { limit: u32, retry_after_secs: u64 },
}

/// The per-principal quotas of this process. Cheap to clone (shared).
#[derive(Clone)]
pub struct RateLimits {
    current: Arc<RwLock<(u32, Arc<Limiter>)>>,
    checks: Arc<AtomicU64>,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_minute", &self.per_minute())
            .finish_non_exhaustive()
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        Self::per_minute_quota(DEFAULT_PER_MINUTE)
    }
}

fn limiter(per_minute: u32) -> Arc<Limiter> {
    let n = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
    Arc::new(
        RateLimiter::keyed(Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>(),
    )
}

impl RateLimits {
    /// Quotas of `per_minute` requests a minute (at least 1).
    pub fn per_minute_quota(per_minute: u32) -> Self {
        let per_minute = per_minute.max(1);
        Self {
            current: Arc::new(RwLock::new((per_minute, limiter(per_minute)))),
            checks: Arc::default(),
        }
    }

    /// Changes the quota for every clone (the configured value at start-up; tests set tiny
    /// quotas). Every principal starts over with a full quota.
    pub fn set_per_minute(&self, per_minute: u32) {
        let per_minute = per_minute.max(1);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) =
            (per_minute, limiter(per_minute));
    }

    pub fn per_minute(&self) -> u32 {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// Counts one request of `principal` against its quota.
    pub fn check(&self, principal: &str) -> Decision {
        let (limit, limiter) = self
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            limiter.retain_recent();
        }
        match limiter.check_key(&principal.to_owned()) {
            Ok(snapshot) => Decision::Allowed {
                limit,
                remaining: snapshot.remaining_burst_capacity(),
            },
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                // Round up: retrying after a rounded-down wait would be refused again.
                let retry_after_secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Decision::Limited {
                    limit,
                    retry_after_secs: retry_after_secs.max(1),
                }
            }
        }
    }
}

fn set_headers(headers: &mut HeaderMap, limit: u32, remaining: u32) {
    headers.insert(LIMIT.clone(), HeaderValue::from(limit));
    headers.insert(REMAINING.clone(), HeaderValue::from(remaining));
}

/// Middleware: counts each authenticated `/api/v1` request against its principal's quota
/// (the principal comes from [`super::principal::layer`], which runs first).
pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(principal) = request.extensions().get::<Principal>() else {
        return next.run(request).await;
    };
    match state.rate_limits.check(&principal.key()) {
        Decision::Allowed { limit, remaining } => {
            let mut response = next.run(request).await;
            set_headers(response.headers_mut(), limit, remaining);
            response
        }
        Decision::Limited {
            limit,
            retry_after_secs,
        } => {
            tracing::info!(principal = %principal.key(), retry_after_secs, "rate limited");
            let mut response = ServerError::new(
                ErrorCode::RateLimited,
                format!("more than {limit} requests a minute; retry in {retry_after_secs} s"),
            )
            .with_details(serde_json::json!({ "retry_after_seconds": retry_after_secs }))
            .into_response();
            let headers = response.headers_mut();
            set_headers(headers, limit, 0);
            headers.insert(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_is_per_principal_and_counts_down() {
        let limits = RateLimits::per_minute_quota(2);
        assert_eq!(
            limits.check("user:a"),
            Decision::Allowed {
                limit: 2,
                remaining: 1
            }
        );
        assert_eq!(
            limits.check("user:a"),
            Decision::Allowed {
                limit: 2,
                remaining: 0
            }
        );
        assert!(matches!(
            limits.check("user:a"),
            Decision::Limited { limit: 2, retry_after_secs } if (1..=30).contains(&retry_after_secs)
        ));
        assert!(matches!(
            limits.check("key:b"),
            Decision::Allowed { remaining: 1, .. }
        ));
    }

    #[test]
    fn setting_the_quota_starts_over() {
        let limits = RateLimits::per_minute_quota(1);
        let shared = limits.clone();
        assert!(matches!(limits.check("u"), Decision::Allowed { .. }));
        assert!(matches!(limits.check("u"), Decision::Limited { .. }));
        shared.set_per_minute(5);
        assert_eq!(limits.per_minute(), 5);
        assert!(matches!(
            limits.check("u"),
            Decision::Allowed {
                limit: 5,
                remaining: 4
            }
        ));
    }
}
