//! The SQL behind revisions (`document_revisions`, migrations/0007_text_documents.sql). Every
//! function runs in the caller's org transaction (row-level security applies).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::store::Tx;

/// A revision as listed: everything but its content.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RevisionSummary {
    pub number: i32,
    pub author_id: Uuid,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub field_changes: Value,
}

/// A whole revision, as one is read.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Revision {
    #[serde(flatten)]
    pub summary: RevisionSummary,
    pub fields: Value,
    pub html: String,
    pub text: String,
}

/// A revision about to be stored.
#[derive(Debug)]
pub struct NewRevision<'a> {
    pub number: i32,
    pub author_id: Uuid,
    pub description: &'a str,
    pub snapshot: &'a [u8],
    pub html: &'a str,
    pub text: &'a str,
    pub fields: &'a Value,
    pub field_changes: &'a Value,
}

// JSON travels as text (`::text` / `::jsonb`): the workspace's sqlx has no `json` feature.
type SummaryRow = (i32, Uuid, String, DateTime<Utc>, String);
type RevisionRow = (
    i32,
    Uuid,
    String,
    DateTime<Utc>,
    String,
    String,
    String,
    String,
);

fn json(column: &str, text: &str) -> Result<Value, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| {
        sqlx::Error::Decode(format!("document_revisions.{column} is not JSON: {e}").into())
    })
}

fn summary(row: SummaryRow) -> Result<RevisionSummary, sqlx::Error> {
    let (number, author_id, description, created_at, field_changes) = row;
    Ok(RevisionSummary {
        number,
        author_id,
        description,
        created_at,
        field_changes: json("field_changes", &field_changes)?,
    })
}

fn revision(row: RevisionRow) -> Result<Revision, sqlx::Error> {
    let (number, author_id, description, created_at, changes, fields, html, text) = row;
    Ok(Revision {
        summary: summary((number, author_id, description, created_at, changes))?,
        fields: json("fields", &fields)?,
        html,
        text,
    })
}

/// The latest revision of a document, if it has any.
pub async fn latest(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
) -> Result<Option<Revision>, sqlx::Error> {
    let row: Option<RevisionRow> = sqlx::query_as(
        "SELECT number, author_id, description, created_at, field_changes::text, fields::text, \
         body_html, body_text FROM document_revisions \
         WHERE org_id = $1 AND doc_id = $2 ORDER BY number DESC LIMIT 1",
    )
    .bind(org_id)
    .bind(doc_id)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(revision).transpose()
}

/// Revision `number` of a document.
pub async fn get(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
    number: i32,
) -> Result<Option<Revision>, sqlx::Error> {
    let row: Option<RevisionRow> = sqlx::query_as(
        "SELECT number, author_id, description, created_at, field_changes::text, fields::text, \
         body_html, body_text FROM document_revisions \
         WHERE org_id = $1 AND doc_id = $2 AND number = $3",
    )
    .bind(org_id)
    .bind(doc_id)
    .bind(number)
    .fetch_optional(&mut **tx)
    .await?;
    row.map(revision).transpose()
}

/// The snapshots of two revisions, `None` for a number the document does not have.
pub async fn snapshots(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
    numbers: [i32; 2],
) -> Result<[Option<Vec<u8>>; 2], sqlx::Error> {
    let rows: Vec<(i32, Vec<u8>)> = sqlx::query_as(
        "SELECT number, snapshot FROM document_revisions \
         WHERE org_id = $1 AND doc_id = $2 AND number = ANY($3)",
    )
    .bind(org_id)
    .bind(doc_id)
    .bind(&numbers[..])
    .fetch_all(&mut **tx)
    .await?;
    let find = |n: i32| rows.iter().find(|(m, _)| *m == n).map(|(_, s)| s.clone());
    Ok([find(numbers[0]), find(numbers[1])])
}

/// Every revision of a document, oldest first.
pub async fn list(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
) -> Result<Vec<RevisionSummary>, sqlx::Error> {
    let rows: Vec<SummaryRow> = sqlx::query_as(
        "SELECT number, author_id, description, created_at, field_changes::text \
         FROM document_revisions WHERE org_id = $1 AND doc_id = $2 ORDER BY number",
    )
    .bind(org_id)
    .bind(doc_id)
    .fetch_all(&mut **tx)
    .await?;
    rows.into_iter().map(summary).collect()
}

/// Stores a revision; returns its creation time. The caller holds the document's row lock, so
/// numbers do not collide.
pub async fn insert(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    doc_id: Uuid,
    revision: &NewRevision<'_>,
) -> Result<DateTime<Utc>, sqlx::Error> {
    let (created_at,): (DateTime<Utc>,) = sqlx::query_as(
        "INSERT INTO document_revisions (org_id, doc_id, number, author_id, description, \
         snapshot, body_html, body_text, fields, field_changes) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb) RETURNING created_at",
    )
    .bind(org_id)
    .bind(doc_id)
    .bind(revision.number)
    .bind(revision.author_id)
    .bind(revision.description)
    .bind(revision.snapshot)
    .bind(revision.html)
    .bind(revision.text)
    .bind(revision.fields.to_string())
    .bind(revision.field_changes.to_string())
    .fetch_one(&mut **tx)
    .await?;
    Ok(created_at)
}
