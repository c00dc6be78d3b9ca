//! Fan-out across server processes sharing one PostgreSQL database.
//!
//! Each process announces its commits with `NOTIFY syncline_changes, '<org>:<last seq>'` and
//! listens on the same channel. Announcements are coalesced: a NOTIFY takes a global lock at
//! commit (DESIGN §8), so instead of one per commit inside the data transaction, an announcer
//! task sends one statement per burst of commits, after they committed, keeping the latest seq
//! per org. A notification becomes a marker batch on the local hub; connections then read the
//! seqs they miss from the change log, which has no gaps below any committed seq. A process's
//! own notifications arrive too and are skipped (nothing new below them).
//!
//! If the listening connection drops, notifications sent meanwhile are lost; connections catch
//! up with the next one (or on resume from their cursor).

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::AppState;
use crate::hub::{ChangeHub, CommittedBatch};

/// The notification channel.
pub const CHANNEL: &str = "syncline_changes";

/// The announcer and listener tasks; stopped when dropped.
#[derive(Debug)]
pub struct Cluster {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts announcing this process's commits and listening for the others'.
pub async fn start(state: &AppState) -> Result<Cluster, sqlx::Error> {
    let mut listener = PgListener::connect_with(&state.db).await?;
    listener.listen(CHANNEL).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    state.hub.set_announcer(tx);
    let announcer = tokio::spawn(announce(state.db.clone(), rx));
    let receiver = tokio::spawn(receive(listener, state.hub.clone()));
    Ok(Cluster {
        tasks: vec![announcer, receiver],
    })
}

async fn announce(db: PgPool, mut commits: mpsc::UnboundedReceiver<(Uuid, u64)>) {
    while let Some((org, seq)) = commits.recv().await {
        let mut latest: HashMap<Uuid, u64> = HashMap::from([(org, seq)]);
        // Whatever committed while the previous NOTIFY ran goes out in this one.
        while let Ok((org, seq)) = commits.try_recv() {
            let entry = latest.entry(org).or_insert(seq);
            *entry = (*entry).max(seq);
        }
        let payloads: Vec<String> = latest
            .iter()
            .map(|(org, seq)| format!("{org}:{seq}"))
            .collect();
        let sent = sqlx::query("SELECT pg_notify($1, payload) FROM unnest($2::text[]) AS payload")
            .bind(CHANNEL)
            .bind(&payloads)
            .execute(&db)
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not announce commits to other server processes");
        }
    }
}

async fn receive(mut listener: PgListener, hub: ChangeHub) {
    loop {
        match listener.recv().await {
            Ok(notification) => match parse(notification.payload()) {
                Some((org, seq)) => hub.publish_local(CommittedBatch::marker(org, seq)),
                None => tracing::warn!(
                    payload = notification.payload(),
                    "malformed change notification"
                ),
            },
            Err(e) => {
                // The listener reconnects on the next `recv`; avoid spinning meanwhile.
                tracing::warn!(error = %e, "change notification listener failed; reconnecting");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn parse(payload: &str) -> Option<(Uuid, u64)> {
    let (org, seq) = payload.split_once(':')?;
    Some((Uuid::parse_str(org).ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_garbage_does_not() {
        let org = Uuid::now_v7();
        assert_eq!(parse(&format!("{org}:42")), Some((org, 42)));
        assert_eq!(parse("nope"), None);
        assert_eq!(parse(&format!("{org}:-1")), None);
    }
}
