//! record-throughput: 50 clients push small task edits as fast as acks allow (closed loop: each
//! client edits, waits for the acknowledgment, edits again), for a fixed time, repeated.
//!
//! Four setups, because the two things that decide the figure are who shares an org (changes of
//! one org commit one at a time: the org's seq row is locked until commit) and whether real
//! clients (which also receive and apply every change of their org) share the machine:
//!
//! - `clients, 50 orgs`: 50 real client-core clients (SQLite files), one org each.
//! - `clients, 1 org`: 50 real clients, members of one org (each also applies the others' edits).
//! - `raw, 50 orgs` / `raw, 1 org`: 50 protocol clients without subscriptions: the server alone.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use automerge::AutoCommit;
use client_core::native::NativeClient;
use client_core::{TaskDraft, TaskPatch};
use sync_server::testing::{TestServer, TestUser};
use uuid::Uuid;

use super::env::{self, Cluster};
use super::raw::{self, Raw};
use super::util::{Summary, ms};
use super::{Params, RowResult, Verdict};

const WAIT: Duration = Duration::from_secs(120);
/// Tasks per client, edited in turn.
const TASKS_PER_CLIENT: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Clients50Orgs,
    Clients1Org,
    Raw50Orgs,
    Raw1Org,
    /// Diagnostic: `Clients50Orgs` through server sockets with TCP_NODELAY.
    Clients50OrgsNoDelay,
}

impl Setup {
    pub const ALL: [Setup; 5] = [
        Setup::Clients50Orgs,
        Setup::Clients1Org,
        Setup::Raw50Orgs,
        Setup::Raw1Org,
        Setup::Clients50OrgsNoDelay,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Setup::Clients50Orgs => "clients, 1 org each",
            Setup::Clients1Org => "clients, 1 shared org",
            Setup::Raw50Orgs => "raw (server alone), 1 org each",
            Setup::Raw1Org => "raw (server alone), 1 shared org",
            Setup::Clients50OrgsNoDelay => "clients, 1 org each, TCP_NODELAY (diagnostic)",
        }
    }

    fn shared_org(self) -> bool {
        matches!(self, Setup::Clients1Org | Setup::Raw1Org)
    }
}

/// One result per setup.
#[derive(Debug, Clone)]
pub struct SetupResult {
    pub setup: Setup,
    /// Changes per second of each repetition.
    pub rates: Vec<f64>,
    pub ack: Summary,
}

enum Driver {
    Native {
        client: NativeClient,
        tasks: Vec<Uuid>,
    },
    Raw {
        client: Box<Raw>,
        tasks: Vec<(Uuid, AutoCommit)>,
    },
}

impl Driver {
    async fn edit(&mut self, i: usize) -> Result<()> {
        let title = format!("edit {i}");
        match self {
            Driver::Native { client, tasks } => {
                let id = tasks[i % tasks.len()];
                client.update_task(
                    id,
                    &TaskPatch {
                        title: Some(title),
                        ..TaskPatch::default()
                    },
                )?;
                client.wait_until(WAIT, |s| s.pending == 0).await?;
            }
            Driver::Raw { client, tasks } => {
                let n = tasks.len();
                let (id, doc) = &mut tasks[i % n];
                let change = raw::retitle(doc, &title);
                client.push_one(*id, change).await?;
            }
        }
        Ok(())
    }
}

