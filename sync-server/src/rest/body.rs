//! Request bodies of record writes: a JSON object of field values, checked field by field so
//! that every problem is reported at once under `details.fields`.
//!
//! Field values in JSON: strings and enums as strings, integers (money: minor units) as JSON
//! integers, booleans, timestamps as RFC 3339 strings, references as UUID strings, reference
//! lists as arrays of UUID strings; `null` clears an optional field.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use chrono::DateTime;
use serde_json::{Map, Value, json};
use syncline_protocol::ErrorCode;
use syncline_protocol::record::{FieldValue, check_value};
use syncline_protocol::schema::{CollectionSchema, FieldDef, FieldType};
use uuid::Uuid;

use crate::error::ServerError;

/// Largest accepted request body of the REST bridge.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A JSON object body; malformed JSON, other JSON values, a wrong content type or an oversized
/// body are refused with the error envelope.
#[derive(Debug, Clone)]
pub struct RecordBody(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for RecordBody {
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<Value>::from_request(req, state).await {
            Ok(Json(Value::Object(map))) => Ok(Self(map)),
            Ok(Json(_)) => Err(invalid_body("expected a JSON object")),
            Err(rejection) => Err(body_rejection(&rejection)),
        }
    }
}

fn body_rejection(rejection: &JsonRejection) -> ServerError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ServerError::new(
            ErrorCode::TooLarge,
            format!("the request body may hold at most {MAX_BODY_BYTES} bytes"),
        );
    }
    invalid_body(&rejection.body_text())
}

fn invalid_body(reason: &str) -> ServerError {
    ServerError::new(
        ErrorCode::InvalidInput,
        "request body is not the expected JSON",
    )
    .with_details(json!({ "reason": reason }))
}

/// Field-level problems, reported together as `details.fields`.
#[derive(Debug, Default)]
pub struct FieldErrors(BTreeMap<String, (ErrorCode, String)>);

impl FieldErrors {
    pub fn add(&mut self, field: &str, code: ErrorCode, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_insert((code, message.into()));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One error naming every field: its code is the first field's (in name order).
    pub fn into_result(self) -> Result<(), ServerError> {
        let Some((_, (code, _))) = self.0.iter().next() else {
            return Ok(());
        };
        let fields: Map<String, Value> = self
            .0
            .iter()
            .map(|(field, (code, message))| {
                (field.clone(), Value::String(format!("{code}: {message}")))
            })
            .collect();
        Err(ServerError::new(*code, "the record has invalid fields")
            .with_details(json!({ "fields": fields })))
    }
}

/// Field writes in schema order: name and new value (`None` clears the field).
pub type FieldWrites = Vec<(&'static str, Option<FieldValue>)>;

/// The field writes a body asks for, in schema order, or every field-level problem.
///
/// `id` is accepted only when `allow_id` (creation with a client-chosen id) and returned
/// separately; server-owned and unknown fields are refused.
pub fn parse_fields(
    schema: &'static CollectionSchema,
    body: &Map<String, Value>,
    allow_id: bool,
) -> Result<(Option<Uuid>, FieldWrites), ServerError> {
    let mut errors = FieldErrors::default();
    let mut id = None;
    for (key, value) in body {
        if key == "id" {
            if !allow_id {
                errors.add(key, ErrorCode::ServerOwnedField, "the id is not writable");
            } else {
                match value.as_str().and_then(|s| Uuid::parse_str(s).ok()) {
                    Some(uuid) => id = Some(uuid),
                    None => errors.add(key, ErrorCode::InvalidFieldType, "expected a UUID string"),
                }
            }
            continue;
        }
        match schema.field(key) {
            None => errors.add(
                key,
                ErrorCode::UnknownField,
                "not a field of this collection",
            ),
            Some(def) if def.server_owned => errors.add(
                key,
                ErrorCode::ServerOwnedField,
                "only the server writes this field",
            ),
            Some(_) => {}
        }
    }
    let mut writes = Vec::new();
    for def in schema.client_fields() {
        let Some(value) = body.get(def.name) else {
            continue;
        };
        match json_to_field(def, value) {
            Ok(None) if def.required => {
                errors.add(def.name, ErrorCode::MissingRequiredField, "is required")
            }
            Ok(v) => writes.push((def.name, v)),
            Err((code, message)) => errors.add(def.name, code, message),
        }
    }
    errors.into_result()?;
    Ok((id, writes))
}

/// Converts one JSON value to a field value of `def` and checks it (type, length, enum set);
/// `null` is `None`.
pub fn json_to_field(
    def: &FieldDef,
    value: &Value,
) -> Result<Option<FieldValue>, (ErrorCode, String)> {
    if value.is_null() {
        return Ok(None);
    }
    let wrong = |expected: &str| (ErrorCode::InvalidFieldType, format!("expected {expected}"));
    let parsed = match def.ty {
        FieldType::String { .. } | FieldType::Enum(_) => value
            .as_str()
            .map(|s| FieldValue::String(s.to_owned()))
            .ok_or_else(|| wrong("a string"))?,
        FieldType::Int => value
            .as_i64()
            .map(FieldValue::Int)
            .ok_or_else(|| wrong("an integer"))?,
        FieldType::Bool => value
            .as_bool()
            .map(FieldValue::Bool)
            .ok_or_else(|| wrong("a boolean"))?,
        FieldType::Timestamp => value
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| FieldValue::Timestamp(t.timestamp_millis()))
            .ok_or_else(|| wrong("an RFC 3339 timestamp string"))?,
        FieldType::Ref(_) => value
            .as_str()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(FieldValue::Ref)
            .ok_or_else(|| wrong("a UUID string"))?,
        FieldType::RefList(_) => {
            let items = value
                .as_array()
                .ok_or_else(|| wrong("an array of UUID strings"))?;
            let ids = items
                .iter()
                .map(|v| v.as_str().and_then(|s| Uuid::parse_str(s).ok()))
                .collect::<Option<Vec<Uuid>>>()
                .ok_or_else(|| wrong("an array of UUID strings"))?;
            FieldValue::RefList(ids)
        }
    };
    check_value(def, &parsed).map_err(|e| (e.code, e.message))?;
    Ok(Some(parsed))
}
