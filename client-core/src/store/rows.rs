//! The materialized row tables (`tasks`, ...): one row per document with one column per schema
//! field, rewritten from the document's working state whenever it changes, so local queries are
//! plain indexed SQL.

use std::collections::BTreeMap;

use automerge::ReadDoc;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params_from_iter};
use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::CollectionSchema;
use uuid::Uuid;

use super::{id_text, parse_id};
use crate::error::Result;
use crate::row::{self, Row};

/// Writes (inserts or replaces) a document's row from its working state.
pub(crate) fn materialize<D: ReadDoc>(
    conn: &Connection,
    schema: &CollectionSchema,
    id: Uuid,
    doc: &D,
) -> Result<()> {
    let mut values = Vec::with_capacity(schema.fields.len() + 1);
    values.push(SqlValue::Text(id_text(id)));
    for def in schema.fields {
        values.push(row::from_doc(doc, def).map_or(SqlValue::Null, |v| row::to_sql(&v)));
    }
    let columns: Vec<String> = schema
        .fields
        .iter()
        .map(|f| format!("\"{}\"", f.column))
        .collect();
    let placeholders: Vec<String> = (1..=values.len()).map(|i| format!("?{i}")).collect();
    let updates: Vec<String> = columns
        .iter()
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO \"{table}\" (id, {cols}) VALUES ({ph}) ON CONFLICT (id) DO UPDATE SET {upd}",
        table = schema.table,
        cols = columns.join(", "),
        ph = placeholders.join(", "),
        upd = updates.join(", "),
    );
    conn.prepare_cached(&sql)?
        .execute(params_from_iter(values))?;
    Ok(())
}

pub(crate) fn delete(conn: &Connection, schema: &CollectionSchema, id: Uuid) -> Result<()> {
    conn.execute(
        &format!("DELETE FROM \"{}\" WHERE id = ?1", schema.table),
        [id_text(id)],
    )?;
    Ok(())
}

/// `SELECT id, <every column>` for a collection, to be completed with WHERE/ORDER clauses.
pub(crate) fn select_clause(schema: &CollectionSchema) -> String {
    let columns: Vec<String> = schema
        .fields
        .iter()
        .map(|f| format!("\"{}\"", f.column))
        .collect();
    format!(
        "SELECT id, {} FROM \"{}\"",
        columns.join(", "),
        schema.table
    )
}

/// A selected row before its id is parsed: SQLite row callbacks can only fail with SQLite
/// errors, and a malformed stored id is corruption of the replica instead.
pub(crate) struct RawRow {
    id: String,
    fields: BTreeMap<&'static str, FieldValue>,
}

/// Decodes a row selected with [`select_clause`].
pub(crate) fn decode(schema: &CollectionSchema, r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    let mut fields = BTreeMap::new();
    for (i, def) in schema.fields.iter().enumerate() {
        if let Some(v) = row::from_sql(def, r.get_ref(i + 1)?) {
            fields.insert(def.name, v);
        }
    }
    Ok(RawRow {
        id: r.get(0)?,
        fields,
    })
}

pub(crate) fn finish(schema: &'static CollectionSchema, raw: RawRow) -> Result<Row> {
    Ok(Row {
        id: parse_id(&raw.id)?,
        collection: schema.name,
        fields: raw.fields,
    })
}

pub(crate) fn get(
    conn: &Connection,
    schema: &'static CollectionSchema,
    id: Uuid,
) -> Result<Option<Row>> {
    let sql = format!("{} WHERE id = ?1", select_clause(schema));
    let raw = conn
        .prepare_cached(&sql)?
        .query_row([id_text(id)], |r| decode(schema, r))
        .optional()?;
    raw.map(|r| finish(schema, r)).transpose()
}

/// Runs a query built by [`crate::query`]: `tail` follows the select clause.
pub(crate) fn select(
    conn: &Connection,
    schema: &'static CollectionSchema,
    tail: &str,
    params: Vec<SqlValue>,
) -> Result<Vec<Row>> {
    let sql = format!("{} {tail}", select_clause(schema));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(params), |r| decode(schema, r))?;
    rows.map(|r| finish(schema, r?)).collect()
}
