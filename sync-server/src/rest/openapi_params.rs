//! Parameters and schemas the REST bridge's operations share in the OpenAPI document: the list
//! parameters (`page`, `limit`, `cursor`, `sort`, `filter[...]`, `search`), the list `meta`, and
//! the `Idempotency-Key` header of writes.

use syncline_protocol::schema::{CollectionSchema, FieldDef, FieldType};
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType, Type,
};

/// Default and largest page size.
pub const DEFAULT_LIMIT: u64 = 25;
pub const MAX_LIMIT: u64 = 100;

fn query(name: &str, description: &str, schema: impl Into<Schema>) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema.into()))
        .build()
}

/// Fields a list may sort and filter by: the scalar ones (not lists of refs).
fn scalar_fields(
    schema: &CollectionSchema,
) -> impl Iterator<Item = &'static syncline_protocol::schema::FieldDef> {
    schema
        .fields
        .iter()
        .filter(|f| !matches!(f.ty, FieldType::RefList(_)))
}

/// `page`, `limit`, `cursor`, `sort`, `filter`, `search` of `GET /api/v1/{collection}`.
pub(crate) fn list_params(schema: &CollectionSchema) -> Vec<Parameter> {
    let mut sorts = Vec::new();
    for field in std::iter::once("id").chain(scalar_fields(schema).map(|f| f.name)) {
        sorts.push(serde_json::Value::from(format!("{field}:asc")));
        sorts.push(serde_json::Value::from(format!("{field}:desc")));
    }
    let mut filter = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .property(
            "deleted",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true", "false"]))
                .description(Some("`true` lists the trash instead of the live records.")),
        );
    for field in schema.fields {
        // Described as one value of the field (several, comma-separated, also work).
        let values = bound(field).description(Some(
            "One value, or several separated by commas (any of them).",
        ));
        filter = filter.property(field.name, values);
        if !matches!(field.ty, FieldType::RefList(_) | FieldType::Bool) {
            for op in ["gte", "gt", "lte", "lt"] {
                filter = filter.property(format!("{}.{op}", field.name), bound(field));
            }
        }
    }
    vec![
        query(
            "page",
            "Page number, from 1 (not with `cursor`).",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .default(Some(1.into())),
        ),
        query(
            "limit",
            "Records per page.",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_LIMIT))
                .default(Some(DEFAULT_LIMIT.into())),
        ),
        query(
            "cursor",
            "The opaque `meta.nextCursor` of the previous page (not with `page`).",
            ObjectBuilder::new().schema_type(Type::String),
        ),
        query(
            "sort",
            "`field:asc` or `field:desc` (default `created_at:desc`); `id` breaks ties.",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(sorts)),
        ),
        query(
            "search",
            "Case-insensitive text search over the record's text fields.",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(200)),
        ),
        ParameterBuilder::new()
            .name("filter")
            .parameter_in(ParameterIn::Query)
            .required(Required::False)
            .description(Some(
                "`filter[field]=v1,v2` keeps records whose field is one of the values; \
                 `filter[field.gte]=` (and `gt`, `lte`, `lt`) compares numbers and timestamps.",
            ))
            .style(Some(ParameterStyle::DeepObject))
            .explode(Some(true))
            .schema(Some(filter))
            .build(),
    ]
}

/// One filter value (a range filter's bound, or one of an `in` filter's values) in the
/// field's JSON form.
fn bound(field: &FieldDef) -> ObjectBuilder {
    let text = ObjectBuilder::new().schema_type(Type::String);
    match field.ty {
        FieldType::Int => ObjectBuilder::new().schema_type(Type::Integer),
        FieldType::Timestamp => text.format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        FieldType::Ref(_) | FieldType::RefList(_) => {
            text.format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        }
        FieldType::Bool => text.enum_values(Some(["true", "false"])),
        FieldType::Enum(values) => text.enum_values(Some(values.iter().copied())),
        _ => text,
    }
}

/// `meta` of a list response.
pub(crate) fn list_meta() -> Schema {
    let nullable = |t: Type| SchemaType::from_iter([t, Type::Null]);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property(
            "page",
            ObjectBuilder::new()
                .schema_type(nullable(Type::Integer))
                .minimum(Some(1))
                .description(Some("The page number; `null` when paging by cursor.")),
        )
        .required("page")
        .property(
            "limit",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_LIMIT)),
        )
        .required("limit")
        .property(
            "total",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .description(Some("Records matching the filters, on all pages.")),
        )
        .required("total")
        .property(
            "nextCursor",
            ObjectBuilder::new()
                .schema_type(nullable(Type::String))
                .description(Some(
                    "Pass as `cursor` for the next page; `null` on the last.",
                )),
        )
        .required("nextCursor")
        .into()
}

/// The `Idempotency-Key` header of POST, PATCH and DELETE.
pub(crate) fn idempotency_key() -> Parameter {
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Retries with the same key and body get the first response again instead of \
             repeating the write; the same key with another body is `422`.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some("^[\\x21-\\x7E]+$")),
        ))
        .build()
}
