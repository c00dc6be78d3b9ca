//! initial-sync: a fresh real client (new SQLite file) downloads N tasks and is ready to query.
//!
//! The tasks are created through the server first (protocol clients pushing 1,000 creations per
//! push, several connections at once: that bulk-create rate is reported too). Then, per
//! repetition, a new `NativeClient` opens an empty replica and the clock runs until it reports
//! synced (every snapshot chunk applied, `Synced` handled); the row count is checked afterwards.
//! A protocol client that only receives the snapshot (no SQLite, no automerge) measures the
//! server's share.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use client_core::TaskQuery;
use client_core::native::NativeClient;

use super::env::{self, Cluster};
use super::raw::{self, Raw};
use super::util::{Summary, ms};
use super::{Params, RowResult, Verdict};

const WAIT: Duration = Duration::from_secs(600);
const SEED_CONNECTIONS: usize = 4;
const SEED_BATCH: usize = 1000;

pub async fn run(cluster: &Cluster, p: &Params) -> Result<RowResult> {
    let server = cluster.server("initial_sync").await?;
    let user = server.register("initial@bench.example").await;
    let n = p.initial_docs;

    // Seed through the server.
    let started = Instant::now();
    let per_conn = n.div_ceil(SEED_CONNECTIONS);
    let mut seeders = Vec::new();
    for c in 0..SEED_CONNECTIONS {
        let url = server.ws_url();
        let token = user.access_token.clone();
        let count = per_conn.min(n.saturating_sub(c * per_conn));
        seeders.push(tokio::spawn(async move {
            let mut raw = Raw::hello(&url, &token).await?;
            let mut done = 0;
            while done < count {
                let batch = SEED_BATCH.min(count - done);
                let mutations = (0..batch)
                    .map(|i| {
                        let (id, _doc, change) =
                            raw::new_task(&format!("seeded task {c}-{}", done + i));
                        raw.mutation(id, change)
                    })
                    .collect();
                raw.push_all(mutations).await?;
                done += batch;
            }
            anyhow::Ok(done)
        }));
    }
    let mut seeded = 0;
    for s in seeders {
        seeded += s.await.context("seeder panicked")??;
    }
    let seed_secs = started.elapsed().as_secs_f64();
    println!(
        "  initial-sync: seeded {seeded} tasks through the server in {seed_secs:.1}s ({:.0} creates/s, {SEED_CONNECTIONS} connections, {SEED_BATCH} per push)",
        seeded as f64 / seed_secs
    );
    let (bytes,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(sum(octet_length(state)), 0)::bigint FROM documents WHERE collection = 'tasks'",
    )
    .fetch_one(&server.db)
    .await?;

    // The server's share: a protocol client that only receives the snapshot.
    let mut raw_times = Vec::new();
    for _ in 0..p.reps {
        let t0 = Instant::now();
        let mut raw = Raw::hello(&server.ws_url(), &user.access_token).await?;
        let (docs, _) = raw.subscribe_tasks(1).await?;
        raw_times.push(t0.elapsed());
        ensure!(docs == seeded, "raw snapshot held {docs} of {seeded} tasks");
    }
    let raw_s = Summary::of_durations(&raw_times);
    println!(
        "  initial-sync: snapshot received by a protocol client (server alone): median {}, max {} ({:.0} records/s)",
        ms(raw_s.median),
        ms(raw_s.max),
        seeded as f64 / (raw_s.median / 1e3)
    );

    // Real clients.
    let dir = tempfile::tempdir().context("tempdir")?;
    let mut times = Vec::new();
    for rep in 0..p.reps {
        let path = env::replica(dir.path(), &format!("fresh{rep}"));
        let t0 = Instant::now();
        let client = NativeClient::open(&path, env::sync_config(&server, &user))?;
        client.wait_synced(WAIT).await?;
        let elapsed = t0.elapsed();
        let count: i64 = client.read(|c| {
            c.connection()
                .query_row("SELECT count(*) FROM tasks", [], |r| r.get(0))
        })?;
        ensure!(
            usize::try_from(count)? == seeded,
            "replica holds {count} of {seeded} tasks"
        );
        let q0 = Instant::now();
        let page = client.query_tasks(&TaskQuery {
            status: Some("todo".into()),
            limit: Some(50),
            ..TaskQuery::default()
        })?;
        let query = q0.elapsed();
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!(
            "  initial-sync rep {}: {} tasks ready in {:.2}s ({:.0} records/s); first query of 50 took {}; replica {:.0} MB",
            rep + 1,
            count,
            elapsed.as_secs_f64(),
            count as f64 / elapsed.as_secs_f64(),
            ms(query.as_secs_f64() * 1e3),
            size as f64 / 1e6
        );
        ensure!(
            page.len() == 50.min(seeded),
            "query returned {}",
            page.len()
        );
        client.stop().await;
        times.push(elapsed);
    }
    env::shutdown(server).await;
    let s = Summary::of_durations(&times);
    let rate = seeded as f64 / (s.median / 1e3);
    Ok(RowResult {
        name: "initial-sync",
        figure: format!(
            "{seeded} tasks in {:.2} s median, {:.2} s worst ({rate:.0} records/s)",
            s.median / 1e3,
            s.max / 1e3
        ),
        target: "≤ 2 s (≥ 50 K records/s)".into(),
        verdict: Verdict::from(s.max <= 2000.0 * seeded as f64 / 100_000.0),
        notes: vec![
            format!(
                "server alone (protocol client, no SQLite): median {} ({:.0} records/s)",
                ms(raw_s.median),
                seeded as f64 / (raw_s.median / 1e3)
            ),
            format!(
                "seeding through the server: {:.0} creates/s; stored state {:.1} MB ({:.0} B/task)",
                seeded as f64 / seed_secs,
                bytes as f64 / 1e6,
                bytes as f64 / seeded.max(1) as f64
            ),
        ],
    })
}
