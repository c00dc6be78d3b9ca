//! The sync protocol end to end over real sockets against a real Postgres: pushes, acks,
//! rejections, idempotent retransmits, snapshots, resume from a cursor, live changes.

use automerge::{ActorId, AutoCommit};
use serde_bytes::ByteBuf;
use sync_server::testing::TestServer;
use sync_server::testing::changes::{raw_put, raw_puts, s, task_change};
use sync_server::testing::raw::RawClient;
use syncline_protocol::record::FieldValue;
use syncline_protocol::{ClientMessage, ErrorCode, Mutation, MutationId, ServerMessage};
use uuid::Uuid;

fn new_doc(client: &RawClient) -> AutoCommit {
    AutoCommit::new().with_actor(ActorId::from(client.client_id.as_bytes().as_slice()))
}

fn mutation(client_id: Uuid, seq: u64, doc_id: Uuid, payload: Vec<u8>) -> Mutation {
    Mutation {
        mid: MutationId { client_id, seq },
        doc_id,
        collection: "tasks".into(),
        payload: ByteBuf::from(payload),
    }
}

/// Pushes `(mutation seq, doc id, change)` triples and collects the replies.
async fn push(client: &mut RawClient, mutations: Vec<(u64, Uuid, Vec<u8>)>) -> Vec<ServerMessage> {
    let n = mutations.len();
    let mutations = mutations
        .into_iter()
        .map(|(seq, doc, payload)| mutation(client.client_id, seq, doc, payload))
        .collect();
    client.send(&ClientMessage::Push { mutations }).await;
    let mut replies = Vec::new();
    while replies.len() < n {
        let m = client.message().await;
        if matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }) {
            replies.push(m);
        }
    }
    replies
}

async fn subscribe(
    client: &mut RawClient,
    sub_id: u32,
    cursor: Option<u64>,
) -> (Vec<ServerMessage>, u64) {
    client.subscribe(sub_id, "tasks", cursor).await
}

async fn count(server: &TestServer, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(&server.db)
        .await
        .expect("count");
    n
}

#[tokio::test]
async fn pushed_task_is_merged_materialized_acked_and_broadcast() {
    let server = TestServer::start().await;
    let user = server.register("ada@example.com").await;
    let mut a = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let mut b = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let (_, cursor) = subscribe(&mut b, 1, None).await;
    assert_eq!(cursor, 0);

    let doc_id = Uuid::now_v7();
    let mut doc = new_doc(&a);
    let change = task_change(
        &mut doc,
        &[
            ("title", s("Write spec")),
            ("status", s("todo")),
            ("priority", s("high")),
        ],
    );
    let replies = push(&mut a, vec![(1, doc_id, change.clone())]).await;
    assert_eq!(
        replies,
        vec![ServerMessage::Ack {
            mid: MutationId {
                client_id: a.client_id,
                seq: 1
            },
            seq: 1
        }]
    );

    let (title, status, priority, created_by): (String, String, Option<String>, Uuid) =
        sqlx::query_as("SELECT title, status, priority, created_by FROM tasks WHERE id = $1")
            .bind(doc_id)
            .fetch_one(&server.db)
            .await
            .expect("task row");
    assert_eq!(
        (
            title.as_str(),
            status.as_str(),
            priority.as_deref(),
            created_by
        ),
        ("Write spec", "todo", Some("high"), user.user_id)
    );

    match b.until(|m| matches!(m, ServerMessage::Change { .. })).await {
        ServerMessage::Change {
            seq,
            doc_id: d,
            payload,
            mid,
            ..
        } => {
            assert_eq!(
                (seq, d, payload.into_vec(), mid),
                (
                    1,
                    doc_id,
                    change,
                    Some(MutationId {
                        client_id: a.client_id,
                        seq: 1
                    })
                )
            );
        }
        _ => unreachable!(),
    }

    // An update merges into the stored document.
    let update = task_change(&mut doc, &[("status", s("done"))]);
    let replies = push(&mut a, vec![(2, doc_id, update)]).await;
    assert!(
        matches!(replies[0], ServerMessage::Ack { seq: 2, .. }),
        "{replies:?}"
    );
    let (status,): (String,) = sqlx::query_as("SELECT status FROM tasks WHERE id = $1")
        .bind(doc_id)
        .fetch_one(&server.db)
        .await
        .expect("task row");
    assert_eq!(status, "done");
}

