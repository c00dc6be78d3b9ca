//! The workers: retries with backoff, dead letters and replay, reaping, one run per job across
//! processes, and jobs that survive a crash between commit and handling.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use sync_server::effects::EffectsSettings;
use sync_server::testing::{TestServer, fresh_database_url, test_effects};

use crate::common::{Behaviour, Recorder, create_task, events_of, job, until_job};

fn settings(max_attempts: u32) -> EffectsSettings {
    EffectsSettings {
        max_attempts,
        ..test_effects()
    }
}

#[tokio::test]
async fn a_failing_handler_is_retried_with_growing_delays_until_it_succeeds() {
    let recorder = Recorder::new("flaky", "task.created", Behaviour::FailTimes(3));
    let server = TestServer::start_custom(
        fresh_database_url().await,
        settings(8),
        vec![recorder.arc()],
    )
    .await;
    let owner = server.register("owner@retry.test").await;
    create_task(&server, &owner, json!({})).await;
    let (event, _) = events_of(&server, owner.org_id, "task.created").await[0].clone();
    let attempts = until_job(&server, event, "flaky", "done").await;
    assert_eq!(attempts, 4);
    assert_eq!(recorder.runs_of(event), vec![1, 2, 3, 4]);
    let (last_error,): (Option<String>,) =
        sqlx::query_as("SELECT last_error FROM effect_jobs WHERE event_id = $1")
            .bind(event)
            .fetch_one(&server.db)
            .await
            .expect("job");
    assert_eq!(last_error, None, "a success clears the last error");
}

#[tokio::test]
async fn exhausted_and_permanent_failures_are_dead_lettered_and_replayable() {
    let flaky = Recorder::new("flaky", "task.created", Behaviour::AlwaysFail);
    let broken = Recorder::new("broken", "task.created", Behaviour::Permanent);
    let server = TestServer::start_custom(
        fresh_database_url().await,
        settings(3),
        vec![flaky.arc(), broken.arc()],
    )
    .await;
    let owner = server.register("owner@dead.test").await;
    let member = server.join(&owner, "member@dead.test", "member").await;
    create_task(&server, &owner, json!({})).await;
    let (event, _) = events_of(&server, owner.org_id, "task.created").await[0].clone();
    assert_eq!(until_job(&server, event, "flaky", "dead").await, 3);
    assert_eq!(
        until_job(&server, event, "broken", "dead").await,
        1,
        "no retry"
    );

    let (status, listed) = server
        .api(
            Method::GET,
            "/api/v1/effects/dead-letters",
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{listed}");
    let rows = listed["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r["handler"] == "flaky"
        && r["attempts"] == 3
        && r["last_error"] == "always fails"
        && r["event_type"] == "task.created"));
    let (status, denied) = server
        .api(
            Method::GET,
            "/api/v1/effects/dead-letters",
            &member.access_token,
            None,
        )
        .await;
    assert_eq!(status, 403, "{denied}");
    assert_eq!(denied["error"]["code"], "forbidden");

    // Fixed: a replay runs it again, from attempt 1.
    flaky.set(Behaviour::FailTimes(0));
    let (status, replayed) = server
        .api(
            Method::POST,
            &format!("/api/v1/effects/dead-letters/{event}/flaky/replay"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(until_job(&server, event, "flaky", "done").await, 1);
    assert_eq!(flaky.runs_of(event), vec![1, 2, 3, 1]);
    let (status, again) = server
        .api(
            Method::POST,
            &format!("/api/v1/effects/dead-letters/{event}/flaky/replay"),
            &owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 404, "only dead jobs replay: {again}");
    assert_eq!(
        job(&server, event, "broken").await.map(|j| j.0).as_deref(),
        Some("dead")
    );
}

#[tokio::test]
async fn jobs_committed_while_no_worker_ran_are_handled_once_after_a_restart() {
    let recorder = Recorder::new("recorder", "task.created", Behaviour::FailTimes(0));
    let url = fresh_database_url().await;
    // A process that commits changes but dies before its workers handle them.
    let mut first = TestServer::start_custom(
        url.clone(),
        EffectsSettings {
            workers: 0,
            ..settings(8)
        },
        vec![recorder.arc()],
    )
    .await;
    let owner = first.register("owner@crash.test").await;
    for _ in 0..5 {
        create_task(&first, &owner, json!({})).await;
    }
    first.stop().await;
    assert_eq!(recorder.total_runs(), 0);

    let second = TestServer::start_custom(url, settings(8), vec![recorder.arc()]).await;
    let events = events_of(&second, owner.org_id, "task.created").await;
    assert_eq!(events.len(), 5);
    for (event, _) in &events {
        until_job(&second, *event, "recorder", "done").await;
        assert_eq!(recorder.runs_of(*event), vec![1], "exactly one run");
    }
}

#[tokio::test]
async fn a_job_whose_worker_died_mid_run_is_reaped_and_run_again() {
    let mut slow = Recorder::new("slow", "task.created", Behaviour::FailTimes(0));
    slow.hold = Duration::from_secs(3);
    let url = fresh_database_url().await;
    let mut first = TestServer::start_custom(url.clone(), settings(8), vec![slow.arc()]).await;
    let owner = first.register("owner@reap.test").await;
    create_task(&first, &owner, json!({})).await;
    let (event, _) = events_of(&first, owner.org_id, "task.created").await[0].clone();
    until_job(&first, event, "slow", "running").await;
    // The process dies while the handler runs: the job stays `running`.
    first.stop().await;
    assert_eq!(
        job(&first, event, "slow").await.map(|j| j.0).as_deref(),
        Some("running")
    );

    let mut fast = slow.clone();
    fast.hold = Duration::ZERO;
    let second = TestServer::start_custom(
        url,
        EffectsSettings {
            stuck_after: Duration::from_millis(300),
            ..settings(8)
        },
        vec![fast.arc()],
    )
    .await;
    assert_eq!(until_job(&second, event, "slow", "done").await, 2);
    assert_eq!(
        slow.runs_of(event),
        vec![2],
        "the cut-short run never finished"
    );
}

#[tokio::test]
async fn two_processes_never_run_the_same_job() {
    let recorder = Recorder::new("recorder", "task.created", Behaviour::FailTimes(0));
    let url = fresh_database_url().await;
    let a = TestServer::start_custom(url.clone(), settings(8), vec![recorder.arc()]).await;
    let b = TestServer::start_custom(url, settings(8), vec![recorder.arc()]).await;
    let owner = a.register("owner@two.test").await;
    let writes = (0..40).map(|i| {
        let server = if i % 2 == 0 { &a } else { &b };
        create_task(server, &owner, json!({}))
    });
    futures_util::future::join_all(writes).await;
    let events = events_of(&a, owner.org_id, "task.created").await;
    assert_eq!(events.len(), 40);
    for (event, _) in &events {
        until_job(&a, *event, "recorder", "done").await;
    }
    for (event, _) in &events {
        assert_eq!(
            recorder.runs_of(*event),
            vec![1],
            "event {event} ran more than once"
        );
    }
}
