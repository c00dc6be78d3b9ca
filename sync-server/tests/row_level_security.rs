//! Row-level security: the server's own connections (role `syncline_app`) see one org per
//! transaction even when a query forgets its org filter, and nothing without an org.

use automerge::{ActorId, AutoCommit};
use serde_bytes::ByteBuf;
use sync_server::db::begin_org;
use sync_server::testing::changes::{s, task_change};
use sync_server::testing::raw::RawClient;
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::{ClientMessage, Mutation, MutationId, ServerMessage};
use uuid::Uuid;

async fn create_tasks(server: &TestServer, user: &TestUser, titles: &[&str]) {
    let mut c = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let mutations = titles
        .iter()
        .enumerate()
        .map(|(i, title)| {
            let mut doc = AutoCommit::new().with_actor(ActorId::random());
            Mutation {
                mid: MutationId {
                    client_id: c.client_id,
                    seq: i as u64 + 1,
                },
                doc_id: Uuid::now_v7(),
                collection: "tasks".into(),
                payload: ByteBuf::from(task_change(
                    &mut doc,
                    &[("title", s(title)), ("status", s("todo"))],
                )),
            }
        })
        .collect();
    c.send(&ClientMessage::Push { mutations }).await;
    for _ in titles {
        assert!(matches!(
            c.until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
                .await,
            ServerMessage::Ack { .. }
        ));
    }
}

#[tokio::test]
async fn a_query_without_its_org_filter_still_sees_only_its_org() {
    let server = TestServer::start().await;
    let a = server.register("a@example.com").await;
    let b = server.register("b@example.com").await;
    create_tasks(&server, &a, &["a1", "a2"]).await;
    create_tasks(&server, &b, &["b1", "b2", "b3"]).await;
    let app = &server.state.db;

    // The server's connections act as a role that RLS applies to.
    let (user, bypass): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, rolbypassrls FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(app)
    .await
    .expect("role");
    assert_eq!((user.as_str(), bypass), ("syncline_app", false));

    // The "buggy" queries: no `WHERE org_id = ...`.
    let mut tx = begin_org(app, a.org_id).await.expect("begin");
    let titles: Vec<(String,)> = sqlx::query_as("SELECT title FROM tasks ORDER BY title")
        .fetch_all(&mut *tx)
        .await
        .expect("select");
    assert_eq!(
        titles.into_iter().map(|(t,)| t).collect::<Vec<_>>(),
        vec!["a1", "a2"]
    );
    for table in [
        "documents",
        "change_log",
        "org_members",
        "org_change_seq",
        "client_progress",
        "orgs",
    ] {
        let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE true"
        )))
        .fetch_one(&mut *tx)
        .await
        .expect("count");
        let (all,): (i64,) =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&server.db)
                .await
                .expect("count as owner");
        assert!(
            n < all,
            "{table}: org A sees {n} of {all} rows, so it sees another org's rows"
        );
    }
    // An unfiltered UPDATE touches only A's rows; writing B's org id is refused.
    let updated = sqlx::query("UPDATE tasks SET title = 'renamed'")
        .execute(&mut *tx)
        .await
        .expect("update")
        .rows_affected();
    assert_eq!(updated, 2);
    let smuggle = sqlx::query("UPDATE tasks SET org_id = $1")
        .bind(b.org_id)
        .execute(&mut *tx)
        .await;
    assert!(
        smuggle.is_err(),
        "moving rows into another org must fail the policy check"
    );
    drop(tx);

    // Without an org, nothing at all.
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM tasks")
        .fetch_one(app)
        .await
        .expect("count");
    assert_eq!(n, 0);

    // B's rows were untouched.
    let (b_titles,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM tasks WHERE org_id = $1 AND title LIKE 'b%'")
            .bind(b.org_id)
            .fetch_one(&server.db)
            .await
            .expect("count");
    assert_eq!(b_titles, 3);
}
