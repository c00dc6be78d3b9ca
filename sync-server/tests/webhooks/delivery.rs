//! Deliveries as a receiver sees them.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sync_server::effects::EffectsSettings;
use sync_server::testing::{TestServer, fresh_database_url, test_effects};

use crate::common::{
    Receiver, create_endpoint, create_task, delivery, until_deliveries, verified_by_all,
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
