//! Record documents: reading an automerge document's root map as typed field values, validating
//! the result against its collection schema, and writing typed values into a document.
//!
//! The server validates the merged document after applying a client's change (authoritative);
//! clients validate before committing a local edit (so offline edits that the server would
//! reject are refused early, and both sides agree on the rules).

use std::collections::BTreeMap;

use automerge::transaction::Transactable;
use automerge::{ObjId, ObjType, ROOT, ReadDoc, ScalarValue, Value};
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
    /// Distinct references, in list order; never empty in a [`Record`] (empty reads as absent).
    RefList(Vec<Uuid>),
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
        if let Some(v) = read_field(doc, def)? {
            record.insert(def.name, v);
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

/// Reads and validates one field of `doc`'s root map; `None` when absent, null, or an empty
/// list.
pub fn read_field<D: ReadDoc>(doc: &D, def: &FieldDef) -> Result<Option<FieldValue>, RecordError> {
    let value = doc
        .get(ROOT, def.name)
        .map_err(|e| RecordError::new(ErrorCode::InvalidChange, def.name, e.to_string()))?;
    match value {
        None => Ok(None),
        Some((Value::Scalar(s), _)) => scalar_to_field(def, s.as_ref()),
        Some((Value::Object(ObjType::List), list)) if matches!(def.ty, FieldType::RefList(_)) => {
            read_ref_list(doc, def, &list)
        }
        Some((Value::Object(kind), _)) => Err(RecordError::new(
            ErrorCode::InvalidFieldType,
            def.name,
            format!("expected {}, found a {kind:?} object", type_name(def.ty)),
        )),
    }
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
            // Postgres text cannot hold NUL: such a value could never be materialized.
            if s.contains('\0') {
                return Err(RecordError::new(
                    ErrorCode::InvalidFieldValue,
                    def.name,
                    "must not contain NUL characters",
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
        (FieldType::RefList(_), FieldValue::RefList(ids)) => {
            if def.required && ids.is_empty() {
                return Err(RecordError::new(
                    ErrorCode::MissingRequiredField,
                    def.name,
                    "must not be empty",
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
                return Err(RecordError::new(
                    ErrorCode::InvalidFieldValue,
                    def.name,
                    format!("lists {dup} more than once"),
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

/// Reads a list-of-references field: every element a UUID string, no duplicates; an empty
/// list is absent.
fn read_ref_list<D: ReadDoc>(
    doc: &D,
    def: &FieldDef,
    list: &ObjId,
) -> Result<Option<FieldValue>, RecordError> {
    let mut ids = Vec::with_capacity(doc.length(list));
    for index in 0..doc.length(list) {
        let element = doc
            .get(list, index)
            .map_err(|e| RecordError::new(ErrorCode::InvalidChange, def.name, e.to_string()))?;
        let id = match element {
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Str(v) => Uuid::parse_str(v).map_err(|_| {
                    RecordError::new(
                        ErrorCode::InvalidFieldValue,
                        def.name,
                        format!("element {index} is not a UUID"),
                    )
                })?,
                other => {
                    return Err(RecordError::new(
                        ErrorCode::InvalidFieldType,
                        def.name,
                        format!(
                            "element {index}: expected a UUID string, found {}",
                            scalar_name(other)
                        ),
                    ));
                }
            },
            Some((Value::Object(kind), _)) => {
                return Err(RecordError::new(
                    ErrorCode::InvalidFieldType,
                    def.name,
                    format!("element {index}: expected a UUID string, found a {kind:?} object"),
                ));
            }
            None => continue,
        };
        ids.push(id);
    }
    if ids.is_empty() {
        return Ok(None);
    }
    let value = FieldValue::RefList(ids);
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
            match tx.get(ROOT, def.name).ok().flatten() {
                None => return Ok(()),
                // Cleared element by element, keeping the list, so that a concurrent addition
                // survives the clear instead of vanishing with the list object.
                Some((Value::Object(ObjType::List), list))
                    if matches!(def.ty, FieldType::RefList(_)) =>
                {
                    edit_list(tx, &list, &[])
                }
                Some(_) => tx.delete(ROOT, def.name),
            }
        }
        Some(FieldValue::RefList(ids)) => {
            check_value(def, &FieldValue::RefList(ids.clone()))?;
            let target: Vec<String> = ids.iter().map(Uuid::to_string).collect();
            match tx.get(ROOT, def.name).ok().flatten() {
                Some((Value::Object(ObjType::List), list)) => edit_list(tx, &list, &target),
                _ => tx
                    .put_object(ROOT, def.name, ObjType::List)
                    .and_then(|list| edit_list(tx, &list, &target)),
            }
        }
        Some(v) => {
            check_value(def, v)?;
            let scalar = match v {
                FieldValue::String(s) => ScalarValue::Str(s.as_str().into()),
                FieldValue::Int(i) => ScalarValue::Int(*i),
                FieldValue::Bool(b) => ScalarValue::Boolean(*b),
                FieldValue::Timestamp(t) => ScalarValue::Timestamp(*t),
                FieldValue::Ref(id) => ScalarValue::Str(id.to_string().into()),
                FieldValue::RefList(_) => {
                    return Err(RecordError::new(
                        ErrorCode::InvalidFieldType,
                        name,
                        "a list is not a scalar",
                    ));
                }
            };
            tx.put(ROOT, def.name, scalar)
        }
    };
    result.map_err(|e| RecordError::new(ErrorCode::InvalidChange, name, e.to_string()))
}

/// Above this many element comparisons a list is rewritten instead of diffed (the diff table
/// would be too large; lists that long are not expected).
const MAX_LIST_DIFF: usize = 1 << 20;

/// Turns the string elements of `list` into `target` with few element inserts and deletes:
/// the elements of a longest common subsequence stay in place, so edits made concurrently by
/// others to the kept elements, and their insertions, merge.
fn edit_list<T: Transactable>(
    tx: &mut T,
    list: &ObjId,
    target: &[String],
) -> Result<(), automerge::AutomergeError> {
    let current: Vec<Option<String>> = (0..tx.length(list))
        .map(|i| match tx.get(list, i) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(v) => Some(v.to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let (n, m) = (current.len(), target.len());
    let same = |i: usize, j: usize| current[i].as_deref() == Some(target[j].as_str());
    if n.saturating_mul(m) > MAX_LIST_DIFF {
        for _ in 0..n {
            tx.delete(list, 0)?;
        }
        for (j, id) in target.iter().enumerate() {
            tx.insert(list, j, id.as_str())?;
        }
        return Ok(());
    }
    // lcs[i][j]: length of a longest common subsequence of current[i..] and target[j..].
    let mut lcs = vec![vec![0_usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if same(i, j) {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut pos) = (0, 0, 0);
    while i < n || j < m {
        if i < n && j < m && same(i, j) {
            i += 1;
            j += 1;
            pos += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            tx.insert(list, pos, target[j].as_str())?;
            j += 1;
            pos += 1;
        } else {
            tx.delete(list, pos)?;
            i += 1;
        }
    }
    Ok(())
}

fn type_name(ty: FieldType) -> &'static str {
    match ty {
        FieldType::String { .. } => "a string",
        FieldType::Int => "an integer",
        FieldType::Bool => "a boolean",
        FieldType::Timestamp => "a timestamp",
        FieldType::Enum(_) => "an enum string",
        FieldType::Ref(_) => "a UUID string",
        FieldType::RefList(_) => "a list of UUID strings",
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

    fn deps(doc: &AutoCommit) -> Option<FieldValue> {
        read_record(doc, &TASKS)
            .expect("valid")
            .get("depends_on")
            .cloned()
    }

    fn put_deps(doc: &mut AutoCommit, ids: &[Uuid]) {
        put_field(
            doc,
            &TASKS,
            "depends_on",
            Some(&FieldValue::RefList(ids.to_vec())),
        )
        .expect("depends_on");
    }

    #[test]
    fn ref_lists_read_back_in_order_and_empty_is_absent() {
        let [a, b] = [Uuid::now_v7(), Uuid::now_v7()];
        let mut doc = task("x", "todo");
        assert_eq!(deps(&doc), None);
        put_deps(&mut doc, &[b, a]);
        assert_eq!(deps(&doc), Some(FieldValue::RefList(vec![b, a])));
        let (value, list) = doc.get(ROOT, "depends_on").expect("get").expect("present");
        assert_eq!(value, Value::Object(ObjType::List));

        // Rewriting edits the same list object instead of replacing it.
        put_deps(&mut doc, &[a]);
        assert_eq!(deps(&doc), Some(FieldValue::RefList(vec![a])));
        let (_, same) = doc.get(ROOT, "depends_on").expect("get").expect("present");
        assert_eq!(same, list);

        // Clearing (with None or an empty list) empties the list and reads as absent.
        put_field(&mut doc, &TASKS, "depends_on", None).expect("clear");
        assert_eq!(deps(&doc), None);
        let (_, still) = doc.get(ROOT, "depends_on").expect("get").expect("kept");
        assert_eq!((still, doc.length(&list)), (list.clone(), 0));
        put_deps(&mut doc, &[a, b]);
        put_deps(&mut doc, &[]);
        assert_eq!(deps(&doc), None);
    }

    #[test]
    fn ref_list_edits_are_minimal_and_concurrent_edits_merge() {
        let [a, b, c, d] = [(); 4].map(|_| Uuid::now_v7());
        let mut base = task("x", "todo");
        put_deps(&mut base, &[a, b]);
        base.commit();
        // Appending one reference is one insert; the kept elements are not rewritten.
        let mut edited = base.fork();
        put_deps(&mut edited, &[a, b, c]);
        let hash = edited.commit().expect("changed");
        let change = edited.get_change_by_hash(&hash).expect("change");
        assert_eq!(change.decode().operations.len(), 1);
        // Writing the same list again changes nothing.
        put_deps(&mut edited, &[a, b, c]);
        assert_eq!(edited.commit(), None);

        let mut one = base.fork();
        put_deps(&mut one, &[a, b, c]); // adds c
        let mut two = base.fork();
        put_deps(&mut two, &[b, d]); // removes a, adds d
        one.merge(&mut two).expect("merge");
        let Some(FieldValue::RefList(mut merged)) = deps(&one) else {
            panic!("depends_on missing after merge");
        };
        merged.sort();
        let mut expected = vec![b, c, d];
        expected.sort();
        assert_eq!(merged, expected, "both edits survive");

        // A clear concurrent with an addition keeps the addition.
        let mut one = base.fork();
        put_field(&mut one, &TASKS, "depends_on", None).expect("clear");
        let mut two = base.fork();
        put_deps(&mut two, &[a, b, c]);
        one.merge(&mut two).expect("merge");
        assert_eq!(deps(&one), Some(FieldValue::RefList(vec![c])));
    }

    #[test]
    fn invalid_ref_lists_are_refused_on_write_and_read() {
        let a = Uuid::now_v7();
        let mut doc = task("x", "todo");
        let err = put_field(
            &mut doc,
            &TASKS,
            "depends_on",
            Some(&FieldValue::RefList(vec![a, a])),
        )
        .expect_err("duplicate");
        assert_eq!(err.code, ErrorCode::InvalidFieldValue);
        let err = put_field(&mut doc, &TASKS, "depends_on", Some(&FieldValue::Ref(a)))
            .expect_err("scalar for a list");
        assert_eq!(err.code, ErrorCode::InvalidFieldType);
        let err = put_field(
            &mut doc,
            &TASKS,
            "parent_id",
            Some(&FieldValue::RefList(vec![a])),
        )
        .expect_err("list for a scalar");
        assert_eq!(err.code, ErrorCode::InvalidFieldType);

        // Bypassing the typed writer, as a malicious client would:
        let read_err = |edit: &dyn Fn(&mut AutoCommit, &ObjId)| {
            let mut doc = task("x", "todo");
            let list = doc
                .put_object(ROOT, "depends_on", ObjType::List)
                .expect("list");
            edit(&mut doc, &list);
            read_record(&doc, &TASKS).expect_err("invalid").code
        };
        let id = a.to_string();
        assert_eq!(
            read_err(&|d, l| {
                d.insert(l, 0, id.as_str()).expect("insert");
                d.insert(l, 1, id.as_str()).expect("insert");
            }),
            ErrorCode::InvalidFieldValue
        );
        assert_eq!(
            read_err(&|d, l| d.insert(l, 0, "not-a-uuid").expect("insert")),
            ErrorCode::InvalidFieldValue
        );
        assert_eq!(
            read_err(&|d, l| d.insert(l, 0, 7_i64).expect("insert")),
            ErrorCode::InvalidFieldType
        );
        assert_eq!(
            read_err(&|d, l| {
                d.insert_object(l, 0, ObjType::Map).expect("insert");
            }),
            ErrorCode::InvalidFieldType
        );
        let mut doc = task("x", "todo");
        doc.put(ROOT, "depends_on", a.to_string()).expect("scalar");
        assert_eq!(
            read_record(&doc, &TASKS).expect_err("scalar").code,
            ErrorCode::InvalidFieldType
        );
        let mut doc = task("x", "todo");
        doc.put_object(ROOT, "depends_on", ObjType::Text)
            .expect("text");
        assert_eq!(
            read_record(&doc, &TASKS).expect_err("text").code,
            ErrorCode::InvalidFieldType
        );
        // A list replacing a malformed value is written as a fresh list.
        let mut doc = task("x", "todo");
        doc.put(ROOT, "depends_on", 3_i64).expect("scalar");
        put_deps(&mut doc, &[a]);
        assert_eq!(deps(&doc), Some(FieldValue::RefList(vec![a])));
    }
}
