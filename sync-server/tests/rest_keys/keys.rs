//! Making, listing, using and revoking API keys; scopes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sync_server::testing::TestServer;
use uuid::Uuid;

use crate::common::{bearer, make_key, owner, plain, send};

#[tokio::test]
async fn a_key_is_shown_once_stored_hashed_and_listed_without_secrets() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let created = make_key(&server, &owner, &["tasks:write", "tasks:read"]).await;
    let key = plain(&created);
    let public_id = &key["sk_live_".len().."sk_live_".len() + 8];
    let secret = &key["sk_live_".len() + 9..];
    assert!(key.starts_with("sk_live_"), "{key}");
    assert_eq!(secret.len(), 64, "32 random bytes in hex");
    assert_eq!(created["prefix"], format!("sk_live_{public_id}"));
    assert_eq!(created["scopes"], json!(["tasks:read", "tasks:write"]));

    let (stored_hash, stored_public): (Vec<u8>, String) =
        sqlx::query_as("SELECT secret_hash, public_id FROM api_keys WHERE id = $1")
            .bind(
                created["id"]
                    .as_str()
                    .expect("id")
                    .parse::<Uuid>()
                    .expect("uuid"),
            )
            .fetch_one(&server.db)
            .await
            .expect("row");
    assert_eq!(stored_hash, Sha256::digest(secret.as_bytes()).to_vec());
    assert_eq!(stored_public, public_id);
    let (plain_anywhere,): (bool,) = sqlx::query_as(
        "SELECT EXISTS (SELECT 1 FROM api_keys k WHERE k::text LIKE '%' || $1 || '%')",
    )
    .bind(secret)
    .fetch_one(&server.db)
    .await
    .expect("search");
    assert!(!plain_anywhere, "the secret is not stored");

    let auth = bearer(&owner.access_token);
    let listed = send(
        &server,
        Method::GET,
        "/api/v1/api-keys",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let data = listed.body["data"].as_array().expect("data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["id"], created["id"]);
    assert_eq!(data[0].get("key"), None);
    assert!(!listed.body.to_string().contains(secret));

    // Another member of the org does not see it.
    let member = server.join(&owner, "member@example.test", "member").await;
    let auth = bearer(&member.access_token);
    let theirs = send(
        &server,
        Method::GET,
        "/api/v1/api-keys",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(theirs.body["data"], json!([]));
}

#[tokio::test]
async fn scopes_and_names_are_validated() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let auth = bearer(&owner.access_token);
    let cases = [
        (json!({"name": "x", "scopes": ["users:read"]}), "scopes"),
        (json!({"name": "x", "scopes": ["tasks:admin"]}), "scopes"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (json!({"name": "x", "scopes": "tasks:read"}), "scopes"),
        (json!({"name": "", "scopes": ["tasks:read"]}), "name"),
        (
            json!({"name": "x", "scopes": ["tasks:read"], "admin": true}),
            "admin",
        ),
    ];
    for (body, field) in cases {
        let reply = send(
            &server,
            Method::POST,
            "/api/v1/api-keys",
            &[("authorization", &auth)],
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            reply.body
        );
        assert!(
            reply.body["error"]["details"]["fields"]
                .get(field)
                .is_some(),
            "{body}: {}",
            reply.body
        );
        assert!(reply.body["error"]["correlationId"].is_string());
    }
    let created = make_key(&server, &owner, &["*:read", "contacts:write"]).await;
    assert_eq!(created["scopes"], json!(["*:read", "contacts:write"]));
}

#[tokio::test]
async fn a_key_made_with_an_idempotency_key_is_not_kept_for_replay() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let auth = bearer(&owner.access_token);
    let headers = [("authorization", auth.as_str()), ("idempotency-key", "k")];
    let body = json!({"name": "ci", "scopes": ["tasks:read"]});
    let first = send(
        &server,
        Method::POST,
        "/api/v1/api-keys",
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = send(
        &server,
        Method::POST,
        "/api/v1/api-keys",
        &headers,
        Some(body),
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_ne!(
        second.body["key"], first.body["key"],
        "the plain key is never replayed"
    );
    let (kept,): (i64,) = sqlx::query_as("SELECT count(*) FROM idempotency_keys")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(kept, 0, "no stored response holds a plain key");
}

#[tokio::test]
async fn an_api_key_cannot_manage_keys() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let key = plain(&make_key(&server, &owner, &["*:write"]).await);
    let auth = bearer(&key);
    let body = json!({"name": "child", "scopes": ["tasks:read"]});
    let minted = send(
        &server,
        Method::POST,
        "/api/v1/api-keys",
        &[("authorization", &auth)],
        Some(body),
    )
    .await;
    assert_eq!(minted.status, StatusCode::FORBIDDEN, "{}", minted.body);
    assert_eq!(minted.code(), "forbidden");
    let listed = send(
        &server,
        Method::GET,
        "/api/v1/api-keys",
        &[("x-api-key", &key)],
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::FORBIDDEN, "{}", listed.body);
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM api_keys")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_read_key_reads_tasks_but_gets_403_on_writes() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let auth = bearer(&owner.access_token);
    let task = send(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &[("authorization", &auth)],
        Some(json!({"title": "Ship", "status": "todo"})),
    )
    .await;
    assert_eq!(task.status, StatusCode::CREATED, "{}", task.body);
    let path = format!("/api/v1/tasks/{}", task.body["id"].as_str().expect("id"));

    let key = plain(&make_key(&server, &owner, &["tasks:read"]).await);
    let key_auth = bearer(&key);
    let read = send(
        &server,
        Method::GET,
        &path,
        &[("authorization", &key_auth)],
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["title"], "Ship");
    let listed = send(
        &server,
        Method::GET,
        "/api/v1/tasks",
        &[("x-api-key", &key)],
        None,
    )
    .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);

    let patch = send(
        &server,
        Method::PATCH,
        &path,
        &[("authorization", &key_auth)],
        Some(json!({"status": "done"})),
    )
    .await;
    assert_eq!(patch.status, StatusCode::FORBIDDEN, "{}", patch.body);
    assert_eq!(patch.code(), "forbidden");
    assert_eq!(
        patch.body["error"]["details"]["required_scope"],
        "tasks:write"
    );
    assert!(patch.body["error"]["correlationId"].is_string());
    assert!(patch.body["error"]["timestamp"].is_string());
    let contacts = send(
        &server,
        Method::GET,
        "/api/v1/contacts",
        &[("x-api-key", &key)],
        None,
    )
    .await;
    assert_eq!(contacts.status, StatusCode::FORBIDDEN, "{}", contacts.body);

    let unchanged = send(
        &server,
        Method::GET,
        &path,
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_ne!(unchanged.body["status"], "done");
}

#[tokio::test]
async fn a_revoked_key_gets_401_at_once_and_use_is_tracked() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let created = make_key(&server, &owner, &["tasks:read"]).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["last_used_at"], Value::Null);
    let key = plain(&created);

    let used = send(
        &server,
        Method::GET,
        "/api/v1/tasks",
        &[("x-api-key", &key)],
        None,
    )
    .await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.body);
    let (last_used,): (Option<chrono::DateTime<chrono::Utc>>,) =
        sqlx::query_as("SELECT last_used_at FROM api_keys WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&server.db)
            .await
            .expect("row");
    assert!(last_used.is_some(), "last_used_at is set by a request");
    // Within the minute a request does not write it again.
    let again = send(
        &server,
        Method::GET,
        "/api/v1/tasks",
        &[("x-api-key", &key)],
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let (unchanged,): (Option<chrono::DateTime<chrono::Utc>>,) =
        sqlx::query_as("SELECT last_used_at FROM api_keys WHERE id = $1::uuid")
            .bind(&id)
            .fetch_one(&server.db)
            .await
            .expect("row");
    assert_eq!(unchanged, last_used, "at most one write a minute per key");

    let auth = bearer(&owner.access_token);
    let path = format!("/api/v1/api-keys/{id}");
    let revoked = send(
        &server,
        Method::DELETE,
        &path,
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let refused = send(
        &server,
        Method::GET,
        "/api/v1/tasks",
        &[("x-api-key", &key)],
        None,
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert_eq!(refused.code(), "unauthenticated");
    let again = send(
        &server,
        Method::DELETE,
        &path,
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);

    let listed = send(
        &server,
        Method::GET,
        "/api/v1/api-keys",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert!(
        listed.body["data"][0]["revoked_at"].is_string(),
        "{}",
        listed.body
    );

    // A forged secret with a real public id is refused too.
    let forged = format!("{}{}", &key[..key.len() - 4], "0000");
    let other = make_key(&server, &owner, &["tasks:read"]).await;
    let other = plain(&other);
    let forged_other = format!(
        "{}{}",
        &other[..other.len() - 4],
        if other.ends_with("0000") {
            "1111"
        } else {
            "0000"
        }
    );
    for bad in [forged, forged_other, "sk_live_nonsense".to_owned()] {
        let reply = send(
            &server,
            Method::GET,
            "/api/v1/tasks",
            &[("authorization", &bearer(&bad))],
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
    }
}
