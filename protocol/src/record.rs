//! Record documents: reading an automerge document's root map as typed field values, validating
//! the result against its collection schema, and writing typed values into a document.
//!
//! The server validates the merged document after applying a client's change (authoritative);
//! clients validate before committing a local edit (so offline edits that the server would
//! reject are refused early, and both sides agree on the rules).

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ROOT, ReadDoc, ScalarValue, Value};
use uuid::Uuid;

use crate::codes::ErrorCode;
use crate::schema::{CollectionSchema, FieldDef, FieldType};

/// A typed field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    String(String),
    Int(i64),
    Bool(bool),
    /// Milliseconds since the Unix epoch, UTC.
    Timestamp(i64),
    Ref(Uuid),
}

/// The client-written fields of a record; absent and null fields are not in the map.
pub type Record = BTreeMap<&'static str, FieldValue>;

/// Why a record is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct RecordError {
    pub code: ErrorCode,
    pub field: String,
    pub message: String,
}

impl RecordError {
    pub(crate) fn new(code: ErrorCode, field: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Reads and validates the record held by `doc`'s root map.
///
/// Fails on fields the schema does not define, fields only the server may write, values of the
/// wrong type, enum values outside their set, and missing required fields.
pub fn read_record<D: ReadDoc>(doc: &D, schema: &CollectionSchema) -> Result<Record, RecordError> {
    let mut record = Record::new();
    for key in doc.keys(ROOT) {
        let Some(def) = schema.field(&key) else {
            return Err(RecordError::new(
                ErrorCode::UnknownField,
                &key,
                "not a field of this collection",
            ));
        };
        if def.server_owned {
            return Err(RecordError::new(
                ErrorCode::ServerOwnedField,
                &key,
                "only the server may write this field",
            ));
        }
        let value = doc
            .get(ROOT, key.as_str())
            .map_err(|e| RecordError::new(ErrorCode::InvalidChange, &key, e.to_string()))?;
        match value {
            None => {}
            Some((Value::Scalar(s), _)) => {
                if let Some(v) = scalar_to_field(def, s.as_ref())? {
                    record.insert(def.name, v);
                }
            }
            Some((Value::Object(kind), _)) => {
                return Err(RecordError::new(
                    ErrorCode::InvalidFieldType,
                    def.name,
                    format!("expected {}, found a {kind:?} object", type_name(def.ty)),
                ));
            }
        }
    }
    for def in schema.client_fields().filter(|d| d.required) {
        if !record.contains_key(def.name) {
            return Err(RecordError::new(
                ErrorCode::MissingRequiredField,
                def.name,
                "is required",
            ));
        }
    }
    Ok(record)
}

/// Checks one value against its field definition (type, length, enum set).
pub fn check_value(def: &FieldDef, value: &FieldValue) -> Result<(), RecordError> {
    let ok = match (def.ty, value) {
        (FieldType::String { max_len }, FieldValue::String(s)) => {
            if s.chars().count() > max_len {
                return Err(RecordError::new(
                    ErrorCode::InvalidFieldValue,
                    def.name,
                    format!("longer than {max_len} characters"),
                ));
            }
            if def.required && s.trim().is_empty() {
                return Err(RecordError::new(
                    ErrorCode::MissingRequiredField,
                    def.name,
                    "must not be empty",
                ));
            }
            true
        }
        (FieldType::Enum(allowed), FieldValue::String(s)) => {
            if !allowed.contains(&s.as_str()) {
                return Err(RecordError::new(
                    ErrorCode::InvalidEnumValue,
                    def.name,
                    format!("`{s}` is not one of {}", allowed.join(", ")),
                ));
            }
            true
        }
        (FieldType::Int, FieldValue::Int(_))
        | (FieldType::Bool, FieldValue::Bool(_))
        | (FieldType::Timestamp, FieldValue::Timestamp(_))
        | (FieldType::Ref(_), FieldValue::Ref(_)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(RecordError::new(
            ErrorCode::InvalidFieldType,
            def.name,
            format!("expected {}", type_name(def.ty)),
        ))
    }
}

fn scalar_to_field(def: &FieldDef, s: &ScalarValue) -> Result<Option<FieldValue>, RecordError> {
    let wrong = || {
        RecordError::new(
            ErrorCode::InvalidFieldType,
            def.name,
            format!("expected {}, found {}", type_name(def.ty), scalar_name(s)),
        )
    };
    if matches!(s, ScalarValue::Null) {
        return Ok(None);
    }
    let value = match (def.ty, s) {
        (FieldType::String { .. } | FieldType::Enum(_), ScalarValue::Str(v)) => {
            FieldValue::String(v.to_string())
        }
        (FieldType::Int, ScalarValue::Int(v)) => FieldValue::Int(*v),
        (FieldType::Int, ScalarValue::Uint(v)) => {
            FieldValue::Int(i64::try_from(*v).map_err(|_| wrong())?)
        }
        (FieldType::Bool, ScalarValue::Boolean(v)) => FieldValue::Bool(*v),
        (FieldType::Timestamp, ScalarValue::Timestamp(v)) => FieldValue::Timestamp(*v),
        (FieldType::Ref(_), ScalarValue::Str(v)) => {
            FieldValue::Ref(Uuid::parse_str(v).map_err(|_| {
                RecordError::new(ErrorCode::InvalidFieldValue, def.name, "is not a UUID")
            })?)
        }
        _ => return Err(wrong()),
    };
    check_value(def, &value)?;
    Ok(Some(value))
}

/// Writes one field into a record document (or deletes it when `value` is `None`), checking the
/// value against the schema first.
pub fn put_field<T: Transactable>(
    tx: &mut T,
    schema: &CollectionSchema,
    name: &str,
    value: Option<&FieldValue>,
) -> Result<(), RecordError> {
    let def = schema.field(name).ok_or_else(|| {
        RecordError::new(
            ErrorCode::UnknownField,
            name,
            "not a field of this collection",
        )
    })?;
    if def.server_owned {
        return Err(RecordError::new(
            ErrorCode::ServerOwnedField,
            name,
            "only the server may write this field",
        ));
    }
    let result = match value {
        None => {
            if def.required {
                return Err(RecordError::new(
                    ErrorCode::MissingRequiredField,
                    name,
                    "is required",
                ));
            }
            if tx.get(ROOT, def.name).ok().flatten().is_none() {
                return Ok(());
            }
            tx.delete(ROOT, def.name)
        }
        Some(v) => {
            check_value(def, v)?;
            let scalar = match v {
                FieldValue::String(s) => ScalarValue::Str(s.as_str().into()),
                FieldValue::Int(i) => ScalarValue::Int(*i),
                FieldValue::Bool(b) => ScalarValue::Boolean(*b),
                FieldValue::Timestamp(t) => ScalarValue::Timestamp(*t),
                FieldValue::Ref(id) => ScalarValue::Str(id.to_string().into()),
            };
            tx.put(ROOT, def.name, scalar)
        }
    };
    result.map_err(|e| RecordError::new(ErrorCode::InvalidChange, name, e.to_string()))
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String { .. } => "a string",
        FieldType::Int => "an integer",
        FieldType::Bool => "a boolean",
        FieldType::Timestamp => "a timestamp",
        FieldType::Enum(_) => "an enum string",
        FieldType::Ref(_) => "a UUID string",
    }
}

fn scalar_name(s: &ScalarValue) -> &'static str {
    match s {
        ScalarValue::Bytes(_) => "bytes",
        ScalarValue::Str(_) => "a string",
        ScalarValue::Int(_) | ScalarValue::Uint(_) => "an integer",
        ScalarValue::F64(_) => "a float",
        ScalarValue::Counter(_) => "a counter",
        ScalarValue::Timestamp(_) => "a timestamp",
        ScalarValue::Boolean(_) => "a boolean",
        ScalarValue::Null => "null",
        _ => "an unsupported value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TASKS;
    use automerge::{AutoCommit, ObjType};

    fn task(title: &str, status: &str) -> AutoCommit {
        let mut doc = AutoCommit::new();
        put_field(
            &mut doc,
            &TASKS,
            "title",
            Some(&FieldValue::String(title.into())),
        )
        .expect("title");
        put_field(
            &mut doc,
            &TASKS,
            "status",
            Some(&FieldValue::String(status.into())),
        )
        .expect("status");
        doc
    }

    #[test]
    fn valid_task_reads_back() {
        let doc = task("Ship it", "todo");
        let rec = read_record(&doc, &TASKS).expect("valid");
        assert_eq!(
            rec.get("title"),
            Some(&FieldValue::String("Ship it".into()))
        );
        assert_eq!(rec.get("status"), Some(&FieldValue::String("todo".into())));
    }

    #[test]
    fn unknown_status_is_rejected_on_write_and_read() {
        let mut doc = task("x", "todo");
        let err = put_field(
            &mut doc,
            &TASKS,
            "status",
            Some(&FieldValue::String("nope".into())),
        )
        .expect_err("enum");
        assert_eq!(err.code, ErrorCode::InvalidEnumValue);
        // Bypassing the typed writer, as a malicious client would:
        doc.put(ROOT, "status", "nope").expect("raw put");
        assert_eq!(
            read_record(&doc, &TASKS).expect_err("enum").code,
            ErrorCode::InvalidEnumValue
        );
    }

    #[test]
    fn missing_title_wrong_type_unknown_and_server_owned_fields_are_rejected() {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "status", "todo").expect("put");
        assert_eq!(
            read_record(&doc, &TASKS).expect_err("req").code,
            ErrorCode::MissingRequiredField
        );

        let mut doc = task("x", "todo");
        doc.put(ROOT, "title", 42_i64).expect("put");
        assert_eq!(
            read_record(&doc, &TASKS).expect_err("type").code,
            ErrorCode::InvalidFieldType
        );

        let mut doc = task("x", "todo");
        doc.put(ROOT, "colour", "red").expect("put");
        assert_eq!(
            read_record(&doc, &TASKS).expect_err("unknown").code,
            ErrorCode::UnknownField
        );

        let mut doc = task("x", "todo");
        doc.put(ROOT, "created_by", Uuid::nil().to_string())
            .expect("put");
        assert_eq!(
            read_record(&doc, &TASKS).expect_err("owned").code,
            ErrorCode::ServerOwnedField
        );

        let mut doc = task("x", "todo");
        doc.put_object(ROOT, "priority", ObjType::Map).expect("put");
        assert_eq!(
            read_record(&doc, &TASKS).expect_err("obj").code,
            ErrorCode::InvalidFieldType
        );
    }

    #[test]
    fn null_and_deleted_optional_fields_are_absent() {
        let mut doc = task("x", "todo");
        doc.put(ROOT, "priority", ScalarValue::Null).expect("put");
        put_field(
            &mut doc,
            &TASKS,
            "due_date",
            Some(&FieldValue::Timestamp(5)),
        )
        .expect("due");
        put_field(&mut doc, &TASKS, "due_date", None).expect("clear");
        let rec = read_record(&doc, &TASKS).expect("valid");
        assert!(!rec.contains_key("priority"));
        assert!(!rec.contains_key("due_date"));
    }
}
