//! The client's error type. Input the schema refuses is reported with the same stable
//! [`ErrorCode`] the server would send in a `Reject`, so a UI can handle both alike; storage and
//! decoding failures map to [`ErrorCode::Internal`].

use syncline_protocol::ErrorCode;
use syncline_protocol::record::RecordError;
use uuid::Uuid;

/// Everything a client operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The write or query is not valid for the collection's schema; nothing was stored.
    #[error("invalid {collection} input: {source}")]
    Invalid {
        collection: String,
        #[source]
        source: RecordError,
    },
    /// The collection is not a synced collection of this protocol version.
    #[error("unknown collection `{0}`")]
    UnknownCollection(String),
    /// No document with this id exists in the collection (locally).
    #[error("{collection} document {id} not found")]
    NotFound { collection: String, id: Uuid },
    /// SQLite failed; the transaction was rolled back.
    #[error("local storage failed: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A stored or received automerge document or change could not be decoded or applied.
    #[error("document {doc_id}: {message}")]
    Document { doc_id: Uuid, message: String },
    /// The replica holds something this code never writes (e.g. a malformed client id).
    #[error("corrupt replica: {0}")]
    Corrupt(String),
    /// A server change depends on history this replica never received (it resyncs).
    #[error("document {0}: change without its history")]
    MissingHistory(Uuid),
    /// A Yjs update given to a text document (by an editor) is malformed, too deep, or depends
    /// on changes the document does not have; nothing was stored.
    #[error("text document {doc_id}: {code}: {message}")]
    InvalidUpdate {
        doc_id: Uuid,
        code: ErrorCode,
        message: String,
    },
    /// A text position or range lies outside the document's text (or inside content that
    /// cannot be edited as text); nothing was changed.
    #[error("text document {doc_id}: {message}")]
    InvalidPosition { doc_id: Uuid, message: String },
    /// Suggestions carry the user's id, which the replica learns from the server's `Welcome`;
    /// this replica was never welcomed.
    #[error("suggestions need the user id of a server session; this replica has none yet")]
    NoSession,
}

impl ClientError {
    /// The stable error code for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { source, .. } => source.code,
            Self::UnknownCollection(_) => ErrorCode::UnknownCollection,
            Self::InvalidUpdate { code, .. } => *code,
            Self::InvalidPosition { .. } => ErrorCode::InvalidInput,
            Self::NoSession => ErrorCode::Unauthenticated,
            Self::NotFound { .. } => ErrorCode::NotFound,
            Self::Storage(_)
            | Self::Document { .. }
            | Self::Corrupt(_)
            | Self::MissingHistory(_) => ErrorCode::Internal,
        }
    }

    pub(crate) fn invalid(collection: &str, source: RecordError) -> Self {
        Self::Invalid {
            collection: collection.to_owned(),
            source,
        }
    }

    /// An invalid-input error about `field` that did not come from the protocol's validator
    /// (query filters, ordering).
    pub(crate) fn invalid_field(
        collection: &str,
        code: ErrorCode,
        field: &str,
        message: &str,
    ) -> Self {
        Self::invalid(
            collection,
            RecordError {
                code,
                field: field.to_owned(),
                message: message.to_owned(),
            },
        )
    }

    pub(crate) fn document(doc_id: Uuid, error: impl std::fmt::Display) -> Self {
        Self::Document {
            doc_id,
            message: error.to_string(),
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;
