//! Deliveries as a receiver sees them.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

use sync_server::effects::EffectsSettings;
use sync_server::testing::{TestServer, fresh_database_url, test_effects};

use crate::common::{
    Receiver, create_endpoint, create_task, deliveries, delivery, until_deliveries,
    until_jobs_done, verified_by_all,
};

fn arrival(r: &Value) -> f64 {
    r["arrived_at"].as_f64().expect("arrival time")
}

#[tokio::test]
async fn failing_receiver_gets_four_attempts_with_growing_delays_and_one_logical_delivery() {
    let receiver = Receiver::start().await;
    // Delays of 10 ms, 600 ms and 3.6 s (±20 %): far enough apart to order under load.
    let settings = EffectsSettings {
        time_scale: 0.002,
        ..test_effects()
    };
    let server = TestServer::start_with(fresh_database_url().await, settings).await;
    let owner = server.register("owner@retry.hooks").await;
    let (endpoint, secret) =
        create_endpoint(&server, &owner, &receiver.url("/hook"), &["task.created"]).await;
    receiver
        .configure(
            &[&secret],
            json!([{"status": 500}, {"status": 500}, {"status": 500}, {"status": 200}]),
        )
        .await;
    let task = create_task(&server, &owner, json!({"title": "retry me"})).await;

    let log = receiver
        .until("a 200", |log| log.iter().any(|r| r["status"] == 200))
        .await;
    assert_eq!(log.len(), 4, "{log:#?}");
    assert!(
        log.iter().all(verified_by_all),
        "every attempt verifies: {log:#?}"
    );
    let ids: Vec<&Value> = log.iter().map(|r| &r["webhook_id"]).collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id: {ids:?}"
    );
    assert!(ids[0].as_str().is_some_and(|id| id.starts_with("msg_")));
    assert!(
        log.iter().all(|r| r["body"] == log[0]["body"]),
        "every attempt sends the same bytes"
    );
    let gaps: Vec<f64> = log
        .windows(2)
        .map(|w| arrival(&w[1]) - arrival(&w[0]))
        .collect();
    assert!(
        gaps[0] < gaps[1] && gaps[1] < gaps[2],
        "delays grow (5 s, 5 min, 30 min scaled): {gaps:?}"
    );

    let body: Value = serde_json::from_str(log[0]["body"].as_str().expect("body")).expect("json");
    assert_eq!(body["type"], "task.created");
    assert_eq!(body["data"]["entity_id"], task.to_string());
    assert_eq!(body["data"]["record"]["title"], "retry me");
    assert!(body["timestamp"].as_str().is_some());

    // One logical delivery whose log holds the four attempts.
    let rows = until_deliveries(&server, &owner, endpoint, 1, "succeeded").await;
    assert_eq!(rows[0]["attempts"], 4);
    assert_eq!(rows[0]["msg_id"], *ids[0]);
    let one = delivery(&server, &owner, &rows[0]["id"]).await;
    let attempts = one["attempts"].as_array().expect("attempts");
    let codes: Vec<&Value> = attempts.iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [500, 500, 500, 200]);
    let numbers: Vec<&Value> = attempts.iter().map(|a| &a["attempt"]).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    for a in attempts {
        assert!(a["duration_ms"].as_i64().is_some_and(|d| d >= 0));
        assert!(
            a["response_body"]
                .as_str()
                .is_some_and(|b| b.contains("received"))
        );
        assert!(a["webhook_timestamp"].as_i64().is_some());
    }
    assert_eq!(attempts[0]["error"], "the endpoint answered 500");
    assert_eq!(attempts[3]["error"], Value::Null);
}

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
async fn a_rotated_secret_signs_with_old_and_new_keys() {
    let receiver = Receiver::start().await;
    let server = TestServer::start().await;
    let owner = server.register("owner@rotate.hooks").await;
    let (endpoint, old) =
        create_endpoint(&server, &owner, &receiver.url("/hook"), &["task.created"]).await;
    let (status, rotated) = server
        .api(
            Method::POST,
            &format!("/api/v1/webhooks/endpoints/{endpoint}/rotate-secret"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["data"]["secret"]
        .as_str()
        .expect("new secret")
        .to_owned();
    assert_ne!(new, old);
    assert!(new.starts_with("whsec_"));
    receiver.configure(&[&old, &new], json!([])).await;
    create_task(&server, &owner, json!({})).await;
    let log = receiver.until("one request", |log| !log.is_empty()).await;
    let signatures: Vec<&str> = log[0]["webhook_signature"]
        .as_str()
        .expect("signature")
        .split(' ')
        .collect();
    assert_eq!(signatures.len(), 2, "{signatures:?}");
    assert!(signatures.iter().all(|s| s.starts_with("v1,")));
    // Verified by each secret on its own: both signatures are valid.
    assert_eq!(log[0]["verified"], json!([true, true]));

    // Once the overlap is over, only the new secret signs.
    sqlx::query("UPDATE webhook_endpoints SET previous_secret_expires_at = now() WHERE id = $1")
        .bind(endpoint)
        .execute(&server.db)
        .await
        .expect("expire the overlap");
    create_task(&server, &owner, json!({})).await;
    let log = receiver.until("two requests", |log| log.len() == 2).await;
    assert_eq!(log[1]["verified"], json!([false, true]));
    assert!(
        !log[1]["webhook_signature"]
            .as_str()
            .expect("signature")
            .contains(' ')
    );
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
async fn retry_after_of_a_429_is_honoured() {
    let receiver = Receiver::start().await;
    let server = TestServer::start().await;
    let owner = server.register("owner@busy.hooks").await;
    let (endpoint, secret) = create_endpoint(&server, &owner, &receiver.url("/hook"), &[]).await;
    // One hour, scaled by the tests' 0.001: 3.6 s, far beyond the 5 s (5 ms) of the schedule.
    receiver
        .configure(&[&secret], json!([{"status": 429, "retry_after": 3600}]))
        .await;
    create_task(&server, &owner, json!({})).await;
    let log = receiver.until("the retry", |log| log.len() == 2).await;
    let gap = arrival(&log[1]) - arrival(&log[0]);
    assert!(gap >= 3.5, "waited as asked: {gap}");
    let rows = until_deliveries(&server, &owner, endpoint, 1, "succeeded").await;
    assert_eq!(rows[0]["attempts"], 2);
}

#[tokio::test]
async fn a_receiver_slower_than_the_timeout_is_a_failed_attempt() {
    let receiver = Receiver::start().await;
    let settings = EffectsSettings {
        webhook_timeout: Duration::from_millis(500),
        ..test_effects()
    };
    let server = TestServer::start_with(fresh_database_url().await, settings).await;
    let owner = server.register("owner@slow.hooks").await;
    let (endpoint, secret) = create_endpoint(&server, &owner, &receiver.url("/hook"), &[]).await;
    receiver
        .configure(&[&secret], json!([{"status": 200, "hold": 3}]))
        .await;
    create_task(&server, &owner, json!({})).await;
    let rows = until_deliveries(&server, &owner, endpoint, 1, "succeeded").await;
    let attempts = delivery(&server, &owner, &rows[0]["id"]).await["attempts"].clone();
    let attempts = attempts.as_array().expect("attempts");
    assert_eq!(attempts.len(), 2, "{attempts:#?}");
    assert_eq!(attempts[0]["status_code"], Value::Null);
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("no answer")),
        "{attempts:#?}"
    );
    assert_eq!(attempts[1]["status_code"], 200);
    let log = receiver.log().await;
    assert_eq!(log[0]["webhook_id"], log[1]["webhook_id"]);
}

#[tokio::test]
async fn the_delivery_log_keeps_20_kb_of_a_response() {
    let receiver = Receiver::start().await;
    let server = TestServer::start().await;
    let owner = server.register("owner@chatty.hooks").await;
    let (endpoint, secret) = create_endpoint(&server, &owner, &receiver.url("/hook"), &[]).await;
    receiver
        .configure(&[&secret], json!([{"status": 200, "body_bytes": 100_000}]))
        .await;
    create_task(&server, &owner, json!({})).await;
    let rows = until_deliveries(&server, &owner, endpoint, 1, "succeeded").await;
    let attempts = delivery(&server, &owner, &rows[0]["id"]).await["attempts"].clone();
    let kept = attempts[0]["response_body"].as_str().expect("body");
    assert_eq!(kept.len(), 20 * 1024);
    assert!(kept.bytes().all(|b| b == b'x'));
}

#[tokio::test]
async fn two_server_processes_send_each_message_once() {
    let receiver = Receiver::start().await;
    let url = fresh_database_url().await;
    let first = TestServer::start_on(url.clone()).await;
    let second = TestServer::start_on(url).await;
    let owner = first.register("owner@pair.hooks").await;
    let (endpoint, secret) =
        create_endpoint(&first, &owner, &receiver.url("/hook"), &["task.created"]).await;
    receiver.configure(&[&secret], json!([])).await;
    for i in 0..20 {
        let via = if i % 2 == 0 { &first } else { &second };
        create_task(via, &owner, json!({ "title": format!("task {i}") })).await;
    }
    until_deliveries(&first, &owner, endpoint, 20, "succeeded").await;
    // The delivery list pages through all 20 without repeats.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => {
                format!("/api/v1/webhooks/endpoints/{endpoint}/deliveries?limit=7&cursor={c}")
            }
            None => format!("/api/v1/webhooks/endpoints/{endpoint}/deliveries?limit=7"),
        };
        let (status, page) = first
            .api(Method::GET, &path, &owner.access_token, None)
            .await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["data"]
                .as_array()
                .expect("rows")
                .iter()
                .map(|r| r["id"].clone()),
        );
        match page["meta"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 20);
    seen.dedup();
    assert_eq!(seen.len(), 20);
    let log = receiver.log().await;
    let mut ids: Vec<&str> = log
        .iter()
        .filter_map(|r| r["webhook_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 20, "{log:#?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "no message twice");
    assert!(log.iter().all(verified_by_all));
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
