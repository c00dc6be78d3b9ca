//! `GET /api/v1/{collection}`: one page of records from the collection's typed table, read in
//! the caller's org transaction (RLS) and limited to what the caller may read.
//!
//! Paging is by `page` (offset) or by opaque `cursor` (keyset on the sort key and id, so pages
//! do not shift when records are added). Sorting puts absent values last in both directions.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::{Postgres, QueryBuilder, Row};
use syncline_protocol::ErrorCode;
use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::{CollectionSchema, FieldType};
use uuid::Uuid;

use super::access::{self, Caller, Readable};
use super::list_query::{self, Cursor, ListQuery, Op};
use super::records;
use crate::AppState;
use crate::error::{ServerError, ServerResult};

/// A page of records.
#[derive(Debug, Serialize)]
pub struct ListResponse {
    pub data: Vec<Map<String, Value>>,
    pub meta: ListMeta,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    /// The page number when paging by `page`; `null` when paging by cursor.
    pub page: Option<u32>,
    pub limit: u32,
    /// Records matching the filters (all pages).
    pub total: i64,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(collection): Path<String>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> ServerResult<Json<ListResponse>> {
    let schema = access::collection(&collection)?;
    let Query(pairs) = pairs.map_err(|e| {
        ServerError::new(ErrorCode::InvalidInput, "the query string does not parse")
            .with_details(serde_json::json!({ "reason": e.body_text() }))
    })?;
    caller.require(schema.name, false)?;
    let query = list_query::parse(schema, &pairs)?;
    let (_, readable) = access::readable(&state, &caller, schema).await?;

    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let mut count = QueryBuilder::new(format!("SELECT count(*) FROM {} WHERE TRUE", schema.table));
    push_conditions(&mut count, schema, &query, &readable);
    let total: i64 = count.build().fetch_one(&mut *tx).await?.try_get(0)?;

    let mut select = records::select(schema);
    push_conditions(&mut select, schema, &query, &readable);
    push_after(&mut select, &query);
    let (dir, column) = (
        if query.sort.desc { "DESC" } else { "ASC" },
        query.sort.column(),
    );
    select.push(format!(
        " ORDER BY {column} {dir} NULLS LAST, id {dir} LIMIT "
    ));
    select.push_bind(i64::from(query.limit) + 1);
    if let Some(page) = query.page {
        select
            .push(" OFFSET ")
            .push_bind(i64::from(page - 1) * i64::from(query.limit));
    }
    let rows = select.build().fetch_all(&mut *tx).await?;
    tx.commit().await?;

    let more = rows.len() > query.limit as usize;
    let mut data = Vec::with_capacity(rows.len());
    let mut next_cursor = None;
    for (i, row) in rows.iter().take(query.limit as usize).enumerate() {
        data.push(records::to_json(schema, row)?);
        if more && i + 1 == query.limit as usize {
            let id: Uuid = row.try_get("id")?;
            let k = match query.sort.def {
                Some(def) => records::column_json(def, row)?,
                None => Value::Null,
            };
            let s = query.sort_spec();
            next_cursor = Some(Cursor { s, k, id }.encode());
        }
    }
    Ok(Json(ListResponse {
        data,
        meta: ListMeta {
            page: query.page,
            limit: query.limit,
            total,
            next_cursor,
        },
    }))
}

/// The conditions every list applies (trash, read access, filters, search).
fn push_conditions(
    qb: &mut QueryBuilder<Postgres>,
    schema: &CollectionSchema,
    query: &ListQuery,
    readable: &Readable,
) {
    if schema.field("deleted_at").is_some() {
        qb.push(if query.deleted {
            " AND deleted_at IS NOT NULL"
        } else {
            " AND deleted_at IS NULL"
        });
    }
    if let Readable::Only(ids) = readable {
        qb.push(" AND id = ANY(").push_bind(ids.clone()).push(")");
    }
    for f in &query.filters {
        qb.push(" AND ").push(f.def.column);
        match (f.op, f.def.ty) {
            (Op::In, FieldType::RefList(_)) => {
                let ids: Vec<Uuid> = f.values.iter().filter_map(as_uuid).collect();
                qb.push(" && ").push_bind(ids);
            }
            (Op::In, ty) => {
                qb.push(" = ANY(");
                bind_array(qb, ty, &f.values);
                qb.push(")");
            }
            (op, _) => {
                qb.push(" ").push(op.sql()).push(" ");
                if let Some(v) = f.values.first() {
                    bind_one(qb, v);
                }
            }
        }
    }
    if let Some(term) = &query.search {
        let pattern = format!("%{}%", escape_like(term));
        let columns: Vec<&str> = schema
            .fields
            .iter()
            .filter(|d| matches!(d.ty, FieldType::String { .. }))
            .map(|d| d.column)
            .collect();
        if columns.is_empty() {
            qb.push(" AND FALSE");
        } else {
            qb.push(" AND (");
            for (i, column) in columns.iter().enumerate() {
                if i > 0 {
                    qb.push(" OR ");
                }
                qb.push(*column).push(" ILIKE ").push_bind(pattern.clone());
            }
            qb.push(")");
        }
    }
}

/// Keyset condition: rows after the cursor in `ORDER BY key dir NULLS LAST, id dir`.
fn push_after(qb: &mut QueryBuilder<Postgres>, query: &ListQuery) {
    let Some((cursor, key)) = &query.after else {
        return;
    };
    let cmp = if query.sort.desc { "<" } else { ">" };
    let Some(def) = query.sort.def else {
        qb.push(format!(" AND id {cmp} ")).push_bind(cursor.id);
        return;
    };
    let column = def.column;
    match key {
        // After a null key come only the remaining nulls, by id.
        None => {
            qb.push(format!(" AND ({column} IS NULL AND id {cmp} "))
                .push_bind(cursor.id)
                .push(")");
        }
        Some(v) => {
            qb.push(format!(" AND ({column} {cmp} "));
            bind_one(qb, v);
            qb.push(format!(" OR ({column} = "));
            bind_one(qb, v);
            qb.push(format!(" AND id {cmp} "))
                .push_bind(cursor.id)
                .push(format!(") OR {column} IS NULL)"));
        }
    }
}

fn as_uuid(v: &FieldValue) -> Option<Uuid> {
    match v {
        FieldValue::Ref(id) => Some(*id),
        _ => None,
    }
}

fn bind_one(qb: &mut QueryBuilder<Postgres>, v: &FieldValue) {
    match v {
        FieldValue::String(s) => qb.push_bind(s.clone()),
        FieldValue::Int(i) => qb.push_bind(*i),
        FieldValue::Bool(b) => qb.push_bind(*b),
        FieldValue::Timestamp(ms) => qb.push_bind(DateTime::<Utc>::from_timestamp_millis(*ms)),
        FieldValue::Ref(id) => qb.push_bind(*id),
        FieldValue::RefList(ids) => qb.push_bind(ids.clone()),
    };
}

fn bind_array(qb: &mut QueryBuilder<Postgres>, ty: FieldType, values: &[FieldValue]) {
    match ty {
        FieldType::Int => qb.push_bind(
            values
                .iter()
                .filter_map(|v| match v {
                    FieldValue::Int(i) => Some(*i),
                    _ => None,
                })
                .collect::<Vec<i64>>(),
        ),
        FieldType::Bool => qb.push_bind(
            values
                .iter()
                .filter_map(|v| match v {
                    FieldValue::Bool(b) => Some(*b),
                    _ => None,
                })
                .collect::<Vec<bool>>(),
        ),
        FieldType::Timestamp => qb.push_bind(
            values
                .iter()
                .filter_map(|v| match v {
                    FieldValue::Timestamp(ms) => DateTime::<Utc>::from_timestamp_millis(*ms),
                    _ => None,
                })
                .collect::<Vec<DateTime<Utc>>>(),
        ),
        FieldType::Ref(_) | FieldType::RefList(_) => {
            qb.push_bind(values.iter().filter_map(as_uuid).collect::<Vec<Uuid>>())
        }
        FieldType::String { .. } | FieldType::Enum(_) => qb.push_bind(
            values
                .iter()
                .filter_map(|v| match v {
                    FieldValue::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect::<Vec<String>>(),
        ),
    };
}

/// Escapes `%`, `_` and the escape character itself for `ILIKE` (default escape `\`).
fn escape_like(term: &str) -> String {
    let mut out = String::with_capacity(term.len());
    for c in term.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
