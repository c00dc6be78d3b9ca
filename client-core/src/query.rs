//! Local queries over a collection's materialized rows: equality filters, soft-delete
//! filtering, ordering and a limit, compiled to one parameterized SQL statement. Field names are
//! checked against the schema (and mapped to their columns), so nothing user-supplied is ever
//! spliced into SQL.

use rusqlite::types::Value as SqlValue;
use syncline_protocol::ErrorCode;
use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::{CollectionSchema, FieldDef};

use crate::error::{ClientError, Result};
use crate::row::{self, DELETED_AT};

/// `field = value`, or `field IS NULL` when `value` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub field: String,
    pub value: Option<FieldValue>,
}

/// One ordering key. Rows with the field absent sort first ascending (SQLite: NULLs first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    pub field: String,
    pub descending: bool,
}

/// A query on one collection. The default returns every non-deleted row in id order, which
/// for UUIDv7 ids is creation order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// All must hold.
    pub filters: Vec<Filter>,
    /// Include soft-deleted rows (`deleted_at` set).
    pub include_deleted: bool,
    /// Ordering keys; the id is always the final tie-breaker so results are stable.
    pub order_by: Vec<Order>,
    pub limit: Option<u32>,
}

impl Query {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `field = value`.
    pub fn eq(mut self, field: &str, value: FieldValue) -> Self {
        self.filters.push(Filter {
            field: field.to_owned(),
            value: Some(value),
        });
        self
    }

    /// Adds `field = 'value'` for a string or enum field.
    pub fn eq_str(self, field: &str, value: &str) -> Self {
        self.eq(field, FieldValue::String(value.to_owned()))
    }

    /// Adds `field IS NULL` (the field is absent).
    pub fn is_absent(mut self, field: &str) -> Self {
        self.filters.push(Filter {
            field: field.to_owned(),
            value: None,
        });
        self
    }

    pub fn include_deleted(mut self, include: bool) -> Self {
        self.include_deleted = include;
        self
    }

    pub fn order_by(mut self, field: &str) -> Self {
        self.order_by.push(Order {
            field: field.to_owned(),
            descending: false,
        });
        self
    }

    pub fn order_by_desc(mut self, field: &str) -> Self {
        self.order_by.push(Order {
            field: field.to_owned(),
            descending: true,
        });
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// The SQL after `SELECT ... FROM table` and its parameters.
    pub(crate) fn to_sql(&self, schema: &CollectionSchema) -> Result<(String, Vec<SqlValue>)> {
        let mut conditions = Vec::new();
        let mut params = Vec::new();
        if !self.include_deleted
            && let Some(def) = schema.field(DELETED_AT)
        {
            conditions.push(format!("\"{}\" IS NULL", def.column));
        }
        for filter in &self.filters {
            let def = field(schema, &filter.field)?;
            match &filter.value {
                None => conditions.push(format!("\"{}\" IS NULL", def.column)),
                Some(value) => {
                    if !row::type_matches(def.ty, value) {
                        return Err(ClientError::invalid_field(
                            schema.name,
                            ErrorCode::InvalidFieldType,
                            def.name,
                            "filter value does not match the field's type",
                        ));
                    }
                    params.push(row::to_sql(value));
                    conditions.push(format!("\"{}\" = ?{}", def.column, params.len()));
                }
            }
        }
        let mut sql = String::new();
        if !conditions.is_empty() {
            sql.push_str("WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        let mut keys = Vec::new();
        for order in &self.order_by {
            let def = field(schema, &order.field)?;
            keys.push(format!(
                "\"{}\"{}",
                def.column,
                if order.descending { " DESC" } else { "" }
            ));
        }
        keys.push("id".to_owned());
        sql.push_str(" ORDER BY ");
        sql.push_str(&keys.join(", "));
        if let Some(limit) = self.limit {
            params.push(SqlValue::Integer(i64::from(limit)));
            sql.push_str(&format!(" LIMIT ?{}", params.len()));
        }
        Ok((sql, params))
    }
}

fn field(schema: &CollectionSchema, name: &str) -> Result<&'static FieldDef> {
    schema.field(name).ok_or_else(|| {
        ClientError::invalid_field(
            schema.name,
            ErrorCode::UnknownField,
            name,
            "not a field of this collection",
        )
    })
}
