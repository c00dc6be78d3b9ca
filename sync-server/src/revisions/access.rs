//! Finding a business document for the caller and their relation to it, the same way pushes
//! judge it (`crate::merge`): the org's authorization model, and the creator owns what they
//! created while they can still read it. A document the caller may not read, of another org
//! (hidden by row-level security), or of another collection is "not found", so that its
//! existence is not revealed.

use syncline_protocol::ErrorCode;
use syncline_protocol::rules::Relation;
use syncline_protocol::schema::DOCUMENTS;
use uuid::Uuid;

use crate::AppState;
use crate::auth::Session;
use crate::error::{ServerError, ServerResult};
use crate::store::Tx;

/// An open org transaction on a readable business document.
pub struct Opened {
    pub tx: Tx<'static>,
    pub relation: Relation,
    /// The record's saved automerge state (empty while its creation is in flight).
    pub record_state: Vec<u8>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("relation", &self.relation)
            .finish_non_exhaustive()
    }
}

pub fn not_found() -> ServerError {
    ServerError::new(ErrorCode::NotFound, "document not found")
}

/// Whether the next step writes (locks the document row, so that revisions of one document
/// are numbered one at a time, and reads the freshest authorization model).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    Read,
    Write,
}

/// Opens `doc_id` for `session`'s user, who must be able to read it.
pub async fn open(
    state: &AppState,
    session: &Session,
    doc_id: Uuid,
    intent: Intent,
) -> ServerResult<Opened> {
    let org_id = session.org_id;
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    let query = match intent {
        Intent::Read => {
            "SELECT collection, created_by, state FROM documents WHERE org_id = $1 AND id = $2"
        }
        Intent::Write => {
            "SELECT collection, created_by, state FROM documents \
             WHERE org_id = $1 AND id = $2 FOR UPDATE"
        }
    };
    let row: Option<(String, Uuid, Vec<u8>)> = sqlx::query_as(query)
        .bind(org_id)
        .bind(doc_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some((collection, created_by, record_state)) = row else {
        return Err(not_found());
    };
    if collection != DOCUMENTS.name {
        return Err(not_found());
    }
    let acl = match intent {
        Intent::Read => state.acl.get(&state.db, org_id).await?,
        Intent::Write => {
            let seq = crate::authz::cache::acl_seq(&mut tx, org_id).await?;
            state.acl.get_fresh(&state.db, org_id, seq).await?
        }
    };
    let Some(mut relation) = acl.relation(session.user_id, doc_id) else {
        return Err(not_found());
    };
    if created_by == session.user_id {
        relation = Relation::Owner;
    }
    Ok(Opened {
        tx,
        relation,
        record_state,
    })
}
