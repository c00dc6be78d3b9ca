//! API keys, idempotency keys and rate limits of the REST bridge, over real HTTP against a real
//! Postgres: keys shown once and stored hashed, scopes enforced with the error envelope,
//! revocation at once, retried POSTs that create one task, and 429 with its headers.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::rules::OrgRole;
use uuid::Uuid;

/// A response's status, headers and JSON body.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = reqwest::Client::new().request(method, server.http_url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json body")
    };
    Reply {
        status,
        headers,
        body,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Makes an API key for `user` with `scopes`; returns the creation response.
async fn make_key(server: &TestServer, user: &TestUser, scopes: &[&str]) -> Value {
    let auth = bearer(&user.access_token);
    let reply = send(
        server,
        Method::POST,
        "/api/v1/api-keys",
        &[("authorization", &auth)],
        Some(json!({"name": "zapier", "scopes": scopes})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

fn plain(key: &Value) -> String {
    key["key"].as_str().expect("plain key").to_owned()
}

async fn owner(server: &TestServer) -> TestUser {
    server.seed_org("Acme", &[OrgRole::Owner]).await.remove(0)
}

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

#[tokio::test]
async fn a_retried_post_with_the_same_idempotency_key_creates_one_task() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let auth = bearer(&owner.access_token);
    let headers = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "retry-1"),
    ];
    let body = json!({"title": "Once", "status": "todo"});
    let first = send(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let second = send(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &headers,
        Some(body.clone()),
    )
    .await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    assert_eq!(second.body, first.body, "the first response, replayed");
    assert_eq!(second.header("idempotent-replayed"), "true");
    assert_eq!(second.header("content-type"), first.header("content-type"));
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks WHERE title = 'Once'")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(count, 1);

    let reused = send(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &headers,
        Some(json!({"title": "Twice", "status": "todo"})),
    )
    .await;
    assert_eq!(
        reused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reused.body
    );
    assert_eq!(reused.code(), "idempotency_key_reused");

    // Keys belong to their principal: an API key of the same user has its own.
    let key = plain(&make_key(&server, &owner, &["tasks:write"]).await);
    let key_headers = [("x-api-key", key.as_str()), ("idempotency-key", "retry-1")];
    let by_key = send(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &key_headers,
        Some(body),
    )
    .await;
    assert_eq!(by_key.status, StatusCode::CREATED, "{}", by_key.body);
    assert_ne!(by_key.body["id"], first.body["id"]);

    let bad_key = send(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &[("authorization", auth.as_str()), ("idempotency-key", "")],
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST, "{}", bad_key.body);
}

#[tokio::test]
async fn over_the_quota_a_principal_gets_429_with_retry_after() {
    let server = TestServer::start().await;
    server.state.rate_limits.set_per_minute(3);
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Member])
        .await;
    let auth = bearer(&users[0].access_token);
    for remaining in ["2", "1", "0"] {
        let reply = send(
            &server,
            Method::GET,
            "/api/v1/tasks",
            &[("authorization", &auth)],
            None,
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.header("x-ratelimit-limit"), "3");
        assert_eq!(reply.header("x-ratelimit-remaining"), remaining);
    }
    let limited = send(
        &server,
        Method::GET,
        "/api/v1/tasks",
        &[("authorization", &auth)],
        None,
    )
    .await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    assert_eq!(limited.code(), "rate_limited");
    assert_eq!(limited.header("x-ratelimit-limit"), "3");
    assert_eq!(limited.header("x-ratelimit-remaining"), "0");
    let retry_after: u64 = limited
        .header("retry-after")
        .parse()
        .expect("Retry-After seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");

    // Refused requests do not run: a limited POST creates nothing.
    let post = send(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &[("authorization", &auth)],
        Some(json!({"title": "Blocked"})),
    )
    .await;
    assert_eq!(post.status, StatusCode::TOO_MANY_REQUESTS);
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(count, 0);

    // Other principals have their own quota; errors count and carry the headers too.
    let other = bearer(&users[1].access_token);
    let missing = format!("/api/v1/tasks/{}", Uuid::now_v7());
    let reply = send(
        &server,
        Method::GET,
        &missing,
        &[("authorization", &other)],
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.body);
    assert_eq!(reply.header("x-ratelimit-remaining"), "2");
}

#[tokio::test]
async fn concurrent_duplicates_do_not_both_execute() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let auth = bearer(&owner.access_token);
    let headers = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "race"),
    ];
    let body = json!({"title": "Raced", "status": "todo"});
    let posts = (0..4).map(|_| {
        send(
            &server,
            Method::POST,
            "/api/v1/tasks",
            &headers,
            Some(body.clone()),
        )
    });
    let replies = futures_util::future::join_all(posts).await;
    for reply in &replies {
        // The first creates; the others replay it or, while it runs, get 409.
        assert!(
            reply.status == StatusCode::CREATED
                || (reply.status == StatusCode::CONFLICT && reply.code() == "conflict"),
            "{} {}",
            reply.status,
            reply.body
        );
    }
    let created: Vec<&Value> = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .map(|r| &r.body)
        .collect();
    assert!(!created.is_empty());
    assert!(
        created.iter().all(|b| *b == created[0]),
        "one task, one response"
    );
    let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks WHERE title = 'Raced'")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(count, 1);
}
