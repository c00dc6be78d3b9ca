//! Hostile and broken input on the sync endpoint: each gets a clear close code or error, the
//! server keeps serving, and nothing is stored.

use automerge::{ActorId, AutoCommit};
use serde_bytes::ByteBuf;
use sync_server::testing::TestServer;
use sync_server::testing::changes::{s, task_change};
use sync_server::testing::raw::RawClient;
use syncline_protocol::{
    ClientMessage, ErrorCode, Mutation, MutationId, PROTOCOL_VERSION, Scope, ServerMessage,
};
use uuid::Uuid;

async fn hello_close(server: &TestServer, message: ClientMessage) -> (u16, String) {
    let mut c = RawClient::connect(&server.ws_url()).await;
    c.send(&message).await;
    c.closed().await
}

fn hello(token: &str) -> ClientMessage {
    ClientMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        token: token.into(),
        client_id: Uuid::now_v7(),
    }
}

async fn still_serves(server: &TestServer, token: &str) {
    let mut c = RawClient::hello(&server.ws_url(), token).await;
    c.send(&ClientMessage::Ping { nonce: 5 }).await;
    assert_eq!(c.message().await, ServerMessage::Pong { nonce: 5 });
}

#[tokio::test]
async fn handshake_failures_close_with_distinct_codes() {
    let server = TestServer::start().await;
    let user = server.register("eve@example.com").await;
    let now = chrono::Utc::now().timestamp();

    let expired = server.sign_token(user.user_id, user.org_id, now - 3600, now - 60);
    assert_eq!(hello_close(&server, hello(&expired)).await.0, 4002);

    let forged = {
        let keys = sync_server::auth::AuthKeys::new(
            b"not-the-server-secret-not-the-server",
            std::time::Duration::from_secs(60),
            std::time::Duration::from_secs(60),
        );
        keys.issue_access(user.user_id, user.org_id)
            .expect("sign")
            .0
    };
    assert_eq!(hello_close(&server, hello(&forged)).await.0, 4001);
    assert_eq!(hello_close(&server, hello("garbage")).await.0, 4001);

    // A valid signature for an org the user is not a member of.
    let foreign_org = server.sign_token(user.user_id, Uuid::now_v7(), now, now + 600);
    assert_eq!(hello_close(&server, hello(&foreign_org)).await.0, 4001);

    let wrong_version = ClientMessage::Hello {
        protocol_version: 99,
        token: user.access_token.clone(),
        client_id: Uuid::now_v7(),
    };
    assert_eq!(hello_close(&server, wrong_version).await.0, 4003);
    assert_eq!(
        hello_close(&server, ClientMessage::Ping { nonce: 1 })
            .await
            .0,
        4001
    );

    let mut c = RawClient::connect(&server.ws_url()).await;
    c.send_bytes(vec![0xff, 0x13, 0x37]).await;
    assert_eq!(c.closed().await.0, 4004);

    let mut c = RawClient::connect(&server.ws_url()).await;
    c.send_text("{\"type\":\"hello\"}").await;
    assert_eq!(c.closed().await.0, 1003);

    still_serves(&server, &user.access_token).await;
}

