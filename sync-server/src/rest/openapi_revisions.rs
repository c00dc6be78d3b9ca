//! Named revisions of business documents and redlines (`/v1/documents/{id}/...`, see
//! [`crate::revisions`]) in the OpenAPI document: `#[utoipa::path]` descriptions on stubs named
//! after the handlers, with the handlers' own types deriving `ToSchema`.

use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi, ToSchema};

use crate::revisions::{CreateBody, Revision, RevisionSummary};

/// Adds the revision routes.
pub(crate) struct Revisions;

impl Modify for Revisions {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        openapi.merge(RevisionsDoc::openapi());
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(list, create, show, redline),
    components(schemas(CreateBody, Revision, RevisionSummary, RedlineJson))
)]
struct RevisionsDoc;

/// `format=json` of a redline.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RedlineJson {
    pub from: i32,
    pub to: i32,
    /// The body between the two revisions as HTML, insertions in `<ins>`, deletions in `<del>`.
    pub html: String,
}

/// The document's revisions, oldest first, with the fields each one changed.
#[utoipa::path(
    get,
    path = "/v1/documents/{id}/revisions",
    tag = "revisions",
    operation_id = "list_revisions",
    params(("id" = Uuid, Path, description = "The business document's id.")),
    responses(
        (status = 200, description = "The revisions.", body = Vec<RevisionSummary>),
        (status = 404, description = "No such document the caller may read."),
    )
)]
#[allow(dead_code)]
fn list() {}

/// Names the current state as the next revision (the first is number 0, the baseline).
#[utoipa::path(
    post,
    path = "/v1/documents/{id}/revisions",
    tag = "revisions",
    operation_id = "create_revision",
    params(("id" = Uuid, Path, description = "The business document's id.")),
    request_body = CreateBody,
    responses(
        (status = 201, description = "The new revision.", body = Revision),
        (status = 403, description = "The caller may not edit the document."),
        (status = 404, description = "No such document the caller may read."),
    )
)]
#[allow(dead_code)]
fn create() {}

/// One revision: its body as HTML and text, and the record's fields then.
#[utoipa::path(
    get,
    path = "/v1/documents/{id}/revisions/{number}",
    tag = "revisions",
    operation_id = "get_revision",
    params(
        ("id" = Uuid, Path, description = "The business document's id."),
        ("number" = i32, Path, minimum = 0, description = "The revision number."),
    ),
    responses(
        (status = 200, description = "The revision.", body = Revision),
        (status = 404, description = "No such document or revision."),
    )
)]
#[allow(dead_code)]
fn show() {}

/// The body's redline between two revisions, as an HTML fragment or JSON.
#[utoipa::path(
    get,
    path = "/v1/documents/{id}/redline",
    tag = "revisions",
    operation_id = "redline",
    params(
        ("id" = Uuid, Path, description = "The business document's id."),
        ("from" = i32, Query, minimum = 0, description = "The older revision."),
        ("to" = i32, Query, minimum = 0, description = "The newer revision."),
        ("format" = Option<String>, Query, description = "`html` (default) or `json`."),
    ),
    responses(
        (status = 200, description = "The redline.", content(
            (String = "text/html"),
            (RedlineJson = "application/json"),
        )),
        (status = 404, description = "No such document or revision."),
    )
)]
#[allow(dead_code)]
fn redline() {}
