//! The axum application: shared state, routes, correlation ids and request tracing.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::auth::AuthKeys;
use crate::authz::AclCache;
use crate::error::CORRELATION_ID;
use crate::hub::ChangeHub;
use crate::{auth, authz, health, ws};

/// State shared by every request and connection. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub keys: Arc<AuthKeys>,
    pub hub: ChangeHub,
    pub acl: AclCache,
    /// Recently written documents, decoded (see `merge::cache`).
    pub docs: crate::merge::cache::DocCache,
    /// Recently written text documents, decoded (see `text::cache`).
    pub texts: crate::text::cache::TextCache,
    /// Presence on text documents, relayed between connections (see `awareness`).
    pub awareness: crate::awareness::AwarenessRelay,
    /// Injected faults (conflict-tests only; see `faults`).
    pub faults: Arc<crate::faults::Faults>,
    /// Per-user and per-API-key quotas of the REST bridge (see `rest::rate_limit`).
    pub rate_limits: crate::rest::rate_limit::RateLimits,
    /// Settings of the effect workers, webhooks and email (see `effects`).
    pub effects: Arc<crate::effects::EffectsSettings>,
    /// The effect handlers jobs are queued for.
    pub effect_handlers: crate::effects::Handlers,
    /// Wakes this process's effect workers after a commit that queued jobs.
    pub effect_wakeup: crate::effects::worker::Wakeup,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

impl AppState {
    pub fn new(db: PgPool, keys: AuthKeys) -> Self {
        Self {
            db,
            keys: Arc::new(keys),
            hub: ChangeHub::default(),
            acl: AclCache::default(),
            docs: crate::merge::cache::DocCache::with_capacity(crate::merge::cache::CAPACITY),
            texts: crate::text::cache::TextCache::with_capacity(crate::text::cache::CAPACITY),
            awareness: crate::awareness::AwarenessRelay::default(),
            faults: Arc::default(),
            rate_limits: crate::rest::rate_limit::RateLimits::default(),
            effects: Arc::default(),
            effect_handlers: crate::effects::handlers::all(),
            effect_wakeup: crate::effects::worker::Wakeup::default(),
        }
    }

    /// The same state with these effect settings.
    pub fn with_effects(mut self, settings: crate::effects::EffectsSettings) -> Self {
        self.effects = Arc::new(settings);
        self
    }
}

static CORRELATION_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// Builds the router with every route of the server.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health/live", get(health::live))
        .route("/health/ready", get(health::ready))
        .route("/sync", get(ws::upgrade))
        .merge(crate::yjs::routes())
        .merge(auth::routes())
        .merge(authz::routes::routes())
        .merge(crate::revisions::routes())
        .merge(crate::rest::routes())
        .route(crate::rest::openapi::PATH, get(crate::rest::openapi::serve))
        .merge(crate::rest::api_keys::routes())
        .merge(crate::effects::dead_letters::routes())
        .merge(crate::audit::routes())
        .merge(crate::webhooks::routes())
        .merge(crate::notifications::routes::routes())
        // Unknown paths and methods answer with the error envelope too (axum's are empty).
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        // REST bridge guards, outermost last: authenticate, rate-limit, then idempotency.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::rest::idempotency::layer,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::rest::rate_limit::layer,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::rest::principal::layer,
        ))
        .layer(middleware::from_fn(crate::plain_errors::layer))
        .layer(middleware::from_fn(correlation_id))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}

async fn unknown_route() -> crate::error::ServerError {
    crate::error::ServerError::new(syncline_protocol::ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed() -> crate::error::ServerError {
    crate::error::ServerError::new(
        syncline_protocol::ErrorCode::MethodNotAllowed,
        "this route does not accept this method",
    )
}

/// The span of one HTTP request: method and path only. The query is left out because the
/// y-websocket convention puts the access token there (`/yjs/{doc_id}?token=...`).
fn request_span(request: &Request) -> tracing::Span {
    tracing::debug_span!(
        "http",
        method = %request.method(),
        path = %request.uri().path(),
    )
}

/// Takes the request's `X-Correlation-Id` (or makes one), exposes it to error responses and
/// logs, and echoes it on the response.
async fn correlation_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&CORRELATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    let span = tracing::info_span!("request", correlation_id = %id);
    // Who made a change, for the audit log (a sync connection's upgrade carries it along).
    let origin = crate::effects::outbox::Origin {
        via: "rest",
        ip: request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip()),
        correlation_id: Some(id.clone()),
    };
    let mut response = {
        let _entered = span.enter();
        let run = CORRELATION_ID.scope(id.clone(), next.run(request));
        crate::effects::outbox::ORIGIN.scope(origin, run).await
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(CORRELATION_HEADER.clone(), value);
    }
    response
}

/// Serves until `shutdown` resolves, then stops accepting and lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Nagle off: acks, changes and pongs are small frames that must not wait for a delayed ACK.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
