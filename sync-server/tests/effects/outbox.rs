//! Events and audit rows are written with the change, from the before/after of its fields.

use reqwest::Method;
use serde_json::json;
use sync_server::testing::TestServer;
use sync_server::testing::changes::{s, task_change};
use sync_server::testing::raw::RawClient;
use syncline_protocol::record::FieldValue;
use syncline_protocol::{ClientMessage, Mutation, MutationId, ServerMessage};
use uuid::Uuid;

use crate::common::{create_task, events_of};

#[tokio::test]
async fn a_rest_write_records_its_events_and_audit_row_in_its_transaction() {
    let server = TestServer::start().await;
    let owner = server.register("owner@effects.test").await;
    let member = server.join(&owner, "member@effects.test", "member").await;

    let response = reqwest::Client::new()
        .post(server.http_url("/api/v1/tasks"))
        .bearer_auth(&owner.access_token)
        .header("X-Correlation-Id", "corr-assign-1")
        .json(&json!({"title": "Ship it", "status": "todo", "assignee_id": member.user_id}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let task: serde_json::Value = response.json().await.expect("json");
    let id = Uuid::parse_str(task["id"].as_str().expect("id")).expect("uuid");

    let created = events_of(&server, owner.org_id, "task.created").await;
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].1["record"]["title"], "Ship it");
    let assigned = events_of(&server, owner.org_id, "task.assigned").await;
    assert_eq!(assigned.len(), 1);
    assert_eq!(assigned[0].1["assignee_id"], member.user_id.to_string());

    let (actor, action, via, ip, correlation, changes): (
        Option<Uuid>,
        String,
        String,
        Option<String>,
        Option<String>,
        serde_json::Value,
    ) = sqlx::query_as(
        "SELECT actor_id, action, via, host(ip), correlation_id, changes FROM audit_log WHERE entity_id = $1",
    )
    .bind(id)
    .fetch_one(&server.db)
    .await
    .expect("one audit row");
    assert_eq!(actor, Some(owner.user_id));
    assert_eq!(action, "create");
    assert_eq!(via, "rest");
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(correlation.as_deref(), Some("corr-assign-1"));
    assert_eq!(changes["title"], json!({"from": null, "to": "Ship it"}));

    // The same status again changes nothing: no event, no audit row.
    let (status, _) = server
        .api(
            Method::PATCH,
            &format!("/api/v1/tasks/{id}"),
            &owner.access_token,
            Some(json!({"status": "todo"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = server
        .api(
            Method::PATCH,
            &format!("/api/v1/tasks/{id}"),
            &member.access_token,
            Some(json!({"status": "done"})),
        )
        .await;
    assert_eq!(status, 200);
    let types: Vec<(String,)> = sqlx::query_as(
        "SELECT event_type FROM domain_events WHERE entity_id = $1 ORDER BY occurred_at, id",
    )
    .bind(id)
    .fetch_all(&server.db)
    .await
    .expect("events");
    let types: Vec<&str> = types.iter().map(|(t,)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "task.created",
            "task.assigned",
            "task.updated",
            "task.status_changed",
            "task.completed"
        ]
    );
    let audit: Vec<(String, serde_json::Value)> =
        sqlx::query_as("SELECT action, changes FROM audit_log WHERE entity_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(&server.db)
            .await
            .expect("audit");
    assert_eq!(audit.len(), 2, "no row for the write that changed nothing");
    assert_eq!(
        audit[1].1,
        json!({"status": {"from": "todo", "to": "done"}})
    );
}

#[tokio::test]
async fn a_push_is_audited_as_ws_and_a_rejected_change_leaves_no_trace() {
    let server = TestServer::start().await;
    let owner = server.register("owner@push.test").await;
    let viewer = server.join(&owner, "guest@push.test", "guest").await;
    let task = create_task(&server, &owner, json!({})).await;
    server
        .share(
            Method::POST,
            &owner,
            "tasks",
            task,
            "viewer",
            viewer.user_id,
        )
        .await;

    // The owner renames over the sync socket.
    let mut doc = automerge::AutoCommit::load(
        &sqlx::query_as::<_, (Vec<u8>,)>("SELECT state FROM documents WHERE id = $1")
            .bind(task)
            .fetch_one(&server.db)
            .await
            .expect("state")
            .0,
    )
    .expect("load");
    let mut owner_ws = RawClient::hello(&server.ws_url(), &owner.access_token).await;
    let client = owner_ws.client_id;
    owner_ws
        .send(&ClientMessage::Push {
            mutations: vec![Mutation {
                mid: MutationId {
                    client_id: client,
                    seq: 1,
                },
                doc_id: task,
                collection: "tasks".into(),
                payload: serde_bytes::ByteBuf::from(task_change(
                    &mut doc,
                    &[("title", s("Renamed over sync"))],
                )),
            }],
        })
        .await;
    let ack = owner_ws
        .until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
        .await;
    assert!(matches!(ack, ServerMessage::Ack { .. }), "{ack:?}");

    // The viewer's edit is rejected: no event, no audit row.
    let mut viewer_ws = RawClient::hello(&server.ws_url(), &viewer.access_token).await;
    let viewer_client = viewer_ws.client_id;
    viewer_ws
        .send(&ClientMessage::Push {
            mutations: vec![Mutation {
                mid: MutationId {
                    client_id: viewer_client,
                    seq: 1,
                },
                doc_id: task,
                collection: "tasks".into(),
                payload: serde_bytes::ByteBuf::from(task_change(
                    &mut doc,
                    &[("priority", Some(FieldValue::String("urgent".into())))],
                )),
            }],
        })
        .await;
    let reject = viewer_ws
        .until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
        .await;
    assert!(matches!(reject, ServerMessage::Reject { .. }), "{reject:?}");

    let audit: Vec<(Option<Uuid>, String, String)> = sqlx::query_as(
        "SELECT actor_id, action, via FROM audit_log WHERE entity_id = $1 ORDER BY id",
    )
    .bind(task)
    .fetch_all(&server.db)
    .await
    .expect("audit");
    assert_eq!(
        audit,
        vec![
            (Some(owner.user_id), "create".into(), "rest".into()),
            (Some(owner.user_id), "update".into(), "ws".into()),
        ]
    );
    let updates = events_of(&server, owner.org_id, "task.updated").await;
    assert_eq!(updates.len(), 1, "only the accepted change made an event");
    assert_eq!(
        updates[0].1["changes"],
        json!({"title": {"from": "a task", "to": "Renamed over sync"}})
    );
}

#[tokio::test]
async fn comments_thread_and_mention_users() {
    let server = TestServer::start().await;
    let owner = server.register("owner@comments.test").await;
    let ann = server.join(&owner, "ann@comments.test", "member").await;
    let guest = server.join(&owner, "guest@comments.test", "guest").await;
    let task = create_task(&server, &owner, json!({})).await;

    let body = format!("Can you look, @[Ann](user:{})?", ann.user_id);
    let (status, comment) = server
        .api(
            Method::POST,
            "/api/v1/comments",
            &owner.access_token,
            Some(json!({"record_collection": "tasks", "record_id": task, "body": body})),
        )
        .await;
    assert_eq!(status, 201, "{comment}");
    let comment_id = comment["id"].as_str().expect("id").to_owned();
    let (status, reply) = server
        .api(
            Method::POST,
            "/api/v1/comments",
            &ann.access_token,
            Some(json!({
                "record_collection": "tasks", "record_id": task,
                "parent_id": comment_id, "body": "On it"
            })),
        )
        .await;
    assert_eq!(status, 201, "{reply}");
    assert_eq!(reply["parent_id"], comment_id.as_str());

    let mentioned = events_of(&server, owner.org_id, "user.mentioned").await;
    assert_eq!(mentioned.len(), 1);
    assert_eq!(mentioned[0].1["mentioned_user_id"], ann.user_id.to_string());
    assert_eq!(
        events_of(&server, owner.org_id, "comment.created")
            .await
            .len(),
        2
    );

    // Only the author edits their comment; an edit that mentions nobody new raises nothing.
    let path = format!("/api/v1/comments/{comment_id}");
    let edited = format!("{body} (edited)");
    let (status, denied) = server
        .api(
            Method::PATCH,
            &path,
            &ann.access_token,
            Some(json!({"body": "mine now"})),
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    let (status, _) = server
        .api(
            Method::PATCH,
            &path,
            &owner.access_token,
            Some(json!({"body": edited, "edited_at": "2026-11-22T10:00:00Z"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        events_of(&server, owner.org_id, "user.mentioned")
            .await
            .len(),
        1
    );

    // A guest may comment (creating needs no more than membership).
    let (status, by_guest) = server
        .api(
            Method::POST,
            "/api/v1/comments",
            &guest.access_token,
            Some(json!({"record_collection": "tasks", "record_id": task, "body": "hello"})),
        )
        .await;
    assert_eq!(status, 201, "{by_guest}");
}

#[tokio::test]
async fn webhook_jobs_are_queued_only_for_orgs_with_an_enabled_endpoint() {
    let server = TestServer::start().await;
    let owner = server.register("owner@nohooks.test").await;
    let jobs = |org: Uuid| {
        let db = server.db.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM effect_jobs WHERE org_id = $1 AND handler = 'webhooks'",
            )
            .bind(org)
            .fetch_one(&db)
            .await
            .expect("count");
            n
        }
    };
    create_task(&server, &owner, json!({})).await;
    assert!(
        !events_of(&server, owner.org_id, "task.created")
            .await
            .is_empty()
    );
    assert_eq!(jobs(owner.org_id).await, 0, "no endpoint, no webhook job");

    let (status, endpoint) = server
        .api(
            Method::POST,
            "/api/v1/webhooks/endpoints",
            &owner.access_token,
            Some(json!({"url": "http://127.0.0.1:9/hooks"})),
        )
        .await;
    assert_eq!(status, 201, "{endpoint}");
    create_task(&server, &owner, json!({})).await;
    assert_eq!(jobs(owner.org_id).await, 1, "one event, one job");
}
