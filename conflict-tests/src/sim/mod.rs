//! A seeded, deterministic simulation of many client replicas and server nodes with faults.
//!
//! - [`plan`]: the operation plan of a seed (edits, authorization changes, frame fates,
//!   partitions, kills, restarts), generated before anything runs and savable as JSON.
//! - [`net`]: the simulated network (real WebSockets; the simulation carries every frame).
//! - [`world`]: server nodes on one real Postgres, two orgs, client-core replicas with real
//!   SQLite files, and what the simulation observed.
//! - [`steps`]: carrying out each step.
//! - [`checks`]: the invariants, after every received frame and at quiescence.
//!
//! A run is deterministic: the plan fixes every choice, actors are derived from the seed, and
//! after each step the simulation waits (with protocol pings, not sleeps) until the servers
//! have finished what the step started. Its outcome is the trace of what happened, with ids
//! replaced by labels; replaying a seed reproduces the plan and the trace.

pub mod checks;
pub mod config;
pub mod net;
pub mod plan;
pub mod steps;
pub mod world;

use std::path::{Path, PathBuf};

pub use config::SimConfig;
pub use plan::{Plan, generate};
use world::World;

/// An invariant that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    /// The plan step after which it was seen (`steps.len()` for quiescence).
    pub step: usize,
    pub detail: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invariant `{}` violated at step {}: {}", .0.invariant, .0.step, .0.detail)]
    Violation(Violation),
    /// The simulation itself failed (a server that stopped answering, an unreadable file).
    #[error("simulation failed: {0}")]
    Harness(String),
}

impl SimError {
    pub fn client(e: client_core::ClientError) -> Self {
        SimError::Harness(format!("client replica: {e}"))
    }
}

/// What a run did and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub seed: u64,
    /// Every step's effect, ids replaced by labels.
    pub trace: Vec<String>,
    pub result: Result<(), String>,
    /// The invariant that failed, if one did.
    pub violated: Option<&'static str>,
    pub elapsed: std::time::Duration,
}

/// Rounds of fault-free delivery allowed to reach quiescence.
const QUIESCENCE_ROUNDS: usize = 200;

/// Runs a plan to its end, then heals everything and checks the invariants.
pub async fn run_plan(plan: &Plan) -> Outcome {
    let started = std::time::Instant::now();
    let mut world = match World::start(plan.clone()).await {
        Ok(world) => world,
        Err(e) => {
            return Outcome {
                seed: plan.seed,
                trace: Vec::new(),
                result: Err(e.to_string()),
                violated: None,
                elapsed: started.elapsed(),
            };
        }
    };
    let result = drive(&mut world, plan).await;
    let violated = match &result {
        Err(SimError::Violation(v)) => Some(v.invariant),
        _ => None,
    };
    for node in world.nodes.iter_mut().flatten() {
        node.stop().await;
    }
    Outcome {
        seed: plan.seed,
        trace: std::mem::take(&mut world.trace),
        result: result.map_err(|e| e.to_string()),
        violated,
        elapsed: started.elapsed(),
    }
}

async fn drive(world: &mut World, plan: &Plan) -> Result<(), SimError> {
    for (i, step) in plan.steps.iter().enumerate() {
        world.step = i;
        world.run_step(step).await?;
    }
    world.step = plan.steps.len();
    quiesce(world).await?;
    checks::at_quiescence(world).await
}

