//! Per-principal quotas: headers on every response, 429 with `Retry-After` over the quota.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sync_server::testing::TestServer;
use syncline_protocol::rules::OrgRole;
use uuid::Uuid;

use crate::common::{bearer, send};

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
