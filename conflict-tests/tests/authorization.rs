//! Authorization with real clients: rejected offline edits roll back visibly, a change is judged
//! whole and its dependents fall with it, revoked shares are evicted from the replica, and two
//! offline clients cannot build a dependency cycle together.

use client_core::{SyncEvent, TaskPatch};
use conflict_tests::harness::{WAIT, create_tasks, has_task, online, same_as_server};
use reqwest::Method;
use sync_server::testing::TestServer;
use syncline_protocol::ErrorCode;
use syncline_protocol::record::FieldValue;
use tokio::sync::broadcast;
use uuid::Uuid;

/// Collects rejection events until `n` arrived.
async fn rejections(
    events: &mut broadcast::Receiver<SyncEvent>,
    n: usize,
) -> Vec<(Uuid, ErrorCode)> {
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("rejection event in time")
        {
            Ok(SyncEvent::Rejected { doc_id, code, .. }) => out.push((doc_id, code)),
            Ok(_) => {}
            Err(e) => panic!("event stream: {e}"),
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guests_offline_edit_of_a_view_only_task_is_rejected_and_rolled_back() {
    let server = TestServer::start().await;
    let owner = server.register("owner@example.com").await;
    let guest = server.join(&owner, "guest@example.com", "guest").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let o = online(&server, &owner, &dir.path().join("owner.db"));
    let [shared, private] = create_tasks(&o, &["Quarterly report", "Salaries"])
        .await
        .try_into()
        .expect("two tasks");
    server
        .share(
            Method::POST,
            &owner,
            "tasks",
            shared,
            "viewer",
            guest.user_id,
        )
        .await;

    let g = online(&server, &guest, &dir.path().join("guest.db"));
    has_task(&g, shared).await;
    g.wait_synced(WAIT).await.expect("guest synced");
    assert!(
        g.get_task(private).expect("get").is_none(),
        "a guest never receives unshared tasks"
    );

    g.go_offline().await;
    let mut events = g.events();
    g.update_task(
        shared,
        &TaskPatch {
            title: Some("Edited offline".into()),
            ..Default::default()
        },
    )
    .expect("local edit");
    assert_eq!(
        g.get_task(shared).expect("get").expect("task").title,
        "Edited offline"
    );
    g.go_online();

    let rejected = rejections(&mut events, 1).await;
    assert_eq!(rejected, vec![(shared, ErrorCode::FieldForbidden)]);
    same_as_server(&server, &g, shared).await;
    assert_eq!(
        g.get_task(shared).expect("get").expect("task").title,
        "Quarterly report"
    );
    g.wait_synced(WAIT).await.expect("nothing left pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_with_a_forbidden_field_is_rejected_whole_with_its_dependents_only() {
    let server = TestServer::start().await;
    let owner = server.register("lead@example.com").await;
    let member = server.join(&owner, "editor@example.com", "member").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let o = online(&server, &owner, &dir.path().join("owner.db"));
    let [first, second] = create_tasks(&o, &["Plan launch", "Book venue"])
        .await
        .try_into()
        .expect("two tasks");

    // Members are editors of the org's tasks; deleting one takes its owner.
    let m = online(&server, &member, &dir.path().join("member.db"));
    has_task(&m, first).await;
    has_task(&m, second).await;
    m.go_offline().await;
    let mut events = m.events();
    let now = 1_790_000_000_000;
    m.update(
        "tasks",
        first,
        [
            ("title", Some(FieldValue::String("Renamed".into()))),
            ("deleted_at", Some(FieldValue::Timestamp(now))),
        ],
    )
    .expect("mixed change");
    m.update_task(
        first,
        &TaskPatch {
            status: Some("in_progress".into()),
            ..Default::default()
        },
    )
    .expect("dependent");
    m.update_task(
        second,
        &TaskPatch {
            title: Some("Book the venue".into()),
            ..Default::default()
        },
    )
    .expect("independent");
    m.go_online();

    let mut rejected = rejections(&mut events, 2).await;
    rejected.sort_by_key(|(_, code)| code.as_str());
    assert_eq!(
        rejected,
        vec![
            (first, ErrorCode::FieldForbidden),
            (first, ErrorCode::MissingDependency)
        ]
    );
    m.wait_synced(WAIT).await.expect("member synced");
    same_as_server(&server, &m, first).await;
    same_as_server(&server, &m, second).await;
    let first_task = m.get_task(first).expect("get").expect("task");
    assert_eq!(
        (first_task.title.as_str(), first_task.status.as_str()),
        ("Plan launch", "todo")
    );
    assert!(first_task.deleted_at.is_none());
    assert_eq!(
        m.get_task(second).expect("get").expect("task").title,
        "Book the venue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_a_share_evicts_the_document_from_the_replica() {
    let server = TestServer::start().await;
    let owner = server.register("sharer@example.com").await;
    let guest = server.join(&owner, "visitor@example.com", "guest").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let o = online(&server, &owner, &dir.path().join("owner.db"));
    let [live, offline] = create_tasks(
        &o,
        &["Shared while online", "Shared, revoked while offline"],
    )
    .await
    .try_into()
    .expect("two tasks");
    server
        .share(Method::POST, &owner, "tasks", live, "viewer", guest.user_id)
        .await;
    server
        .share(
            Method::POST,
            &owner,
            "tasks",
            offline,
            "editor",
            guest.user_id,
        )
        .await;

    let path = dir.path().join("guest.db");
    let g = online(&server, &guest, &path);
    has_task(&g, live).await;
    has_task(&g, offline).await;

    // Revoked while connected: evicted live.
    server
        .share(
            Method::DELETE,
            &owner,
            "tasks",
            live,
            "viewer",
            guest.user_id,
        )
        .await;
    g.wait_for(WAIT, |c| c.get_task(live).ok().flatten().is_none())
        .await
        .expect("evicted");

    // Revoked while offline, with a pending edit: evicted (edit dropped) on reconnect.
    g.go_offline().await;
    g.update_task(
        offline,
        &TaskPatch {
            title: Some("edited".into()),
            ..Default::default()
        },
    )
    .expect("edit");
    server
        .share(
            Method::DELETE,
            &owner,
            "tasks",
            offline,
            "editor",
            guest.user_id,
        )
        .await;
    g.go_online();
    g.wait_for(WAIT, |c| c.get_task(offline).ok().flatten().is_none())
        .await
        .expect("evicted on resume");
    g.wait_synced(WAIT).await.expect("guest synced");
    let shared = g.stop().await;
    drop(shared);

    // Gone from the SQLite file itself.
    let file = rusqlite::Connection::open(&path).expect("open file");
    for id in [live, offline] {
        let rows: i64 = file
            .query_row("SELECT (SELECT count(*) FROM tasks WHERE id = ?1) + (SELECT count(*) FROM documents WHERE id = ?1)", [id.to_string()], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 0, "document {id} still in the replica file");
    }
    // Sharing again brings it back.
    let g = online(&server, &guest, &path);
    server
        .share(Method::POST, &owner, "tasks", live, "viewer", guest.user_id)
        .await;
    has_task(&g, live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_offline_clients_cannot_build_a_dependency_cycle() {
    let server = TestServer::start().await;
    let owner = server.register("pm@example.com").await;
    let member = server.join(&owner, "dev@example.com", "member").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, &owner, &dir.path().join("a.db"));
    let b = online(&server, &member, &dir.path().join("b.db"));
    let [t1, t2] = create_tasks(&a, &["Design", "Build"])
        .await
        .try_into()
        .expect("two tasks");
    has_task(&b, t1).await;
    has_task(&b, t2).await;

    a.go_offline().await;
    b.go_offline().await;
    a.update_task(
        t1,
        &TaskPatch {
            depends_on: Some(vec![t2]),
            ..Default::default()
        },
    )
    .expect("t1 -> t2");
    b.update_task(
        t2,
        &TaskPatch {
            depends_on: Some(vec![t1]),
            ..Default::default()
        },
    )
    .expect("t2 -> t1");
    a.go_online();
    b.go_online();
    a.wait_synced(WAIT).await.expect("a synced");
    b.wait_synced(WAIT).await.expect("b synced");

    let (edges,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM tasks WHERE cardinality(depends_on) > 0")
            .fetch_one(&server.db)
            .await
            .expect("count");
    assert_eq!(edges, 1, "exactly one of the two edges is accepted");
    for c in [&a, &b] {
        same_as_server(&server, c, t1).await;
        same_as_server(&server, c, t2).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_from_the_org_is_evicted_and_disconnected() {
    let server = TestServer::start().await;
    let owner = server.register("boss@example.com").await;
    let member = server.join(&owner, "leaver@example.com", "member").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let o = online(&server, &owner, &dir.path().join("owner.db"));
    let id = create_tasks(&o, &["Roadmap"]).await[0];
    let m = online(&server, &member, &dir.path().join("member.db"));
    has_task(&m, id).await;

    let (status, body) = server
        .api(
            Method::DELETE,
            &format!("/orgs/{}/members/{}", owner.org_id, member.user_id),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "{body}");
    m.wait_for(WAIT, |c| c.get_task(id).ok().flatten().is_none())
        .await
        .expect("evicted");
    let state = m
        .wait_until(WAIT, |s| {
            s.last_error
                .as_ref()
                .is_some_and(|e| e.close_code == Some(4001))
        })
        .await
        .expect("closed as no longer a member");
    assert!(state.last_error.is_some());
    // The owner's replica keeps the task.
    assert!(o.get_task(id).expect("get").is_some());
}
