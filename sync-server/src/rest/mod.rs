//! The REST bridge for integrations: `/api/v1/{collection}` (list, get, create, PATCH, soft
//! DELETE, restore from the trash) over the synced record collections, with its OpenAPI
//! document at `/api/v1/openapi.json` ([`openapi`]).
//!
//! Reads come from the typed tables in the caller's org transaction (RLS); writes are automerge
//! changes the server authors on the caller's behalf ([`crate::merge::server`]).

pub mod access;
pub mod api_keys;
mod api_keys_store;
pub mod body;
pub mod idempotency;
pub mod list;
mod list_query;
pub mod openapi;
mod openapi_collections;
mod openapi_effects;
mod openapi_keys;
mod openapi_orgs;
mod openapi_params;
mod openapi_revisions;
mod openapi_routes;
pub mod principal;
pub mod rate_limit;
pub mod read;
pub mod records;
pub mod write;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::AppState;

/// The REST bridge's routes. Static paths (`/api/v1/trash/...`, `/api/v1/openapi.json`, ...)
/// take precedence over `{collection}`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/{collection}", get(list::list).post(write::create))
        .route(
            "/api/v1/{collection}/{id}",
            get(read::get_one).patch(write::patch).delete(write::delete),
        )
        .route("/api/v1/trash/{id}/restore", post(write::restore))
        .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES))
}
