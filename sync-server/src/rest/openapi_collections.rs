//! The REST bridge's record collections in the OpenAPI document, built from the collection
//! schemas of `syncline-protocol`: per collection a record schema (`Task`), a create body
//! (`TaskCreate`), a patch body (`TaskPatch`), a list page (`TaskList`) and the five operations
//! on `/api/v1/{collection}` and `/api/v1/{collection}/{id}`, plus the trash's restore.
//!
//! JSON of a field type: `string` (with `maxLength`), `int` (integer), `bool` (boolean),
//! `timestamp` (RFC 3339 date-time string), `enum` (one of the listed strings), `ref` (UUID
//! string), `ref list` (array of distinct UUID strings). Absent optional fields are `null` in
//! records; in a PATCH, `null` clears a field.

use syncline_protocol::schema::{COLLECTIONS, CollectionSchema, FieldDef, FieldType};
use utoipa::Modify;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, ParameterStyle, PathItem,
    PathItemBuilder,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, Required};

use super::openapi_params as params;

/// Adds every collection of the bridge.
pub(crate) struct Collections;

impl Modify for Collections {
    fn modify(&self, openapi: &mut OpenApi) {
        for schema in bridged() {
            add_collection(openapi, schema);
        }
        add_restore(openapi);
    }
}

/// The collections served under `/api/v1`.
pub fn bridged() -> impl Iterator<Item = &'static CollectionSchema> {
    COLLECTIONS.iter().copied()
}

/// `tasks` -> `Task`, `documents` -> `Document`.
fn type_name(collection: &str) -> String {
    let singular = collection.strip_suffix('s').unwrap_or(collection);
    singular
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_uppercase().chain(chars).collect()
            })
        })
        .collect()
}

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json_content(name: &str) -> utoipa::openapi::Content {
    ContentBuilder::new().schema(Some(schema_ref(name))).build()
}

/// The JSON schema of one field's value (without `null`).
pub(crate) fn field_value(field: &FieldDef, nullable: bool) -> Schema {
    let ty = |t: Type| -> SchemaType {
        if nullable {
            SchemaType::from_iter([t, Type::Null])
        } else {
            SchemaType::new(t)
        }
    };
    let uuid = || {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
    };
    match field.ty {
        // A required string must hold more than whitespace.
        FieldType::String { max_len } if field.required => ObjectBuilder::new()
            .schema_type(ty(Type::String))
            .min_length(Some(1))
            .max_length(Some(max_len))
            .pattern(Some("\\S"))
            .into(),
        FieldType::String { max_len } => ObjectBuilder::new()
            .schema_type(ty(Type::String))
            .max_length(Some(max_len))
            .into(),
        FieldType::Int => ObjectBuilder::new()
            .schema_type(ty(Type::Integer))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .into(),
        FieldType::Bool => ObjectBuilder::new().schema_type(ty(Type::Boolean)).into(),
        FieldType::Timestamp => ObjectBuilder::new()
            .schema_type(ty(Type::String))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .into(),
        FieldType::Enum(values) => {
            let mut all: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
            if nullable {
                all.push(serde_json::Value::Null);
            }
            ObjectBuilder::new()
                .schema_type(ty(Type::String))
                .enum_values(Some(all))
                .into()
        }
        FieldType::Ref(target) => uuid()
            .schema_type(ty(Type::String))
            .description(Some(format!("The id of a `{target}` record.")))
            .into(),
        FieldType::RefList(target) => ArrayBuilder::new()
            .schema_type(ty(Type::Array))
            .items(uuid())
            .unique_items(true)
            .description(Some(format!("Ids of `{target}` records.")))
            .into(),
    }
}

fn id_property() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
}

/// Fields a caller may write (client fields but the trash marker, which DELETE and restore
/// set and clear).
fn writable(schema: &CollectionSchema) -> impl Iterator<Item = &'static FieldDef> {
    schema.client_fields().filter(|f| f.name != "deleted_at")
}

fn record_schema(schema: &CollectionSchema) -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!("A `{}` record.", schema.name)))
        .property("id", id_property())
        .required("id");
    for field in schema.fields {
        // An absent reference list reads as `[]`, other absent fields as `null`.
        let nullable = !field.required && !matches!(field.ty, FieldType::RefList(_));
        object = object
            .property(field.name, field_value(field, nullable))
            .required(field.name);
    }
    object.into()
}

fn create_schema(schema: &CollectionSchema) -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "A new `{}` record. `id` may be given (a UUID, e.g. made offline); the server \
             makes one otherwise. Unknown fields are refused.",
            schema.name
        )))
        .property("id", id_property())
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for field in writable(schema) {
        object = object.property(field.name, field_value(field, !field.required));
        if field.required {
            object = object.required(field.name);
        }
    }
    object.into()
}

fn patch_schema(schema: &CollectionSchema) -> Schema {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!(
            "Fields of a `{}` record to change; others are left as they are, so concurrent \
             edits of other fields merge. `null` clears an optional field.",
            schema.name
        )))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for field in writable(schema) {
        object = object.property(field.name, field_value(field, !field.required));
    }
    object.into()
}

