//! connections: N idle authenticated sockets (protocol clients, `Hello` only) on one server;
//! the server's resident memory per connection.
//!
//! The server runs in this process and the clients in a child process, so this process's RSS
//! growth is the server's. RSS is sampled at checkpoints while connections are added; the
//! per-connection figure is the least-squares slope over the checkpoints (and the plain
//! average over all N is reported too).

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use super::env::{self, Cluster};
use super::raw::Raw;
use super::util::{raise_fd_limit, rss_bytes};
use super::{Params, RowResult, Verdict};

const LINE_TIMEOUT: Duration = Duration::from_secs(300);
/// Settling time before each RSS sample.
const SETTLE: Duration = Duration::from_millis(750);

pub async fn run(cluster: &Cluster, p: &Params) -> Result<RowResult> {
    let limit = raise_fd_limit()?;
    let n = p.connections;
    let server = cluster.server("connections").await?;
    let user = server.register("connections@bench.example").await;
    // Warm up every lazily initialized path (first handshake, pool connections, hub channel).
    {
        let mut warm = Vec::new();
        for _ in 0..20 {
            warm.push(Raw::hello_idle(&server.ws_url(), &user.access_token).await?);
        }
    }
    tokio::time::sleep(SETTLE).await;
    let base = rss_bytes()?;
    let step = (n / 8).max(1);
    let mut child = Command::new(std::env::current_exe().context("current exe")?)
        .args([
            "--connect-clients",
            &n.to_string(),
            &server.ws_url(),
            &user.access_token,
            &step.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("spawn the connections child")?;
    let mut stdin = child.stdin.take().context("child stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("child stdout")?).lines();
    let mut resumed = Instant::now();
    let mut points: Vec<(f64, f64)> = vec![(0.0, base as f64)];
    let mut connect_secs = 0.0;
    let (opened, failed, error) = loop {
        let line = match tokio::time::timeout(LINE_TIMEOUT, lines.next_line()).await {
            Err(_) => bail!("the connections child said nothing for {LINE_TIMEOUT:?}"),
            Ok(line) => line?.context("the connections child exited")?,
        };
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        match fields[..] {
            ["AT", opened, _failed] => {
                connect_secs += resumed.elapsed().as_secs_f64();
                tokio::time::sleep(SETTLE).await;
                let rss = rss_bytes()?;
                let opened: f64 = opened.parse()?;
                points.push((opened, rss as f64));
                println!(
                    "  connections: {opened:>6} open, server RSS +{:.1} MB ({:.1} KB/connection)",
                    (rss as f64 - base as f64) / 1e6,
                    (rss as f64 - base as f64) / opened.max(1.0) / 1e3
                );
                stdin.write_all(b"go\n").await?;
                stdin.flush().await?;
                resumed = Instant::now();
            }
            ["DONE", opened, failed, error] => {
                break (
                    opened.parse::<usize>()?,
                    failed.parse::<usize>()?,
                    error.to_owned(),
                );
            }
            _ => bail!("the connections child said {line}"),
        }
    };
    let rss_full = points.last().map_or(base as f64, |p| p.1);
    // The server still serves with all of them open.
    let probe = Raw::hello_idle(&server.ws_url(), &user.access_token).await;
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(60), child.wait()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_close = rss_bytes()?;
    env::shutdown(server).await;

    ensure!(opened > 0, "no connection opened: {error}");
    let slope = slope(&points);
    let average = (rss_full - base as f64) / opened as f64;
    println!(
        "  connections: {opened} open, {failed} failed (first error: {error}); fd limit {limit}; \
         {:.0} handshakes/s; server RSS per connection: slope {:.1} KB, average {:.1} KB; \
         RSS after all closed: +{:.1} MB over the start; probe connection while full: {}",
        opened as f64 / connect_secs.max(1e-9),
        slope / 1e3,
        average / 1e3,
        (after_close as f64 - base as f64) / 1e6,
        if probe.is_ok() { "ok" } else { "failed" }
    );
    Ok(RowResult {
        name: "connections",
        figure: format!(
            "{opened} open, {failed} errors; {:.1} KB RSS/connection (slope; average {:.1} KB)",
            slope / 1e3,
            average / 1e3
        ),
        target: format!("{n} sockets, ≤ 16 KB/connection, no errors"),
        verdict: Verdict::from(failed == 0 && opened == n && slope <= 16_000.0),
        notes: vec![format!(
            "{:.0} handshakes/s; RSS after closing all: +{:.1} MB over the start (allocator keeps freed pages)",
            opened as f64 / connect_secs.max(1e-9),
            (after_close as f64 - base as f64) / 1e6
        )],
    })
}

/// Least-squares slope of y over x.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let num: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let den: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if den == 0.0 { f64::NAN } else { num / den }
}