#[tokio::test]
async fn retransmitted_mutations_are_acked_again_but_applied_once() {
    let server = TestServer::start().await;
    let user = server.register("retry@example.com").await;
    let client_id = Uuid::now_v7();
    let mut a = RawClient::hello_as(&server.ws_url(), &user.access_token, client_id).await;
    let doc_id = Uuid::now_v7();
    let mut doc = new_doc(&a);
    let good = task_change(&mut doc, &[("title", s("once")), ("status", s("todo"))]);
    let mut bad_doc = new_doc(&a);
    let bad = task_change(&mut bad_doc, &[("title", s("bad"))]); // no status: rejected

    let first = push(
        &mut a,
        vec![(1, doc_id, good.clone()), (2, Uuid::now_v7(), bad.clone())],
    )
    .await;
    // The same push again on the same connection, then on a new connection of the same client.
    let second = push(
        &mut a,
        vec![(1, doc_id, good.clone()), (2, Uuid::now_v7(), bad.clone())],
    )
    .await;
    drop(a);
    let mut again = RawClient::hello_as(&server.ws_url(), &user.access_token, client_id).await;
    let third = push(
        &mut again,
        vec![(1, doc_id, good), (2, Uuid::now_v7(), bad)],
    )
    .await;

    assert!(
        matches!(first[0], ServerMessage::Ack { seq: 1, .. }),
        "{first:?}"
    );
    assert!(
        matches!(
            &first[1],
            ServerMessage::Reject {
                code: ErrorCode::MissingRequiredField,
                ..
            }
        ),
        "{first:?}"
    );
    assert_eq!(first, second);
    assert_eq!(first, third);
    assert_eq!(count(&server, "SELECT count(*) FROM change_log").await, 1);
    assert_eq!(count(&server, "SELECT count(*) FROM tasks").await, 1);
    assert_eq!(count(&server, "SELECT count(*) FROM documents").await, 1);
}

#[tokio::test]
async fn invalid_values_are_rejected_with_codes_and_never_stored() {
    let server = TestServer::start().await;
    let user = server.register("strict@example.com").await;
    let mut a = RawClient::hello(&server.ws_url(), &user.access_token).await;

    // Each case: a fresh document whose only change is invalid.
    let mut cases: Vec<(ErrorCode, Vec<u8>)> = Vec::new();
    let mut d = new_doc(&a);
    cases.push((
        ErrorCode::InvalidEnumValue,
        raw_puts(
            &mut d,
            &[("title", "t".into()), ("status", "someday".into())],
        ),
    ));
    let mut d = new_doc(&a);
    cases.push((
        ErrorCode::MissingRequiredField,
        raw_put(&mut d, "status", "todo"),
    ));
    let mut d = new_doc(&a);
    cases.push((
        ErrorCode::InvalidFieldType,
        raw_puts(
            &mut d,
            &[("status", "todo".into()), ("title", 42_i64.into())],
        ),
    ));
    let mut d = new_doc(&a);
    cases.push((
        ErrorCode::UnknownField,
        task_change_with_extra(&mut d, "colour"),
    ));
    let mut d = new_doc(&a);
    cases.push((
        ErrorCode::ServerOwnedField,
        task_change_with_extra(&mut d, "created_by"),
    ));
    cases.push((
        ErrorCode::InvalidChange,
        b"not an automerge change".to_vec(),
    ));

    for (i, (expected, payload)) in cases.into_iter().enumerate() {
        let replies = push(&mut a, vec![(i as u64 + 1, Uuid::now_v7(), payload)]).await;
        match &replies[0] {
            ServerMessage::Reject { code, .. } => assert_eq!(*code, expected, "case {i}"),
            other => panic!("case {i}: expected reject, got {other:?}"),
        }
    }
    // An update of a valid task to an invalid value leaves the stored task unchanged.
    let doc_id = Uuid::now_v7();
    let mut doc = new_doc(&a);
    let ok = task_change(&mut doc, &[("title", s("valid")), ("status", s("todo"))]);
    let invalid = raw_put(&mut doc, "status", "nope");
    let replies = push(&mut a, vec![(10, doc_id, ok), (11, doc_id, invalid)]).await;
    assert!(matches!(replies[0], ServerMessage::Ack { .. }));
    assert!(matches!(
        &replies[1],
        ServerMessage::Reject {
            code: ErrorCode::InvalidEnumValue,
            ..
        }
    ));

    assert_eq!(count(&server, "SELECT count(*) FROM tasks").await, 1);
    assert_eq!(count(&server, "SELECT count(*) FROM documents").await, 1);
    assert_eq!(count(&server, "SELECT count(*) FROM change_log").await, 1);
    assert_eq!(
        count(&server, "SELECT count(*) FROM tasks WHERE status = 'todo'").await,
        1
    );
    assert_eq!(
        count(&server, "SELECT count(*) FROM mutation_rejections").await,
        7
    );
}

