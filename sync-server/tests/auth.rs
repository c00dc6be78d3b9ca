//! `/auth/*` over HTTP against a real server and database: registration, login, refresh-token
//! rotation and reuse detection, the error envelope, and the health probes.

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sync_server::testing::TestServer;
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

async fn post_raw(
    server: &TestServer,
    path: &str,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let response = reqwest::Client::new()
        .post(server.http_url(path))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text:?}"));
    Reply {
        status,
        headers,
        body,
    }
}

async fn post(server: &TestServer, path: &str, body: Value) -> Reply {
    post_raw(server, path, "application/json", body.to_string()).await
}

/// Asserts the error envelope `{"error": {code, message, details, correlationId, timestamp}}`
/// and that the correlation id matches the response header.
fn assert_error(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    let error = reply
        .body
        .get("error")
        .unwrap_or_else(|| panic!("envelope: {}", reply.body));
    assert_eq!(error["code"], code, "{}", reply.body);
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        reply.body
    );
    assert!(
        error.get("details").is_some(),
        "details key present: {}",
        reply.body
    );
    assert!(error["timestamp"].as_str().is_some(), "{}", reply.body);
    let header = reply
        .headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .expect("X-Correlation-Id header");
    assert_eq!(error["correlationId"], header, "{}", reply.body);
}

