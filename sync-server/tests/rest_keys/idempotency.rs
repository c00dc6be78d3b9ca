//! `Idempotency-Key`: retries replay the first response; reuse with another request is 422.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sync_server::testing::TestServer;
use uuid::Uuid;

use crate::common::{bearer, make_key, owner, plain, send};

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
async fn a_retried_delete_replays_the_first_response() {
    let server = TestServer::start().await;
    let owner = owner(&server).await;
    let auth = bearer(&owner.access_token);
    let plain_auth = [("authorization", auth.as_str())];
    let body = json!({"title": "Trash me", "status": "todo"});
    let task = send(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &plain_auth,
        Some(body),
    )
    .await;
    assert_eq!(task.status, StatusCode::CREATED, "{}", task.body);
    let path = format!("/api/v1/tasks/{}", task.body["id"].as_str().expect("id"));
    let headers = [
        ("authorization", auth.as_str()),
        ("idempotency-key", "del-1"),
    ];
    let first = send(&server, Method::DELETE, &path, &headers, None).await;
    assert!(first.status.is_success(), "{} {}", first.status, first.body);
    let second = send(&server, Method::DELETE, &path, &headers, None).await;
    assert_eq!((second.status, &second.body), (first.status, &first.body));
    assert_eq!(second.header("idempotent-replayed"), "true");
    // The same key on another path is another request.
    let other = format!("/api/v1/tasks/{}", Uuid::now_v7());
    let reused = send(&server, Method::DELETE, &other, &headers, None).await;
    assert_eq!(reused.code(), "idempotency_key_reused", "{}", reused.body);
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
