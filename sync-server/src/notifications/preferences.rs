//! Per-user notification preferences: per event type and channel (`in_app`, `email`), a
//! mute-everything-until time, muted records, and the email digest frequency.
//!
//! Resolution for (user, event type, channel): the user's row for the type, else their `*` row,
//! else the server's default (in-app on for every type; email on for `task.assigned` and
//! `user.mentioned` only). A user muted until a future time, or who muted the record a
//! notification is about, gets nothing on any channel.
//!
//! REST: `GET /api/v1/notification-preferences` (the effective settings) and
//! `PUT /api/v1/notification-preferences` (a partial update, see [`Update`]).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use super::NOTIFYING_EVENTS;
use crate::AppState;
use crate::email::DigestMode;
use crate::error::{ServerError, ServerResult};
use crate::rest::access::Caller;
use crate::rest::body::RecordBody;
use crate::store::Tx;

/// The event type of a user's default row.
pub const ANY_EVENT: &str = "*";
/// Event types whose email channel is on by default.
const EMAIL_BY_DEFAULT: &[&str] = &["task.assigned", "user.mentioned"];
/// Records one update may mute or unmute.
const MAX_MUTED_RECORDS: usize = 1000;

/// Whether each channel is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channels {
    pub in_app: bool,
    pub email: bool,
}

impl Channels {
    /// The server's default for an event type.
    pub fn default_for(event_type: &str) -> Self {
        Self {
            in_app: true,
            email: EMAIL_BY_DEFAULT.contains(&event_type),
        }
    }
}

/// The channels to use for one notification of `event_type` about the record
/// `(collection, entity)` to `user`; both off when muted.
pub async fn channels(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
    event_type: &str,
    about: Option<(&str, Uuid)>,
) -> Result<Channels, sqlx::Error> {
    let off = Channels {
        in_app: false,
        email: false,
    };
    let muted: Option<(Option<DateTime<Utc>>,)> = sqlx::query_as(
        "SELECT muted_until FROM notification_settings WHERE org_id = $1 AND user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    if muted
        .and_then(|(until,)| until)
        .is_some_and(|until| until > Utc::now())
    {
        return Ok(off);
    }
    if let Some((collection, entity)) = about {
        let (record_muted,): (bool,) = sqlx::query_as(
            "SELECT EXISTS (SELECT 1 FROM notification_mutes \
             WHERE org_id = $1 AND user_id = $2 AND collection = $3 AND entity_id = $4)",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(collection)
        .bind(entity)
        .fetch_one(&mut **tx)
        .await?;
        if record_muted {
            return Ok(off);
        }
    }
    channels_row(tx, org_id, user_id, event_type).await
}

/// The user's email digest frequency (`off` when never set).
pub async fn email_digest(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<DigestMode, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT email_digest FROM notification_settings WHERE org_id = $1 AND user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(row.map_or(DigestMode::Off, |(mode,)| DigestMode::parse(&mode)))
}

/// A record reference in preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordRef {
    pub collection: String,
    pub entity_id: Uuid,
}

/// A change of one event type's channels; an absent channel keeps its current value.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsUpdate {
    pub in_app: Option<bool>,
    pub email: Option<bool>,
}

/// `PUT /api/v1/notification-preferences`: every member is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// Per event type (or `*`).
    #[serde(default)]
    pub preferences: BTreeMap<String, ChannelsUpdate>,
    /// `null` unmutes; a past time is the same as `null`.
    #[serde(default, with = "double_option")]
    pub muted_until: Option<Option<DateTime<Utc>>>,
    /// `off`, `hourly` or `daily`.
    pub email_digest: Option<String>,
    #[serde(default)]
    pub mute_records: Vec<RecordRef>,
    #[serde(default)]
    pub unmute_records: Vec<RecordRef>,
}

/// Distinguishes an absent member (`None`) from `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

