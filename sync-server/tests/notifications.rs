//! In-app notifications over a real server and Postgres: recipients per event, privacy of the
//! personal `notifications` collection (REST, rules), preferences and mutes, watchers, the
//! email hand-off, unread count and mark-all-read, and exactly-once creation across a restart
//! between the change's commit and the handler's run.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sync_server::effects::EffectHandler;
use sync_server::notifications::{NotificationsHandler, notification_id};
use sync_server::testing::{TestServer, TestUser, test_effects};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

/// Waits until every notifications job queued so far has finished (done or dead).
async fn jobs_settled(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM effect_jobs WHERE handler = 'notifications' \
             AND status IN ('pending', 'running')",
        )
        .fetch_one(&server.db)
        .await
        .expect("count jobs");
        if open == 0 {
            let dead: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM effect_jobs WHERE handler = 'notifications' AND status = 'dead'",
            )
            .fetch_one(&server.db)
            .await
            .expect("count dead");
            assert_eq!(dead, 0, "a notifications job was dead-lettered");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "notification jobs never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create(server: &TestServer, user: &TestUser, collection: &str, body: Value) -> Uuid {
    let (status, created) = server
        .api(
            Method::POST,
            &format!("/api/v1/{collection}"),
            &user.access_token,
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id")
}

async fn patch(server: &TestServer, user: &TestUser, path: &str, body: Value) -> Value {
    let (status, got) = server
        .api(Method::PATCH, path, &user.access_token, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    got
}

/// The caller's notifications over REST (newest last).
async fn notifications_of(server: &TestServer, user: &TestUser) -> Vec<Value> {
    let (status, page) = server
        .api(
            Method::GET,
            "/api/v1/notifications?sort=created_at&limit=100",
            &user.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().cloned().expect("data")
}

async fn unread(server: &TestServer, user: &TestUser) -> i64 {
    let (status, body) = server
        .api(
            Method::GET,
            "/api/v1/notifications/unread-count",
            &user.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["unread"].as_i64().expect("unread")
}

async fn all_notification_rows(server: &TestServer) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM notifications")
        .fetch_one(&server.db)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_notifies_the_assignee_and_nobody_else_reads_it() {
    let server = TestServer::start().await;
    let owner = server.register("owner@notify.test").await;
    let ann = server.join(&owner, "ann@notify.test", "member").await;
    let bob = server.join(&owner, "bob@notify.test", "admin").await;
    let task = create(
        &server,
        &owner,
        "tasks",
        json!({"title": "Ship the release", "status": "todo", "assignee_id": ann.user_id}),
    )
    .await;
    jobs_settled(&server).await;

    let mine = notifications_of(&server, &ann).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    let n = &mine[0];
    assert_eq!(n["event_type"], "task.assigned");
    assert_eq!(n["recipient_id"], ann.user_id.to_string());
    assert_eq!(n["actor_id"], owner.user_id.to_string());
    assert_eq!(n["entity_collection"], "tasks");
    assert_eq!(n["entity_id"], task.to_string());
    assert!(
        n["title"]
            .as_str()
            .is_some_and(|t| t.contains("Ship the release") && t.contains("owner@notify.test")),
        "{n}"
    );
    assert_eq!(n["read_at"], Value::Null);
    assert_eq!(unread(&server, &ann).await, 1);
    let id = n["id"].as_str().expect("id").to_owned();
    let event_id: Uuid = n["event_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("event");
    assert_eq!(id, notification_id(event_id, ann.user_id).to_string());

    // Nobody else lists or reads it: not the actor (an org owner), not an admin.
    for other in [&owner, &bob] {
        assert!(notifications_of(&server, other).await.is_empty());
        let (status, body) = server
            .api(
                Method::GET,
                &format!("/api/v1/notifications/{id}"),
                &other.access_token,
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, _) = server
            .api(
                Method::PATCH,
                &format!("/api/v1/notifications/{id}"),
                &other.access_token,
                Some(json!({"read_at": "2026-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(unread(&server, other).await, 0);
    }

    // The recipient may not rewrite it, only mark it read (and unread).
    let path = format!("/api/v1/notifications/{id}");
    let (status, body) = server
        .api(
            Method::PATCH,
            &path,
            &ann.access_token,
            Some(json!({"title": "forged"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "field_forbidden", "{body}");
    let read = patch(
        &server,
        &ann,
        &path,
        json!({"read_at": "2026-11-22T08:00:00Z"}),
    )
    .await;
    assert_eq!(read["read_at"], "2026-11-22T08:00:00.000Z");
    assert_eq!(unread(&server, &ann).await, 0);
    patch(&server, &ann, &path, json!({"read_at": null})).await;
    assert_eq!(unread(&server, &ann).await, 1);

    // Clients never create notifications, not even org owners.
    let (status, body) = server
        .api(
            Method::POST,
            "/api/v1/notifications",
            &owner.access_token,
            Some(json!({
                "recipient_id": ann.user_id, "event_type": "task.assigned",
                "event_id": Uuid::now_v7(), "title": "phishing"
            })),
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(all_notification_rows(&server).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_commit_and_handler_still_notifies_exactly_once() {
    let url = sync_server::testing::fresh_database_url().await;
    let idle = sync_server::effects::EffectsSettings {
        workers: 0,
        ..test_effects()
    };
    let mut first = TestServer::start_with(url.clone(), idle).await;
    let owner = first.register("owner@restart.test").await;
    let ann = first.join(&owner, "ann@restart.test", "member").await;
    create(
        &first,
        &owner,
        "tasks",
        json!({"title": "Survive a crash", "status": "todo", "assignee_id": ann.user_id}),
    )
    .await;
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM effect_jobs WHERE handler = 'notifications' AND status = 'pending'",
    )
    .fetch_one(&first.db)
    .await
    .expect("jobs");
    assert!(pending >= 2, "task.created and task.assigned are queued");
    assert_eq!(all_notification_rows(&first).await, 0, "no worker ran yet");
    first.stop().await;

    let server = TestServer::start_on(url).await;
    jobs_settled(&server).await;
    let mine = notifications_of(&server, &ann).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    let event_id: Uuid = mine[0]["event_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("event id");

    // The handler runs again for the same event (a crash after its work, before the job was
    // marked done): it finds the notification and does nothing.
    let event = sync_server::effects::worker::load_event(&server.state, owner.org_id, event_id)
        .await
        .expect("load")
        .expect("event");
    NotificationsHandler
        .handle(&server.state, &event, 2)
        .await
        .expect("second run");
    assert_eq!(all_notification_rows(&server).await, 1);
    let id = notification_id(event_id, ann.user_id);
    let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM change_log WHERE doc_id = $1")
        .bind(id)
        .fetch_one(&server.db)
        .await
        .expect("log");
    assert_eq!(logged, 1, "one creation in the change log");
    let emails: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM email_outbox WHERE event_id = $1 AND user_id = $2",
    )
    .bind(event_id)
    .bind(ann.user_id)
    .fetch_one(&server.db)
    .await
    .expect("emails");
    assert_eq!(emails, 1, "task.assigned emails by default, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_notify_the_mentioned_and_comments_the_watchers_never_the_author() {
    let server = TestServer::start().await;
    let owner = server.register("owner@mention.test").await;
    let ann = server.join(&owner, "ann@mention.test", "member").await;
    let cid = server.join(&owner, "cid@mention.test", "member").await;
    // Ann creates the task (she watches it), Cid watches it explicitly.
    let task = create(
        &server,
        &ann,
        "tasks",
        json!({"title": "Quarterly report", "status": "todo"}),
    )
    .await;
    let (status, body) = server
        .api(
            Method::PUT,
            &format!("/api/v1/tasks/{task}/watch"),
            &cid.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    jobs_settled(&server).await;

    // The owner comments, mentioning Ann and themselves.
    let body = format!(
        "@[Ann](user:{}) can you check the numbers? cc @[me](user:{})",
        ann.user_id, owner.user_id
    );
    create(
        &server,
        &owner,
        "comments",
        json!({"record_collection": "tasks", "record_id": task, "body": body}),
    )
    .await;
    jobs_settled(&server).await;

    let anns = notifications_of(&server, &ann).await;
    let types: Vec<&str> = anns
        .iter()
        .filter_map(|n| n["event_type"].as_str())
        .collect();
    assert_eq!(types, ["user.mentioned"], "mentioned, so not told twice");
    assert_eq!(anns[0]["entity_id"], task.to_string());
    assert!(
        anns[0]["body"]
            .as_str()
            .is_some_and(|b| b.starts_with("@Ann can you check")),
        "{}",
        anns[0]
    );
    let cids = notifications_of(&server, &cid).await;
    let types: Vec<&str> = cids
        .iter()
        .filter_map(|n| n["event_type"].as_str())
        .collect();
    assert_eq!(types, ["comment.created"], "a watcher hears of the comment");
    assert!(
        notifications_of(&server, &owner).await.is_empty(),
        "the author is never notified, even when mentioning themselves"
    );
    // The commenter now watches the task: Ann completing it tells the owner and Cid.
    patch(
        &server,
        &ann,
        &format!("/api/v1/tasks/{task}"),
        json!({"status": "done"}),
    )
    .await;
    jobs_settled(&server).await;
    for user in [&owner, &cid] {
        let types: Vec<String> = notifications_of(&server, user)
            .await
            .iter()
            .filter_map(|n| n["event_type"].as_str().map(str::to_owned))
            .collect();
        assert_eq!(
            types.iter().filter(|t| *t == "task.completed").count(),
            1,
            "{types:?}"
        );
        assert!(
            !types.contains(&"task.status_changed".to_owned()),
            "{types:?}"
        );
    }
    assert_eq!(
        notifications_of(&server, &ann).await.len(),
        1,
        "not told of her own change"
    );

    // Unwatching stops it.
    let (status, _) = server
        .api(
            Method::DELETE,
            &format!("/api/v1/tasks/{task}/watch"),
            &cid.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    patch(
        &server,
        &ann,
        &format!("/api/v1/tasks/{task}"),
        json!({"status": "in_review"}),
    )
    .await;
    jobs_settled(&server).await;
    assert_eq!(notifications_of(&server, &cid).await.len(), 2);
    assert_eq!(
        notifications_of(&server, &owner).await.len(),
        2,
        "owner watches (commented)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_mute_event_types_records_and_everything() {
    let server = TestServer::start().await;
    let owner = server.register("owner@prefs.test").await;
    let ann = server.join(&owner, "ann@prefs.test", "member").await;

    let (status, prefs) = server
        .api(
            Method::GET,
            "/api/v1/notification-preferences",
            &ann.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prefs}");
    assert_eq!(
        prefs["preferences"]["task.assigned"],
        json!({"in_app": true, "email": true})
    );
    assert_eq!(
        prefs["preferences"]["task.completed"],
        json!({"in_app": true, "email": false})
    );
    assert_eq!(prefs["email_digest"], "off");
    assert_eq!(prefs["muted_until"], Value::Null);

    // Bad input is a 400 envelope.
    for bad in [
        json!({"preferences": {"task.exploded": {"in_app": false}}}),
        json!({"email_digest": "weekly"}),
        json!({"preferences": {"task.assigned": {"in_app": "no"}}}),
        json!({"colour": "blue"}),
        json!({"mute_records": [{"collection": "no\u{0}pe", "entity_id": Uuid::now_v7()}]}),
        json!({"muted_until": "0000-01-01T00:00:00Z"}),
    ] {
        let (status, body) = server
            .api(
                Method::PUT,
                "/api/v1/notification-preferences",
                &ann.access_token,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_input", "{body}");
    }

    // Muted type: assigning Ann tells her nothing, in-app or by email.
    let (status, prefs) = server
        .api(
            Method::PUT,
            "/api/v1/notification-preferences",
            &ann.access_token,
            Some(json!({
                "preferences": {"task.assigned": {"in_app": false, "email": false}},
                "email_digest": "daily"
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prefs}");
    assert_eq!(
        prefs["preferences"]["task.assigned"],
        json!({"in_app": false, "email": false})
    );
    assert_eq!(prefs["email_digest"], "daily");
    let first = create(
        &server,
        &owner,
        "tasks",
        json!({"title": "Muted type", "status": "todo", "assignee_id": ann.user_id}),
    )
    .await;
    jobs_settled(&server).await;
    assert!(notifications_of(&server, &ann).await.is_empty());
    let emails: i64 = sqlx::query_scalar("SELECT count(*) FROM email_outbox")
        .fetch_one(&server.db)
        .await
        .expect("emails");
    assert_eq!(emails, 0);

    // Ann watches the first task but mutes it: its completion tells her nothing.
    server
        .api(
            Method::PUT,
            &format!("/api/v1/tasks/{first}/watch"),
            &ann.access_token,
            None,
        )
        .await;
    let (status, prefs) = server
        .api(
            Method::PUT,
            "/api/v1/notification-preferences",
            &ann.access_token,
            Some(json!({"mute_records": [{"collection": "tasks", "entity_id": first}]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prefs}");
    assert_eq!(prefs["muted_records"][0]["entity_id"], first.to_string());
    patch(
        &server,
        &owner,
        &format!("/api/v1/tasks/{first}"),
        json!({"status": "done"}),
    )
    .await;
    jobs_settled(&server).await;
    assert!(notifications_of(&server, &ann).await.is_empty());

    // Muted until tomorrow: nothing at all; unmuted: told again.
    let (status, _) = server
        .api(
            Method::PUT,
            "/api/v1/notification-preferences",
            &ann.access_token,
            Some(json!({
                "preferences": {"task.assigned": {"in_app": true}},
                "muted_until": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    create(
        &server,
        &owner,
        "tasks",
        json!({"title": "Muted user", "status": "todo", "assignee_id": ann.user_id}),
    )
    .await;
    jobs_settled(&server).await;
    assert!(notifications_of(&server, &ann).await.is_empty());
    server
        .api(
            Method::PUT,
            "/api/v1/notification-preferences",
            &ann.access_token,
            Some(json!({"muted_until": null})),
        )
        .await;
    create(
        &server,
        &owner,
        "tasks",
        json!({"title": "Heard", "status": "todo", "assignee_id": ann.user_id}),
    )
    .await;
    jobs_settled(&server).await;
    let mine = notifications_of(&server, &ann).await;
    assert_eq!(mine.len(), 1);
    assert!(
        mine[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("Heard"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_all_marks_every_unread_notification_of_the_caller_only() {
    let server = TestServer::start().await;
    let owner = server.register("owner@readall.test").await;
    let ann = server.join(&owner, "ann@readall.test", "member").await;
    let bob = server.join(&owner, "bob@readall.test", "member").await;
    for (title, user) in [("one", &ann), ("two", &ann), ("three", &bob)] {
        create(
            &server,
            &owner,
            "tasks",
            json!({"title": title, "status": "todo", "assignee_id": user.user_id}),
        )
        .await;
    }
    jobs_settled(&server).await;
    assert_eq!(
        (unread(&server, &ann).await, unread(&server, &bob).await),
        (2, 1)
    );
    let (status, body) = server
        .api(
            Method::POST,
            "/api/v1/notifications/read-all",
            &ann.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["marked"], 2);
    assert_eq!(
        (unread(&server, &ann).await, unread(&server, &bob).await),
        (0, 1)
    );
    assert!(
        notifications_of(&server, &ann)
            .await
            .iter()
            .all(|n| n["read_at"].is_string())
    );
    // Watching something the caller cannot read, or a notification, is refused.
    let (status, _) = server
        .api(
            Method::PUT,
            &format!("/api/v1/tasks/{}/watch", Uuid::now_v7()),
            &ann.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .api(
            Method::PUT,
            "/api/v1/tasks/not-a-uuid/watch",
            &ann.access_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converted_contact_notifies_its_assignee_and_guests_are_not_told_what_they_cannot_read() {
    let server = TestServer::start().await;
    let owner = server.register("owner@convert.test").await;
    let ann = server.join(&owner, "ann@convert.test", "member").await;
    let guest = server.join(&owner, "guest@convert.test", "guest").await;
    let contact = create(
        &server,
        &owner,
        "contacts",
        json!({"type": "lead", "status": "active", "first_name": "Grace", "last_name": "Hopper",
               "assigned_to": ann.user_id}),
    )
    .await;
    patch(
        &server,
        &owner,
        &format!("/api/v1/contacts/{contact}"),
        json!({"type": "client"}),
    )
    .await;
    jobs_settled(&server).await;
    let mine = notifications_of(&server, &ann).await;
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["event_type"], "contact.converted");
    assert!(
        mine[0]["title"]
            .as_str()
            .is_some_and(|t| t.contains("Grace Hopper")),
        "{}",
        mine[0]
    );

    // A guest mentioned on a task nobody shared with them is not told (the text quotes it).
    let task = create(
        &server,
        &owner,
        "tasks",
        json!({"title": "Secret plan", "status": "todo"}),
    )
    .await;
    create(
        &server,
        &owner,
        "comments",
        json!({"record_collection": "tasks", "record_id": task,
               "body": format!("@[G](user:{}) look", guest.user_id)}),
    )
    .await;
    jobs_settled(&server).await;
    assert!(notifications_of(&server, &guest).await.is_empty());
}
