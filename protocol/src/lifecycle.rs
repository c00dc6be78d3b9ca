//! Life-cycle invariants of records, judged on the record before and after a change (pure, so
//! that clients can explain a refusal before pushing).
//!
//! Business documents move through [`DOCUMENT_STATUSES`] one step at a time:
//! `draft → internal_review → client_review → sent → signed`. A step back to `draft` (to rework
//! a document under review or sent) is allowed, skipping ahead is not, and a signed document is
//! final: no field of it changes any more except `deleted_at` (archiving), and its body is
//! read-only (enforced by the server on the text document).

use std::collections::BTreeSet;

use crate::codes::ErrorCode;
use crate::record::{FieldValue, Record, RecordError};
use crate::schema::{CollectionSchema, DOCUMENT_STATUSES, DOCUMENTS};

/// The status of a final document.
pub const SIGNED: &str = "signed";

/// Judges a change to a record of `schema` that turns `before` (`None` on creation) into
/// `after`, writing the `touched` fields.
pub fn check_transition(
    schema: &CollectionSchema,
    before: Option<&Record>,
    after: &Record,
    touched: &BTreeSet<String>,
) -> Result<(), RecordError> {
    if schema.name != DOCUMENTS.name {
        return Ok(());
    }
    let Some(before) = before else {
        return Ok(());
    };
    let (from, to) = (status(before), status(after));
    if from == Some(SIGNED) {
        if let Some(field) = touched.iter().find(|f| f.as_str() != "deleted_at") {
            return Err(RecordError::new(
                ErrorCode::ImmutableRecord,
                field,
                "the document is signed and no longer changes",
            ));
        }
        return Ok(());
    }
    match (from, to) {
        (Some(from), Some(to)) if from != to && !allowed_step(from, to) => Err(RecordError::new(
            ErrorCode::InvalidTransition,
            "status",
            format!(
                "a document moves from `{from}` to `{}` or back to `draft`, not to `{to}`",
                next_status(from).unwrap_or(from)
            ),
        )),
        _ => Ok(()),
    }
}

fn status(record: &Record) -> Option<&str> {
    match record.get("status") {
        Some(FieldValue::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

/// The status after `status`, if any.
pub fn next_status(status: &str) -> Option<&'static str> {
    let i = DOCUMENT_STATUSES.iter().position(|s| *s == status)?;
    DOCUMENT_STATUSES.get(i + 1).copied()
}

fn allowed_step(from: &str, to: &str) -> bool {
    to == DOCUMENT_STATUSES[0] || next_status(from) == Some(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::TASKS;

    fn record(status: &str) -> Record {
        let mut r = Record::new();
        r.insert("status", FieldValue::String(status.into()));
        r
    }

    fn touched(fields: &[&str]) -> BTreeSet<String> {
        fields.iter().map(|f| (*f).to_owned()).collect()
    }

    #[test]
    fn documents_move_one_step_forward_or_back_to_draft() {
        let status = touched(&["status"]);
        let ok = |from: &str, to: &str| {
            check_transition(&DOCUMENTS, Some(&record(from)), &record(to), &status)
        };
        for pair in DOCUMENT_STATUSES.windows(2) {
            ok(pair[0], pair[1]).expect("one step forward");
        }
        ok("client_review", "draft").expect("back to draft");
        let skip = ok("draft", "signed").expect_err("skipping ahead");
        assert_eq!(skip.code, ErrorCode::InvalidTransition);
        assert!(skip.message.contains("internal_review"), "{}", skip.message);
        assert_eq!(
            ok("sent", "internal_review").expect_err("backwards").code,
            ErrorCode::InvalidTransition
        );
        check_transition(&DOCUMENTS, None, &record("signed"), &status)
            .expect("a document may be created in any status (imports)");
    }

    #[test]
    fn a_signed_document_is_final_except_for_archiving() {
        let signed = record("signed");
        let err = check_transition(
            &DOCUMENTS,
            Some(&signed),
            &record("draft"),
            &touched(&["status"]),
        )
        .expect_err("signed is final");
        assert_eq!(err.code, ErrorCode::ImmutableRecord);
        let err = check_transition(&DOCUMENTS, Some(&signed), &signed, &touched(&["title"]))
            .expect_err("no field changes");
        assert_eq!(
            (err.code, err.field.as_str()),
            (ErrorCode::ImmutableRecord, "title")
        );
        check_transition(
            &DOCUMENTS,
            Some(&signed),
            &signed,
            &touched(&["deleted_at"]),
        )
        .expect("archiving a signed document");
    }

    #[test]
    fn other_collections_have_no_life_cycle_here() {
        check_transition(
            &TASKS,
            Some(&record("done")),
            &record("backlog"),
            &touched(&["status"]),
        )
        .expect("tasks move freely");
    }
}