fn invalid(message: impl Into<String>) -> ServerError {
    ServerError::new(ErrorCode::InvalidInput, message)
}

/// Whether preferences may be stored for this event type.
fn known_event_type(event_type: &str) -> bool {
    event_type == ANY_EVENT || NOTIFYING_EVENTS.contains(&event_type)
}

/// `GET /api/v1/notification-preferences`.
pub async fn get_preferences(
    State(state): State<AppState>,
    caller: Caller,
) -> ServerResult<Json<Value>> {
    let mut tx = crate::db::begin_org(&state.db, caller.org_id).await?;
    let body = current(&mut tx, caller.org_id, caller.user_id).await?;
    tx.commit().await?;
    Ok(Json(body))
}

/// `PUT /api/v1/notification-preferences`: applies the update and answers like `GET`.
pub async fn put_preferences(
    State(state): State<AppState>,
    caller: Caller,
    RecordBody(body): RecordBody,
) -> ServerResult<Json<Value>> {
    let update: Update = serde_json::from_value(Value::Object(body)).map_err(|e| {
        invalid("request body is not the expected JSON")
            .with_details(json!({ "reason": e.to_string() }))
    })?;
    if let Some(unknown) = update.preferences.keys().find(|t| !known_event_type(t)) {
        return Err(
            invalid(format!("`{unknown}` is not an event type that notifies"))
                .with_details(json!({ "event_types": NOTIFYING_EVENTS, "default": ANY_EVENT })),
        );
    }
    let digest = match update.email_digest.as_deref() {
        None => None,
        Some(mode @ ("off" | "hourly" | "daily")) => Some(mode),
        Some(other) => {
            return Err(invalid(format!(
                "email_digest must be off, hourly or daily, not `{other}`"
            )));
        }
    };
    if let Some(bad) = update
        .mute_records
        .iter()
        .chain(&update.unmute_records)
        .find(|r| syncline_protocol::schema::collection(&r.collection).is_none())
    {
        return Err(invalid(format!(
            "`{}` is not a record collection",
            bad.collection.replace('\0', "")
        )));
    }
    // Postgres timestamps span 4713 BC to 294276 AD; chrono's range is wider.
    if let Some(Some(until)) = update.muted_until
        && !(1..=9999).contains(&until.year())
    {
        return Err(invalid("muted_until must be between the years 1 and 9999"));
    }
    if update.mute_records.len() + update.unmute_records.len() > MAX_MUTED_RECORDS {
        return Err(invalid(format!(
            "at most {MAX_MUTED_RECORDS} records per update"
        )));
    }
    let (org, user) = (caller.org_id, caller.user_id);
    let mut tx = crate::db::begin_org(&state.db, org).await?;
    for (event_type, change) in &update.preferences {
        let now = channels_row(&mut tx, org, user, event_type).await?;
        let new = Channels {
            in_app: change.in_app.unwrap_or(now.in_app),
            email: change.email.unwrap_or(now.email),
        };
        sqlx::query(
            "INSERT INTO notification_preferences (org_id, user_id, event_type, in_app, email) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id, user_id, event_type) \
             DO UPDATE SET in_app = EXCLUDED.in_app, email = EXCLUDED.email, updated_at = now()",
        )
        .bind(org)
        .bind(user)
        .bind(event_type)
        .bind(new.in_app)
        .bind(new.email)
        .execute(&mut *tx)
        .await?;
    }
    if update.muted_until.is_some() || digest.is_some() {
        sqlx::query(
            "INSERT INTO notification_settings (org_id, user_id, muted_until, email_digest) \
             VALUES ($1, $2, $4, COALESCE($5, 'off')) ON CONFLICT (org_id, user_id) DO UPDATE SET \
             muted_until = CASE WHEN $3 THEN EXCLUDED.muted_until ELSE notification_settings.muted_until END, \
             email_digest = COALESCE($5, notification_settings.email_digest), updated_at = now()",
        )
        .bind(org)
        .bind(user)
        .bind(update.muted_until.is_some())
        .bind(update.muted_until.flatten())
        .bind(digest)
        .execute(&mut *tx)
        .await?;
    }
    for r in &update.mute_records {
        sqlx::query(
            "INSERT INTO notification_mutes (org_id, user_id, collection, entity_id) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(org)
        .bind(user)
        .bind(&r.collection)
        .bind(r.entity_id)
        .execute(&mut *tx)
        .await?;
    }
    for r in &update.unmute_records {
        sqlx::query(
            "DELETE FROM notification_mutes \
             WHERE org_id = $1 AND user_id = $2 AND collection = $3 AND entity_id = $4",
        )
        .bind(org)
        .bind(user)
        .bind(&r.collection)
        .bind(r.entity_id)
        .execute(&mut *tx)
        .await?;
    }
    let body = current(&mut tx, org, user).await?;
    tx.commit().await?;
    tracing::info!(%org, %user, "notification preferences changed");
    Ok(Json(body))
}

/// The channels of this event type: the user's row for it, else their `*` row, else the
/// default (no mute applied).
async fn channels_row(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
    event_type: &str,
) -> Result<Channels, sqlx::Error> {
    let rows: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT event_type, in_app, email FROM notification_preferences \
         WHERE org_id = $1 AND user_id = $2 AND event_type IN ($3, '*')",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(event_type)
    .fetch_all(&mut **tx)
    .await?;
    let row = |t: &str| {
        rows.iter()
            .find(|(et, _, _)| et == t)
            .map(|(_, in_app, email)| Channels {
                in_app: *in_app,
                email: *email,
            })
    };
    Ok(row(event_type)
        .or_else(|| row(ANY_EVENT))
        .unwrap_or_else(|| Channels::default_for(event_type)))
}

/// The caller's effective settings: every notifying event type with its channels, the `*`
/// default, mute and digest settings, muted records.
async fn current(tx: &mut Tx<'_>, org_id: Uuid, user_id: Uuid) -> Result<Value, sqlx::Error> {
    let rows: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT event_type, in_app, email FROM notification_preferences \
         WHERE org_id = $1 AND user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?;
    let stored = |t: &str| {
        rows.iter()
            .find(|(et, _, _)| et == t)
            .map(|(_, in_app, email)| Channels {
                in_app: *in_app,
                email: *email,
            })
    };
    let default = stored(ANY_EVENT);
    let mut preferences = serde_json::Map::new();
    preferences.insert(
        ANY_EVENT.into(),
        json!(default.unwrap_or(Channels {
            in_app: true,
            email: false
        })),
    );
    for event_type in NOTIFYING_EVENTS {
        let c = stored(event_type)
            .or(default)
            .unwrap_or_else(|| Channels::default_for(event_type));
        preferences.insert((*event_type).into(), json!(c));
    }
    let settings: Option<(Option<DateTime<Utc>>, String)> = sqlx::query_as(
        "SELECT muted_until, email_digest FROM notification_settings \
         WHERE org_id = $1 AND user_id = $2",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_optional(&mut **tx)
    .await?;
    let (muted_until, digest) = settings.unwrap_or((None, "off".into()));
    let muted: Vec<(String, Uuid)> = sqlx::query_as(
        "SELECT collection, entity_id FROM notification_mutes \
         WHERE org_id = $1 AND user_id = $2 ORDER BY created_at, entity_id",
    )
    .bind(org_id)
    .bind(user_id)
    .fetch_all(&mut **tx)
    .await?;
    let muted: Vec<RecordRef> = muted
        .into_iter()
        .map(|(collection, entity_id)| RecordRef {
            collection,
            entity_id,
        })
        .collect();
    Ok(json!({
        "preferences": preferences,
        "muted_until": muted_until.map(crate::rest::records::timestamp),
        "email_digest": digest,
        "muted_records": muted,
    }))
}
