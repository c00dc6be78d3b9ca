//! The no-gap invariant under concurrency (DESIGN §3): 8 clients push for a few seconds while
//! subscribers keep disconnecting and resuming from the last cursor they held, and a poller
//! reads the log with `seq > cursor`. Every reader must see every committed seq, in order.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use automerge::{ActorId, AutoCommit};
use rand::{Rng, SeedableRng};
use serde_bytes::ByteBuf;
use sync_server::testing::TestServer;
use sync_server::testing::changes::{s, task_change};
use sync_server::testing::raw::{RawClient, Received};
use syncline_protocol::{ClientMessage, Mutation, MutationId, Scope, ServerMessage};
use uuid::Uuid;

const WRITERS: usize = 8;
const LOAD: Duration = Duration::from_secs(4);

/// What a subscribed connection has received: `expect` is the next seq it must get.
struct Follower {
    /// `None` until a fresh subscription's `Synced` (its snapshot covers what came before).
    expect: Option<u64>,
    who: String,
}

impl Follower {
    fn resumed(cursor: u64, who: String) -> Self {
        Self {
            expect: Some(cursor + 1),
            who,
        }
    }

    fn on(&mut self, message: &ServerMessage) {
        match *message {
            ServerMessage::Synced { cursor, .. } if self.expect.is_none() => {
                self.expect = Some(cursor + 1);
            }
            ServerMessage::Change { seq, .. } => {
                if let Some(expect) = self.expect.as_mut() {
                    // A seq already covered may come again; a new one must be the next one.
                    if seq >= *expect {
                        assert_eq!(
                            seq, *expect,
                            "{}: expected seq {expect}, got {seq} (gap)",
                            self.who
                        );
                        *expect += 1;
                    }
                }
            }
            _ => {}
        }
    }

    /// The cursor this connection holds.
    fn held(&self) -> Option<u64> {
        self.expect.map(|e| e - 1)
    }
}

/// One writer: subscribes, pushes batches of creates and updates until `stop`, and every few
/// batches disconnects and resumes from the cursor it holds, checking that what it receives
/// never skips a seq. Returns its acked seqs and its final cursor.
async fn writer(
    url: String,
    token: String,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> (Vec<u64>, Option<u64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let client_id = Uuid::now_v7();
    let actor = ActorId::from(client_id.as_bytes().as_slice());
    let who = format!("writer {seed}");
    let connect = |cursor: Option<u64>| {
        let (url, token, who) = (url.clone(), token.clone(), who.clone());
        async move {
            let mut c = RawClient::hello_as(&url, &token, client_id).await;
            let scope = Scope::Collection {
                collection: "tasks".into(),
            };
            c.send(&ClientMessage::Subscribe {
                sub_id: 1,
                scope,
                cursor,
            })
            .await;
            let follower = match cursor {
                Some(held) => Follower::resumed(held, who),
                None => Follower { expect: None, who },
            };
            (c, follower)
        }
    };
    let (mut c, mut follower) = connect(None).await;
    let mut docs: Vec<(Uuid, AutoCommit)> = Vec::new();
    let mut next = 1u64;
    let mut acked = Vec::new();
    let mut pushes = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut mutations = Vec::new();
        for _ in 0..rng.random_range(1..=4) {
            let payload = if docs.is_empty() || rng.random_bool(0.3) {
                let mut doc = AutoCommit::new().with_actor(actor.clone());
                let p = task_change(
                    &mut doc,
                    &[("title", s(&format!("t{next}"))), ("status", s("todo"))],
                );
                docs.push((Uuid::now_v7(), doc));
                (docs.len() - 1, p)
            } else {
                let i = rng.random_range(0..docs.len());
                // Title changes every time (a write of the current value makes no change).
                let change = task_change(&mut docs[i].1, &[("title", s(&format!("t{next}")))]);
                (i, change)
            };
            mutations.push(Mutation {
                mid: MutationId {
                    client_id,
                    seq: next,
                },
                doc_id: docs[payload.0].0,
                collection: "tasks".into(),
                payload: ByteBuf::from(payload.1),
            });
            next += 1;
        }
        let n = mutations.len();
        c.send(&ClientMessage::Push { mutations }).await;
        let mut got = 0;
        while got < n {
            let m = c.message().await;
            follower.on(&m);
            match m {
                ServerMessage::Ack { seq, .. } => {
                    acked.push(seq);
                    got += 1;
                }
                ServerMessage::Reject { code, message, .. } => {
                    panic!("unexpected reject {code}: {message}")
                }
                _ => {}
            }
        }
        pushes += 1;
        // Resume from the cursor held (once the subscription has one).
        if pushes % 25 == 0 && follower.held().is_some() {
            let held = follower.held();
            drop(c);
            (c, follower) = connect(held).await;
        }
    }
    (acked, follower.held())
}

/// Checks that the seqs a subscriber received after `Synced{cursor}` continue `cursor` with no
/// hole, and returns the last seq it holds.
fn check_contiguous(cursor: u64, received: &[u64], who: &str) -> u64 {
    let mut expect = cursor + 1;
    for &seq in received {
        if seq < expect {
            continue; // a duplicate of something already covered is harmless
        }
        assert_eq!(
            seq, expect,
            "{who}: after cursor {cursor} expected seq {expect}, got {seq} (gap)"
        );
        expect += 1;
    }
    expect - 1
}

