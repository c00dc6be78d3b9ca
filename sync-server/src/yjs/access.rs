//! Who may open `/yjs/{doc_id}`: the token, the user's membership and relation to the document,
//! and which text collection holds its body.

use syncline_protocol::ErrorCode;
use syncline_protocol::schema;
use syncline_protocol::text::TextRole;
use uuid::Uuid;

use super::{YjsClose, review_links};
use crate::AppState;
use crate::auth::Session;
use crate::error::ServerError;

/// An opened document.
#[derive(Debug, Clone, Copy)]
pub struct Access {
    pub session: Session,
    pub doc_id: Uuid,
    /// The text collection of the body (`note_bodies`, `document_bodies`).
    pub collection: &'static str,
    pub role: TextRole,
}

/// Why a connection is refused: the close code and reason, and whether to say so first with a
/// y-protocols permission-denied message (for clients that only look at that).
#[derive(Debug, Clone)]
pub struct Refusal {
    pub close: YjsClose,
    pub reason: String,
    pub deny: bool,
}

impl Refusal {
    fn new(close: YjsClose, reason: impl Into<String>) -> Self {
        Self {
            close,
            reason: reason.into(),
            deny: matches!(close, YjsClose::Forbidden | YjsClose::NotFound),
        }
    }
}

impl From<ServerError> for Refusal {
    fn from(e: ServerError) -> Self {
        e.log();
        Self::new(YjsClose::Unavailable, "server unavailable, try again later")
    }
}

impl From<sqlx::Error> for Refusal {
    fn from(e: sqlx::Error) -> Self {
        Self::from(ServerError::from(e))
    }
}

/// Message of a document the user may not read, also used for documents of other orgs, so the
/// answer does not tell whether the document exists.
pub const NOT_ACCESSIBLE: &str = "document not found or not accessible";

/// Checks the token and the user's access to `doc_id` (the path segment as sent).
pub async fn open(state: &AppState, doc_id: &str, token: Option<&str>) -> Result<Access, Refusal> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(Refusal::new(
            YjsClose::Unauthenticated,
            "missing access token (?token=...)",
        ));
    };
    let (session, only_doc) = verify(state, token)?;
    let Ok(doc_id) = Uuid::parse_str(doc_id) else {
        return Err(Refusal::new(YjsClose::NotFound, "document ids are UUIDs"));
    };
    if only_doc.is_some_and(|only| only != doc_id) {
        return Err(Refusal::new(YjsClose::Forbidden, NOT_ACCESSIBLE));
    }
    let role = role(state, session, doc_id).await?;
    let mut tx = crate::db::begin_org(&state.db, session.org_id).await?;
    let record: Option<(String,)> =
        sqlx::query_as("SELECT collection FROM documents WHERE org_id = $1 AND id = $2")
            .bind(session.org_id)
            .bind(doc_id)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((record_collection,)) = record else {
        return Err(Refusal::new(YjsClose::NotFound, "no such document"));
    };
    let Some(body) = schema::body_collection(&record_collection) else {
        return Err(Refusal::new(
            YjsClose::NotFound,
            format!("{record_collection} documents have no text body"),
        ));
    };
    Ok(Access {
        session,
        doc_id,
        collection: body.name,
        role,
    })
}

/// The user's role on the document now: refused when they are no longer a member or may not
/// read it.
pub async fn role(state: &AppState, session: Session, doc_id: Uuid) -> Result<TextRole, Refusal> {
    let acl = state.acl.get(&state.db, session.org_id).await?;
    role_in(&acl, session, doc_id)
}

/// An access token, or a review link's token (which opens one document only).
fn verify(state: &AppState, token: &str) -> Result<(Session, Option<Uuid>), Refusal> {
    let refusal = |e: ServerError| {
        let close = if e.code == ErrorCode::TokenExpired {
            YjsClose::TokenExpired
        } else {
            YjsClose::Unauthenticated
        };
        Refusal::new(close, e.message)
    };
    match state.keys.verify(token) {
        Ok(session) => Ok((session, None)),
        Err(e) if e.code == ErrorCode::Unauthenticated => review_links::verify(&state.keys, token)
            .map(|review| (review.session, Some(review.doc_id)))
            .map_err(refusal),
        Err(e) => Err(refusal(e)),
    }
}

/// [`role`] against a given authorization model.
pub fn role_in(
    acl: &crate::authz::model::OrgAcl,
    session: Session,
    doc_id: Uuid,
) -> Result<TextRole, Refusal> {
    if acl.role(session.user_id).is_none() {
        return Err(Refusal::new(
            YjsClose::Unauthenticated,
            "not a member of the token's organization",
        ));
    }
    acl.relation(session.user_id, doc_id)
        .map(TextRole::from)
        .ok_or_else(|| Refusal::new(YjsClose::Forbidden, NOT_ACCESSIBLE))
}
