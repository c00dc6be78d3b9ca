//! The query string of a list request, parsed and checked against the collection's schema:
//! `page`, `limit`, `cursor`, `sort=field:asc|desc`, `filter[field]=v1,v2`,
//! `filter[field.gte|lte|gt|lt]=v`, `filter[deleted]=true|false`, `search=`.
//!
//! Every problem is a 400 `invalid_input` naming the parameter under `details.parameters`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use syncline_protocol::ErrorCode;
use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::{CollectionSchema, FieldDef, FieldType};
use uuid::Uuid;

use super::body::json_to_field;
use crate::error::ServerError;

pub const DEFAULT_LIMIT: u32 = 25;
pub const MAX_LIMIT: u32 = 100;
/// Sort applied when the request names none: newest first.
const DEFAULT_SORT: &str = "created_at:desc";

/// A comparison of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// One of the listed values (for reference lists: holds any of them).
    In,
    Gte,
    Lte,
    Gt,
    Lt,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::In => "= ANY",
            Op::Gte => ">=",
            Op::Lte => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Filter {
    pub def: &'static FieldDef,
    pub op: Op,
    /// One value for comparisons, one or more for `In`.
    pub values: Vec<FieldValue>,
}

/// The sort column: a field, or `id` (also the tie-breaker of every sort).
#[derive(Debug, Clone, Copy)]
pub struct Sort {
    pub def: Option<&'static FieldDef>,
    pub desc: bool,
}

impl Sort {
    pub fn column(&self) -> &'static str {
        self.def.map_or("id", |d| d.column)
    }
    fn spec(&self) -> String {
        let name = self.def.map_or("id", |d| d.name);
        format!("{name}:{}", if self.desc { "desc" } else { "asc" })
    }
}

/// Where the previous page ended: its last record's sort key and id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort the cursor was made for (`field:dir`); another sort refuses it.
    pub s: String,
    /// The sort key as the record's JSON shows it (`null` for an absent value).
    pub k: Value,
    pub id: Uuid,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }
}

#[derive(Debug, Clone)]
pub struct ListQuery {
    /// 1-based; `None` when paging by cursor.
    pub page: Option<u32>,
    pub limit: u32,
    pub sort: Sort,
    /// The cursor and its decoded sort key (`None`: the key was null).
    pub after: Option<(Cursor, Option<FieldValue>)>,
    pub filters: Vec<Filter>,
    pub search: Option<String>,
    /// Lists the trash (only deleted records) instead of the live records.
    pub deleted: bool,
}

impl ListQuery {
    pub fn sort_spec(&self) -> String {
        self.sort.spec()
    }
}

/// Parses the query string's pairs.
pub fn parse(
    schema: &'static CollectionSchema,
    pairs: &[(String, String)],
) -> Result<ListQuery, ServerError> {
    let mut problems: BTreeMap<String, String> = BTreeMap::new();
    let mut bad = |name: &str, message: String| {
        problems.entry(name.to_owned()).or_insert(message);
    };
    let (mut page, mut limit, mut sort_text, mut cursor_text, mut search) =
        (None, DEFAULT_LIMIT, None, None, None);
    let mut deleted = false;
    let mut filters = Vec::new();
    for (name, value) in pairs {
        match name.as_str() {
            "page" => match value.parse::<u32>() {
                Ok(p) if p >= 1 => page = Some(p),
                _ => bad(name, "expected a page number of 1 or more".into()),
            },
            "limit" => match value.parse::<u32>() {
                Ok(l) if (1..=MAX_LIMIT).contains(&l) => limit = l,
                _ => bad(name, format!("expected a number from 1 to {MAX_LIMIT}")),
            },
            "sort" => sort_text = Some(value.clone()),
            "cursor" => cursor_text = Some(value.clone()),
            "search" if value.contains('\0') => bad(name, "must not contain NUL characters".into()),
            "search" if !value.trim().is_empty() => search = Some(value.trim().to_owned()),
            "search" => {}
            "filter[deleted]" => match value.as_str() {
                "true" => deleted = true,
                "false" => deleted = false,
                _ => bad(name, "expected true or false".into()),
            },
            _ => match filter(schema, name, value) {
                Ok(f) => filters.push(f),
                Err(message) => bad(name, message),
            },
        }
    }
    let sort_text = sort_text.unwrap_or_else(|| DEFAULT_SORT.to_owned());
    let sort = parse_sort(schema, &sort_text).unwrap_or_else(|message| {
        bad("sort", message);
        Sort {
            def: None,
            desc: false,
        }
    });
    let mut after = None;
    if let Some(text) = cursor_text {
        if page.is_some() {
            bad("cursor", "page and cursor cannot be combined".into());
        }
        match decode_cursor(&text, &sort) {
            Ok(c) => after = Some(c),
            Err(message) => bad("cursor", message),
        }
    }
    if !problems.is_empty() {
        return Err(
            ServerError::new(ErrorCode::InvalidInput, "invalid query parameters")
                .with_details(json!({ "parameters": problems })),
        );
    }
    let page = if after.is_some() {
        None
    } else {
        Some(page.unwrap_or(1))
    };
    Ok(ListQuery {
        page,
        limit,
        sort,
        after,
        filters,
        search,
        deleted,
    })
}