fn task_change_with_extra(doc: &mut AutoCommit, key: &str) -> Vec<u8> {
    raw_puts(
        doc,
        &[
            ("title", "t".into()),
            ("status", "todo".into()),
            (key, Uuid::nil().to_string().into()),
        ],
    )
}

#[tokio::test]
async fn a_change_depending_on_a_rejected_change_is_rejected_too() {
    let server = TestServer::start().await;
    let user = server.register("deps@example.com").await;
    let mut a = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let doc_id = Uuid::now_v7();
    let mut doc = new_doc(&a);
    let base = task_change(&mut doc, &[("title", s("base")), ("status", s("todo"))]);
    let rejected = raw_put(&mut doc, "status", "bogus");
    let dependent = task_change(&mut doc, &[("status", s("done")), ("title", s("after"))]);
    let replies = push(
        &mut a,
        vec![
            (1, doc_id, base),
            (2, doc_id, rejected),
            (3, doc_id, dependent),
        ],
    )
    .await;
    assert!(matches!(replies[0], ServerMessage::Ack { .. }));
    assert!(matches!(
        &replies[1],
        ServerMessage::Reject {
            code: ErrorCode::InvalidEnumValue,
            ..
        }
    ));
    assert!(
        matches!(
            &replies[2],
            ServerMessage::Reject {
                code: ErrorCode::MissingDependency,
                ..
            }
        ),
        "{replies:?}"
    );
    let (title,): (String,) = sqlx::query_as("SELECT title FROM tasks WHERE id = $1")
        .bind(doc_id)
        .fetch_one(&server.db)
        .await
        .expect("row");
    assert_eq!(title, "base");
}

