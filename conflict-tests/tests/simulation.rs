//! The deterministic simulation (src/sim): many seeds of clients, server nodes and faults, every
//! invariant checked; saved regression plans; and replay reproducing a run exactly.
//!
//! - `SIM_SEEDS`, `SIM_SEED_BASE`, `SIM_CLIENTS`, `SIM_OPS`, `SIM_NODES`, `SIM_FAULTS`,
//!   `SIM_PARALLEL` scale it (docs/testing.md).
//! - `SEED=<n>` runs that one seed (with the same knobs as the failing run).
//! - `SIM_PLAN=<file.json>` replays a saved plan.
//! - `SIM_TRACE_DIR=<dir>` writes every run's trace there (compare two runs with `diff -r`).

use std::path::PathBuf;

use conflict_tests::sim::{self, Outcome, Plan, SimConfig};
use futures_util::StreamExt;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,sqlx=error".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Runs plans, `parallel` at a time, and fails with every failing seed's report.
async fn run_all(plans: Vec<Plan>, parallel: usize) -> Vec<Outcome> {
    let total = plans.len();
    let outcomes: Vec<(Plan, Outcome)> = futures_util::stream::iter(plans)
        .map(|plan| async move {
            // Each run on its own thread and runtime, with its server nodes: replicas
            // (SQLite connections) stay on one thread, and runs use both cores.
            let handle = tokio::task::spawn_blocking(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                let outcome = runtime.block_on(sim::run_plan(&plan));
                (plan, outcome)
            });
            handle.await.expect("simulation run panicked")
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| o.result.is_err())
        .map(|(plan, outcome)| sim::failure_report(plan, outcome))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {total} simulation runs failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    outcomes.into_iter().map(|(_, o)| o).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_with_faults_keep_every_invariant() {
    init_tracing();
    let config = SimConfig::from_env();
    let plans: Vec<Plan> = if let Ok(path) = std::env::var("SIM_PLAN") {
        vec![sim::load_plan(&PathBuf::from(&path)).expect("read SIM_PLAN")]
    } else if let Some(seed) = std::env::var("SEED").ok().and_then(|s| s.parse().ok()) {
        vec![sim::generate(&config, seed)]
    } else {
        (config.seed_base..config.seed_base + config.seeds)
            .map(|seed| sim::generate(&config, seed))
            .collect()
    };
    if let [plan] = plans.as_slice() {
        eprintln!(
            "replaying seed {}: {} steps\n{}",
            plan.seed,
            plan.steps.len(),
            serde_json::to_string(plan).expect("plan as json")
        );
    }
    let started = std::time::Instant::now();
    let outcomes = run_all(plans, config.parallel).await;
    if let Ok(dir) = std::env::var("SIM_TRACE_DIR") {
        std::fs::create_dir_all(&dir).expect("create SIM_TRACE_DIR");
        for o in &outcomes {
            let path = PathBuf::from(&dir).join(format!("seed-{}.txt", o.seed));
            std::fs::write(path, o.trace.join("\n")).expect("write a trace");
        }
    }
    let steps: usize = outcomes.iter().map(|o| o.trace.len()).sum();
    let slowest = outcomes.iter().max_by_key(|o| o.elapsed);
    if let Some(o) = slowest {
        eprintln!("slowest run: seed {} in {:.1?}", o.seed, o.elapsed);
    }
    eprintln!(
        "{} runs ({} clients, {} operations, {} nodes, faults {}) green in {:.1?}; {steps} trace lines",
        outcomes.len(),
        config.clients,
        config.ops,
        config.nodes,
        if config.faults { "on" } else { "off" },
        started.elapsed()
    );
}

/// Every plan saved under conflict-tests/regressions/ (a failure that was fixed) stays green.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saved_regression_plans_stay_green() {
    init_tracing();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("read conflict-tests/regressions")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(
        !paths.is_empty(),
        "no regression plans in {}",
        dir.display()
    );
    let plans = paths
        .iter()
        .map(|p| sim::load_plan(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect();
    run_all(plans, 2).await;
}

/// A seed generates the same plan every time, and running it twice gives the same outcome,
/// step by step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaying_a_seed_reproduces_plan_and_outcome() {
    init_tracing();
    let config = SimConfig {
        ops: 150,
        ..SimConfig::default()
    };
    let plan = sim::generate(&config, 4242);
    assert_eq!(
        plan,
        sim::generate(&config, 4242),
        "plan generation is seeded"
    );
    assert_ne!(
        plan,
        sim::generate(&config, 4243),
        "different seeds, different plans"
    );
    let first = sim::run_plan(&plan).await;
    let second = sim::run_plan(&plan).await;
    assert!(
        first.result.is_ok(),
        "{}",
        sim::failure_report(&plan, &first)
    );
    assert!(
        second.result.is_ok(),
        "{}",
        sim::failure_report(&plan, &second)
    );
    if let Some(i) = (0..first.trace.len().max(second.trace.len()))
        .find(|&i| first.trace.get(i) != second.trace.get(i))
    {
        panic!(
            "the replay diverged at trace line {i}:\n first: {:?}\nsecond: {:?}",
            first.trace.get(i),
            second.trace.get(i)
        );
    }
    // The outcome is not trivially empty: frames moved, changes were acknowledged.
    assert!(first.trace.iter().any(|l| l.contains("ack m")));
    assert!(first.trace.iter().any(|l| l.contains(" up [")));
}
