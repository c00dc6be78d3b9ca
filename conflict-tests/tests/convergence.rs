//! Acceptance tests of the sync spine with real clients: offline edits merge, concurrent edits
//! converge, killed clients push their outbox after restart exactly once, and many clients
//! going on and offline under load all end equal to Postgres.

use std::time::Duration;

use client_core::native::NativeClient;
use client_core::{Client, TaskDraft, TaskPatch};
use conflict_tests::harness::{WAIT, online};
use conflict_tests::{client_fields, client_ids, postgres_fields, postgres_ids};
use rand::{Rng, SeedableRng};
use sync_server::testing::TestServer;
use sync_server::testing::raw::RawClient;
use syncline_protocol::schema::TASKS;
use syncline_protocol::{ClientMessage, ServerMessage};
use uuid::Uuid;

async fn synced(c: &NativeClient) {
    c.wait_synced(WAIT).await.expect("client synced");
}

/// Asserts that the task is identical in every replica and in Postgres; returns it.
async fn assert_identical(
    server: &TestServer,
    clients: &[&NativeClient],
    id: Uuid,
) -> conflict_tests::Fields {
    let pg = postgres_fields(&server.db, &TASKS, id)
        .await
        .expect("read postgres")
        .expect("row in postgres");
    for (i, c) in clients.iter().enumerate() {
        let local = c
            .read(|c| client_fields(c, &TASKS, id))
            .expect("read replica")
            .expect("row in replica");
        assert_eq!(local, pg, "replica {i} differs from postgres");
    }
    pg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_edits_of_different_fields_both_survive() {
    let server = TestServer::start().await;
    let user = server.register("merge@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, &user, &dir.path().join("a.db"));
    let b = online(&server, &user, &dir.path().join("b.db"));
    let id = a
        .create_task(&TaskDraft::new("Draft contract", "todo"))
        .expect("create");
    synced(&a).await;
    b.wait_for(WAIT, |c| c.get_task(id).ok().flatten().is_some())
        .await
        .expect("b receives the task");

    a.go_offline().await;
    b.go_offline().await;
    a.update_task(
        id,
        &TaskPatch {
            title: Some("Final contract".into()),
            ..Default::default()
        },
    )
    .expect("edit a");
    b.update_task(
        id,
        &TaskPatch {
            status: Some("in_review".into()),
            priority: Some(Some("high".into())),
            ..Default::default()
        },
    )
    .expect("edit b");
    a.go_online();
    b.go_online();
    synced(&a).await;
    synced(&b).await;
    // Each needs the other's change: wait until both replicas hold both edits.
    for c in [&a, &b] {
        c.wait_for(WAIT, |c| {
            c.get_task(id)
                .ok()
                .flatten()
                .is_some_and(|t| t.title == "Final contract" && t.status == "in_review")
        })
        .await
        .expect("both edits arrive");
    }
    let fields = assert_identical(&server, &[&a, &b], id).await;
    assert_eq!(
        fields.get("priority"),
        Some(&syncline_protocol::record::FieldValue::String(
            "high".into()
        ))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependencies_added_offline_by_two_clients_both_reach_postgres() {
    use syncline_protocol::record::FieldValue;
    let server = TestServer::start().await;
    let user = server.register("deps@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, &user, &dir.path().join("a.db"));
    let b = online(&server, &user, &dir.path().join("b.db"));
    let design = a
        .create_task(&TaskDraft::new("Design", "todo"))
        .expect("create");
    let review = a
        .create_task(&TaskDraft::new("Review", "todo"))
        .expect("create");
    let ship = a
        .create_task(&TaskDraft {
            depends_on: vec![design],
            ..TaskDraft::new("Ship", "todo")
        })
        .expect("create");
    synced(&a).await;
    b.wait_for(WAIT, |c| c.get_task(ship).ok().flatten().is_some())
        .await
        .expect("b receives the tasks");
    let pg = assert_identical(&server, &[&a, &b], ship).await;
    assert_eq!(
        pg.get("depends_on"),
        Some(&FieldValue::RefList(vec![design]))
    );

    a.go_offline().await;
    b.go_offline().await;
    // A adds `review`; B drops `design`. Both edit the same list.
    a.update_task(
        ship,
        &TaskPatch {
            depends_on: Some(vec![design, review]),
            ..Default::default()
        },
    )
    .expect("edit a");
    b.update_task(
        ship,
        &TaskPatch {
            depends_on: Some(vec![]),
            ..Default::default()
        },
    )
    .expect("edit b");
    a.go_online();
    b.go_online();
    synced(&a).await;
    synced(&b).await;
    for c in [&a, &b] {
        c.wait_for(WAIT, |c| {
            c.get_task(ship)
                .ok()
                .flatten()
                .is_some_and(|t| t.depends_on == vec![review])
        })
        .await
        .expect("both edits arrive");
    }
    let pg = assert_identical(&server, &[&a, &b], ship).await;
    assert_eq!(
        pg.get("depends_on"),
        Some(&FieldValue::RefList(vec![review]))
    );
    // Tasks without dependencies hold an empty array, not NULL.
    let (empty,): (Vec<Uuid>,) = sqlx::query_as("SELECT depends_on FROM tasks WHERE id = $1")
        .bind(design)
        .fetch_one(&server.db)
        .await
        .expect("row");
    assert!(empty.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_edits_of_the_same_field_converge_to_one_value() {
    let server = TestServer::start().await;
    let user = server.register("lww@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let a = online(&server, &user, &dir.path().join("a.db"));
    let b = online(&server, &user, &dir.path().join("b.db"));
    let id = a
        .create_task(&TaskDraft::new("Pick a name", "todo"))
        .expect("create");
    synced(&a).await;
    b.wait_for(WAIT, |c| c.get_task(id).ok().flatten().is_some())
        .await
        .expect("b receives the task");

    a.go_offline().await;
    b.go_offline().await;
    for round in 0..3 {
        a.update_task(
            id,
            &TaskPatch {
                title: Some(format!("A{round}")),
                ..Default::default()
            },
        )
        .expect("edit a");
        b.update_task(
            id,
            &TaskPatch {
                title: Some(format!("B{round}")),
                ..Default::default()
            },
        )
        .expect("edit b");
    }
    a.go_online();
    b.go_online();
    synced(&a).await;
    synced(&b).await;
    let pg_title = || async {
        let (t,): (String,) = sqlx::query_as("SELECT title FROM tasks WHERE id = $1")
            .bind(id)
            .fetch_one(&server.db)
            .await
            .expect("row");
        t
    };
    // Wait until both replicas show the server's value.
    for c in [&a, &b] {
        let expected = pg_title().await;
        c.wait_for(WAIT, |c| {
            c.get_task(id)
                .ok()
                .flatten()
                .is_some_and(|t| t.title == expected)
        })
        .await
        .expect("replica converges");
    }
    let fields = assert_identical(&server, &[&a, &b], id).await;
    let title = match fields.get("title") {
        Some(syncline_protocol::record::FieldValue::String(t)) => t.clone(),
        other => panic!("title: {other:?}"),
    };
    assert!(
        title == "A2" || title == "B2",
        "converged to {title}, not one of the last writes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_client_pushes_its_offline_changes_after_restart_exactly_once() {
    let server = TestServer::start().await;
    let user = server.register("kill@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("killed.db");

    // Offline from the start: three tasks, one edited, one deleted. Then the process "dies":
    // the client is leaked without any destructor or shutdown running.
    let mut offline = Client::open(&path).expect("open");
    let ids: Vec<Uuid> = (1..=3)
        .map(|i| {
            offline
                .create_task(&TaskDraft::new(format!("offline {i}"), "todo"))
                .expect("create")
        })
        .collect();
    offline
        .update_task(
            ids[0],
            &TaskPatch {
                status: Some("done".into()),
                ..Default::default()
            },
        )
        .expect("edit");
    offline.delete_task(ids[2]).expect("delete");
    assert_eq!(offline.pending_count(), 5);
    std::mem::forget(offline);

    // A retransmitted push is acknowledged twice but applied once: replay the restarted
    // client's first push on two connections before the real client syncs.
    let mut replay = Client::open(&path).expect("reopen");
    let messages = replay.on_connected(&user.access_token).expect("messages");
    let push = messages
        .iter()
        .find(|m| matches!(m, ClientMessage::Push { .. }))
        .expect("a push")
        .clone();
    let mut acks = Vec::new();
    for _ in 0..2 {
        let mut raw =
            RawClient::hello_as(&server.ws_url(), &user.access_token, replay.client_id()).await;
        raw.send(&push).await;
        let mut these = Vec::new();
        while these.len() < 5 {
            match raw.message().await {
                ServerMessage::Ack { mid, seq } => these.push((mid, seq)),
                ServerMessage::Reject { code, message, .. } => panic!("rejected {code}: {message}"),
                _ => {}
            }
        }
        acks.push(these);
    }
    assert_eq!(
        acks[0], acks[1],
        "a retransmit must be acked with the same seqs"
    );
    drop(replay);

    // The restarted client syncs: nothing is lost, nothing is applied twice.
    let restarted = online(&server, &user, &path);
    synced(&restarted).await;
    assert_eq!(restarted.pending_count(), 0);
    let (log,): (i64,) = sqlx::query_as("SELECT count(*) FROM change_log")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(log, 5, "five offline mutations, five changes in the log");
    assert_eq!(
        postgres_ids(&server.db, &TASKS, user.org_id)
            .await
            .expect("ids")
            .len(),
        3
    );
    for id in &ids {
        assert_identical(&server, &[&restarted], *id).await;
    }
    let (deleted,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM tasks WHERE deleted_at IS NOT NULL")
            .fetch_one(&server.db)
            .await
            .expect("count");
    assert_eq!(deleted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_clients_going_on_and_offline_under_load_all_equal_postgres() {
    let seed: u64 = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("eight_clients seed: SEED={seed} (rerun with this SEED to replay the plan)");
    let server = TestServer::start().await;
    let user = server.register("eight@example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let clients: Vec<NativeClient> = (0..8)
        .map(|i| online(&server, &user, &dir.path().join(format!("c{i}.db"))))
        .collect();

    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut known: Vec<Uuid> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
    while tokio::time::Instant::now() < deadline {
        let c = &clients[rng.random_range(0..clients.len())];
        match rng.random_range(0..10) {
            0 => c.go_offline().await,
            1 => c.go_online(),
            2..=4 => known.push(
                c.create_task(&TaskDraft::new(format!("t{}", known.len()), "todo"))
                    .expect("create"),
            ),
            _ if !known.is_empty() => {
                let id = known[rng.random_range(0..known.len())];
                // The task may not have reached this client yet: then there is nothing to edit.
                if c.get_task(id).expect("get").is_some() {
                    let status =
                        ["todo", "in_progress", "in_review", "done"][rng.random_range(0..4)];
                    c.update_task(
                        id,
                        &TaskPatch {
                            status: Some(status.into()),
                            ..Default::default()
                        },
                    )
                    .expect("edit");
                }
            }
            _ => {}
        }
        if rng.random_bool(0.2) {
            tokio::task::yield_now().await;
        }
    }
    for c in &clients {
        c.go_online();
    }
    for c in &clients {
        synced(c).await;
    }
    let pg_ids = postgres_ids(&server.db, &TASKS, user.org_id)
        .await
        .expect("ids");
    let mut expected_ids = known.clone();
    expected_ids.sort();
    assert_eq!(
        pg_ids, expected_ids,
        "seed {seed}: every created task reached Postgres"
    );
    let (last_seq,): (i64,) =
        sqlx::query_as("SELECT last_seq FROM org_change_seq WHERE org_id = $1")
            .bind(user.org_id)
            .fetch_one(&server.db)
            .await
            .expect("seq");
    for (i, c) in clients.iter().enumerate() {
        // Every client eventually holds every committed change.
        c.wait_for(WAIT, |c| {
            c.cursor("tasks").ok().flatten() == Some(last_seq as u64)
        })
        .await
        .unwrap_or_else(|e| {
            panic!("seed {seed}: client {i} cursor never reached {last_seq}: {e:?}")
        });
        assert_eq!(
            c.read(|c| client_ids(c, &TASKS)).expect("ids"),
            expected_ids,
            "seed {seed}: client {i} ids"
        );
        for id in &expected_ids {
            let local = c.read(|c| client_fields(c, &TASKS, *id)).expect("read");
            let pg = postgres_fields(&server.db, &TASKS, *id)
                .await
                .expect("read");
            assert_eq!(local, pg, "seed {seed}: client {i} task {id}");
        }
    }
}
