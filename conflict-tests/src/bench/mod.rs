//! The benchmark suite behind `syncline-bench` (docs/benchmarks.md): each row runs against the
//! real server ([`sync_server::testing::TestServer`]) on a fresh database of one durable
//! embedded PostgreSQL cluster, with real client-core clients (SQLite files) or, where a row
//! measures the server alone, protocol clients ([`raw`]).

pub mod child;
pub mod connections;
pub mod env;
pub mod fanout;
pub mod growth;
pub mod initial_sync;
pub mod latency;
pub mod raw;
pub mod text_trace;
pub mod throughput;
pub mod util;

use anyhow::{Result, bail};

/// The rows of the table, in the order they run.
pub const ROWS: [&str; 7] = [
    "record-latency",
    "record-throughput",
    "initial-sync",
    "text-trace",
    "fan-out",
    "connections",
    "record-doc-growth",
];

/// Sizes of every row.
#[derive(Debug, Clone)]
pub struct Params {
    pub rows: Vec<&'static str>,
    pub reps: usize,
    pub latency_edits: usize,
    pub latency_tasks: usize,
    pub latency_nodelay_edits: usize,
    pub throughput_clients: usize,
    pub throughput_secs: f64,
    pub throughput_setups: Vec<throughput::Setup>,
    pub initial_docs: usize,
    pub fanout_clients: usize,
    pub fanout_edits: usize,
    pub connections: usize,
    pub growth_edits: usize,
}

impl Params {
    /// The sizes, fitting a full run in about ten minutes on the 2-core machine.
    pub fn full() -> Self {
        Self {
            rows: ROWS.to_vec(),
            reps: 3,
            latency_edits: 10_000,
            latency_tasks: 100,
            latency_nodelay_edits: 2_000,
            throughput_clients: 50,
            throughput_secs: 5.0,
            throughput_setups: throughput::Setup::ALL.to_vec(),
            initial_docs: 100_000,
            fanout_clients: 1000,
            fanout_edits: 300,
            connections: 10_000,
            growth_edits: 10_000,
        }
    }

    /// A smoke run of every row in a minute or two.
    pub fn quick() -> Self {
        Self {
            latency_edits: 500,
            latency_tasks: 20,
            latency_nodelay_edits: 200,
            throughput_clients: 10,
            throughput_secs: 1.0,
            initial_docs: 5_000,
            fanout_clients: 100,
            fanout_edits: 30,
            connections: 1_000,
            growth_edits: 2_000,
            ..Self::full()
        }
    }

    /// Applies `--name value` options.
    pub fn parse(args: &[String]) -> Result<Self> {
        let mut p = if args.iter().any(|a| a == "--quick") {
            Self::quick()
        } else {
            Self::full()
        };
        let mut i = 0;
        while i < args.len() {
            let flag = args[i].as_str();
            if flag == "--quick" {
                i += 1;
                continue;
            }
            let Some(value) = args.get(i + 1) else {
                bail!("{flag} needs a value (see --help)");
            };
            let num = || -> Result<usize> {
                value
                    .replace('_', "")
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{flag}: `{value}` is not a number"))
            };
            match flag {
                "--only" => {
                    let mut rows = Vec::new();
                    for name in value.split(',') {
                        match ROWS.iter().find(|r| **r == name.trim()) {
                            Some(r) => rows.push(*r),
                            None => bail!("unknown row `{name}`; rows: {}", ROWS.join(", ")),
                        }
                    }
                    p.rows = rows;
                }
                "--reps" => p.reps = num()?.max(1),
                "--latency-edits" => p.latency_edits = num()?,
                "--latency-tasks" => p.latency_tasks = num()?.max(1),
                "--latency-nodelay-edits" => p.latency_nodelay_edits = num()?,
                "--throughput-clients" => p.throughput_clients = num()?.max(1),
                "--throughput-secs" => {
                    p.throughput_secs = value
                        .parse()
                        .map_err(|_| anyhow::anyhow!("{flag}: `{value}` is not a number"))?;
                }
                "--throughput-setups" => {
                    let mut setups = Vec::new();
                    for name in value.split(',') {
                        setups.push(match name.trim() {
                            "clients-orgs" => throughput::Setup::Clients50Orgs,
                            "clients-org" => throughput::Setup::Clients1Org,
                            "raw-orgs" => throughput::Setup::Raw50Orgs,
                            "raw-org" => throughput::Setup::Raw1Org,
                            "clients-orgs-nodelay" => throughput::Setup::Clients50OrgsNoDelay,
                            other => bail!(
                                "unknown setup `{other}`: clients-orgs, clients-org, raw-orgs, raw-org, clients-orgs-nodelay"
                            ),
                        });
                    }
                    p.throughput_setups = setups;
                }
                "--initial-docs" => p.initial_docs = num()?.max(1),
                "--fanout-clients" => p.fanout_clients = num()?.max(1),
                "--fanout-edits" => p.fanout_edits = num()?.max(1),
                "--connections" => p.connections = num()?.max(1),
                "--growth-edits" => p.growth_edits = num()?.max(1),
                _ => bail!("unknown option {flag} (see --help)"),
            }
            i += 2;
        }
        Ok(p)
    }
}

