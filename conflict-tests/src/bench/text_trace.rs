//! text-trace: the B4 editing trace (259,778 edits, `crate::trace`) typed by one real client
//! (client-core replica, SQLite file) in editor-sized batches (one Yjs transaction and one
//! pushed mutation per [`BATCH`] edits), relayed, authorized and persisted by the server, and
//! received by a second real client; the clock runs from the first edit until the second
//! client's body equals the trace's end content.
//!
//! The peers replay the same trace with the same batching through stock `yjs` clients against
//! Hocuspocus and the y-websocket server, in Node (`conflict-tests/bench-peers`, installed from
//! its lock file into a scratch directory under `~/.cache`), in the same run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use client_core::FieldValue;
use client_core::native::NativeClient;

use super::env::{self, Cluster};
use super::util;
use super::{Params, RowResult, Verdict};
use conflict_tests::trace::{self, Patch};

/// Edits per local transaction: roughly what an editor flushes while someone types.
pub const BATCH: usize = 100;
const WAIT: Duration = Duration::from_secs(600);
const PEERS: [&str; 2] = ["y-websocket", "hocuspocus"];

pub async fn run(cluster: &Cluster, _p: &Params) -> Result<RowResult> {
    let trace = trace::load_b4().context("load the B4 trace")?;
    let server = cluster.server("text_trace").await?;
    let user = server.register("trace@bench.example").await;
    let dir = tempfile::tempdir()?;
    let writer = NativeClient::open(
        env::replica(dir.path(), "writer"),
        env::sync_config(&server, &user),
    )?;
    let reader = NativeClient::open(
        env::replica(dir.path(), "reader"),
        env::sync_config(&server, &user),
    )?;
    writer.wait_synced(WAIT).await?;
    reader.wait_synced(WAIT).await?;
    let id = writer.create("notes", [("title", FieldValue::String("B4".into()))])?;
    writer.write(|c| c.note_body(id).insert_paragraph(0, &trace.start))?;
    writer.wait_synced(WAIT).await?;

    let started = Instant::now();
    let mut local = Duration::ZERO;
    for chunk in trace.patches.chunks(BATCH) {
        let t0 = Instant::now();
        writer.write(|c| {
            c.note_body(id).edit(|e| {
                for Patch(pos, delete, insert) in chunk {
                    if *delete > 0 {
                        e.delete(*pos, *delete)?;
                    }
                    if !insert.is_empty() {
                        e.insert(*pos, insert)?;
                    }
                }
                Ok(())
            })
        })?;
        local += t0.elapsed();
    }
    let typed = started.elapsed();
    wait_text(&reader, id, &trace.end).await?;
    let total = started.elapsed();
    writer.wait_synced(WAIT).await?;
    let acked = started.elapsed();
    let (stored, pending): (i32, i32) =
        sqlx::query_as("SELECT length(state), pending_updates FROM text_documents WHERE id = $1")
            .bind(id)
            .fetch_one(&server.db)
            .await?;
    println!(
        "  text-trace: syncline {} end to end ({} mutations of {BATCH} edits; typing {} of which \
         client-core {}; all acked at {}); stored state {:.0} KB v1 + {pending} pending updates",
        ms(total),
        trace.patches.len().div_ceil(BATCH),
        ms(typed),
        ms(local),
        ms(acked),
        f64::from(stored) / 1e3
    );
    writer.stop().await;
    reader.stop().await;
    env::shutdown(server).await;

    let mut peers = Vec::new();
    match install_peers() {
        Ok(dir) => {
            for peer in PEERS {
                match run_peer(&dir, peer) {
                    Ok(time) => {
                        println!("  text-trace: {peer} {}", ms(time));
                        peers.push((peer, time));
                    }
                    Err(e) => println!("  text-trace: {peer} failed: {e:#}"),
                }
            }
        }
        Err(e) => println!("  text-trace: peers not installed: {e:#}"),
    }
    let fastest = peers.iter().min_by_key(|(_, t)| *t).copied();
    let ratio = fastest.map(|(_, t)| total.as_secs_f64() / t.as_secs_f64());
    let peer_text = peers
        .iter()
        .map(|(p, t)| format!("{p} {}", ms(*t)))
        .collect::<Vec<_>>()
        .join(", ");
    let met = total <= Duration::from_secs(10) && ratio.is_some_and(|r| r <= 0.5);
    Ok(RowResult {
        name: "text-trace",
        figure: format!(
            "**{} end to end** ({BATCH} edits per mutation); peers: {peer_text}; ratio to the fastest {}",
            ms(total),
            ratio.map_or("n/a".into(), |r| format!("{r:.2}"))
        ),
        target: "≤ 10 s; ≤ 0.5 × Hocuspocus / y-websocket".into(),
        verdict: Verdict::from(met),
        notes: vec![format!(
            "client-core's own share while typing: {} of {}",
            ms(local),
            ms(typed)
        )],
    })
}

/// Waits until the replica's body equals `expected`, re-checking after every sync event.
async fn wait_text(c: &NativeClient, id: uuid::Uuid, expected: &str) -> Result<()> {
    let mut events = c.events();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = c.write(|c| c.note_body(id).plain_text())?;
        if text == expected {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the reader holds {} chars, not the {} of endContent",
                text.len(),
                expected.len()
            );
        }
        let _ = tokio::time::timeout_at(deadline, events.recv()).await;
    }
}

/// Copies `conflict-tests/bench-peers` into `~/.cache/syncline-bench-peers` and runs `npm ci`
/// there unless its lock file is unchanged since the last install.
fn install_peers() -> Result<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-peers");
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let dir = Path::new(&home).join(".cache/syncline-bench-peers");
    std::fs::create_dir_all(&dir)?;
    for file in ["package.json", "package-lock.json", "text-trace.mjs"] {
        std::fs::copy(source.join(file), dir.join(file)).with_context(|| format!("copy {file}"))?;
    }
    let lock = std::fs::read(dir.join("package-lock.json"))?;
    let stamp = dir.join("node_modules/.installed-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(lock.as_slice()) {
        println!(
            "  text-trace: installing the peers from npm into {}",
            dir.display()
        );
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .status()
            .context("run npm (is Node.js installed? scripts/npm-ci.sh installs it)")?;
        ensure!(status.success(), "npm ci failed: {status}");
        std::fs::write(&stamp, &lock)?;
    }
    Ok(dir)
}

fn run_peer(dir: &Path, peer: &str) -> Result<Duration> {
    let output = Command::new("node")
        .arg("text-trace.mjs")
        .arg(peer)
        .arg(trace::b4_path())
        .arg(BATCH.to_string())
        .current_dir(dir)
        .output()
        .context("run node")?;
    ensure!(
        output.status.success(),
        "{peer}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no result line")?;
    let v: serde_json::Value = serde_json::from_str(line)?;
    ensure!(
        v["chars"].as_u64() == Some(104_852),
        "{peer} did not converge: {line}"
    );
    let ms = v["ms"].as_f64().context("no ms")?;
    Ok(Duration::from_secs_f64(ms / 1e3))
}

/// A duration as the table shows it.
fn ms(d: Duration) -> String {
    util::ms(d.as_secs_f64() * 1e3)
}
