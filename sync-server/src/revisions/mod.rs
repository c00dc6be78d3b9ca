//! Named revisions of business documents (contracts) and redlines between them, over HTTP.
//!
//! - `POST /v1/documents/{id}/revisions` `{"description"?}`: editors (and the creator) name
//!   the current state ([`create`]); the first one is revision 0, the baseline.
//! - `GET /v1/documents/{id}/revisions`: the list, oldest first, with each revision's field
//!   changes (readers of the document).
//! - `GET /v1/documents/{id}/revisions/{n}`: one revision with its body as HTML and text and
//!   the record's fields then.
//! - `GET /v1/documents/{id}/redline?from=0&to=2[&format=json]`: the body's redline between two
//!   revisions as `text/html` (or `{"from", "to", "html"}`), computed on the server's current
//!   copy of the body from the two stored Yjs snapshots by item identity
//!   ([`syncline_protocol::text::redline_html`]), which works because the server's copy keeps
//!   deleted content (`skip_gc`, see `crate::text`).
//!
//! A document the caller may not read, of another org, or that is not a `documents` record is
//! `404 not_found`; malformed ids and parameters are `400 invalid_input`.

mod access;
mod create;
pub mod fields;
mod store;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use syncline_protocol::ErrorCode;
use syncline_protocol::text::{decode_snapshot, redline_html};
use uuid::Uuid;

use crate::AppState;
use crate::auth::bearer::Bearer;
use crate::error::{ServerError, ServerResult};
use access::{Intent, open};
pub use store::{Revision, RevisionSummary};

pub use create::{CreateBody, MAX_DESCRIPTION};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/documents/{id}/revisions",
            get(list).post(create::create),
        )
        .route("/v1/documents/{id}/revisions/{number}", get(show))
        .route("/v1/documents/{id}/redline", get(redline))
}

fn invalid(message: impl Into<String>) -> ServerError {
    ServerError::new(ErrorCode::InvalidInput, message)
}

pub(crate) fn parse_doc_id(id: &str) -> ServerResult<Uuid> {
    Uuid::parse_str(id).map_err(|_| invalid("the document id is not a UUID"))
}

fn parse_number(name: &str, value: Option<&str>) -> ServerResult<i32> {
    let value = value.ok_or_else(|| invalid(format!("`{name}` is required")))?;
    value
        .parse::<i32>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| invalid(format!("`{name}` must be a revision number (0 or more)")))
}

fn revision_not_found() -> ServerError {
    ServerError::new(ErrorCode::NotFound, "revision not found")
}

async fn list(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Path(id): Path<String>,
) -> ServerResult<Json<Vec<RevisionSummary>>> {
    let doc_id = parse_doc_id(&id)?;
    let mut opened = open(&state, &session, doc_id, Intent::Read).await?;
    let revisions = store::list(&mut opened.tx, session.org_id, doc_id).await?;
    opened.tx.commit().await?;
    Ok(Json(revisions))
}

async fn show(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Path((id, number)): Path<(String, String)>,
) -> ServerResult<Json<Revision>> {
    let doc_id = parse_doc_id(&id)?;
    let number = parse_number("number", Some(&number))?;
    let mut opened = open(&state, &session, doc_id, Intent::Read).await?;
    let revision = store::get(&mut opened.tx, session.org_id, doc_id, number)
        .await?
        .ok_or_else(revision_not_found)?;
    opened.tx.commit().await?;
    Ok(Json(revision))
}

async fn redline(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Path(id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ServerResult<Response> {
    let doc_id = parse_doc_id(&id)?;
    let from = parse_number("from", params.get("from").map(String::as_str))?;
    let to = parse_number("to", params.get("to").map(String::as_str))?;
    let json = match params.get("format").map(String::as_str) {
        None | Some("html") => false,
        Some("json") => true,
        Some(_) => return Err(invalid("`format` must be `html` or `json`")),
    };
    let org_id = session.org_id;
    let mut opened = open(&state, &session, doc_id, Intent::Read).await?;
    let [Some(from_bytes), Some(to_bytes)] =
        store::snapshots(&mut opened.tx, org_id, doc_id, [from, to]).await?
    else {
        return Err(revision_not_found());
    };
    let doc = crate::text::store::load_doc(&mut opened.tx, org_id, doc_id)
        .await?
        .unwrap_or_else(crate::text::server_doc);
    opened.tx.commit().await?;
    let html = {
        let from_snapshot = decode_snapshot(&from_bytes).map_err(ServerError::internal)?;
        let to_snapshot = decode_snapshot(&to_bytes).map_err(ServerError::internal)?;
        redline_html(&doc, &from_snapshot, &to_snapshot).map_err(ServerError::internal)?
    };
    if json {
        let body = serde_json::json!({ "from": from, "to": to, "html": html });
        return Ok(Json(body).into_response());
    }
    // A fragment of escaped user content: nothing in it may run, even if opened directly.
    let headers = [
        (CONTENT_TYPE, "text/html; charset=utf-8"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            CONTENT_SECURITY_POLICY,
            "default-src 'none'; img-src https:",
        ),
    ];
    Ok((headers, html).into_response())
}
