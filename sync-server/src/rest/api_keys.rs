//! `/api/v1/api-keys`: users make, list and revoke the API keys their integrations use.
//!
//! Only a user's own access token may manage keys: an API key cannot mint or revoke keys, so a
//! leaked key cannot outlive its revocation. The plain key is in the creation response only.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use serde_json::{Value, json};
use syncline_protocol::ErrorCode;
use syncline_protocol::schema::COLLECTIONS;
use uuid::Uuid;

use super::api_keys_store::{self, KeyInfo};
use super::body::RecordBody;
use super::principal::Principal;
use crate::AppState;
use crate::error::ServerError;

/// Longest accepted key name.
const MAX_NAME_CHARS: usize = 100;
/// Most scopes on one key (every collection twice, plus the wildcards, fits).
const MAX_SCOPES: usize = 64;

/// The collection path of API keys (keys are under `{PATH}/{id}`).
pub const PATH: &str = "/api/v1/api-keys";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list).post(create))
        .route("/api/v1/api-keys/{id}", delete(revoke))
}

fn user_only(principal: &Principal) -> Result<(), ServerError> {
    if principal.is_api_key() {
        return Err(ServerError::new(
            ErrorCode::Forbidden,
            "API keys are managed with a user's own access token, not with an API key",
        ));
    }
    Ok(())
}

/// Whether `scope` is `{collection}:{read|write}` for a synced collection or `*`.
fn valid_scope(scope: &str) -> bool {
    scope.split_once(':').is_some_and(|(collection, access)| {
        (collection == "*" || COLLECTIONS.iter().any(|c| c.name == collection))
            && matches!(access, "read" | "write")
    })
}

/// The name and scopes of a creation request, or 422 naming each bad field.
fn parse_request(
    body: &serde_json::Map<String, Value>,
) -> Result<(String, Vec<String>), ServerError> {
    let mut fields = serde_json::Map::new();
    for key in body
        .keys()
        .filter(|k| !matches!(k.as_str(), "name" | "scopes"))
    {
        fields.insert(
            key.clone(),
            json!({ "code": ErrorCode::UnknownField.as_str(), "message": "unknown field" }),
        );
    }
    let name = match body.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_NAME_CHARS => {
            Some(s.trim().to_owned())
        }
        _ => {
            let message = format!("a non-empty string of at most {MAX_NAME_CHARS} characters");
            fields.insert(
                "name".into(),
                json!({ "code": ErrorCode::InvalidFieldValue.as_str(), "message": message }),
            );
            None
        }
    };
    let scopes = match body.get("scopes") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= MAX_SCOPES => {
            let scopes: Option<Vec<String>> = items
                .iter()
                .map(|v| v.as_str().filter(|s| valid_scope(s)).map(str::to_owned))
                .collect();
            if scopes.is_none() {
                let known: Vec<&str> = COLLECTIONS.iter().map(|c| c.name).collect();
                let message = format!(
                    "each scope is `<collection>:read` or `<collection>:write` with a collection of {} or `*`",
                    known.join(", ")
                );
                fields.insert(
                    "scopes".into(),
                    json!({ "code": ErrorCode::InvalidFieldValue.as_str(), "message": message }),
                );
            }
            scopes
        }
        _ => {
            let message = format!("a non-empty array of at most {MAX_SCOPES} scopes");
            fields.insert(
                "scopes".into(),
                json!({ "code": ErrorCode::InvalidFieldValue.as_str(), "message": message }),
            );
            None
        }
    };
    match (name, scopes) {
        (Some(name), Some(mut scopes)) if fields.is_empty() => {
            scopes.sort();
            scopes.dedup();
            Ok((name, scopes))
        }
        _ => Err(
            ServerError::new(ErrorCode::InvalidFieldValue, "invalid API key request")
                .with_details(json!({ "fields": fields })),
        ),
    }
}

/// `POST /api/v1/api-keys {name, scopes}` → 201 with the key's info and, once, its `key`.
async fn create(
    State(state): State<AppState>,
    principal: Principal,
    RecordBody(body): RecordBody,
) -> Result<(StatusCode, Json<Value>), ServerError> {
    user_only(&principal)?;
    let (name, scopes) = parse_request(&body)?;
    // A public id collision (1 in 36^8 per pair of keys) is retried with a fresh key.
    let mut attempts = 0;
    let (key, info) = loop {
        let key = api_keys_store::generate();
        match api_keys_store::insert(
            &state,
            principal.org_id,
            principal.user_id,
            &name,
            &scopes,
            &key,
        )
        .await
        {
            Ok(info) => break (key, info),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempts < 3 => {
                attempts += 1
            }
            Err(e) => return Err(e.into()),
        }
    };
    tracing::info!(key_id = %info.id, user_id = %principal.user_id, "API key created");
    let mut value = serde_json::to_value(&info).map_err(ServerError::internal)?;
    if let Value::Object(map) = &mut value {
        map.insert("key".into(), Value::String(key.plain));
    }
    Ok((StatusCode::CREATED, Json(value)))
}

/// `GET /api/v1/api-keys` → `{data: [...]}`: the caller's keys, without secrets.
async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<Value>, ServerError> {
    user_only(&principal)?;
    let keys: Vec<KeyInfo> =
        api_keys_store::list(&state, principal.org_id, principal.user_id).await?;
    Ok(Json(json!({ "data": keys })))
}

/// `DELETE /api/v1/api-keys/{id}` → 204; the key is refused from the next request on.
async fn revoke(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<StatusCode, ServerError> {
    user_only(&principal)?;
    let not_found = || ServerError::new(ErrorCode::NotFound, "no such API key");
    let id: Uuid = id.parse().map_err(|_| not_found())?;
    if !api_keys_store::revoke(&state, principal.org_id, principal.user_id, id).await? {
        return Err(not_found());
    }
    tracing::info!(key_id = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_name_synced_collections() {
        for ok in ["tasks:read", "tasks:write", "contacts:write", "*:read"] {
            assert!(valid_scope(ok), "{ok}");
        }
        for bad in [
            "tasks",
            "tasks:admin",
            "users:read",
            ":read",
            "tasks:read:x",
            "",
        ] {
            assert!(!valid_scope(bad), "{bad}");
        }
    }
}
