//! The notification routes outside the generic `notifications` collection in the OpenAPI
//! document: unread count, mark-all-read, preferences, watching records. The handlers serve
//! plain JSON; the shapes are described here by documentation types that mirror them (the
//! Schemathesis test checks real responses against them).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa::{Modify, OpenApi, ToSchema};
use uuid::Uuid;

/// Adds the notification routes.
pub(crate) struct Notifications;

impl Modify for Notifications {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        openapi.merge(NotificationsDoc::openapi());
    }
}

#[derive(OpenApi)]
#[openapi(
    paths(
        unread_count,
        read_all,
        get_preferences,
        put_preferences,
        put_watch,
        delete_watch
    ),
    components(schemas(
        UnreadCount,
        Marked,
        ChannelsDoc,
        ChannelsUpdateDoc,
        RecordRefDoc,
        PreferencesDoc,
        PreferencesUpdateDoc
    ))
)]
struct NotificationsDoc;

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct UnreadCount {
    /// The caller's notifications without `read_at`.
    pub unread: i64,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Marked {
    /// Notifications marked read by this call (at most 1000).
    pub marked: i64,
}

/// Whether each channel is on.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = NotificationChannels)]
pub struct ChannelsDoc {
    pub in_app: bool,
    pub email: bool,
}

/// A change of one event type's channels; an absent channel keeps its value.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NotificationChannelsUpdate)]
pub struct ChannelsUpdateDoc {
    pub in_app: Option<bool>,
    pub email: Option<bool>,
}

/// A record notifications can be muted for.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NotificationRecordRef)]
pub struct RecordRefDoc {
    /// A record collection (`tasks`, `contacts`, ...).
    pub collection: String,
    pub entity_id: Uuid,
}

/// The caller's effective notification settings.
#[derive(Debug, serde::Serialize, ToSchema)]
#[schema(as = NotificationPreferences)]
pub struct PreferencesDoc {
    /// Every event type that notifies, and `*` (the caller's default).
    pub preferences: BTreeMap<String, ChannelsDoc>,
    /// Nothing is notified until then.
    pub muted_until: Option<DateTime<Utc>>,
    /// `off`, `hourly` or `daily`.
    pub email_digest: String,
    pub muted_records: Vec<RecordRefDoc>,
}

/// A partial update of the caller's settings.
#[derive(Debug, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NotificationPreferencesUpdate)]
pub struct PreferencesUpdateDoc {
    /// Per event type that notifies, or `*`.
    pub preferences: Option<BTreeMap<String, ChannelsUpdateDoc>>,
    /// `null` unmutes.
    pub muted_until: Option<DateTime<Utc>>,
    /// `off`, `hourly` or `daily`.
    pub email_digest: Option<String>,
    #[schema(max_items = 1000)]
    pub mute_records: Option<Vec<RecordRefDoc>>,
    #[schema(max_items = 1000)]
    pub unmute_records: Option<Vec<RecordRefDoc>>,
}

/// The caller's unread notifications.
#[utoipa::path(
    get,
    path = "/api/v1/notifications/unread-count",
    tag = "notifications",
    operation_id = "notifications_unread_count",
    responses(
        (status = 200, description = "The count.", body = UnreadCount),
        (status = 403, description = "An API key without `notifications:read`."),
    )
)]
#[allow(dead_code)]
fn unread_count() {}

/// Marks every unread notification of the caller read (synced to their devices).
#[utoipa::path(
    post,
    path = "/api/v1/notifications/read-all",
    tag = "notifications",
    operation_id = "notifications_read_all",
    responses(
        (status = 200, description = "How many were marked.", body = Marked),
        (status = 403, description = "An API key without `notifications:write`."),
    )
)]
#[allow(dead_code)]
fn read_all() {}

/// The caller's notification preferences.
#[utoipa::path(
    get,
    path = "/api/v1/notification-preferences",
    tag = "notifications",
    operation_id = "get_notification_preferences",
    responses((status = 200, description = "The effective settings.", body = PreferencesDoc))
)]
#[allow(dead_code)]
fn get_preferences() {}

/// Changes the caller's notification preferences; absent members stay as they are.
#[utoipa::path(
    put,
    path = "/api/v1/notification-preferences",
    tag = "notifications",
    operation_id = "put_notification_preferences",
    request_body = PreferencesUpdateDoc,
    responses(
        (status = 200, description = "The settings as they are now.", body = PreferencesDoc),
        (status = 400, description = "An unknown member, event type, collection or digest value."),
    )
)]
#[allow(dead_code)]
fn put_preferences() {}

/// Watches a record: the caller is notified of its status changes and comments.
#[utoipa::path(
    put,
    path = "/api/v1/{collection}/{id}/watch",
    tag = "notifications",
    operation_id = "watch_record",
    params(
        ("collection" = String, Path, description = "A record collection."),
        ("id" = Uuid, Path, description = "The record's id."),
    ),
    responses(
        (status = 204, description = "Watching."),
        (status = 400, description = "Not a UUID, or a collection that cannot be watched."),
        (status = 404, description = "No such collection, or a record the caller may not read."),
    )
)]
#[allow(dead_code)]
fn put_watch() {}

/// Stops watching a record.
#[utoipa::path(
    delete,
    path = "/api/v1/{collection}/{id}/watch",
    tag = "notifications",
    operation_id = "unwatch_record",
    params(
        ("collection" = String, Path, description = "A record collection."),
        ("id" = Uuid, Path, description = "The record's id."),
    ),
    responses(
        (status = 204, description = "Not watching."),
        (status = 400, description = "Not a UUID, or a collection that cannot be watched."),
        (status = 404, description = "No such collection, or a record the caller may not read."),
    )
)]
#[allow(dead_code)]
fn delete_watch() {}
