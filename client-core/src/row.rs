//! Materialized rows: a record document's fields as one typed row, and the conversions between
//! field values, automerge scalars and SQLite values.
//!
//! A list of references is stored in SQLite as a JSON array of UUID strings (`["…","…"]`), and
//! as NULL when empty (an empty list and an absent field are the same value).
//!
//! Conversions from stored data are lenient: a value that does not fit its field's type (which
//! the server's validation should make impossible) reads as absent with a warning instead of
//! making the whole row, or query, unreadable.

use std::collections::BTreeMap;

use automerge::{ROOT, ReadDoc, ScalarValue, Value};
use rusqlite::types::{Value as SqlValue, ValueRef};
use syncline_protocol::record::{FieldValue, read_field};
use syncline_protocol::schema::{FieldDef, FieldType};
use uuid::Uuid;

/// The soft-delete field: set to delete, cleared to restore. Queries skip rows holding it
/// unless asked otherwise.
pub const DELETED_AT: &str = "deleted_at";

/// One record of a collection as the local replica currently sees it (confirmed state plus
/// pending local changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub id: Uuid,
    pub collection: &'static str,
    /// Present fields by field name (not column name); absent and null fields are missing.
    /// Server-owned fields are absent until the client learns them.
    pub fields: BTreeMap<&'static str, FieldValue>,
}

impl Row {
    pub fn get(&self, field: &str) -> Option<&FieldValue> {
        self.fields.get(field)
    }

    /// A string or enum field.
    pub fn get_str(&self, field: &str) -> Option<&str> {
        match self.fields.get(field) {
            Some(FieldValue::String(s)) => Some(s),
            _ => None,
        }
    }

    pub fn get_ref(&self, field: &str) -> Option<Uuid> {
        match self.fields.get(field) {
            Some(FieldValue::Ref(id)) => Some(*id),
            _ => None,
        }
    }

    /// A list-of-references field; empty when absent.
    pub fn get_ref_list(&self, field: &str) -> Vec<Uuid> {
        match self.fields.get(field) {
            Some(FieldValue::RefList(ids)) => ids.clone(),
            _ => Vec::new(),
        }
    }

    pub fn get_int(&self, field: &str) -> Option<i64> {
        match self.fields.get(field) {
            Some(FieldValue::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn get_bool(&self, field: &str) -> Option<bool> {
        match self.fields.get(field) {
            Some(FieldValue::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// A timestamp field, in Unix milliseconds.
    pub fn get_timestamp(&self, field: &str) -> Option<i64> {
        match self.fields.get(field) {
            Some(FieldValue::Timestamp(t)) => Some(*t),
            _ => None,
        }
    }

    /// Whether the record is soft-deleted.
    pub fn is_deleted(&self) -> bool {
        self.fields.contains_key(DELETED_AT)
    }
}

/// Whether `value` has the SQL/automerge shape of the field's type (no range or enum checks).
pub(crate) fn type_matches(ty: FieldType, value: &FieldValue) -> bool {
    matches!(
        (ty, value),
        (
            FieldType::String { .. } | FieldType::Enum(_),
            FieldValue::String(_)
        ) | (FieldType::Int, FieldValue::Int(_))
            | (FieldType::Bool, FieldValue::Bool(_))
            | (FieldType::Timestamp, FieldValue::Timestamp(_))
            | (FieldType::Ref(_), FieldValue::Ref(_))
            | (FieldType::RefList(_), FieldValue::RefList(_))
    )
}

/// The SQLite value of a field value (see [`crate::store::ddl::column_type`]).
pub(crate) fn to_sql(value: &FieldValue) -> SqlValue {
    match value {
        FieldValue::String(s) => SqlValue::Text(s.clone()),
        FieldValue::Int(i) | FieldValue::Timestamp(i) => SqlValue::Integer(*i),
        FieldValue::Bool(b) => SqlValue::Integer(i64::from(*b)),
        FieldValue::Ref(id) => SqlValue::Text(id.hyphenated().to_string()),
        FieldValue::RefList(ids) if ids.is_empty() => SqlValue::Null,
        FieldValue::RefList(ids) => {
            let items: Vec<String> = ids.iter().map(|id| id.hyphenated().to_string()).collect();
            // UUID strings need no escaping, but serialize properly anyway.
            SqlValue::Text(serde_json::to_string(&items).unwrap_or_default())
        }
    }
}

/// Reads a column back as the field's value.
pub(crate) fn from_sql(def: &FieldDef, value: ValueRef<'_>) -> Option<FieldValue> {
    let converted = match (def.ty, value) {
        (_, ValueRef::Null) => return None,
        (FieldType::String { .. } | FieldType::Enum(_), ValueRef::Text(t)) => {
            std::str::from_utf8(t)
                .ok()
                .map(|s| FieldValue::String(s.to_owned()))
        }
        (FieldType::Ref(_), ValueRef::Text(t)) => std::str::from_utf8(t)
            .ok()
            .and_then(|s| Uuid::parse_str(s).ok())
            .map(FieldValue::Ref),
        (FieldType::RefList(_), ValueRef::Text(t)) => serde_json::from_slice::<Vec<Uuid>>(t)
            .ok()
            .filter(|ids| !ids.is_empty())
            .map(FieldValue::RefList),
        (FieldType::Int, ValueRef::Integer(i)) => Some(FieldValue::Int(i)),
        (FieldType::Timestamp, ValueRef::Integer(i)) => Some(FieldValue::Timestamp(i)),
        (FieldType::Bool, ValueRef::Integer(i)) => Some(FieldValue::Bool(i != 0)),
        _ => None,
    };
    if converted.is_none() {
        tracing::warn!(
            field = def.name,
            "stored column does not match its field type; reading it as absent"
        );
    }
    converted
}

/// Reads one field of a record document; `None` when absent, null or not of the field's type.
pub(crate) fn from_doc<D: ReadDoc>(doc: &D, def: &FieldDef) -> Option<FieldValue> {
    let (value, _) = doc.get(ROOT, def.name).ok().flatten()?;
    if let FieldType::RefList(_) = def.ty {
        return read_field(doc, def).unwrap_or_else(|e| {
            tracing::warn!(
                field = def.name,
                error = %e,
                "record field is not a valid list of references; materializing it as absent"
            );
            None
        });
    }
    let Value::Scalar(scalar) = value else {
        tracing::warn!(
            field = def.name,
            "record field holds an object; materializing it as absent"
        );
        return None;
    };
    let converted = match (def.ty, scalar.as_ref()) {
        (_, ScalarValue::Null) => return None,
        (FieldType::String { .. } | FieldType::Enum(_), ScalarValue::Str(s)) => {
            Some(FieldValue::String(s.to_string()))
        }
        (FieldType::Ref(_), ScalarValue::Str(s)) => Uuid::parse_str(s).ok().map(FieldValue::Ref),
        (FieldType::Int, ScalarValue::Int(i)) => Some(FieldValue::Int(*i)),
        (FieldType::Int, ScalarValue::Uint(u)) => i64::try_from(*u).ok().map(FieldValue::Int),
        (FieldType::Bool, ScalarValue::Boolean(b)) => Some(FieldValue::Bool(*b)),
        (FieldType::Timestamp, ScalarValue::Timestamp(t)) => Some(FieldValue::Timestamp(*t)),
        _ => None,
    };
    if converted.is_none() {
        tracing::warn!(
            field = def.name,
            "record field does not match its type; materializing it as absent"
        );
    }
    converted
}