fn list_schema(record: &str) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("data", ArrayBuilder::new().items(schema_ref(record)))
        .required("data")
        .property("meta", schema_ref("ListMeta"))
        .required("meta")
        .into()
}

fn add_collection(openapi: &mut OpenApi, schema: &'static CollectionSchema) {
    let name = type_name(schema.name);
    let (create, patch, list) = (
        format!("{name}Create"),
        format!("{name}Patch"),
        format!("{name}List"),
    );
    let components = openapi.components.get_or_insert_with(Default::default);
    components
        .schemas
        .insert(name.clone(), record_schema(schema).into());
    components
        .schemas
        .insert(create.clone(), create_schema(schema).into());
    components
        .schemas
        .insert(patch.clone(), patch_schema(schema).into());
    components
        .schemas
        .insert(list.clone(), list_schema(&name).into());
    components
        .schemas
        .insert("ListMeta".into(), params::list_meta().into());

    let c = schema.name;
    let tag = c.to_owned();
    let ok = |description: &str, body: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", json_content(body))
            .build()
    };
    let list_op = OperationBuilder::new()
        .tag(tag.clone())
        .operation_id(Some(format!("list_{c}")))
        .summary(Some(format!("List {c}")))
        .description(Some(
            "Pages by `page`/`limit` or by the opaque `cursor` of the previous page's \
             `meta.next_cursor`. Trashed records are left out.",
        ))
        .parameters(Some(params::list_params(schema)))
        .response("200", ok("One page of records.", &list))
        .build();
    let create_op = OperationBuilder::new()
        .tag(tag.clone())
        .operation_id(Some(format!("create_{c}")))
        .summary(Some(format!("Create a record in {c}")))
        .parameter(params::idempotency_key())
        .request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(&create))
                .required(Some(Required::True))
                .build(),
        ))
        .response(
            "201",
            ResponseBuilder::new()
                .description("The created record.")
                .header(
                    "Location",
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::String))
                        .description(Some("`/api/v1/{collection}/{id}` of the new record."))
                        .build(),
                )
                .content("application/json", json_content(&name))
                .build(),
        )
        .build();
    openapi.paths.paths.insert(
        format!("/api/v1/{c}"),
        PathItemBuilder::new()
            .operation(HttpMethod::Get, list_op)
            .operation(HttpMethod::Post, create_op)
            .build(),
    );

    let get_op = OperationBuilder::new()
        .tag(tag.clone())
        .operation_id(Some(format!("get_{c}")))
        .summary(Some(format!("Get a record of {c}")))
        .parameter(id_param())
        .response("200", ok("The record.", &name))
        .build();
    let patch_op = OperationBuilder::new()
        .tag(tag.clone())
        .operation_id(Some(format!("update_{c}")))
        .summary(Some(format!("Change fields of a record of {c}")))
        .parameter(id_param())
        .parameter(params::idempotency_key())
        .request_body(Some(
            RequestBodyBuilder::new()
                .content("application/json", json_content(&patch))
                .required(Some(Required::True))
                .build(),
        ))
        .response("200", ok("The record after the change.", &name))
        .build();
    let delete_op = OperationBuilder::new()
        .tag(tag)
        .operation_id(Some(format!("delete_{c}")))
        .summary(Some(format!("Move a record of {c} to the trash")))
        .description(Some(
            "A soft delete: sets `deleted_at`. `POST /api/v1/trash/{id}/restore` undoes it.",
        ))
        .parameter(id_param())
        .parameter(params::idempotency_key())
        .response(
            "204",
            ResponseBuilder::new()
                .description("Trashed (or already in the trash).")
                .build(),
        )
        .build();
    openapi.paths.paths.insert(
        format!("/api/v1/{c}/{{id}}"),
        PathItemBuilder::new()
            .operation(HttpMethod::Get, get_op)
            .operation(HttpMethod::Patch, patch_op)
            .operation(HttpMethod::Delete, delete_op)
            .build(),
    );
}

fn add_restore(openapi: &mut OpenApi) {
    let any_of = bridged().fold(utoipa::openapi::schema::AnyOfBuilder::new(), |b, s| {
        b.item(schema_ref(&type_name(s.name)))
    });
    let op = OperationBuilder::new()
        .tag("trash")
        .operation_id(Some("restore_from_trash"))
        .summary(Some("Restore a trashed record"))
        .description(Some("Clears `deleted_at` of a record of any collection."))
        .parameter(id_param())
        .parameter(params::idempotency_key())
        .response(
            "200",
            ResponseBuilder::new()
                .description("The restored record.")
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(any_of)).build(),
                )
                .build(),
        )
        .build();
    openapi.paths.paths.insert(
        "/api/v1/trash/{id}/restore".into(),
        PathItem::new(HttpMethod::Post, op),
    );
}

fn id_param() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The record's id (a UUID)."))
        .style(Some(ParameterStyle::Simple))
        .schema(Some(id_property()))
        .build()
}

#[cfg(test)]
mod tests {
    use super::type_name;

    #[test]
    fn type_names() {
        assert_eq!(type_name("tasks"), "Task");
        assert_eq!(type_name("contacts"), "Contact");
    }
}
