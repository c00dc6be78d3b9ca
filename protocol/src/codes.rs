//! Stable error codes (sent in `Reject` and `Error` messages and in HTTP error envelopes) and
//! WebSocket close codes. The string forms are part of the public contract: never rename one.

use serde::{Deserialize, Serialize};

/// Why a mutation, request or message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame could not be decoded as a protocol message.
    MalformedFrame,
    /// The frame decoded, but its `type` is not one this server knows.
    UnknownMessageType,
    /// A message arrived that is not valid in the connection's current state.
    UnexpectedMessage,
    /// The client speaks a protocol version this server does not.
    UnsupportedProtocolVersion,
    /// Missing, malformed or forged credentials.
    Unauthenticated,
    /// The credentials expired.
    TokenExpired,
    /// The user may not do this (including documents of another organization).
    Forbidden,
    /// The collection named is not a synced collection.
    UnknownCollection,
    /// The mutation names a collection other than the document's.
    CollectionMismatch,
    /// The payload is not a valid CRDT change.
    InvalidChange,
    /// The change depends on a change the server does not have (usually one it rejected).
    MissingDependency,
    /// A required field is missing or empty in the merged record.
    MissingRequiredField,
    /// A field holds a value of the wrong type.
    InvalidFieldType,
    /// An enum field holds a value outside its allowed set.
    InvalidEnumValue,
    /// A field holds a value of the right type that is still out of range or malformed.
    InvalidFieldValue,
    /// The record holds a field its schema does not define.
    UnknownField,
    /// The change writes a field only the server may write.
    ServerOwnedField,
    /// The mutation id is not valid (e.g. sequence 0, or another client's id).
    InvalidMutationId,
    /// Too much at once (frame, batch or document size).
    TooLarge,
    /// Input that fails validation outside of records (HTTP bodies, parameters).
    InvalidInput,
    /// Unique constraint such as an e-mail already registered.
    Conflict,
    /// Resource not found (HTTP).
    NotFound,
    /// A refresh token was presented again after rotation; its whole family is revoked.
    RefreshTokenReused,
    /// Something failed on the server; details are in its log, not in the message.
    Internal,
    /// The server cannot serve right now (database down, shutting down).
    Unavailable,
    /// The change writes a field that the user's relation to the document does not allow.
    FieldForbidden,
    /// A task dependency change would create a dependency cycle.
    DependencyCycle,
    /// A status change skips or reverses a step of the record's life cycle (e.g. a document
    /// going from `draft` straight to `signed`).
    InvalidTransition,
    /// The record is final (a signed document) and no longer changes.
    ImmutableRecord,
    /// Too many requests from one user or API key; retry after the `Retry-After` seconds.
    RateLimited,
    /// An `Idempotency-Key` was sent again with a different request (method, path or body).
    IdempotencyKeyReused,
    /// The HTTP route exists but not with this method.
    MethodNotAllowed,
}

impl ErrorCode {
    /// The stable string form, identical to the serialized one.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MalformedFrame => "malformed_frame",
            Self::UnknownMessageType => "unknown_message_type",
            Self::UnexpectedMessage => "unexpected_message",
            Self::UnsupportedProtocolVersion => "unsupported_protocol_version",
            Self::Unauthenticated => "unauthenticated",
            Self::TokenExpired => "token_expired",
            Self::Forbidden => "forbidden",
            Self::UnknownCollection => "unknown_collection",
            Self::CollectionMismatch => "collection_mismatch",
            Self::InvalidChange => "invalid_change",
            Self::MissingDependency => "missing_dependency",
            Self::MissingRequiredField => "missing_required_field",
            Self::InvalidFieldType => "invalid_field_type",
            Self::InvalidEnumValue => "invalid_enum_value",
            Self::InvalidFieldValue => "invalid_field_value",
            Self::UnknownField => "unknown_field",
            Self::ServerOwnedField => "server_owned_field",
            Self::InvalidMutationId => "invalid_mutation_id",
            Self::TooLarge => "too_large",
            Self::InvalidInput => "invalid_input",
            Self::Conflict => "conflict",
            Self::NotFound => "not_found",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::Internal => "internal",
            Self::Unavailable => "unavailable",
            Self::FieldForbidden => "field_forbidden",
            Self::DependencyCycle => "dependency_cycle",
            Self::InvalidTransition => "invalid_transition",
            Self::ImmutableRecord => "immutable_record",
            Self::RateLimited => "rate_limited",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::MethodNotAllowed => "method_not_allowed",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes used by the sync endpoint (4000-4999 is the application range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// The first message was not a valid `Hello`, or the token is missing, malformed or forged.
    Unauthenticated,
    /// The session's token expired and was not renewed with `Reauth` in time.
    TokenExpired,
    /// The client's protocol version is not supported.
    UnsupportedProtocolVersion,
    /// A frame could not be decoded (the stream can no longer be trusted).
    MalformedFrame,
    /// A text frame arrived; the protocol is binary only.
    UnsupportedData,
    /// The client sent messages faster than it reads replies, or oversized frames.
    PolicyViolation,
    /// The server is shutting down or lost its database.
    ServerUnavailable,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            Self::Unauthenticated => 4001,
            Self::TokenExpired => 4002,
            Self::UnsupportedProtocolVersion => 4003,
            Self::MalformedFrame => 4004,
            Self::UnsupportedData => 1003,
            Self::PolicyViolation => 1008,
            Self::ServerUnavailable => 1013,
        }
    }

    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            4001 => Self::Unauthenticated,
            4002 => Self::TokenExpired,
            4003 => Self::UnsupportedProtocolVersion,
            4004 => Self::MalformedFrame,
            1003 => Self::UnsupportedData,
            1008 => Self::PolicyViolation,
            1013 => Self::ServerUnavailable,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_codes_serialize_as_their_stable_strings() {
        for (code, s) in [
            (ErrorCode::FieldForbidden, "field_forbidden"),
            (ErrorCode::DependencyCycle, "dependency_cycle"),
            (ErrorCode::InvalidTransition, "invalid_transition"),
            (ErrorCode::ImmutableRecord, "immutable_record"),
        ] {
            assert_eq!(code.as_str(), s);
            assert_eq!(
                serde_json::to_value(code).expect("serialize"),
                serde_json::Value::String(s.into())
            );
            let back: ErrorCode =
                serde_json::from_value(serde_json::Value::String(s.into())).expect("parse");
            assert_eq!(back, code);
        }
    }
}