#[tokio::test]
async fn bad_frames_after_hello() {
    let server = TestServer::start().await;
    let user = server.register("mallory@example.com").await;

    // Unknown message type: an error message, and the connection stays usable.
    let mut c = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let mut frame = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![(
            ciborium::Value::Text("type".into()),
            ciborium::Value::Text("teleport".into()),
        )]),
        &mut frame,
    )
    .expect("cbor");
    c.send_bytes(frame).await;
    assert!(matches!(
        c.message().await,
        ServerMessage::Error {
            code: ErrorCode::UnknownMessageType,
            ..
        }
    ));
    // A known type with fields of the wrong shape.
    let mut frame = Vec::new();
    ciborium::into_writer(
        &ciborium::Value::Map(vec![
            (
                ciborium::Value::Text("type".into()),
                ciborium::Value::Text("push".into()),
            ),
            (
                ciborium::Value::Text("mutations".into()),
                ciborium::Value::Text("all of them".into()),
            ),
        ]),
        &mut frame,
    )
    .expect("cbor");
    c.send_bytes(frame).await;
    assert!(matches!(
        c.message().await,
        ServerMessage::Error {
            code: ErrorCode::MalformedFrame,
            ..
        }
    ));
    c.send(&ClientMessage::Subscribe {
        sub_id: 1,
        scope: Scope::Collection {
            collection: "spaceships".into(),
        },
        cursor: None,
    })
    .await;
    assert!(matches!(
        c.message().await,
        ServerMessage::Error {
            code: ErrorCode::UnknownCollection,
            ..
        }
    ));
    c.send(&ClientMessage::Ping { nonce: 2 }).await;
    assert_eq!(c.message().await, ServerMessage::Pong { nonce: 2 });

    // Garbage after hello closes this connection only.
    c.send_bytes(vec![0x1f, 0xff]).await;
    assert_eq!(c.closed().await.0, 4004);
    still_serves(&server, &user.access_token).await;

    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM change_log")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn another_orgs_document_cannot_be_changed_or_read() {
    let server = TestServer::start().await;
    let alice = server.register("alice@example.com").await;
    let bob = server.register("bob@example.com").await;
    assert_ne!(alice.org_id, bob.org_id);

    let mut a = RawClient::hello(&server.ws_url(), &alice.access_token).await;
    let doc_id = Uuid::now_v7();
    let mut doc = AutoCommit::new().with_actor(ActorId::from(a.client_id.as_bytes().as_slice()));
    let create = task_change(
        &mut doc,
        &[("title", s("alice's secret")), ("status", s("todo"))],
    );
    a.send(&ClientMessage::Push {
        mutations: vec![Mutation {
            mid: MutationId {
                client_id: a.client_id,
                seq: 1,
            },
            doc_id,
            collection: "tasks".into(),
            payload: ByteBuf::from(create),
        }],
    })
    .await;
    assert!(matches!(
        a.until(|m| matches!(m, ServerMessage::Ack { .. })).await,
        ServerMessage::Ack { .. }
    ));

    // Bob pushes a change for Alice's document id.
    let mut b = RawClient::hello(&server.ws_url(), &bob.access_token).await;
    let mut bobs = AutoCommit::new().with_actor(ActorId::from(b.client_id.as_bytes().as_slice()));
    let overwrite = task_change(&mut bobs, &[("title", s("pwned")), ("status", s("done"))]);
    b.send(&ClientMessage::Push {
        mutations: vec![Mutation {
            mid: MutationId {
                client_id: b.client_id,
                seq: 1,
            },
            doc_id,
            collection: "tasks".into(),
            payload: ByteBuf::from(overwrite),
        }],
    })
    .await;
    assert!(matches!(
        b.message().await,
        ServerMessage::Reject {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
    // Nor may he subscribe to it, and his collection snapshot is empty.
    b.send(&ClientMessage::Subscribe {
        sub_id: 1,
        scope: Scope::Document { doc_id },
        cursor: None,
    })
    .await;
    assert!(matches!(
        b.message().await,
        ServerMessage::Error {
            code: ErrorCode::Forbidden,
            ..
        }
    ));
    b.send(&ClientMessage::Subscribe {
        sub_id: 2,
        scope: Scope::Collection {
            collection: "tasks".into(),
        },
        cursor: Some(0),
    })
    .await;
    assert_eq!(
        b.message().await,
        ServerMessage::Synced {
            sub_id: 2,
            cursor: 0
        }
    );

    let (title, org): (String, Uuid) =
        sqlx::query_as("SELECT title, org_id FROM tasks WHERE id = $1")
            .bind(doc_id)
            .fetch_one(&server.db)
            .await
            .expect("row");
    assert_eq!((title.as_str(), org), ("alice's secret", alice.org_id));
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM change_log WHERE org_id = $1")
        .bind(bob.org_id)
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(n, 0);

    // A client id may not be borrowed by another user either.
    let mut c = RawClient::connect(&server.ws_url()).await;
    c.send(&ClientMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        token: bob.access_token.clone(),
        client_id: a.client_id,
    })
    .await;
    // Different org: the id is unknown there, so Bob may use it in his own org.
    assert!(matches!(c.message().await, ServerMessage::Welcome { .. }));
}

#[tokio::test]
async fn unknown_routes_methods_and_extractor_rejections_answer_with_the_error_envelope() {
    let server = TestServer::start().await;
    let user = server.register("routes@example.com").await;
    for (method, path, status, code) in [
        (reqwest::Method::GET, "/no/such/route", 404, "not_found"),
        (
            reqwest::Method::DELETE,
            "/auth/login",
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::PUT,
            "/health/live",
            405,
            "method_not_allowed",
        ),
        // Rejected by axum's path extractor before the handler runs.
        (
            reqwest::Method::GET,
            "/orgs/not-a-uuid/members",
            400,
            "invalid_input",
        ),
        // No JSON content type.
        (reqwest::Method::POST, "/auth/login", 400, "invalid_input"),
        // A query string axum's extractor cannot parse.
        (
            reqwest::Method::DELETE,
            "/orgs/01a201da-f66e-775e-89ed-b3044ec1d5a2/shares",
            400,
            "invalid_input",
        ),
    ] {
        let (got, body) = server
            .api(method.clone(), path, &user.access_token, None)
            .await;
        assert_eq!(got.as_u16(), status, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], code, "{method} {path}: {body}");
        assert!(body["error"]["correlationId"].is_string(), "{body}");
    }
}