pub const USAGE: &str = "\
syncline-bench: the benchmark suite of docs/benchmarks.md

usage: cargo run --release -p conflict-tests --bin syncline-bench -- [options]

  --only ROW[,ROW..]        rows to run (default: all): record-latency, record-throughput,
                            initial-sync, text-trace, fan-out, connections, record-doc-growth
  --quick                   small sizes: a smoke run of every row in a minute or two
  --reps N                  repetitions of repeated rows (default 3)
  --latency-edits N         record-latency edits (default 10000)
  --latency-tasks N         tasks the edits rotate over (default 100)
  --latency-nodelay-edits N edits of the diagnostic TCP_NODELAY pass (default 2000; 0: skip)
  --throughput-clients N    record-throughput clients (default 50)
  --throughput-secs S       seconds per repetition (default 5)
  --throughput-setups LIST  clients-org, clients-orgs, raw-org, raw-orgs, clients-orgs-nodelay
                            (default: all five; the last is a TCP_NODELAY diagnostic)
  --initial-docs N          initial-sync tasks (default 100000)
  --fanout-clients N        fan-out subscribers (default 1000)
  --fanout-edits N          fan-out edits (default 300)
  --connections N           idle sockets to open (default 10000)
  --growth-edits N          record-doc-growth edits of one task (default 10000)

Raise `ulimit -n` above 2 x --connections if the hard limit is lower (the tool raises the soft
limit to the hard one itself).";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    Skipped,
}

impl From<bool> for Verdict {
    fn from(met: bool) -> Self {
        if met { Verdict::Met } else { Verdict::Missed }
    }
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "MISSED",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One line of the final table.
#[derive(Debug, Clone)]
pub struct RowResult {
    pub name: &'static str,
    pub figure: String,
    pub target: String,
    pub verdict: Verdict,
    pub notes: Vec<String>,
}

impl RowResult {
    /// One line for a parent process (see [`RowResult::from_json`]).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "name": self.name,
            "figure": self.figure,
            "target": self.target,
            "verdict": self.verdict.label(),
            "notes": self.notes,
        })
        .to_string()
    }

    pub fn from_json(line: &str) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let name = ROWS
            .iter()
            .find(|r| **r == v["name"].as_str().unwrap_or_default())
            .copied()
            .ok_or_else(|| anyhow::anyhow!("unknown row in {line}"))?;
        let verdict = match v["verdict"].as_str() {
            Some("met") => Verdict::Met,
            Some("skipped") => Verdict::Skipped,
            _ => Verdict::Missed,
        };
        let notes = v["notes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            name,
            figure: text("figure"),
            target: text("target"),
            verdict,
            notes,
        })
    }

    pub fn failed(name: &'static str, error: &anyhow::Error) -> Self {
        Self {
            name,
            figure: format!("error: {error:#}"),
            target: String::new(),
            verdict: Verdict::Missed,
            notes: Vec::new(),
        }
    }
}

/// Prints the results as a Markdown table.
pub fn print_table(results: &[RowResult]) {
    println!();
    println!("| row | measured | target | verdict |");
    println!("| --- | --- | --- | --- |");
    for r in results {
        println!(
            "| {} | {} | {} | {} |",
            r.name,
            r.figure,
            r.target,
            r.verdict.label()
        );
    }
    let notes: Vec<_> = results
        .iter()
        .flat_map(|r| r.notes.iter().map(move |n| (r.name, n)))
        .collect();
    if !notes.is_empty() {
        println!();
        for (name, note) in notes {
            println!("- {name}: {note}");
        }
    }
}