#[tokio::test]
async fn snapshot_then_live_and_resume_from_cursor() {
    let server = TestServer::start().await;
    let user = server.register("resume@example.com").await;
    let mut writer = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let mut docs = Vec::new();
    for i in 1..=5u64 {
        let doc_id = Uuid::now_v7();
        let mut doc = new_doc(&writer);
        let change = task_change(
            &mut doc,
            &[("title", s(&format!("task {i}"))), ("status", s("todo"))],
        );
        push(&mut writer, vec![(i, doc_id, change)]).await;
        docs.push(doc_id);
    }

    // A fresh subscriber gets the five documents as a snapshot, then Synced at seq 5.
    let mut fresh = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let (before, cursor) = subscribe(&mut fresh, 7, None).await;
    assert_eq!(cursor, 5);
    let snapshot_ids: Vec<Uuid> = before
        .iter()
        .flat_map(|m| match m {
            ServerMessage::Snapshot { sub_id: 7, docs } => {
                docs.iter().map(|d| d.doc_id).collect::<Vec<Uuid>>()
            }
            other => panic!("unexpected before synced: {other:?}"),
        })
        .collect();
    let mut expected = docs.clone();
    expected.sort();
    let mut got = snapshot_ids;
    got.sort();
    assert_eq!(got, expected);

    // A resuming subscriber gets exactly the changes after its cursor.
    let mut resumed = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let (before, cursor) = subscribe(&mut resumed, 1, Some(2)).await;
    let seqs: Vec<u64> = before
        .iter()
        .map(|m| match m {
            ServerMessage::Change { seq, .. } => *seq,
            other => panic!("unexpected before synced: {other:?}"),
        })
        .collect();
    assert_eq!((seqs, cursor), (vec![3, 4, 5], 5));

    // Both then receive a new change live.
    let mut doc = new_doc(&writer);
    let change = task_change(&mut doc, &[("title", s("live")), ("status", s("todo"))]);
    push(&mut writer, vec![(6, Uuid::now_v7(), change)]).await;
    for c in [&mut fresh, &mut resumed] {
        assert!(matches!(
            c.until(|m| matches!(m, ServerMessage::Change { .. })).await,
            ServerMessage::Change { seq: 6, .. }
        ));
    }
}

#[tokio::test]
async fn ping_reauth_and_token_expiry() {
    let server = TestServer::start().await;
    let user = server.register("expiry@example.com").await;
    let now = chrono::Utc::now().timestamp();
    let short = server.sign_token(user.user_id, user.org_id, now, now + 2);
    let mut c = RawClient::hello(&server.ws_url(), &short).await;
    c.send(&ClientMessage::Ping { nonce: 42 }).await;
    assert_eq!(c.message().await, ServerMessage::Pong { nonce: 42 });
    // Without renewal the server closes with the distinct token-expired code.
    assert_eq!(c.closed().await.0, 4002);

    // With renewal the connection outlives the first token.
    let now = chrono::Utc::now().timestamp();
    let short = server.sign_token(user.user_id, user.org_id, now, now + 2);
    let mut c = RawClient::hello(&server.ws_url(), &short).await;
    c.send(&ClientMessage::Reauth {
        token: user.access_token.clone(),
    })
    .await;
    assert!(matches!(c.message().await, ServerMessage::Reauthed { .. }));
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    c.send(&ClientMessage::Ping { nonce: 1 }).await;
    assert_eq!(c.message().await, ServerMessage::Pong { nonce: 1 });
}

#[tokio::test]
async fn typed_tasks_table_matches_the_protocol_schema() {
    use syncline_protocol::schema::{COLLECTIONS, FieldType};
    let server = TestServer::start().await;
    for schema in COLLECTIONS {
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name = $1",
        )
        .bind(schema.table)
        .fetch_all(&server.db)
        .await
        .expect("columns");
        let mut actual: Vec<(String, String)> = columns;
        actual.sort();
        let mut expected: Vec<(String, String)> = vec![
            ("id".into(), "uuid".into()),
            ("org_id".into(), "uuid".into()),
        ];
        for f in schema.fields {
            let ty = match f.ty {
                FieldType::String { .. } | FieldType::Enum(_) => "text",
                FieldType::Int => "bigint",
                FieldType::Bool => "boolean",
                FieldType::Timestamp => "timestamp with time zone",
                FieldType::Ref(_) => "uuid",
                FieldType::RefList(_) => "ARRAY",
            };
            expected.push((f.column.into(), ty.into()));
        }
        expected.sort();
        assert_eq!(
            actual, expected,
            "table {} drifted from its schema",
            schema.table
        );
    }
    let _ = FieldValue::Bool(true);
}