fn assert_session(reply: &Reply) {
    for key in ["user_id", "org_id", "access_token", "refresh_token"] {
        assert!(
            reply.body[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {}",
            reply.body
        );
    }
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert_eq!(
        reply
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
}

fn uuid(v: &Value) -> Uuid {
    v.as_str().and_then(|s| s.parse().ok()).expect("uuid")
}

fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[tokio::test]
async fn register_creates_user_org_membership_and_session_in_one_go() {
    let server = TestServer::start().await;
    let reply = post(
        &server,
        "/auth/register",
        json!({"email": "Ada@Example.com", "password": PASSWORD, "display_name": "Ada"}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_session(&reply);
    let (user_id, org_id) = (uuid(&reply.body["user_id"]), uuid(&reply.body["org_id"]));
    assert_eq!(user_id.get_version_num(), 7);
    assert_eq!(org_id.get_version_num(), 7);

    let access = reply.body["access_token"].as_str().expect("access token");
    let session = server
        .state
        .keys
        .verify(access)
        .expect("the access token verifies");
    assert_eq!((session.user_id, session.org_id), (user_id, org_id));

    let (email, name, hash): (String, String, String) =
        sqlx::query_as("SELECT email, display_name, password_hash FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_one(&server.db)
            .await
            .expect("user row");
    assert_eq!((email.as_str(), name.as_str()), ("Ada@Example.com", "Ada"));
    assert!(
        hash.starts_with("$argon2id$") && !hash.contains(PASSWORD),
        "{hash}"
    );

    let org_name: String = sqlx::query_scalar("SELECT name FROM orgs WHERE id = $1")
        .bind(org_id)
        .fetch_one(&server.db)
        .await
        .expect("org row");
    assert_eq!(org_name, "Ada's workspace");
    let role: String =
        sqlx::query_scalar("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_one(&server.db)
            .await
            .expect("membership row");
    assert_eq!(role, "owner");
    let last_seq: i64 = sqlx::query_scalar("SELECT last_seq FROM org_change_seq WHERE org_id = $1")
        .bind(org_id)
        .fetch_one(&server.db)
        .await
        .expect("seq row");
    assert_eq!(last_seq, 0);

    // Only the token's SHA-256 is stored.
    let refresh = reply.body["refresh_token"].as_str().expect("refresh token");
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT token_hash FROM refresh_tokens WHERE user_id = $1")
            .bind(user_id)
            .fetch_all(&server.db)
            .await
            .expect("token rows");
    assert_eq!(stored, vec![sha256(refresh)]);
}

#[tokio::test]
async fn register_uses_org_name_and_defaults_display_name_to_the_email() {
    let server = TestServer::start().await;
    let reply = post(
        &server,
        "/auth/register",
        json!({"email": "grace@example.com", "password": PASSWORD, "org_name": "  Navy  "}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let (name, org): (String, String) = sqlx::query_as(
        "SELECT u.display_name, o.name FROM users u, orgs o WHERE u.id = $1 AND o.id = $2",
    )
    .bind(uuid(&reply.body["user_id"]))
    .bind(uuid(&reply.body["org_id"]))
    .fetch_one(&server.db)
    .await
    .expect("rows");
    assert_eq!((name.as_str(), org.as_str()), ("grace", "Navy"));
}

#[tokio::test]
async fn duplicate_email_is_a_conflict_whatever_its_case() {
    let server = TestServer::start().await;
    server.register("dup@example.com").await;
    let reply = post(
        &server,
        "/auth/register",
        json!({"email": "DUP@example.COM", "password": PASSWORD}),
    )
    .await;
    assert_error(&reply, StatusCode::CONFLICT, "conflict");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&server.db)
        .await
        .expect("count");
    let orgs: i64 = sqlx::query_scalar("SELECT count(*) FROM orgs")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(
        (users, orgs),
        (1, 1),
        "the failed registration left nothing behind"
    );
}

#[tokio::test]
async fn bad_input_is_400_invalid_input_in_the_envelope() {
    let server = TestServer::start().await;

    let reply = post(
        &server,
        "/auth/register",
        json!({"email": "not-an-email", "password": "short"}),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
    let fields = &reply.body["error"]["details"]["fields"];
    assert!(
        fields["email"].is_string() && fields["password"].is_string(),
        "{}",
        reply.body
    );

    let long = "x".repeat(1025);
    let reply = post(
        &server,
        "/auth/register",
        json!({"email": "a@b.co", "password": long}),
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        reply.body["error"]["details"]["fields"]["password"].is_string(),
        "{}",
        reply.body
    );

    // Wrong shapes: missing fields, unknown fields, wrong types, not JSON, wrong content type.
    let shapes = [
        json!({}),
        json!({"email": "a@b.co"}),
        json!({"email": "a@b.co", "password": PASSWORD, "admin": true}),
        json!({"email": 42, "password": PASSWORD}),
        json!(["a@b.co", PASSWORD]),
    ];
    for body in shapes {
        let reply = post(&server, "/auth/register", body.clone()).await;
        assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
    }
    let reply = post_raw(&server, "/auth/login", "application/json", "{not json").await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");
    let reply = post_raw(
        &server,
        "/auth/refresh",
        "text/plain",
        r#"{"refresh_token":"x"}"#,
    )
    .await;
    assert_error(&reply, StatusCode::BAD_REQUEST, "invalid_input");

    // A caller-supplied correlation id is echoed in the header and the envelope.
    let response = reqwest::Client::new()
        .post(server.http_url("/auth/login"))
        .header("x-correlation-id", "trace-me-123")
        .json(&json!({}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.headers()["x-correlation-id"], "trace-me-123");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["correlationId"], "trace-me-123");
}

#[tokio::test]
async fn login_succeeds_with_the_password_and_fails_generically_otherwise() {
    let server = TestServer::start().await;
    let user = server.register("lin@example.com").await;

    let reply = post(
        &server,
        "/auth/login",
        json!({"email": " LIN@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_session(&reply);
    assert_eq!(uuid(&reply.body["user_id"]), user.user_id);
    assert_eq!(uuid(&reply.body["org_id"]), user.org_id);
    assert_ne!(reply.body["refresh_token"], user.refresh_token.as_str());

    let wrong_password = post(
        &server,
        "/auth/login",
        json!({"email": "lin@example.com", "password": "nope-nope"}),
    )
    .await;
    assert_error(&wrong_password, StatusCode::UNAUTHORIZED, "unauthenticated");
    let unknown_user = post(
        &server,
        "/auth/login",
        json!({"email": "nobody@example.com", "password": PASSWORD}),
    )
    .await;
    assert_error(&unknown_user, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(
        wrong_password.body["error"]["message"], unknown_user.body["error"]["message"],
        "one message for both, so accounts can't be enumerated"
    );
}

#[tokio::test]
async fn refresh_rotates_the_token() {
    let server = TestServer::start().await;
    let user = server.register("rot@example.com").await;

    let first = post(
        &server,
        "/auth/refresh",
        json!({"refresh_token": user.refresh_token}),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_session(&first);
    assert_eq!(uuid(&first.body["user_id"]), user.user_id);
    assert_eq!(uuid(&first.body["org_id"]), user.org_id);
    let second_token = first.body["refresh_token"]
        .as_str()
        .expect("token")
        .to_owned();
    assert_ne!(second_token, user.refresh_token);

    let second = post(
        &server,
        "/auth/refresh",
        json!({"refresh_token": second_token}),
    )
    .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);

    let families: Vec<Uuid> =
        sqlx::query_scalar("SELECT DISTINCT family_id FROM refresh_tokens WHERE user_id = $1")
            .bind(user.user_id)
            .fetch_all(&server.db)
            .await
            .expect("families");
    assert_eq!(families.len(), 1, "rotation stays in the family");

    for garbage in [
        "",
        "not-a-token",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let reply = post(&server, "/auth/refresh", json!({"refresh_token": garbage})).await;
        assert_error(&reply, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

#[tokio::test]
async fn reusing_a_rotated_token_revokes_the_whole_family() {
    let server = TestServer::start().await;
    let user = server.register("reuse@example.com").await;
    let old = user.refresh_token.clone();

    let rotated = post(&server, "/auth/refresh", json!({"refresh_token": old})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let newer = rotated.body["refresh_token"]
        .as_str()
        .expect("token")
        .to_owned();

    let reused = post(&server, "/auth/refresh", json!({"refresh_token": old})).await;
    assert_error(&reused, StatusCode::UNAUTHORIZED, "refresh_token_reused");

    // The newer token of that family is dead too.
    let newer_reply = post(&server, "/auth/refresh", json!({"refresh_token": newer})).await;
    assert_error(&newer_reply, StatusCode::UNAUTHORIZED, "unauthenticated");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM refresh_tokens WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user.user_id)
    .fetch_one(&server.db)
    .await
    .expect("count");
    assert_eq!(live, 0);

    // Other logins (other families) are unaffected.
    let login = post(
        &server,
        "/auth/login",
        json!({"email": "reuse@example.com", "password": PASSWORD}),
    )
    .await;
    assert_eq!(login.status, StatusCode::OK);
    let fresh = post(
        &server,
        "/auth/refresh",
        json!({"refresh_token": login.body["refresh_token"]}),
    )
    .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_cannot_both_succeed() {
    let server = TestServer::start().await;
    let user = server.register("race@example.com").await;
    let body = json!({"refresh_token": user.refresh_token});
    let attempts = (0..8).map(|_| post(&server, "/auth/refresh", body.clone()));
    let replies = futures_util::future::join_all(attempts).await;
    let ok = replies
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "exactly one rotation of a token wins");
    for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
        assert_error(reply, StatusCode::UNAUTHORIZED, "refresh_token_reused");
    }
}

#[tokio::test]
async fn health_probes_answer_200() {
    let server = TestServer::start().await;
    for path in ["/health/live", "/health/ready"] {
        let response = reqwest::get(server.http_url(path)).await.expect("request");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}
