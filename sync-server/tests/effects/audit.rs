//! The audit log is append-only in Postgres itself; audit and activity over REST.

use reqwest::Method;
use serde_json::json;
use sync_server::testing::TestServer;

use crate::common::create_task;

#[tokio::test]
async fn postgres_refuses_to_update_delete_or_truncate_the_audit_log() {
    let server = TestServer::start().await;
    let owner = server.register("owner@audit.test").await;
    create_task(&server, &owner, json!({})).await;
    // As the database owner (who bypasses row-level security) ...
    for statement in [
        "UPDATE audit_log SET action = 'forged'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let err = sqlx::query(statement)
            .execute(&server.db)
            .await
            .expect_err(statement);
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    // ... and as the server's own role, which lacks the grants too.
    let mut tx = server.state.db.begin().await.expect("begin");
    sqlx::query("SELECT set_config('app.org_id', $1, true)")
        .bind(owner.org_id.to_string())
        .execute(&mut *tx)
        .await
        .expect("org");
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&mut *tx)
        .await
        .expect_err("app role");
    assert!(err.to_string().contains("permission denied"), "{err}");
    drop(tx);
    let (rows,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_log")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(rows, 1, "nothing was changed or removed");
}

#[tokio::test]
async fn activity_feeds_and_the_audit_log_over_rest() {
    let server = TestServer::start().await;
    let owner = server.register("owner@activity.test").await;
    let member = server.join(&owner, "member@activity.test", "member").await;
    let guest = server.join(&owner, "guest@activity.test", "guest").await;
    let task = create_task(&server, &owner, json!({"title": "Draft"})).await;
    for (who, fields) in [
        (&member, json!({"title": "Final"})),
        (&owner, json!({"status": "in_progress", "priority": "high"})),
    ] {
        let (status, body) = server
            .api(
                Method::PATCH,
                &format!("/api/v1/tasks/{task}"),
                &who.access_token,
                Some(fields),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let path = format!("/api/v1/tasks/{task}/activity");
    let (status, feed) = server
        .api(Method::GET, &path, &member.access_token, None)
        .await;
    assert_eq!(status, 200, "{feed}");
    let entries = feed["data"].as_array().expect("entries");
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["actor_id"], owner.user_id.to_string());
    assert_eq!(
        entries[0]["changes"],
        json!({"status": {"from": "todo", "to": "in_progress"}, "priority": {"from": null, "to": "high"}})
    );
    assert_eq!(entries[1]["actor_id"], member.user_id.to_string());
    assert_eq!(
        entries[1]["changes"],
        json!({"title": {"from": "Draft", "to": "Final"}})
    );
    assert_eq!(entries[2]["action"], "create");

    // Paging: one per page, newest first.
    let (_, first) = server
        .api(
            Method::GET,
            &format!("{path}?limit=1"),
            &member.access_token,
            None,
        )
        .await;
    let cursor = first["meta"]["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let (_, second) = server
        .api(
            Method::GET,
            &format!("{path}?limit=1&cursor={cursor}"),
            &member.access_token,
            None,
        )
        .await;
    assert_eq!(second["data"][0]["changes"]["title"]["to"], "Final");
    let (status, bad) = server
        .api(
            Method::GET,
            &format!("{path}?cursor=xyz"),
            &member.access_token,
            None,
        )
        .await;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_input");

    // A guest the task is not shared with sees nothing, as if it did not exist.
    let (status, hidden) = server
        .api(Method::GET, &path, &guest.access_token, None)
        .await;
    assert_eq!(status, 404, "{hidden}");

    // The org's audit log: admins only, filterable.
    let (status, denied) = server
        .api(Method::GET, "/api/v1/audit-log", &member.access_token, None)
        .await;
    assert_eq!(status, 403, "{denied}");
    let (status, log) = server
        .api(
            Method::GET,
            &format!("/api/v1/audit-log?actor_id={}", member.user_id),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let rows = log["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["entity_id"], task.to_string());
    assert_eq!(rows[0]["via"], "rest");
    assert!(rows[0]["correlation_id"].is_string());
}
