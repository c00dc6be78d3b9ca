//! A business document's record fields as a revision stores them (a JSON object keyed by field
//! name), and what changed between two revisions, with human labels for review screens.

use automerge::Automerge;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use syncline_protocol::record::{FieldValue, read_record};
use syncline_protocol::schema::DOCUMENTS;

/// One field that differs from the previous revision; `null` stands for an absent value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: &'static str,
    pub label: &'static str,
    pub old: Value,
    pub new: Value,
}

/// The label shown for a field of [`DOCUMENTS`].
pub fn label(field: &str) -> &'static str {
    match field {
        "title" => "Title",
        "type" => "Type",
        "status" => "Status",
        "counterparty_id" => "Counterparty",
        "payment_terms" => "Payment terms",
        "amount" => "Amount",
        "currency" => "Currency",
        "effective_date" => "Effective date",
        "deleted_at" => "Deleted",
        _ => "Other field",
    }
}

fn json(value: &FieldValue) -> Value {
    match value {
        FieldValue::String(s) => Value::from(s.as_str()),
        FieldValue::Int(n) => Value::from(*n),
        FieldValue::Bool(b) => Value::from(*b),
        // Readable in a change list; the millisecond value is kept exactly.
        FieldValue::Timestamp(ms) => match DateTime::<Utc>::from_timestamp_millis(*ms) {
            Some(t) => Value::from(t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            None => Value::from(*ms),
        },
        FieldValue::Ref(id) => Value::from(id.to_string()),
        FieldValue::RefList(ids) => ids.iter().map(|id| Value::from(id.to_string())).collect(),
    }
}

/// The client-written fields of a stored `documents` record (its saved automerge state), as a
/// JSON object; an empty object for a record with no state yet.
pub fn record_fields(state: &[u8]) -> Result<Map<String, Value>, String> {
    if state.is_empty() {
        return Ok(Map::new());
    }
    let doc = Automerge::load(state).map_err(|e| format!("record does not load: {e}"))?;
    let record = read_record(&doc, &DOCUMENTS).map_err(|e| format!("record is invalid: {e}"))?;
    Ok(record
        .iter()
        .map(|(name, value)| ((*name).to_owned(), json(value)))
        .collect())
}

/// The fields of [`DOCUMENTS`] whose values differ between `old` and `new`, in schema order.
pub fn changes(old: &Map<String, Value>, new: &Map<String, Value>) -> Vec<FieldChange> {
    DOCUMENTS
        .client_fields()
        .filter_map(|def| {
            let before = old.get(def.name).cloned().unwrap_or(Value::Null);
            let after = new.get(def.name).cloned().unwrap_or(Value::Null);
            (before != after).then_some(FieldChange {
                field: def.name,
                label: label(def.name),
                old: before,
                new: after,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::AutoCommit;
    use syncline_protocol::record::put_field;

    #[test]
    fn every_client_field_has_a_label() {
        for def in DOCUMENTS.client_fields() {
            assert_ne!(label(def.name), "Other field", "{}", def.name);
        }
    }

    #[test]
    fn fields_read_from_the_record_and_changes_list_only_differences() {
        let mut doc = AutoCommit::new();
        let put = |doc: &mut AutoCommit, name: &str, value: FieldValue| {
            put_field(doc, &DOCUMENTS, name, Some(&value)).expect("valid field");
        };
        put(&mut doc, "title", FieldValue::String("MSA".into()));
        put(&mut doc, "type", FieldValue::String("contract".into()));
        put(&mut doc, "status", FieldValue::String("draft".into()));
        put(&mut doc, "amount", FieldValue::Int(120_000));
        put(
            &mut doc,
            "effective_date",
            FieldValue::Timestamp(1_767_225_600_000),
        );
        let before = record_fields(&doc.save()).expect("fields");
        assert_eq!(before["amount"], Value::from(120_000));
        assert_eq!(before["effective_date"], "2026-01-01T00:00:00.000Z");
        assert!(!before.contains_key("payment_terms"));

        put(
            &mut doc,
            "payment_terms",
            FieldValue::String("Net 30".into()),
        );
        put(
            &mut doc,
            "status",
            FieldValue::String("internal_review".into()),
        );
        let after = record_fields(&doc.save()).expect("fields");
        assert_eq!(
            changes(&before, &after),
            vec![
                FieldChange {
                    field: "status",
                    label: "Status",
                    old: Value::from("draft"),
                    new: Value::from("internal_review"),
                },
                FieldChange {
                    field: "payment_terms",
                    label: "Payment terms",
                    old: Value::Null,
                    new: Value::from("Net 30"),
                },
            ]
        );
        assert!(changes(&after, &after).is_empty());
        assert!(record_fields(&[]).expect("empty").is_empty());
    }
}
