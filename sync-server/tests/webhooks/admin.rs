//! The REST surface: secrets shown once, admins only, bad input, the SSRF guard.

use reqwest::Method;
use serde_json::json;
use sync_server::effects::EffectsSettings;
use sync_server::testing::{TestServer, fresh_database_url, test_effects};
use uuid::Uuid;

use crate::common::{Receiver, create_endpoint, create_task};

#[tokio::test]
async fn the_secret_is_shown_once_and_only_admins_manage_endpoints() {
    let server = TestServer::start().await;
    let owner = server.register("owner@admin.hooks").await;
    let member = server.join(&owner, "member@admin.hooks", "member").await;
    let (endpoint, secret) = create_endpoint(
        &server,
        &owner,
        "http://127.0.0.1:9/hook",
        &["task.created", "task.assigned"],
    )
    .await;
    assert!(secret.starts_with("whsec_"));
    // 24 to 64 random bytes, in base64.
    let bytes = base64_len(&secret["whsec_".len()..]);
    assert!((24..=64).contains(&bytes), "{bytes}");

    let (status, listed) = server
        .api(
            Method::GET,
            "/api/v1/webhooks/endpoints",
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        listed["data"][0]["event_types"],
        json!(["task.assigned", "task.created"])
    );
    let (status, one) = server
        .api(
            Method::GET,
            &format!("/api/v1/webhooks/endpoints/{endpoint}"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200);
    for shown in [listed.to_string(), one.to_string()] {
        assert!(
            !shown.contains(&secret),
            "the secret is never shown again: {shown}"
        );
        assert!(!shown.contains("whsec_"));
    }

    for (method, path) in [
        (Method::GET, "/api/v1/webhooks/endpoints".to_owned()),
        (
            Method::GET,
            format!("/api/v1/webhooks/endpoints/{endpoint}"),
        ),
        (
            Method::DELETE,
            format!("/api/v1/webhooks/endpoints/{endpoint}"),
        ),
        (
            Method::POST,
            format!("/api/v1/webhooks/endpoints/{endpoint}/rotate-secret"),
        ),
    ] {
        let (status, body) = server.api(method, &path, &member.access_token, None).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }

    let (status, body) = server
        .api(
            Method::GET,
            &format!("/api/v1/webhooks/endpoints/{}", Uuid::now_v7()),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(
        (status.as_u16(), body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, _) = server
        .api(
            Method::DELETE,
            &format!("/api/v1/webhooks/endpoints/{endpoint}"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 204);
}

#[tokio::test]
async fn api_keys_need_the_wildcard_scopes() {
    let server = TestServer::start().await;
    let owner = server.register("owner@keys.hooks").await;
    let key = |scopes: serde_json::Value| {
        let server = &server;
        let owner = &owner;
        async move {
            let (status, made) = server
                .api(
                    Method::POST,
                    "/api/v1/api-keys",
                    &owner.access_token,
                    Some(json!({"name": "integration", "scopes": scopes})),
                )
                .await;
            assert_eq!(status, 201, "{made}");
            made["key"].as_str().expect("key").to_owned()
        }
    };
    let narrow = key(json!(["tasks:write"])).await;
    let reader = key(json!(["*:read"])).await;
    let writer = key(json!(["*:write"])).await;
    let create = |token: String| {
        let server = &server;
        async move {
            server
                .api(
                    Method::POST,
                    "/api/v1/webhooks/endpoints",
                    &token,
                    Some(json!({"url": "http://127.0.0.1:9/hook"})),
                )
                .await
        }
    };
    let (status, body) = create(narrow.clone()).await;
    assert_eq!(
        status, 403,
        "a key scoped to tasks cannot route every event: {body}"
    );
    assert_eq!(body["error"]["details"]["required_scope"], "*:write");
    let (status, _) = server
        .api(Method::GET, "/api/v1/webhooks/endpoints", &narrow, None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = create(reader.clone()).await;
    assert_eq!(status, 403, "reading is not changing");
    let (status, body) = create(writer).await;
    assert_eq!(status, 201, "{body}");
    let (status, listed) = server
        .api(Method::GET, "/api/v1/webhooks/endpoints", &reader, None)
        .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
}

fn base64_len(encoded: &str) -> usize {
    let padding = encoded.chars().rev().take_while(|c| *c == '=').count();
    encoded.len() / 4 * 3 - padding
}

#[tokio::test]
async fn bad_endpoint_requests_get_422_naming_the_field() {
    let server = TestServer::start().await;
    let owner = server.register("owner@bad.hooks").await;
    for (body, field, code) in [
        (json!({}), "url", "missing_required_field"),
        (
            json!({"url": "ftp://example.com/x"}),
            "url",
            "invalid_field_value",
        ),
        (json!({"url": 7}), "url", "invalid_field_value"),
        (
            json!({"url": "https://user:pw@example.com/"}),
            "url",
            "invalid_field_value",
        ),
        (
            json!({"url": "https://93.184.216.34/", "event_types": ["Task"]}),
            "event_types",
            "invalid_field_value",
        ),
        (
            json!({"url": "https://93.184.216.34/", "colour": "red"}),
            "colour",
            "unknown_field",
        ),
        (
            json!({"url": "https://93.184.216.34/", "description": "a\u{0}b"}),
            "description",
            "invalid_field_value",
        ),
        (json!({"url": "http://[::1/"}), "url", "invalid_field_value"),
    ] {
        let (status, answer) = server
            .api(
                Method::POST,
                "/api/v1/webhooks/endpoints",
                &owner.access_token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(
            answer["error"]["details"]["fields"][field].is_object(),
            "{body}: {answer}"
        );
    }
    let (status, answer) = server
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/endpoints/{}/recover", Uuid::now_v7()),
            &owner.access_token,
            Some(json!({"since": "yesterday"})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
}

#[tokio::test]
async fn the_ssrf_guard_refuses_loopback_at_creation_and_at_send_time() {
    let receiver = Receiver::start().await;
    let settings = EffectsSettings {
        webhook_allow_private: false,
        ..test_effects()
    };
    let server = TestServer::start_with(fresh_database_url().await, settings).await;
    let owner = server.register("owner@ssrf.hooks").await;
    for url in [
        receiver.url("/hook"),
        "http://localhost:8080/".to_owned(),
        "http://10.0.0.1/".to_owned(),
        "http://[::1]/".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
    ] {
        let (status, body) = server
            .api(
                Method::POST,
                "/api/v1/webhooks/endpoints",
                &owner.access_token,
                Some(json!({ "url": url })),
            )
            .await;
        assert_eq!(status, 422, "{url}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field_value");
        assert!(
            body["error"]["details"]["fields"]["url"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("address")),
            "{body}"
        );
    }

    // An endpoint whose name resolved publicly at creation and points inward now (rebinding),
    // made here by writing the row directly: the attempt is refused before any connection.
    let endpoint = Uuid::now_v7();
    sqlx::query("INSERT INTO webhook_endpoints (org_id, id, url, secret) VALUES ($1, $2, $3, $4)")
        .bind(owner.org_id)
        .bind(endpoint)
        .bind(receiver.url("/hook"))
        .bind("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .execute(&server.db)
        .await
        .expect("insert endpoint");
    create_task(&server, &owner, json!({})).await;
    let mut refused = None;
    for _ in 0..300 {
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT a.error FROM webhook_attempts a JOIN webhook_deliveries d \
             ON d.org_id = a.org_id AND d.id = a.delivery_id WHERE d.endpoint_id = $1 LIMIT 1",
        )
        .bind(endpoint)
        .fetch_optional(&server.db)
        .await
        .expect("attempts");
        if let Some((error,)) = row {
            refused = error;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let refused = refused.expect("an attempt was logged");
    assert!(refused.starts_with("refused"), "{refused}");
    assert!(
        receiver.log().await.is_empty(),
        "nothing reached the receiver"
    );
}