/// Heals every partition and carries every frame without faults until no replica has anything
/// left to send or receive and each is synced.
async fn quiesce(world: &mut World) -> Result<(), SimError> {
    world.note("heal".into());
    for round in 0..QUIESCENCE_ROUNDS {
        let mut busy = false;
        for c in 0..world.clients.len() {
            if world.clients[c].link.is_none() {
                world.connect(c, c % world.plan.nodes).await?;
            }
            let outbound = world.clients[c]
                .link
                .as_ref()
                .map_or(0, |l| l.outbound.len());
            if outbound > 0 {
                busy = true;
                let fates = vec![plan::Fate::Deliver; outbound];
                world
                    .run_step(&plan::Step::Deliver {
                        client: c,
                        up: true,
                        fates,
                    })
                    .await?;
            }
        }
        world.settle(&[]).await?;
        for c in 0..world.clients.len() {
            let inbound = world.clients[c].link.as_mut().map_or(0, |l| {
                l.collect();
                l.inbound.len()
            });
            // (Probe pongs always arrive; receiving them is not progress.)
            if inbound > 0 {
                let fates = vec![plan::Fate::Deliver; inbound];
                world
                    .run_step(&plan::Step::Deliver {
                        client: c,
                        up: false,
                        fates,
                    })
                    .await?;
            }
        }
        // A push lost on a live connection is never answered: after a round without traffic,
        // replicas still waiting resend (as a transport does after a timeout).
        // A subscription whose frames were lost never reaches `Synced`: those replicas
        // reconnect (as a transport does when a subscription does not answer in time).
        if !busy {
            for c in 0..world.clients.len() {
                if !world.clients[c].replica.is_synced() {
                    world.disconnect(c, "no answer").await;
                    world.connect(c, c % world.plan.nodes).await?;
                    busy = true;
                } else if world.clients[c].replica.pending_count() > 0 {
                    world.resend(c)?;
                }
            }
        }
        let done = world.clients.iter().all(|c| {
            c.link.as_ref().is_some_and(|l| l.outbound.is_empty())
                && c.replica.pending_count() == 0
                && c.replica.is_synced()
        });
        if done && !busy {
            world.note(format!("quiescent after {round} rounds"));
            return Ok(());
        }
    }
    let stuck: Vec<String> = world
        .clients
        .iter()
        .filter(|c| c.replica.pending_count() > 0 || !c.replica.is_synced())
        .map(|c| {
            format!(
                "c{} ({:?}, {} pending)",
                c.index,
                c.replica.sync_status(),
                c.replica.pending_count()
            )
        })
        .collect();
    Err(SimError::Violation(Violation {
        invariant: "quiescence",
        step: world.step,
        detail: format!(
            "not quiescent after {QUIESCENCE_ROUNDS} fault-free rounds: {}",
            stuck.join(", ")
        ),
    }))
}

/// Where failing plans are written, for `SIM_PLAN=<file>` replays and to be copied into
/// `conflict-tests/regressions/`.
pub fn failure_dir() -> PathBuf {
    std::env::temp_dir().join("syncline-sim-failures")
}

/// Saves a plan as pretty JSON.
pub fn save_plan(plan: &Plan, path: &Path) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // One step per line: readable, and small enough to keep in the repository.
    let head = serde_json::json!({
        "seed": plan.seed,
        "clients": plan.clients,
        "nodes": plan.nodes,
        "faults": plan.faults,
    });
    let mut json = head.to_string();
    json.pop(); // the closing brace
    json.push_str(",\"steps\":[\n");
    for (i, step) in plan.steps.iter().enumerate() {
        json.push_str(&serde_json::to_string(step).map_err(std::io::Error::other)?);
        json.push_str(if i + 1 < plan.steps.len() {
            ",\n"
        } else {
            "\n"
        });
    }
    json.push_str("]}\n");
    std::fs::write(path, json)
}

pub fn load_plan(path: &Path) -> std::io::Result<Plan> {
    let text = std::fs::read_to_string(path)?;
    serde_json::from_str(&text).map_err(std::io::Error::other)
}

/// A failing run's report: the seed, how to replay it, where its plan is, the end of its trace.
pub fn failure_report(plan: &Plan, outcome: &Outcome) -> String {
    let path = failure_dir().join(format!("seed-{}.json", plan.seed));
    let saved = match save_plan(plan, &path) {
        Ok(()) => format!("plan saved to {}", path.display()),
        Err(e) => format!("(could not save the plan: {e})"),
    };
    let trace_path = path.with_extension("trace.txt");
    let saved = match std::fs::write(&trace_path, outcome.trace.join("\n")) {
        Ok(()) => format!("{saved}, trace to {}", trace_path.display()),
        Err(_) => saved,
    };
    let tail: Vec<&String> = outcome.trace.iter().rev().take(40).collect();
    let tail: Vec<&str> = tail.into_iter().rev().map(String::as_str).collect();
    format!(
        "simulation seed {seed} failed: {error}\n\
         replay: SEED={seed} SIM_CLIENTS={clients} SIM_NODES={nodes} SIM_OPS=<same> cargo test -p conflict-tests --test simulation\n\
         {saved} ({steps} steps; copy it into conflict-tests/regressions/ to run it in every CI)\n\
         last steps:\n{tail}",
        seed = plan.seed,
        error = outcome.result.as_ref().err().map_or("", String::as_str),
        clients = plan.clients,
        nodes = plan.nodes,
        steps = plan.steps.len(),
        tail = tail.join("\n"),
    )
}
