//! Two server processes on one database: a change pushed to one reaches the other's
//! subscribers live, in order, and a revoke made through one evicts on the other.

use automerge::{ActorId, AutoCommit};
use serde_bytes::ByteBuf;
use sync_server::testing::TestServer;
use sync_server::testing::changes::{s, task_change};
use sync_server::testing::raw::RawClient;
use syncline_protocol::{ClientMessage, Mutation, MutationId, Scope, ServerMessage};
use uuid::Uuid;

/// Pushes the creation of a new task as mutation `seq` (answers are read by the caller).
async fn push_new_task(writer: &mut RawClient, seq: u64, title: &str) {
    let mut doc = AutoCommit::new().with_actor(ActorId::random());
    writer
        .send(&ClientMessage::Push {
            mutations: vec![Mutation {
                mid: MutationId {
                    client_id: writer.client_id,
                    seq,
                },
                doc_id: Uuid::now_v7(),
                collection: "tasks".into(),
                payload: ByteBuf::from(task_change(
                    &mut doc,
                    &[("title", s(title)), ("status", s("todo"))],
                )),
            }],
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_committed_on_one_node_reach_subscribers_of_another() {
    let one = TestServer::start().await;
    let two = TestServer::start_on(one.database_url.clone()).await;
    let user = one.register("nodes@example.com").await;

    let mut reader = RawClient::hello(&two.ws_url(), &user.access_token).await;
    assert_eq!(reader.subscribe(1, "tasks", None).await.1, 0);

    let mut writer = RawClient::hello(&one.ws_url(), &user.access_token).await;
    for seq in 1..=20u64 {
        push_new_task(&mut writer, seq, &format!("t{seq}")).await;
    }
    // The reader on the other node receives all twenty, in seq order.
    let mut seqs = Vec::new();
    while seqs.len() < 20 {
        if let ServerMessage::Change { seq, .. } = reader.message().await {
            seqs.push(seq);
        }
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_made_on_one_node_evicts_and_refuses_on_another() {
    let one = TestServer::start().await;
    let two = TestServer::start_on(one.database_url.clone()).await;
    let owner = one.register("owner@example.com").await;
    let guest = one.join(&owner, "guest@example.com", "guest").await;

    // The owner creates a task on node one and shares it with the guest as an editor.
    let mut writer = RawClient::hello(&one.ws_url(), &owner.access_token).await;
    let doc_id = Uuid::now_v7();
    let mut doc = AutoCommit::new().with_actor(ActorId::random());
    let create = task_change(&mut doc, &[("title", s("shared")), ("status", s("todo"))]);
    writer
        .send(&ClientMessage::Push {
            mutations: vec![Mutation {
                mid: MutationId {
                    client_id: writer.client_id,
                    seq: 1,
                },
                doc_id,
                collection: "tasks".into(),
                payload: ByteBuf::from(create),
            }],
        })
        .await;
    assert!(matches!(
        writer
            .until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
            .await,
        ServerMessage::Ack { .. }
    ));
    one.share(
        reqwest::Method::POST,
        &owner,
        "tasks",
        doc_id,
        "editor",
        guest.user_id,
    )
    .await;

    // The guest works on node two: an edit is accepted (node two caches the model).
    let mut g = RawClient::hello(&two.ws_url(), &guest.access_token).await;
    g.send(&ClientMessage::Subscribe {
        sub_id: 1,
        scope: Scope::Collection {
            collection: "tasks".into(),
        },
        cursor: None,
    })
    .await;
    match g
        .until(|m| matches!(m, ServerMessage::Snapshot { .. }))
        .await
    {
        ServerMessage::Snapshot { docs, .. } => assert_eq!(
            docs.iter().map(|d| d.doc_id).collect::<Vec<_>>(),
            vec![doc_id]
        ),
        _ => unreachable!(),
    }
    let mut guest_doc = doc.fork().with_actor(ActorId::random());
    let mut push = |seq: u64, title: &str| ClientMessage::Push {
        mutations: vec![Mutation {
            mid: MutationId {
                client_id: g.client_id,
                seq,
            },
            doc_id,
            collection: "tasks".into(),
            payload: ByteBuf::from(task_change(&mut guest_doc, &[("title", s(title))])),
        }],
    };
    let first = push(1, "edited on node two");
    let second = push(2, "after the revoke");
    g.send(&first).await;
    assert!(matches!(
        g.until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
            .await,
        ServerMessage::Ack { .. }
    ));

    // Revoked through node one: node two evicts the document and refuses the next edit.
    one.share(
        reqwest::Method::DELETE,
        &owner,
        "tasks",
        doc_id,
        "editor",
        guest.user_id,
    )
    .await;
    assert_eq!(
        g.until(|m| matches!(m, ServerMessage::Evict { .. })).await,
        ServerMessage::Evict { doc_id }
    );
    g.send(&second).await;
    match g
        .until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
        .await
    {
        ServerMessage::Reject { code, .. } => {
            assert_eq!(code, syncline_protocol::ErrorCode::Forbidden)
        }
        other => panic!("expected the revoked guest's edit to be refused, got {other:?}"),
    }
}

/// A Ping is a barrier: its Pong comes after every change committed before the Ping, even one
/// committed on another node whose notification has not been acted on yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pong_follows_every_change_committed_before_the_ping() {
    let one = TestServer::start().await;
    let two = TestServer::start_on(one.database_url.clone()).await;
    let user = one.register("barrier@example.com").await;
    let mut reader = RawClient::hello(&two.ws_url(), &user.access_token).await;
    reader.subscribe(1, "tasks", None).await;
    let mut writer = RawClient::hello(&one.ws_url(), &user.access_token).await;
    for round in 1..=10u64 {
        push_new_task(&mut writer, round, "t").await;
        let acked = writer
            .until(|m| matches!(m, ServerMessage::Ack { .. }))
            .await;
        assert!(matches!(acked, ServerMessage::Ack { seq, .. } if seq == round));
        // Committed on node one; ask node two right away.
        reader.send(&ClientMessage::Ping { nonce: round }).await;
        match reader.message().await {
            ServerMessage::Change { seq, .. } => assert_eq!(seq, round),
            other => panic!("round {round}: expected the change before the pong, got {other:?}"),
        }
        assert_eq!(reader.message().await, ServerMessage::Pong { nonce: round });
    }
}
