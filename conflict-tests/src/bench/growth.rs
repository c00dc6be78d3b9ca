//! record-doc-growth: one task edited N times through the server, one edit per push, each
//! waiting for its `Ack` (a protocol client: this row measures the server alone). Per window of
//! 1,000 edits: the push-to-ack time, and at the window's end the stored document's size
//! (`documents.state`) and a timing breakdown of the CPU work the server's merge does per push
//! on a document of that size (load the stored state, copy it, apply one change, save it).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use automerge::{Automerge, Change};

use super::env::{self, Cluster};
use super::raw::{self, Raw};
use super::util::{Summary, ms};
use super::{Params, RowResult, Verdict};

const WINDOW: usize = 1000;

pub async fn run(cluster: &Cluster, p: &Params) -> Result<RowResult> {
    let server = cluster.server("record_doc_growth").await?;
    let user = server.register("growth@bench.example").await;
    let mut writer = Raw::hello(&server.ws_url(), &user.access_token).await?;
    let (doc_id, mut doc, create) = raw::new_task("growing");
    writer.push_one(doc_id, create).await?;

    println!(
        "  record-doc-growth: window     edits/s   ack p50    ack p99   stored    load     copy    apply    save"
    );
    let mut windows = Vec::new();
    let mut lat = Vec::with_capacity(WINDOW);
    let mut window_started = Instant::now();
    for i in 1..=p.growth_edits {
        let change = raw::retitle(&mut doc, &format!("revision {i}"));
        let t0 = Instant::now();
        writer.push_one(doc_id, change).await?;
        lat.push(t0.elapsed());
        if i % WINDOW == 0 || i == p.growth_edits {
            let secs = window_started.elapsed().as_secs_f64();
            let s = Summary::of_durations(&lat);
            let (state,): (Vec<u8>,) = sqlx::query_as("SELECT state FROM documents WHERE id = $1")
                .bind(doc_id)
                .fetch_one(&server.db)
                .await
                .context("read the stored document")?;
            // A change on top of the current heads, like the next push's.
            let next = raw::retitle(&mut doc.fork(), "probe");
            let b = breakdown(&state, &next)?;
            println!(
                "  record-doc-growth: {:>6} {:>10.0} {:>9} {:>9} {:>7.1}KB {:>8} {:>8} {:>8} {:>8}",
                i,
                lat.len() as f64 / secs,
                ms(s.median),
                ms(s.p99),
                state.len() as f64 / 1e3,
                ms(b.load),
                ms(b.copy),
                ms(b.apply),
                ms(b.save)
            );
            windows.push(Window {
                edits: i,
                rate: lat.len() as f64 / secs,
                ack: s,
                stored: state.len(),
                cpu: b,
            });
            lat.clear();
            window_started = Instant::now();
        }
    }
    env::shutdown(server).await;

    let first = windows.first().context("no window")?;
    let last = windows.last().context("no window")?;
    let slowdown = last.ack.median / first.ack.median;
    // Flat: the last window's median within 1.5x of the first's.
    let flat = slowdown <= 1.5;
    Ok(RowResult {
        name: "record-doc-growth",
        figure: format!(
            "ack p50 {} (first 1 K) → {} (last 1 K), ×{slowdown:.1}; {:.0} → {:.0} edits/s; stored {:.1} KB → {:.1} KB",
            ms(first.ack.median),
            ms(last.ack.median),
            first.rate,
            last.rate,
            first.stored as f64 / 1e3,
            last.stored as f64 / 1e3
        ),
        target: "flat per-change cost; compacted state".into(),
        verdict: Verdict::from(flat),
        notes: vec![format!(
            "server CPU per push at {} edits: load {} + copy {} + apply {} + save {} = {}",
            last.edits,
            ms(last.cpu.load),
            ms(last.cpu.copy),
            ms(last.cpu.apply),
            ms(last.cpu.save),
            ms(last.cpu.load + last.cpu.copy + last.cpu.apply + last.cpu.save)
        )],
    })
}

struct Window {
    edits: usize,
    rate: f64,
    ack: Summary,
    stored: usize,
    cpu: Breakdown,
}

/// Milliseconds of each step the server's merge performs per push (median of a few runs).
#[derive(Debug, Clone, Copy)]
pub struct Breakdown {
    pub load: f64,
    pub copy: f64,
    pub apply: f64,
    pub save: f64,
}

fn breakdown(state: &[u8], next: &[u8]) -> Result<Breakdown> {
    const RUNS: usize = 5;
    let mut load = Vec::new();
    let mut copy = Vec::new();
    let mut apply = Vec::new();
    let mut save = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let doc = Automerge::load(state).context("load the stored document")?;
        load.push(t.elapsed());
        let t = Instant::now();
        let mut merged = doc.clone();
        copy.push(t.elapsed());
        let change = Change::from_bytes(next.to_vec()).context("decode the change")?;
        let t = Instant::now();
        merged.apply_changes([change]).context("apply the change")?;
        apply.push(t.elapsed());
        let t = Instant::now();
        let saved = merged.save();
        save.push(t.elapsed());
        std::hint::black_box(saved);
    }
    let med = |v: &[Duration]| Summary::of_durations(v).median;
    Ok(Breakdown {
        load: med(&load),
        copy: med(&copy),
        apply: med(&apply),
        save: med(&save),
    })
}