/// Repeatedly connects, resumes from the last cursor it held, listens a while, disconnects.
async fn resumer(url: String, token: String, seed: u64, stop: Arc<AtomicBool>) -> (u64, usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut cursor: Option<u64> = if seed.is_multiple_of(2) {
        None
    } else {
        Some(0)
    };
    let mut sessions = 0;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut c = RawClient::hello(&url, &token).await;
        c.send(&ClientMessage::Subscribe {
            sub_id: 1,
            scope: Scope::Collection {
                collection: "tasks".into(),
            },
            cursor,
        })
        .await;
        let mut synced_at = None;
        let mut after_synced = Vec::new();
        let listen = Duration::from_millis(rng.random_range(20..300));
        let deadline = Instant::now() + listen;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if synced_at.is_some() && remaining.is_zero() {
                break;
            }
            let wait = if synced_at.is_some() {
                remaining
            } else {
                Duration::from_secs(15)
            };
            let Ok(received) = tokio::time::timeout(wait, c.recv()).await else {
                break;
            };
            match received {
                Received::Message(ServerMessage::Synced { cursor: c, .. }) => synced_at = Some(c),
                Received::Message(ServerMessage::Change { seq, .. }) => {
                    if synced_at.is_some() {
                        after_synced.push(seq);
                    } else if let Some(c) = cursor {
                        // Catch-up must itself be contiguous from the cursor.
                        after_synced.push(seq);
                        assert!(seq > c, "catch-up sent seq {seq} not after cursor {c}");
                    }
                }
                Received::Message(_) => {}
                Received::Closed(c) => panic!("resumer connection closed: {c:?}"),
            }
        }
        let synced = synced_at.expect("subscription synced");
        let base = match cursor {
            // Catch-up changes arrived before Synced, live ones after: all continue the cursor.
            Some(c) => c,
            None => synced,
        };
        let mut held = check_contiguous(base, &after_synced, &format!("resumer {seed}"));
        held = held.max(synced);
        cursor = Some(held);
        sessions += 1;
        if stopping {
            return (held, sessions);
        }
    }
}

/// Polls the log directly, as a resuming reader would, asserting it never skips a seq.
async fn poller(db: sqlx::PgPool, org_id: Uuid, stop: Arc<AtomicBool>) -> u64 {
    let mut cursor = 0i64;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let seqs: Vec<(i64,)> = sqlx::query_as(
            "SELECT seq FROM change_log WHERE org_id = $1 AND seq > $2 ORDER BY seq",
        )
        .bind(org_id)
        .bind(cursor)
        .fetch_all(&db)
        .await
        .expect("poll");
        for (seq,) in seqs {
            assert_eq!(seq, cursor + 1, "poller skipped from {cursor} to {seq}");
            cursor = seq;
        }
        if stopping {
            return cursor as u64;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_readers_never_miss_a_committed_change_under_concurrent_pushes() {
    let server = TestServer::start().await;
    let user = server.register("load@example.com").await;
    let url = server.ws_url();
    let stop = Arc::new(AtomicBool::new(false));

    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            tokio::spawn(writer(
                url.clone(),
                user.access_token.clone(),
                i as u64,
                stop.clone(),
            ))
        })
        .collect();
    let resumers: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(resumer(
                url.clone(),
                user.access_token.clone(),
                100 + i,
                stop.clone(),
            ))
        })
        .collect();
    // The poller stops only after the writers' last pushes committed.
    let poll_stop = Arc::new(AtomicBool::new(false));
    let poll = tokio::spawn(poller(server.db.clone(), user.org_id, poll_stop.clone()));

    tokio::time::sleep(LOAD).await;
    stop.store(true, Ordering::Relaxed);

    let mut acked = BTreeSet::new();
    let mut writer_cursors = Vec::new();
    for w in writers {
        let (seqs, held) = w.await.expect("writer");
        for seq in seqs {
            assert!(acked.insert(seq), "seq {seq} acked twice");
        }
        writer_cursors.push(held.unwrap_or(0));
    }
    poll_stop.store(true, Ordering::Relaxed);
    let (count, min, max): (i64, Option<i64>, Option<i64>) =
        sqlx::query_as("SELECT count(*), min(seq), max(seq) FROM change_log WHERE org_id = $1")
            .bind(user.org_id)
            .fetch_one(&server.db)
            .await
            .expect("log stats");
    let total = acked.len() as u64;
    assert!(total > 100, "the load produced only {total} changes");
    // The log holds exactly the acked changes, numbered 1..=N.
    assert_eq!(
        (count as u64, min, max.map(|m| m as u64)),
        (total, Some(1), Some(total))
    );
    assert_eq!(acked.first().copied(), Some(1));
    assert_eq!(acked.last().copied(), Some(total));

    let mut final_cursors = writer_cursors;
    for r in resumers {
        let (held, sessions) = r.await.expect("resumer");
        assert!(sessions >= 2, "resumer ran only {sessions} sessions");
        final_cursors.push(held);
    }
    // Every client, writers included, resumes once more from the cursor it held at the end and
    // receives the rest contiguously.
    for held in final_cursors {
        // A final resume from what it held delivers the rest, contiguously.
        let mut c = RawClient::hello(&url, &user.access_token).await;
        c.send(&ClientMessage::Subscribe {
            sub_id: 1,
            scope: Scope::Collection {
                collection: "tasks".into(),
            },
            cursor: Some(held),
        })
        .await;
        let mut seqs = Vec::new();
        let synced = loop {
            match c.message().await {
                ServerMessage::Change { seq, .. } => seqs.push(seq),
                ServerMessage::Synced { cursor, .. } => break cursor,
                _ => {}
            }
        };
        assert_eq!(synced, total);
        assert_eq!(check_contiguous(held, &seqs, "final resume"), total);
    }
    assert_eq!(poll.await.expect("poller"), total);
}
