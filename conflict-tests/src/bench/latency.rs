//! record-latency: client A edits a task field; how long until client B, connected to the
//! same server, has the new value in its SQLite replica. Both are real client-core clients
//! (`NativeClient`, SQLite files). Edits are sequential, rotating over a set of tasks so that
//! no single document's history dominates (record-doc-growth measures that separately).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use client_core::native::NativeClient;
use client_core::{SyncEvent, TaskDraft, TaskPatch};
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use super::env::{self, Cluster};
use super::util::{Summary, ms};
use super::{Params, RowResult, Verdict};

const WAIT: Duration = Duration::from_secs(60);

pub async fn run(cluster: &Cluster, p: &Params) -> Result<RowResult> {
    let server = cluster.server("record_latency").await?;
    let user = server.register("latency@bench.example").await;
    let s = measure(&server.ws_url(), &user, p.latency_tasks, p.latency_edits).await?;
    println!(
        "  record-latency: {} edits over {} tasks: median {}, p99 {}, max {}; {:.1}% of edits took over 30 ms; writer's own ack: median {}, p99 {}",
        s.summary.n,
        p.latency_tasks,
        ms(s.summary.median),
        ms(s.summary.p99),
        ms(s.summary.max),
        s.over_30ms * 100.0,
        ms(s.ack.median),
        ms(s.ack.p99)
    );
    let mut notes = vec![format!(
        "max {}, mean {}; {:.1}% over 30 ms; the writer's own ack (edit until its replica is synced): p50 {}, p99 {}",
        ms(s.summary.max),
        ms(s.summary.mean),
        s.over_30ms * 100.0,
        ms(s.ack.median),
        ms(s.ack.p99)
    )];
    // Diagnostic: the same server, reached through sockets with TCP_NODELAY.
    if p.latency_nodelay_edits > 0 {
        let (url, stop) = env::nodelay_endpoint(&server).await?;
        let d = measure(&url, &user, p.latency_tasks, p.latency_nodelay_edits).await?;
        let _ = stop.send(());
        println!(
            "  record-latency, server sockets with TCP_NODELAY (diagnostic): {} edits: median {}, p99 {}, max {}; {:.1}% over 30 ms; writer's own ack: median {}, p99 {}",
            d.summary.n,
            ms(d.summary.median),
            ms(d.summary.p99),
            ms(d.summary.max),
            d.over_30ms * 100.0,
            ms(d.ack.median),
            ms(d.ack.p99)
        );
        notes.push(format!(
            "same server with TCP_NODELAY on its sockets (diagnostic, n={}): p50 {}, p99 {}; writer's own ack p50 {}, p99 {}",
            d.summary.n,
            ms(d.summary.median),
            ms(d.summary.p99),
            ms(d.ack.median),
            ms(d.ack.p99)
        ));
    }
    env::shutdown(server).await;
    Ok(RowResult {
        name: "record-latency",
        figure: format!(
            "p50 {}, p99 {} (n={})",
            ms(s.summary.median),
            ms(s.summary.p99),
            s.summary.n
        ),
        target: "p50 ≤ 5 ms, p99 ≤ 20 ms".into(),
        verdict: Verdict::from(s.summary.median <= 5.0 && s.summary.p99 <= 20.0),
        notes,
    })
}

struct Measured {
    summary: Summary,
    /// From the edit until A's own replica has the server's `Ack` (sync state synced again).
    ack: Summary,
    /// Fraction of edits slower than 30 ms.
    over_30ms: f64,
}

/// Two new replicas on `url`; A creates `tasks` tasks, then makes `edits` sequential edits
/// (after 5% more as warm-up), each timed until B holds it.
async fn measure(
    url: &str,
    user: &sync_server::testing::TestUser,
    tasks: usize,
    edits: usize,
) -> Result<Measured> {
    let dir = tempfile::tempdir().context("tempdir")?;
    let config = env::sync_config_at(url, user);
    let a = NativeClient::open(env::replica(dir.path(), "a"), config.clone())?;
    let b = NativeClient::open(env::replica(dir.path(), "b"), config)?;
    a.wait_synced(WAIT).await?;
    b.wait_synced(WAIT).await?;

    let mut ids = Vec::with_capacity(tasks);
    for i in 0..tasks {
        ids.push(a.create_task(&TaskDraft::new(format!("task {i}"), "todo"))?);
    }
    a.wait_synced(WAIT).await?;
    let last = ids.last().copied().context("no tasks")?;
    b.wait_for(WAIT, |c| c.get_task(last).ok().flatten().is_some())
        .await?;

    let warmup = edits / 20;
    let mut samples = Vec::with_capacity(edits);
    let mut acks = Vec::with_capacity(edits);
    for i in 0..(warmup + edits) {
        let id = ids[i % ids.len()];
        let title = format!("edit {i}");
        let started = Instant::now();
        let latency = edit_and_observe(&a, &b, id, &title).await?;
        // The next edit starts from a quiet state: A's ack is in.
        a.wait_synced(WAIT).await?;
        if i >= warmup {
            samples.push(latency);
            acks.push(started.elapsed());
        }
    }
    a.stop().await;
    b.stop().await;
    let slow = samples
        .iter()
        .filter(|d| **d > Duration::from_millis(30))
        .count();
    Ok(Measured {
        summary: Summary::of_durations(&samples),
        ack: Summary::of_durations(&acks),
        over_30ms: slow as f64 / samples.len().max(1) as f64,
    })
}

/// Edits the task's title on A; returns the time until B's replica holds it.
async fn edit_and_observe(
    a: &NativeClient,
    b: &NativeClient,
    id: Uuid,
    title: &str,
) -> Result<Duration> {
    let mut events = b.events();
    let started = Instant::now();
    a.update_task(
        id,
        &TaskPatch {
            title: Some(title.to_owned()),
            ..TaskPatch::default()
        },
    )?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seen = match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => bail!("client B did not see edit `{title}` within {WAIT:?}"),
            Ok(Ok(SyncEvent::DocumentChanged { doc_id, .. })) => doc_id == id,
            Ok(Ok(_)) => false,
            // Missed events: look at the replica.
            Ok(Err(RecvError::Lagged(_))) => true,
            Ok(Err(RecvError::Closed)) => bail!("client B's sync loop stopped"),
        };
        if seen && b.get_task(id)?.is_some_and(|t| t.title == title) {
            return Ok(started.elapsed());
        }
    }
}
