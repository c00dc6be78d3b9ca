//! Endpoint create and update requests: every field checked at once, problems reported under
//! `details.fields`, the URL through the SSRF guard.

use serde_json::{Map, Value, json};
use syncline_protocol::ErrorCode;

use super::{guard, store};
use crate::AppState;
use crate::error::{ServerError, ServerResult};

const MAX_URL_CHARS: usize = 2000;
const MAX_DESCRIPTION_CHARS: usize = 500;
const MAX_EVENT_TYPES: usize = 100;

fn field_error(fields: &mut Map<String, Value>, name: &str, code: ErrorCode, message: String) {
    fields.insert(
        name.into(),
        json!({ "code": code.as_str(), "message": message }),
    );
}

/// `a.b` or `a.b_c.d`: lower-case words joined by dots.
fn valid_event_type(s: &str) -> bool {
    s.len() <= 100
        && s.split('.').count() >= 2
        && s.split('.')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
}

/// The fields of a create (`creating`) or update request, checked all at once; the URL is
/// also checked against the SSRF guard.
pub(super) async fn parse_fields(
    state: &AppState,
    body: &Map<String, Value>,
    creating: bool,
) -> ServerResult<store::EndpointChanges> {
    let mut fields = Map::new();
    let allowed: &[&str] = if creating {
        &["url", "description", "event_types"]
    } else {
        &["url", "description", "event_types", "enabled"]
    };
    for key in body.keys().filter(|k| !allowed.contains(&k.as_str())) {
        field_error(
            &mut fields,
            key,
            ErrorCode::UnknownField,
            "unknown field".into(),
        );
    }
    let mut changes = store::EndpointChanges::default();
    // `null` counts as absent (the optional fields are nullable in the OpenAPI document).
    let get = |name: &str| body.get(name).filter(|v| !v.is_null());
    match get("url") {
        None if creating => field_error(
            &mut fields,
            "url",
            ErrorCode::MissingRequiredField,
            "the URL to send events to".into(),
        ),
        None => {}
        Some(Value::String(url)) if url.chars().count() <= MAX_URL_CHARS => {
            match guard::check_new(url, state.effects.webhook_allow_private).await {
                Ok(parsed) => changes.url = Some(parsed.to_string()),
                Err(e) => field_error(
                    &mut fields,
                    "url",
                    ErrorCode::InvalidFieldValue,
                    e.to_string(),
                ),
            }
        }
        Some(_) => field_error(
            &mut fields,
            "url",
            ErrorCode::InvalidFieldValue,
            format!("an http(s) URL of at most {MAX_URL_CHARS} characters"),
        ),
    }
    match get("description") {
        None => {}
        // Postgres text cannot hold NUL.
        Some(Value::String(d))
            if d.chars().count() <= MAX_DESCRIPTION_CHARS && !d.contains('\0') =>
        {
            changes.description = Some(d.trim().to_owned());
        }
        Some(_) => field_error(
            &mut fields,
            "description",
            ErrorCode::InvalidFieldValue,
            format!("a string of at most {MAX_DESCRIPTION_CHARS} characters, without NUL"),
        ),
    }
    match get("event_types") {
        None => {}
        Some(Value::Array(items)) if items.len() <= MAX_EVENT_TYPES => {
            let types: Option<Vec<String>> = items
                .iter()
                .map(|v| {
                    v.as_str()
                        .filter(|s| valid_event_type(s))
                        .map(str::to_owned)
                })
                .collect();
            match types {
                Some(mut types) => {
                    types.sort();
                    types.dedup();
                    changes.event_types = Some(types);
                }
                None => field_error(
                    &mut fields,
                    "event_types",
                    ErrorCode::InvalidFieldValue,
                    "event types such as `task.created` (lower-case words joined by dots)".into(),
                ),
            }
        }
        Some(_) => field_error(
            &mut fields,
            "event_types",
            ErrorCode::InvalidFieldValue,
            format!("an array of at most {MAX_EVENT_TYPES} event types; empty means every type"),
        ),
    }
    match get("enabled") {
        None => {}
        Some(Value::Bool(b)) => changes.enabled = Some(*b),
        Some(_) => field_error(
            &mut fields,
            "enabled",
            ErrorCode::InvalidFieldType,
            "a boolean".into(),
        ),
    }
    if !fields.is_empty() {
        let code = fields
            .values()
            .filter_map(|f| f["code"].as_str())
            .find_map(|c| {
                [
                    ErrorCode::MissingRequiredField,
                    ErrorCode::UnknownField,
                    ErrorCode::InvalidFieldType,
                ]
                .into_iter()
                .find(|k| k.as_str() == c)
            })
            .unwrap_or(ErrorCode::InvalidFieldValue);
        return Err(ServerError::new(code, "invalid webhook endpoint")
            .with_details(json!({ "fields": fields })));
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_are_dotted_lower_case_words() {
        for ok in [
            "task.created",
            "user.mentioned",
            "document.suggestion_received",
            "webhook.endpoint_disabled",
        ] {
            assert!(valid_event_type(ok), "{ok}");
        }
        for bad in [
            "task",
            "Task.created",
            "task..created",
            ".x",
            "task.created!",
            "",
        ] {
            assert!(!valid_event_type(bad), "{bad}");
        }
    }
}