pub async fn run(cluster: &Cluster, p: &Params) -> Result<RowResult> {
    let server = cluster.server("record_throughput").await?;
    let n = p.throughput_clients;
    // Users: one org each, and the members of one shared org.
    let mut own_orgs = Vec::with_capacity(n);
    for i in 0..n {
        own_orgs.push(server.register(&format!("solo{i}@bench.example")).await);
    }
    let owner = server.register("owner@bench.example").await;
    let mut shared = vec![owner.clone()];
    for i in 1..n {
        shared.push(
            server
                .join(&owner, &format!("member{i}@bench.example"), "member")
                .await,
        );
    }
    let dir = tempfile::tempdir().context("tempdir")?;
    let mut results = Vec::new();
    for setup in p.throughput_setups.iter().copied() {
        let users = if setup.shared_org() {
            &shared
        } else {
            &own_orgs
        };
        let r = run_setup(&server, users, setup, dir.path(), p).await?;
        let rates = Summary::of(&r.rates);
        println!(
            "  record-throughput [{}]: {} reps of {}s: median {:.0} changes/s (min {:.0}, max {:.0}); ack latency median {}, p99 {}",
            setup.label(),
            r.rates.len(),
            p.throughput_secs,
            rates.median,
            rates.min,
            rates.max,
            ms(r.ack.median),
            ms(r.ack.p99)
        );
        results.push(r);
    }
    env::shutdown(server).await;

    // Every setup is in the figure; the verdict is the best non-diagnostic one's worst rep.
    let best_min = results
        .iter()
        .filter(|r| r.setup != Setup::Clients50OrgsNoDelay)
        .map(|r| Summary::of(&r.rates).min)
        .fold(0.0, f64::max);
    let figure = results
        .iter()
        .map(|r| {
            let s = Summary::of(&r.rates);
            format!("{}: {:.0}/s", r.setup.label(), s.median)
        })
        .collect::<Vec<_>>()
        .join("; ");
    let notes = results
        .iter()
        .map(|r| {
            let s = Summary::of(&r.rates);
            format!(
                "{}: median {:.0}/s, min {:.0}/s over {} reps; ack p50 {} p99 {}",
                r.setup.label(),
                s.median,
                s.min,
                r.rates.len(),
                ms(r.ack.median),
                ms(r.ack.p99)
            )
        })
        .collect();
    Ok(RowResult {
        name: "record-throughput",
        figure: format!("{n} clients, medians: {figure}"),
        target: "≥ 10,000 changes/s".into(),
        verdict: Verdict::from(best_min >= 10_000.0),
        notes,
    })
}

async fn run_setup(
    server: &TestServer,
    users: &[TestUser],
    setup: Setup,
    dir: &std::path::Path,
    p: &Params,
) -> Result<SetupResult> {
    let (url, stop) = if setup == Setup::Clients50OrgsNoDelay {
        let (url, stop) = env::nodelay_endpoint(server).await?;
        (url, Some(stop))
    } else {
        (server.ws_url(), None)
    };
    let url = url.as_str();
    let mut drivers = Vec::with_capacity(users.len());
    for (i, user) in users.iter().enumerate() {
        drivers.push(match setup {
            Setup::Clients50Orgs | Setup::Clients1Org | Setup::Clients50OrgsNoDelay => {
                let path = env::replica(dir, &format!("{setup:?}-{i}"));
                let client = NativeClient::open(path, env::sync_config_at(url, user))?;
                let mut tasks = Vec::new();
                for t in 0..TASKS_PER_CLIENT {
                    tasks.push(client.create_task(&TaskDraft::new(format!("task {t}"), "todo"))?);
                }
                Driver::Native { client, tasks }
            }
            Setup::Raw50Orgs | Setup::Raw1Org => {
                let mut client = Raw::hello(url, &user.access_token).await?;
                let mut tasks = Vec::new();
                for t in 0..TASKS_PER_CLIENT {
                    let (id, doc, change) = raw::new_task(&format!("task {t}"));
                    client.push_one(id, change).await?;
                    tasks.push((id, doc));
                }
                Driver::Raw {
                    client: Box::new(client),
                    tasks,
                }
            }
        });
    }
    for d in &drivers {
        if let Driver::Native { client, .. } = d {
            client.wait_synced(WAIT).await?;
        }
    }
    // Let every client apply the others' task creations before timing.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut drivers: Vec<Option<Driver>> = drivers.into_iter().map(Some).collect();
    let mut rates = Vec::new();
    let mut latencies = Vec::new();
    for _rep in 0..p.reps {
        let duration = Duration::from_secs_f64(p.throughput_secs);
        let started = Instant::now();
        let deadline = started + duration;
        let mut handles = Vec::with_capacity(drivers.len());
        for slot in &mut drivers {
            let mut driver = slot.take().context("driver in use")?;
            handles.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut i = 0;
                let mut result = Ok(());
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    if let Err(e) = driver.edit(i).await {
                        result = Err(e);
                        break;
                    }
                    lat.push(t0.elapsed());
                    i += 1;
                }
                (driver, lat, Instant::now(), result)
            }));
        }
        let mut total = 0usize;
        let mut last_end = started;
        for (slot, handle) in drivers.iter_mut().zip(handles) {
            let (driver, lat, end, result) = handle.await.context("edit loop panicked")?;
            result?;
            total += lat.len();
            last_end = last_end.max(end);
            latencies.extend(lat);
            *slot = Some(driver);
        }
        rates.push(total as f64 / (last_end - started).as_secs_f64());
    }
    for driver in drivers.into_iter().flatten() {
        if let Driver::Native { client, .. } = driver {
            client.stop().await;
        }
    }
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    Ok(SetupResult {
        setup,
        rates,
        ack: Summary::of_durations(&latencies),
    })
}

impl std::fmt::Display for Setup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}
