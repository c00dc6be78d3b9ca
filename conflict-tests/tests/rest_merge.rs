//! REST bridge writes against real client-core replicas: an integration's PATCH merges with a
//! replica's offline edit of another field (issue 6's first acceptance test), and records the
//! bridge creates reach replicas, which then edit them like their own.

use client_core::{TaskDraft, TaskPatch};
use conflict_tests::harness::{WAIT, has_task, online, same_as_server};
use conflict_tests::postgres_fields;
use reqwest::{Method, StatusCode};
use serde_json::json;
use sync_server::testing::TestServer;
use syncline_protocol::record::FieldValue;
use syncline_protocol::schema::TASKS;
use uuid::Uuid;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_title_edit_and_a_rest_status_patch_both_survive() {
    let server = TestServer::start().await;
    let user = server.register("rest-merge@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let replica = online(&server, &user, &dir.path().join("a.db"));
    let id = replica
        .create_task(&TaskDraft::new("Draft contract", "todo"))
        .expect("create");
    replica.wait_synced(WAIT).await.expect("task acknowledged");

    replica.go_offline().await;
    replica
        .update_task(
            id,
            &TaskPatch {
                title: Some("Final contract".into()),
                ..Default::default()
            },
        )
        .expect("offline edit");
    let path = format!("/api/v1/tasks/{id}");
    let (status, patched) = server
        .api(
            Method::PATCH,
            &path,
            &user.access_token,
            Some(json!({ "status": "in_review" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["title"], "Draft contract", "the replica is offline");

    replica.go_online();
    replica
        .wait_for(WAIT, |c| {
            c.get_task(id)
                .ok()
                .flatten()
                .is_some_and(|t| t.title == "Final contract" && t.status == "in_review")
        })
        .await
        .expect("the replica holds both edits");
    replica.wait_synced(WAIT).await.expect("outbox pushed");
    same_as_server(&server, &replica, id).await;
    let pg = postgres_fields(&server.db, &TASKS, id)
        .await
        .expect("read postgres")
        .expect("row");
    assert_eq!(
        (pg.get("title"), pg.get("status")),
        (
            Some(&FieldValue::String("Final contract".into())),
            Some(&FieldValue::String("in_review".into()))
        )
    );
    let (status, got) = server
        .api(Method::GET, &path, &user.access_token, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (got["title"].as_str(), got["status"].as_str()),
        (Some("Final contract"), Some("in_review"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_created_over_rest_reaches_a_replica_which_edits_it() {
    let server = TestServer::start().await;
    let user = server.register("rest-create@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let replica = online(&server, &user, &dir.path().join("a.db"));
    replica.wait_synced(WAIT).await.expect("connected");

    let (status, created) = server
        .api(
            Method::POST,
            "/api/v1/tasks",
            &user.access_token,
            Some(json!({ "title": "From an integration", "status": "todo", "priority": "low" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id: Uuid = created["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("id");
    has_task(&replica, id).await;
    same_as_server(&server, &replica, id).await;

    replica
        .update_task(
            id,
            &TaskPatch {
                priority: Some(Some("urgent".into())),
                ..Default::default()
            },
        )
        .expect("edit");
    replica.wait_synced(WAIT).await.expect("edit acknowledged");
    let (_, got) = server
        .api(
            Method::GET,
            &format!("/api/v1/tasks/{id}"),
            &user.access_token,
            None,
        )
        .await;
    assert_eq!(
        (got["title"].as_str(), got["priority"].as_str()),
        (Some("From an integration"), Some("urgent"))
    );
}
