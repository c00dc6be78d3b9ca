//! Child processes of the benchmark binary that hold many protocol clients, so that their
//! memory and CPU are not the server's (the server runs in the parent process):
//!
//! - `syncline-bench --connect-clients N URL TOKEN STEP`: opens N idle authenticated sockets
//!   (hello only), printing `AT <opened> <failed>` after every STEP and waiting for a line on
//!   stdin before going on; then `DONE <opened> <failed> <first error>`; exits at end of stdin.
//! - `syncline-bench --fanout-clients N URL TOKEN`: N clients subscribed to `tasks`; prints
//!   `READY <n>`, then for every change seq received by all N: `SEQ <seq> <min> <median> <max>`
//!   (CLOCK_MONOTONIC ns of receipt); exits at end of stdin.
//!
//! Lines on stdout are the protocol with the parent; diagnostics go to stderr.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use syncline_protocol::ServerMessage;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use super::raw::Raw;
use super::util::{mono_ns, raise_fd_limit};

/// Handshakes in flight at once.
const CONCURRENCY: usize = 128;

fn arg<T: std::str::FromStr>(args: &[String], i: usize, what: &str) -> Result<T> {
    args.get(i)
        .with_context(|| format!("missing {what}"))?
        .parse()
        .map_err(|_| anyhow::anyhow!("bad {what}"))
}

/// `--connect-clients N URL TOKEN STEP`
pub async fn connect_clients(args: &[String]) -> Result<()> {
    let n: usize = arg(args, 0, "N")?;
    let url: String = arg(args, 1, "URL")?;
    let token: String = arg(args, 2, "TOKEN")?;
    let step: usize = arg(args, 3, "STEP")?;
    raise_fd_limit()?;
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut held: Vec<Raw> = Vec::with_capacity(n);
    let mut failed = 0usize;
    let mut first_error: Option<String> = None;
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    while held.len() + failed < n {
        let batch = step.min(n - held.len() - failed);
        let mut set = JoinSet::new();
        for _ in 0..batch {
            let permit = Arc::clone(&sem).acquire_owned().await?;
            let (url, token) = (url.clone(), token.clone());
            set.spawn(async move {
                let r = Raw::hello_idle(&url, &token).await;
                drop(permit);
                r
            });
        }
        while let Some(r) = set.join_next().await {
            match r.context("connect task panicked")? {
                Ok(raw) => held.push(raw),
                Err(e) => {
                    failed += 1;
                    first_error.get_or_insert_with(|| format!("{e:#}"));
                }
            }
        }
        println!("AT {} {}", held.len(), failed);
        if stdin.next_line().await?.is_none() {
            return Ok(());
        }
    }
    let error = first_error.unwrap_or_else(|| "-".into()).replace('\n', " ");
    println!("DONE {} {} {}", held.len(), failed, error);
    while stdin.next_line().await?.is_some() {}
    drop(held);
    Ok(())
}

/// `--fanout-clients N URL TOKEN`
pub async fn fanout_clients(args: &[String]) -> Result<()> {
    let n: usize = arg(args, 0, "N")?;
    let url: String = arg(args, 1, "URL")?;
    let token: String = arg(args, 2, "TOKEN")?;
    raise_fd_limit()?;
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel::<Result<()>>();
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(u64, u64)>();
    let sem = Arc::new(Semaphore::new(CONCURRENCY));
    let mut set = JoinSet::new();
    for _ in 0..n {
        let (url, token) = (url.clone(), token.clone());
        let (ready_tx, seen_tx, sem) = (ready_tx.clone(), seen_tx.clone(), Arc::clone(&sem));
        set.spawn(async move {
            let setup = async {
                let _permit = sem.acquire().await?;
                let mut raw = Raw::hello_idle(&url, &token).await?;
                raw.subscribe_tasks(1).await?;
                anyhow::Ok(raw)
            };
            let mut raw = match setup.await {
                Ok(raw) => {
                    let _ = ready_tx.send(Ok(()));
                    raw
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            loop {
                match raw.recv(std::time::Duration::from_secs(3600)).await {
                    Ok(ServerMessage::Change { seq, .. }) => {
                        let now = mono_ns().unwrap_or(0);
                        if seen_tx.send((seq, now)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("fan-out client: {e:#}");
                        return;
                    }
                }
            }
        });
    }
    drop(ready_tx);
    let mut ready = 0;
    while ready < n {
        match ready_rx.recv().await {
            Some(Ok(())) => ready += 1,
            Some(Err(e)) => bail!("a fan-out client failed to subscribe: {e:#}"),
            None => bail!("fan-out clients stopped"),
        }
    }
    println!("READY {ready}");
    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let mut pending: HashMap<u64, Vec<u64>> = HashMap::new();
    loop {
        tokio::select! {
            line = stdin.next_line() => {
                if line?.is_none() {
                    break;
                }
            }
            seen = seen_rx.recv() => {
                let Some((seq, at)) = seen else { break };
                let times = pending.entry(seq).or_default();
                times.push(at);
                if times.len() == n {
                    let mut times = pending.remove(&seq).unwrap_or_default();
                    times.sort_unstable();
                    let median = times[times.len() / 2];
                    println!("SEQ {seq} {} {median} {}", times[0], times[times.len() - 1]);
                }
            }
        }
    }
    set.abort_all();
    Ok(())
}
