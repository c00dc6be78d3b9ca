//! In-app notifications with real client-core replicas (SQLite files, real WebSockets): an
//! assignee who is offline when assigned finds the notification on reconnect, another member's
//! replica never receives it, and reading it on one device syncs to the recipient's other
//! device; a forged edit of its text is rejected and rolled back on the replica.

use std::time::Duration;

use client_core::native::NativeClient;
use client_core::{Query, SyncEvent};
use conflict_tests::harness::{WAIT, has_task, online};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::record::FieldValue;
use uuid::Uuid;

/// Assigns a new task to `assignee` over REST as `by`; returns its id.
async fn assign(server: &TestServer, by: &TestUser, title: &str, assignee: Uuid) -> Uuid {
    let (status, created) = server
        .api(
            Method::POST,
            "/api/v1/tasks",
            &by.access_token,
            Some(json!({"title": title, "status": "todo", "assignee_id": assignee})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id")
}

/// The notification the server made about `task` for `recipient` (waits for the worker).
async fn server_notification(server: &TestServer, recipient: Uuid, task: Uuid) -> Uuid {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let id: Option<Uuid> = sqlx::query_scalar(
            "SELECT id FROM notifications WHERE recipient_id = $1 AND entity_id = $2",
        )
        .bind(recipient)
        .bind(task)
        .fetch_optional(&server.db)
        .await
        .expect("query notifications");
        if let Some(id) = id {
            return id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the notification was never created"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn notification_ids(c: &NativeClient) -> Vec<Uuid> {
    c.query("notifications", &Query::new())
        .expect("query notifications")
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn string(c: &NativeClient, id: Uuid, field: &str) -> Option<String> {
    match c.get("notifications", id).ok().flatten()?.get(field) {
        Some(FieldValue::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn is_read(c: &client_core::Client, id: Uuid) -> bool {
    c.get("notifications", id)
        .ok()
        .flatten()
        .is_some_and(|r| r.get("read_at").is_some())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_assignee_finds_the_notification_on_reconnect_and_nobody_else_gets_it() {
    let server = TestServer::start().await;
    let owner = server.register("owner@offline-notify.test").await;
    let ann = server
        .join(&owner, "ann@offline-notify.test", "member")
        .await;
    let bob = server
        .join(&owner, "bob@offline-notify.test", "admin")
        .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, &ann, &dir.path().join("ann.db"));
    let b = online(&server, &bob, &dir.path().join("bob.db"));
    a.wait_synced(WAIT).await.expect("ann subscribed");
    b.wait_synced(WAIT).await.expect("bob subscribed");
    a.go_offline().await;

    let task = assign(&server, &owner, "Renew the lease", ann.user_id).await;
    let id = server_notification(&server, ann.user_id, task).await;
    assert!(
        notification_ids(&a).is_empty(),
        "ann is offline: nothing yet"
    );

    a.go_online();
    a.wait_for(WAIT, |c| {
        c.get("notifications", id).ok().flatten().is_some()
    })
    .await
    .expect("the notification reaches ann's replica on reconnect");
    let title = string(&a, id, "title").expect("title");
    assert!(title.contains("Renew the lease"), "{title}");
    assert_eq!(
        string(&a, id, "event_type").as_deref(),
        Some("task.assigned")
    );
    assert!(!a.read(|c| is_read(c, id)), "unread");
    // The unread count is a local query.
    let unread = a
        .query("notifications", &Query::new().is_absent("read_at"))
        .expect("unread query");
    assert_eq!(unread.len(), 1);

    // Bob (an admin, online all along) received the task and the later one, never the
    // notification: changes reach a replica in commit order, so the later task is a barrier.
    has_task(&b, task).await;
    let later = assign(&server, &owner, "Barrier", owner.user_id).await;
    has_task(&b, later).await;
    b.wait_synced(WAIT).await.expect("bob synced");
    assert!(
        notification_ids(&b).is_empty(),
        "bob never receives ann's notification"
    );
    let (status, body) = server
        .api(
            Method::GET,
            &format!("/api/v1/notifications/{id}"),
            &bob.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // A fresh replica of Bob's (snapshot, not catch-up) does not get it either.
    let b2 = online(&server, &bob, &dir.path().join("bob2.db"));
    has_task(&b2, later).await;
    b2.wait_synced(WAIT)
        .await
        .expect("bob's second replica synced");
    assert!(notification_ids(&b2).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_on_one_device_syncs_to_the_other_and_forged_text_rolls_back() {
    let server = TestServer::start().await;
    let owner = server.register("owner@devices.test").await;
    let ann = server.join(&owner, "ann@devices.test", "member").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let phone = online(&server, &ann, &dir.path().join("phone.db"));
    let laptop = online(&server, &ann, &dir.path().join("laptop.db"));
    phone.wait_synced(WAIT).await.expect("phone");
    laptop.wait_synced(WAIT).await.expect("laptop");

    let task = assign(&server, &owner, "Call the bank", ann.user_id).await;
    let id = server_notification(&server, ann.user_id, task).await;
    for device in [&phone, &laptop] {
        device
            .wait_for(WAIT, |c| {
                c.get("notifications", id).ok().flatten().is_some()
            })
            .await
            .expect("both devices receive it live");
    }

    // Read on the phone: the laptop shows it read.
    let now = chrono::Utc::now().timestamp_millis();
    assert!(
        phone
            .update(
                "notifications",
                id,
                [("read_at", Some(FieldValue::Timestamp(now)))]
            )
            .expect("mark read")
    );
    phone.wait_synced(WAIT).await.expect("read acknowledged");
    laptop
        .wait_for(WAIT, |c| {
            c.get("notifications", id)
                .ok()
                .flatten()
                .is_some_and(|r| r.get("read_at") == Some(&FieldValue::Timestamp(now)))
        })
        .await
        .expect("the laptop sees it read");
    let (_, count) = server
        .api(
            Method::GET,
            "/api/v1/notifications/unread-count",
            &ann.access_token,
            None,
        )
        .await;
    assert_eq!(count["unread"], 0);

    // Unread again on the laptop, then read-all over REST: both devices follow.
    laptop
        .update("notifications", id, [("read_at", None::<FieldValue>)])
        .expect("mark unread");
    phone
        .wait_for(WAIT, |c| !is_read(c, id))
        .await
        .expect("the phone sees it unread");
    let (status, body) = server
        .api(
            Method::POST,
            "/api/v1/notifications/read-all",
            &ann.access_token,
            None,
        )
        .await;
    assert_eq!((status, body["marked"].as_i64()), (StatusCode::OK, Some(1)));
    for device in [&phone, &laptop] {
        device
            .wait_for(WAIT, |c| is_read(c, id))
            .await
            .expect("read-all reaches every device");
    }

    // The text is the server's: a forged title is rejected and the replica rolls it back.
    let title = string(&phone, id, "title").expect("title");
    let mut events = phone.events();
    phone
        .update(
            "notifications",
            id,
            [("title", Some(FieldValue::String("forged".into())))],
        )
        .expect("local edit");
    loop {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("a rejection in time")
        {
            Ok(SyncEvent::Rejected { doc_id, .. }) if doc_id == id => break,
            Ok(_) => {}
            Err(e) => panic!("event stream: {e}"),
        }
    }
    phone
        .wait_for(WAIT, |c| {
            matches!(
                c.get("notifications", id).ok().flatten().and_then(|r| r.get("title").cloned()),
                Some(FieldValue::String(t)) if t == title
            )
        })
        .await
        .expect("the forged title is rolled back");
}

/// Two server processes on one database: the notification is created by the worker of one, the
/// recipient and another member are connected to the other, whose cached authorization model
/// predates the notification. The recipient receives it live; the other member never does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_made_by_another_process_reaches_only_its_recipient() {
    let worker = TestServer::start().await;
    let idle = sync_server::effects::EffectsSettings {
        workers: 0,
        ..sync_server::testing::test_effects()
    };
    let front = TestServer::start_with(worker.database_url.clone(), idle).await;
    let owner = worker.register("owner@two-nodes.test").await;
    let ann = worker.join(&owner, "ann@two-nodes.test", "member").await;
    let bob = worker.join(&owner, "bob@two-nodes.test", "admin").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&front, &ann, &dir.path().join("ann.db"));
    let b = online(&front, &bob, &dir.path().join("bob.db"));
    a.wait_synced(WAIT).await.expect("ann on the front process");
    b.wait_synced(WAIT).await.expect("bob on the front process");

    let task = assign(&worker, &owner, "Across processes", ann.user_id).await;
    let id = server_notification(&worker, ann.user_id, task).await;
    a.wait_for(WAIT, |c| {
        c.get("notifications", id).ok().flatten().is_some()
    })
    .await
    .expect("ann receives it live through the other process");
    let later = assign(&worker, &owner, "Barrier", owner.user_id).await;
    has_task(&b, later).await;
    assert!(
        notification_ids(&b).is_empty(),
        "bob, an org admin, never receives ann's notification"
    );
}
