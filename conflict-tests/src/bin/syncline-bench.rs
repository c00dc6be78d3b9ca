//! `syncline-bench`: measures the engine against its peers and the machine's limits, and prints
//! a table (docs/benchmarks.md has the commands, the results and what limits each row).
//!
//! ```sh
//! cargo run --release -p conflict-tests --bin syncline-bench              # every row
//! cargo run --release -p conflict-tests --bin syncline-bench -- --quick   # a smoke run
//! cargo run --release -p conflict-tests --bin syncline-bench -- --only record-latency
//! ```
//!
//! One durable embedded PostgreSQL cluster (fsync and synchronous_commit on) per run, a fresh
//! database and a real server on a loopback port per row. The same binary is also its own child
//! process for rows that need thousands of client sockets outside the server's process
//! (`--connect-clients`, `--fanout-clients`, see `bench::child`).

// A command-line tool: its report is its standard output.
#![allow(clippy::print_stdout)]

#[path = "../bench/mod.rs"]
mod bench;

use std::process::Stdio;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bench::{Params, RowResult, env::Cluster, util};
use tokio::io::{AsyncBufReadExt, BufReader};

/// Set for a child running rows in a process of their own: the cluster to attach to.
const ATTACH_ENV: &str = "SYNCLINE_BENCH_PG_URL";
/// Prefix of the line on which an isolated child reports a row's result.
const RESULT_PREFIX: &str = "ROWRESULT ";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the tokio runtime")?;
    match args.first().map(String::as_str) {
        Some("--connect-clients") => runtime.block_on(bench::child::connect_clients(&args[1..])),
        Some("--fanout-clients") => runtime.block_on(bench::child::fanout_clients(&args[1..])),
        Some("--help" | "-h") => {
            println!("{}", bench::USAGE);
            Ok(())
        }
        _ => {
            let params = Params::parse(&args)?;
            run(&runtime, &params)
        }
    }
}

fn run(runtime: &tokio::runtime::Runtime, p: &Params) -> Result<()> {
    if let Ok(url) = std::env::var(ATTACH_ENV) {
        return run_isolated(runtime, p, Cluster::attach(url));
    }
    let machine = util::Machine::describe();
    println!("syncline-bench");
    println!(
        "machine: {} cores ({}), {} RAM, Linux {}, load average {} at start",
        machine.nproc, machine.cpu, machine.memory, machine.kernel, machine.load
    );
    if let Some(commit) = git_commit() {
        println!("commit: {commit}");
    }
    let cluster = Cluster::start()?;
    let result = runtime.block_on(async {
        println!("postgres: {}", cluster.settings().await?);
        println!("rows: {}", p.rows.join(", "));
        let mut results = Vec::new();
        for row in &p.rows {
            let started = Instant::now();
            println!("\n== {row}");
            let outcome = match *row {
                "record-latency" => bench::latency::run(&cluster, p).await,
                "record-throughput" => bench::throughput::run(&cluster, p).await,
                "initial-sync" => bench::initial_sync::run(&cluster, p).await,
                "text-trace" => bench::text_trace::run(&cluster, p).await,
                "fan-out" => bench::fanout::run(&cluster, p).await,
                // Measures this process's memory growth: run it in a fresh process, whose
                // allocator holds no memory freed by earlier rows.
                "connections" => in_fresh_process(&cluster, row, p).await,
                "record-doc-growth" => bench::growth::run(&cluster, p).await,
                other => Err(anyhow::anyhow!("unknown row {other}")),
            };
            let result = outcome.unwrap_or_else(|e| {
                println!("  {row} failed: {e:#}");
                RowResult::failed(row, &e)
            });
            println!(
                "  ({row} took {:.0}s; load average now {})",
                started.elapsed().as_secs_f64(),
                util::load_average()
            );
            results.push(result);
        }
        anyhow::Ok(results)
    });
    cluster.stop();
    let results = result?;
    bench::print_table(&results);
    if results.iter().any(|r| r.figure.starts_with("error:")) {
        anyhow::bail!("a row failed");
    }
    Ok(())
}

/// The child side of [`in_fresh_process`]: runs the rows on the parent's cluster and reports
/// each result on one line.
fn run_isolated(runtime: &tokio::runtime::Runtime, p: &Params, cluster: Cluster) -> Result<()> {
    runtime.block_on(async {
        for row in &p.rows {
            let result = match *row {
                "connections" => bench::connections::run(&cluster, p).await?,
                other => bail!("{other} does not run in a separate process"),
            };
            println!("{RESULT_PREFIX}{}", result.to_json());
        }
        Ok(())
    })
}

/// Runs one row in a new process of this binary, attached to the same cluster.
async fn in_fresh_process(cluster: &Cluster, row: &str, p: &Params) -> Result<RowResult> {
    // `SYNCLINE_BENCH_WRAPPER="heaptrack -o /tmp/ht"` runs the row's process under a profiler.
    let exe = std::env::current_exe()?;
    let wrapper: Vec<String> = std::env::var("SYNCLINE_BENCH_WRAPPER")
        .map(|w| w.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut c = tokio::process::Command::new(program);
            c.args(args).arg(&exe);
            c
        }
        None => tokio::process::Command::new(&exe),
    };
    let mut child = command
        .args(["--only", row, "--connections", &p.connections.to_string()])
        .env(ATTACH_ENV, cluster.admin_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawn the row's process")?;
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let mut result = None;
    while let Some(line) = lines.next_line().await? {
        match line.strip_prefix(RESULT_PREFIX) {
            Some(json) => result = Some(RowResult::from_json(json)?),
            None => println!("{line}"),
        }
    }
    let status = child.wait().await?;
    match result {
        Some(r) => Ok(r),
        None => bail!("the row's process ended ({status}) without a result"),
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