fn parse_sort(schema: &'static CollectionSchema, text: &str) -> Result<Sort, String> {
    let (name, dir) = text.split_once(':').unwrap_or((text, "asc"));
    let desc = match dir {
        "asc" => false,
        "desc" => true,
        _ => return Err("expected field:asc or field:desc".into()),
    };
    if name == "id" {
        return Ok(Sort { def: None, desc });
    }
    match schema.field(name) {
        Some(def) if !matches!(def.ty, FieldType::RefList(_)) => Ok(Sort {
            def: Some(def),
            desc,
        }),
        Some(_) => Err(format!("`{name}` is a list and cannot be sorted by")),
        None => Err(format!("`{name}` is not a field of this collection")),
    }
}

fn filter(schema: &'static CollectionSchema, name: &str, value: &str) -> Result<Filter, String> {
    let Some(inner) = name
        .strip_prefix("filter[")
        .and_then(|n| n.strip_suffix(']'))
    else {
        return Err("unknown query parameter".into());
    };
    let (field, op) = match inner.rsplit_once('.') {
        Some((field, "gte")) => (field, Op::Gte),
        Some((field, "lte")) => (field, Op::Lte),
        Some((field, "gt")) => (field, Op::Gt),
        Some((field, "lt")) => (field, Op::Lt),
        _ => (inner, Op::In),
    };
    let def = schema
        .field(field)
        .ok_or_else(|| format!("`{field}` is not a field of this collection"))?;
    let comparable = !matches!(def.ty, FieldType::RefList(_) | FieldType::Bool);
    if op != Op::In && !comparable {
        return Err(format!("`{field}` cannot be compared by range"));
    }
    let texts: Vec<&str> = if op == Op::In {
        value.split(',').collect()
    } else {
        vec![value]
    };
    let values = texts
        .into_iter()
        .map(|t| filter_value(def, t))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Filter { def, op, values })
}

/// A filter value of `def` from its text: the field's JSON form (reference lists compare by
/// one reference).
fn filter_value(def: &'static FieldDef, text: &str) -> Result<FieldValue, String> {
    if let FieldType::RefList(_) = def.ty {
        return Uuid::parse_str(text)
            .map(FieldValue::Ref)
            .map_err(|_| "expected a UUID".into());
    }
    let json = match def.ty {
        FieldType::Int => text
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| "expected an integer")?,
        FieldType::Bool => text
            .parse::<bool>()
            .map(Value::Bool)
            .map_err(|_| "expected true or false")?,
        _ => Value::String(text.to_owned()),
    };
    // Filters compare against stored values: emptiness and length limits do not apply.
    let relaxed = FieldDef {
        required: false,
        ty: match def.ty {
            FieldType::String { .. } => FieldType::String {
                max_len: usize::MAX,
            },
            ty => ty,
        },
        ..*def
    };
    match json_to_field(&relaxed, &json) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err("expected a value".into()),
        Err((_, message)) => Err(message),
    }
}

/// Decodes a cursor made for `sort`; its key is converted back to a typed value.
fn decode_cursor(text: &str, sort: &Sort) -> Result<(Cursor, Option<FieldValue>), String> {
    let invalid = || "not a cursor of this list".to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.s != sort.spec() {
        return Err("the cursor was made for another sort".into());
    }
    let key = match sort.def {
        None => None,
        Some(def) => {
            let relaxed = FieldDef {
                required: false,
                ..*def
            };
            json_to_field(&relaxed, &cursor.k).map_err(|_| invalid())?
        }
    };
    Ok((cursor, key))
}
