//! Endpoint lifecycle: 410 and five days of failures disable (and notify), filters, resend
//! and recovery, personal records kept out.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sync_server::testing::TestServer;

use crate::common::{
    Receiver, create_endpoint, create_task, deliveries, delivery, until_deliveries,
    until_jobs_done, verified_by_all,
};

#[tokio::test]
async fn gone_disables_the_endpoint_and_notifies_the_admins() {
    let receiver = Receiver::start().await;
    let server = TestServer::start().await;
    let owner = server.register("owner@gone.hooks").await;
    let admin = server.join(&owner, "admin@gone.hooks", "admin").await;
    server.join(&owner, "member@gone.hooks", "member").await;
    let (endpoint, secret) = create_endpoint(&server, &owner, &receiver.url("/hook"), &[]).await;
    receiver
        .configure(&[&secret], json!([{"status": 410}]))
        .await;
    create_task(&server, &owner, json!({})).await;
    let rows = until_deliveries(&server, &owner, endpoint, 1, "failed").await;
    assert_eq!(rows[0]["attempts"], 1, "a 410 is not retried");
    assert_eq!(rows[0]["last_status"], 410);
    let (_, got) = server
        .api(
            Method::GET,
            &format!("/api/v1/webhooks/endpoints/{endpoint}"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(got["data"]["enabled"], false, "{got}");
    assert!(
        got["data"]["disabled_reason"]
            .as_str()
            .is_some_and(|r| r.contains("410"))
    );
    let (disabled,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM domain_events WHERE org_id = $1 AND event_type = 'webhook.endpoint_disabled' \
         AND entity_id = $2",
    )
    .bind(owner.org_id)
    .bind(endpoint)
    .fetch_one(&server.db)
    .await
    .expect("events");
    assert_eq!(disabled, 1);
    // The notifications handler turns the event into an in-app notification for each admin.
    let mut notified = Vec::new();
    for _ in 0..300 {
        notified = sqlx::query_as::<_, (uuid::Uuid, String)>(
            "SELECT recipient_id, title FROM notifications \
             WHERE org_id = $1 AND event_type = 'webhook.endpoint_disabled'",
        )
        .bind(owner.org_id)
        .fetch_all(&server.db)
        .await
        .expect("notifications");
        if notified.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut recipients: Vec<uuid::Uuid> = notified.iter().map(|(r, _)| *r).collect();
    recipients.sort();
    let mut admins = vec![owner.user_id, admin.user_id];
    admins.sort();
    assert_eq!(recipients, admins, "owners and admins only: {notified:?}");
    assert!(
        notified
            .iter()
            .all(|(_, t)| t.contains(&receiver.url("/hook")))
    );

    // Events after that make no delivery to the disabled endpoint.
    create_task(&server, &owner, json!({})).await;
    until_jobs_done(&server, owner.org_id).await;
    assert_eq!(deliveries(&server, &owner, endpoint).await.len(), 1);
    assert_eq!(receiver.log().await.len(), 1);
}

#[tokio::test]
async fn five_days_of_failure_disable_the_endpoint() {
    let receiver = Receiver::start().await;
    let server = TestServer::start().await;
    let owner = server.register("owner@tired.hooks").await;
    let (endpoint, secret) = create_endpoint(&server, &owner, &receiver.url("/hook"), &[]).await;
    receiver
        .configure(&[&secret], json!([{"status": 500}]))
        .await;
    // The endpoint has been failing for longer than 5 days (scaled: 432 s at 0.001).
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since = now() - interval '6 days' WHERE id = $1",
    )
    .bind(endpoint)
    .execute(&server.db)
    .await
    .expect("age the failure");
    create_task(&server, &owner, json!({})).await;
    receiver.until("one attempt", |log| !log.is_empty()).await;
    for _ in 0..300 {
        let (_, got) = server
            .api(
                Method::GET,
                &format!("/api/v1/webhooks/endpoints/{endpoint}"),
                &owner.access_token,
                None,
            )
            .await;
        if got["data"]["enabled"] == false {
            assert!(
                got["data"]["disabled_reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("5 days")),
                "{got}"
            );
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the endpoint was not disabled");
}

#[tokio::test]
async fn event_type_filters_choose_what_each_endpoint_gets() {
    let receiver = Receiver::start().await;
    let server = TestServer::start().await;
    let owner = server.register("owner@filter.hooks").await;
    let (all, secret_all) = create_endpoint(&server, &owner, &receiver.url("/all"), &[]).await;
    // By name: the request goes to the address the guard checked (pinned resolution).
    let (assigned, secret_assigned) = create_endpoint(
        &server,
        &owner,
        &format!("http://localhost:{}/assigned", receiver.port),
        &["task.assigned"],
    )
    .await;
    receiver
        .configure(&[&secret_all, &secret_assigned], json!([]))
        .await;
    create_task(&server, &owner, json!({})).await;
    create_task(&server, &owner, json!({"assignee_id": owner.user_id})).await;
    until_jobs_done(&server, owner.org_id).await;
    let (events,): (i64,) = sqlx::query_as("SELECT count(*) FROM domain_events WHERE org_id = $1")
        .bind(owner.org_id)
        .fetch_one(&server.db)
        .await
        .expect("events");
    let events = usize::try_from(events).expect("count");
    until_deliveries(&server, &owner, all, events, "succeeded").await;
    until_deliveries(&server, &owner, assigned, 1, "succeeded").await;

    let to_all = receiver.log_of("/all").await;
    let to_assigned = receiver.log_of("/assigned").await;
    assert_eq!(to_all.len(), events);
    let mut types: Vec<&str> = to_all.iter().filter_map(|r| r["type"].as_str()).collect();
    types.sort_unstable();
    assert!(
        types.contains(&"task.assigned") && types.contains(&"task.created"),
        "{types:?}"
    );
    assert_eq!(to_assigned.len(), 1);
    assert_eq!(to_assigned[0]["type"], "task.assigned");
    // Each endpoint's requests verify with its own secret only.
    assert!(to_all.iter().all(|r| r["verified"] == json!([true, false])));
    assert_eq!(to_assigned[0]["verified"], json!([false, true]));
}

#[tokio::test]
async fn resend_and_recovery_send_again_under_the_same_webhook_id() {
    let receiver = Receiver::start().await;
    let server = TestServer::start().await;
    let owner = server.register("owner@resend.hooks").await;
    let (endpoint, secret) =
        create_endpoint(&server, &owner, &receiver.url("/hook"), &["task.created"]).await;
    receiver.configure(&[&secret], json!([])).await;
    create_task(&server, &owner, json!({})).await;
    let rows = until_deliveries(&server, &owner, endpoint, 1, "succeeded").await;

    let (status, resent) = server
        .api(
            Method::POST,
            &format!(
                "/api/v1/webhooks/deliveries/{}/resend",
                rows[0]["id"].as_str().expect("id")
            ),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 202, "{resent}");
    let log = receiver.until("the resend", |log| log.len() == 2).await;
    assert_eq!(log[0]["webhook_id"], log[1]["webhook_id"]);
    assert_eq!(log[0]["body"], log[1]["body"]);
    assert!(log.iter().all(verified_by_all));
    let rows = until_deliveries(&server, &owner, endpoint, 1, "succeeded").await;
    let attempts = delivery(&server, &owner, &rows[0]["id"]).await["attempts"].clone();
    assert_eq!(attempts.as_array().map(Vec::len), Some(2));

    // Disabled endpoints get nothing; after re-enabling, a recovery sends what they missed.
    let since = chrono::Utc::now().to_rfc3339();
    let endpoint_path = format!("/api/v1/webhooks/endpoints/{endpoint}");
    let recover_path = format!("/api/v1/webhooks/endpoints/{endpoint}/recover");
    let patch = |enabled: bool| {
        server.api(
            Method::PATCH,
            &endpoint_path,
            &owner.access_token,
            Some(json!({ "enabled": enabled })),
        )
    };
    let (status, body) = patch(false).await;
    assert_eq!(
        (status.as_u16(), &body["data"]["enabled"]),
        (200, &json!(false)),
        "{body}"
    );
    create_task(&server, &owner, json!({"title": "missed"})).await;
    until_jobs_done(&server, owner.org_id).await;
    assert_eq!(deliveries(&server, &owner, endpoint).await.len(), 1);
    let recover = || {
        server.api(
            Method::POST,
            &recover_path,
            &owner.access_token,
            Some(json!({ "since": since })),
        )
    };
    let (status, refused) = recover().await;
    assert_eq!(status, 409, "recovering a disabled endpoint: {refused}");
    patch(true).await;
    let (status, recovered) = recover().await;
    assert_eq!(status, 200, "{recovered}");
    assert_eq!(recovered["data"]["created"], 1);
    let log = receiver
        .until("the recovered event", |log| log.len() == 3)
        .await;
    assert!(
        log[2]["body"]
            .as_str()
            .is_some_and(|b| b.contains("missed"))
    );
    assert!(verified_by_all(&log[2]));
    let (_, again) = recover().await;
    assert_eq!(
        again["data"]["created"], 0,
        "a recovery makes no duplicates"
    );
}

#[tokio::test]
async fn personal_records_never_leave_through_webhooks() {
    let server = TestServer::start().await;
    let owner = server.register("owner@personal.hooks").await;
    create_endpoint(&server, &owner, "http://127.0.0.1:9/hook", &[]).await;
    let event = sync_server::effects::DomainEvent {
        id: uuid::Uuid::now_v7(),
        org_id: owner.org_id,
        event_type: "notification.updated".into(),
        collection: "notifications".into(),
        entity_id: uuid::Uuid::now_v7(),
        actor_id: Some(owner.user_id),
        occurred_at: chrono::Utc::now(),
        data: json!({"record": {"title": "private"}, "changes": {}}),
        correlation_id: None,
    };
    let made = sync_server::webhooks::fan_out(&server.state, &event)
        .await
        .expect("fan out");
    assert_eq!(made, 0, "a user's notification is theirs alone");
}
