//! fan-out: one writer, N subscribers of the same document's collection. Latency of an edit is
//! from just before the writer sends its `Push` until the last of the N subscribers has received
//! the `Change` (both timed with CLOCK_MONOTONIC). The subscribers are protocol clients in a
//! child process (their CPU still shares the machine, their memory is not the server's); the
//! writer is a protocol client in this process. Edits are sequential.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::env::{self, Cluster};
use super::raw::{self, Raw};
use super::util::{Summary, mono_ns, ms, raise_fd_limit};
use super::{Params, RowResult, Verdict};

const LINE_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn run(cluster: &Cluster, p: &Params) -> Result<RowResult> {
    raise_fd_limit()?;
    let server = cluster.server("fan_out").await?;
    let user = server.register("fanout@bench.example").await;
    let mut writer = Raw::hello(&server.ws_url(), &user.access_token).await?;
    let (doc_id, mut doc, create) = raw::new_task("fan-out");
    writer.push_one(doc_id, create).await?;

    let n = p.fanout_clients;
    let mut child = Command::new(std::env::current_exe().context("current exe")?)
        .args([
            "--fanout-clients",
            &n.to_string(),
            &server.ws_url(),
            &user.access_token,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawn the fan-out child")?;
    let stdin = child.stdin.take().context("child stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let connect_started = std::time::Instant::now();
    let ready = next_line(&mut lines).await?;
    ensure!(ready.starts_with("READY"), "child said {ready}");
    println!(
        "  fan-out: {n} subscribers connected and synced in {:.1}s",
        connect_started.elapsed().as_secs_f64()
    );

    let warmup = (p.fanout_edits / 10).max(3);
    let mut all = Vec::new();
    let mut first = Vec::new();
    let mut median = Vec::new();
    for i in 0..(warmup + p.fanout_edits) {
        let change = raw::retitle(&mut doc, &format!("broadcast {i}"));
        let sent = mono_ns()?;
        let seq = writer.push_one(doc_id, change).await?;
        let line = next_line(&mut lines).await?;
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [tag, got, min, med, max] = fields[..] else {
            bail!("child said {line}");
        };
        ensure!(
            tag == "SEQ" && got.parse::<u64>()? == seq,
            "expected seq {seq}, child said {line}"
        );
        let at =
            |s: &str| -> Result<f64> { Ok((s.parse::<u64>()?.saturating_sub(sent)) as f64 / 1e6) };
        if i >= warmup {
            first.push(at(min)?);
            median.push(at(med)?);
            all.push(at(max)?);
        }
        // A short pause, as between a person's edits (and so edits do not overlap).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    env::shutdown(server).await;

    let s = Summary::of(&all);
    let f = Summary::of(&first);
    let m = Summary::of(&median);
    println!(
        "  fan-out: {} edits to {n} subscribers: delivered to all: median {}, p99 {}, max {}; first subscriber median {}; median subscriber median {}",
        s.n,
        ms(s.median),
        ms(s.p99),
        ms(s.max),
        ms(f.median),
        ms(m.median)
    );
    Ok(RowResult {
        name: "fan-out",
        figure: format!(
            "to all {n}: p50 {}, p99 {} (n={})",
            ms(s.median),
            ms(s.p99),
            s.n
        ),
        target: "p99 ≤ 100 ms".into(),
        verdict: Verdict::from(s.p99 <= 100.0),
        notes: vec![format!(
            "first subscriber p50 {}, median subscriber p50 {} p99 {}, max {}",
            ms(f.median),
            ms(m.median),
            ms(m.p99),
            ms(s.max)
        )],
    })
}

async fn next_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
) -> Result<String> {
    match tokio::time::timeout(LINE_TIMEOUT, lines.next_line()).await {
        Err(_) => bail!("the child process said nothing for {LINE_TIMEOUT:?}"),
        Ok(line) => line?.context("the child process exited"),
    }
}
