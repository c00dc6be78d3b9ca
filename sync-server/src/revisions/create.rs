//! `POST /v1/documents/{id}/revisions`: naming the current state of a business document.
//!
//! A revision captures, in one transaction holding the document's row lock (so numbers never
//! collide): the body's Yjs snapshot (from which redlines against any other revision are
//! computed later, by item identity), the body as HTML and plain text at that moment, the
//! record's fields, and which fields changed since the previous revision.
//!
//! Numbering: the document's first revision is number 0, the baseline ("Original" unless the
//! request describes it), capturing the state at that moment; every later request creates the
//! next number. So "compare with the original" is always `from=0`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value};
use syncline_protocol::ErrorCode;
use syncline_protocol::rules::Relation;
use syncline_protocol::text::{html_at, snapshot_of, text_at};
use yrs::{ReadTxn, Transact};

use super::access::{Intent, open};
use super::fields;
use super::parse_doc_id;
use super::store::{self, NewRevision, Revision, RevisionSummary};
use crate::AppState;
use crate::auth::bearer::Bearer;
use crate::auth::routes::ApiJson;
use crate::error::{ServerError, ServerResult};

/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION: usize = 500;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(default)]
    description: Option<String>,
}

/// The body at this moment: its snapshot (v1), HTML and plain text.
struct Captured {
    snapshot: Vec<u8>,
    html: String,
    text: String,
}

fn capture(doc: &yrs::Doc) -> ServerResult<Captured> {
    let now = doc.transact().snapshot();
    let html = html_at(doc, &now).map_err(ServerError::internal)?;
    let text = text_at(doc, &now).map_err(ServerError::internal)?;
    Ok(Captured {
        snapshot: snapshot_of(doc),
        html,
        text,
    })
}

pub async fn create(
    State(state): State<AppState>,
    Bearer(session): Bearer,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ServerResult<(StatusCode, Json<Revision>)> {
    let doc_id = parse_doc_id(&id)?;
    let description = body
        .description
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty());
    if description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION)
    {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            format!("description: at most {MAX_DESCRIPTION} characters"),
        ));
    }
    let org_id = session.org_id;
    let opened = open(&state, &session, doc_id, Intent::Write).await?;
    if opened.relation < Relation::Editor {
        return Err(ServerError::new(
            ErrorCode::Forbidden,
            "only editors of a document may create its revisions",
        ));
    }
    let mut tx = opened.tx;
    let previous = store::latest(&mut tx, org_id, doc_id).await?;
    let number = match &previous {
        None => 0,
        Some(p) => p.summary.number.checked_add(1).ok_or_else(|| {
            ServerError::new(ErrorCode::Conflict, "the document has too many revisions")
        })?,
    };
    let captured = {
        // A document without a body yet has an empty one.
        let doc = crate::text::store::load_doc(&mut tx, org_id, doc_id)
            .await?
            .unwrap_or_else(crate::text::server_doc);
        capture(&doc)?
    };
    let current = fields::record_fields(&opened.record_state).map_err(ServerError::internal)?;
    let changes = match &previous {
        None => Vec::new(),
        Some(p) => {
            let old: Map<String, Value> = match &p.fields {
                Value::Object(map) => map.clone(),
                _ => Map::new(),
            };
            fields::changes(&old, &current)
        }
    };
    let description = description.unwrap_or_else(|| match number {
        0 => "Original".to_owned(),
        n => format!("Revision {n}"),
    });
    let fields = Value::Object(current);
    let field_changes = serde_json::to_value(&changes).map_err(ServerError::internal)?;
    let created_at = store::insert(
        &mut tx,
        org_id,
        doc_id,
        &NewRevision {
            number,
            author_id: session.user_id,
            description: &description,
            snapshot: &captured.snapshot,
            html: &captured.html,
            text: &captured.text,
            fields: &fields,
            field_changes: &field_changes,
        },
    )
    .await?;
    tx.commit().await?;
    let revision = Revision {
        summary: RevisionSummary {
            number,
            author_id: session.user_id,
            description,
            created_at,
            field_changes,
        },
        fields,
        html: captured.html,
        text: captured.text,
    };
    Ok((StatusCode::CREATED, Json(revision)))
}
