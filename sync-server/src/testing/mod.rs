//! Test support shared by integration tests, conflict-tests and benchmarks: a real server on
//! port 0 against a throwaway PostgreSQL database.
//!
//! One PostgreSQL cluster is started per test process (or `SYNCLINE_TEST_DATABASE_URL` names an
//! existing server, as a superuser URL); every [`TestServer`] gets a fresh database in it.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::app::{AppState, serve};
use crate::auth::AuthKeys;
use crate::db;
use crate::embedded_pg::{EmbeddedPostgres, Options};
use syncline_protocol::rules::OrgRole;

/// Secret the test servers sign tokens with (tests mint expired tokens with it).
pub const TEST_JWT_SECRET: &[u8] = b"syncline-test-secret-0123456789abcdef";

struct Cluster {
    admin_url: String,
    /// Keeps the embedded cluster (and its temporary directory) alive for the process.
    _embedded: Option<(EmbeddedPostgres, tempfile::TempDir)>,
}

static CLUSTER: OnceLock<Cluster> = OnceLock::new();

fn cluster() -> &'static Cluster {
    CLUSTER.get_or_init(|| {
        if let Ok(url) = std::env::var("SYNCLINE_TEST_DATABASE_URL") {
            return Cluster {
                admin_url: url,
                _embedded: None,
            };
        }
        let dir = tempfile::Builder::new()
            .prefix("syncline-test-pg-")
            .tempdir()
            .expect("create a temporary directory for the test cluster");
        // Throwaway: fsync off, data directory removed when the cluster stops.
        let pg = EmbeddedPostgres::start_with(dir.path(), Options::throwaway())
            .expect("start the test PostgreSQL cluster");
        Cluster {
            admin_url: pg.url("postgres"),
            _embedded: Some((pg, dir)),
        }
    })
}

/// Creates an empty database in the test cluster and returns its URL.
pub async fn fresh_database_url() -> String {
    let admin_url = tokio::task::spawn_blocking(|| cluster().admin_url.clone())
        .await
        .expect("cluster start panicked");
    let name = format!("syncline_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test cluster");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create test database");
    replace_database(&admin_url, &name)
}

/// The migrated template of [`fresh_migrated_database_url`], made once per process.
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// Creates a database that is already migrated, as a copy of a template migrated once per
/// process: much cheaper than migrating each database, for suites that start hundreds of
/// servers (the conflict-tests simulation).
pub async fn fresh_migrated_database_url() -> String {
    let template = TEMPLATE
        .get_or_init(|| async {
            let url = fresh_database_url().await;
            let pool = db::connect_and_migrate(&url, 2)
                .await
                .expect("migrate the template database");
            // A template must have no open connections when it is copied.
            pool.close().await;
            // `postgres://.../name?params` (the params may hold a socket path with slashes).
            url.split('?')
                .next()
                .and_then(|base| base.rsplit('/').next())
                .expect("database name in the url")
                .to_owned()
        })
        .await;
    let admin_url = tokio::task::spawn_blocking(|| cluster().admin_url.clone())
        .await
        .expect("cluster start panicked");
    let name = format!("syncline_test_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test cluster");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE {name} TEMPLATE {template}"
    )))
    .execute(&mut admin)
    .await
    .expect("create test database from the template");
    replace_database(&admin_url, &name)
}

fn replace_database(url: &str, db: &str) -> String {
    // URLs look like `postgres://user@host:port/dbname?params` or `postgres:///dbname?params`.
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let prefix_end = base.rfind('/').map_or(base.len(), |i| i + 1);
    let mut out = format!("{}{}", &base[..prefix_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Effect settings for tests: fast polling and retries, loopback webhook targets allowed, and
/// emails into a temporary mailbox folder.
pub fn test_effects() -> crate::effects::EffectsSettings {
    crate::effects::EffectsSettings {
        poll_interval: Duration::from_millis(50),
        time_scale: 0.001,
        webhook_allow_private: true,
        mailbox_dir: std::env::temp_dir().join(format!("syncline-mailbox-{}", Uuid::now_v7())),
        ..crate::effects::EffectsSettings::default()
    }
}

/// A registered user with a fresh session.
#[derive(Debug, Clone, Deserialize)]
pub struct TestUser {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub access_token: String,
    pub refresh_token: String,
}

/// A running server on `127.0.0.1:<random port>` with its own database.
pub struct TestServer {
    pub addr: SocketAddr,
    /// A pool of the database owner, for assertions across orgs (the server's own pool is
    /// `state.db`, subject to row-level security).
    pub db: PgPool,
    pub state: AppState,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    cluster: Option<crate::cluster::Cluster>,
    workers: Option<crate::effects::worker::Workers>,
    /// The effect settings it was started with, kept by [`Self::restart`].
    effects: crate::effects::EffectsSettings,
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl TestServer {
    /// Starts a server against a new, migrated database.
    pub async fn start() -> Self {
        let url = fresh_database_url().await;
        Self::start_on(url).await
    }

    /// Starts a server against an existing database (e.g. to restart one).
    pub async fn start_on(database_url: String) -> Self {
        Self::start_with(database_url, test_effects()).await
    }

    /// Starts a server against `database_url` with these effect settings.
    pub async fn start_with(
        database_url: String,
        effects: crate::effects::EffectsSettings,
    ) -> Self {
        Self::start_custom(database_url, effects, Vec::new()).await
    }

    /// Starts a server with these effect settings and, besides the server's own effect
    /// handlers, `extra` ones (tests of the outbox machinery).
    pub async fn start_custom(
        database_url: String,
        effects: crate::effects::EffectsSettings,
        extra: Vec<std::sync::Arc<dyn crate::effects::EffectHandler>>,
    ) -> Self {
        let pool = db::connect_and_migrate(&database_url, 16)
            .await
            .expect("connect and migrate");
        // Tests assert on every org's rows, so they read as the owner (RLS does not apply);
        // the server itself uses `pool`, whose connections act as `syncline_app`.
        let owner = sqlx::postgres::PgPoolOptions::new()
            .max_connections(4)
            .connect(&database_url)
            .await
            .expect("connect as owner");
        let keys = AuthKeys::new(
            TEST_JWT_SECRET,
            Duration::from_secs(900),
            Duration::from_secs(86_400),
        );
        let mut state = AppState::new(pool.clone(), keys).with_effects(effects.clone());
        if !extra.is_empty() {
            state.effect_handlers = state.effect_handlers.with(extra);
        }
        let cluster = crate::cluster::start(&state)
            .await
            .expect("start cross-process fan-out");
        let workers = crate::effects::worker::start(&state);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let serve_state = state.clone();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = rx.await;
            };
            if let Err(e) = serve(listener, serve_state, shutdown).await {
                tracing::error!(error = %e, "test server stopped with an error");
            }
        });
        Self {
            addr,
            db: owner,
            state,
            database_url,
            shutdown: Some(tx),
            task: Some(task),
            cluster: Some(cluster),
            workers: Some(workers),
            effects,
        }
    }

    /// Stops accepting and closes the server; open sync sessions end with 1013, as when the
    /// process shuts down.
    pub async fn stop(&mut self) {
        self.cluster.take();
        if let Some(mut workers) = self.workers.take() {
            workers.abort();
        }
        self.state.hub.shut_down();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops this server and starts a new one on the same database (a new port).
    pub async fn restart(mut self) -> Self {
        self.stop().await;
        Self::start_with(self.database_url.clone(), self.effects.clone()).await
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/sync", self.addr)
    }

    /// Registers a new user (and its org) through `POST /auth/register`.
    pub async fn register(&self, email: &str) -> TestUser {
        let response = reqwest::Client::new()
            .post(self.http_url("/auth/register"))
            .json(&serde_json::json!({
                "email": email,
                "password": "correct horse battery staple",
                "display_name": email,
            }))
            .send()
            .await
            .expect("register request");
        let status = response.status();
        let body = response.text().await.expect("register body");
        assert!(status.is_success(), "register failed: {status} {body}");
        serde_json::from_str(&body).expect("register response")
    }

    /// Calls a JSON endpoint with a bearer token; returns the status and the JSON body.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<serde_json::Value>,
    ) -> (reqwest::StatusCode, serde_json::Value) {
        let mut request = reqwest::Client::new()
            .request(method, self.http_url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("api request");
        let status = response.status();
        let text = response.text().await.expect("api body");
        let json = if text.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).expect("json body")
        };
        (status, json)
    }

    /// Invites `email` into `owner`'s org with `role`, registers that user and accepts the
    /// invitation; returns the new member with a session in `owner`'s org.
    pub async fn join(&self, owner: &TestUser, email: &str, role: &str) -> TestUser {
        let (status, invitation) = self
            .api(
                reqwest::Method::POST,
                &format!("/orgs/{}/invitations", owner.org_id),
                &owner.access_token,
                Some(serde_json::json!({ "email": email, "role": role })),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::CREATED, "{invitation}");
        let own = self.register(email).await;
        let (status, accepted) = self
            .api(
                reqwest::Method::POST,
                "/invitations/accept",
                &own.access_token,
                Some(serde_json::json!({ "token": invitation["token"] })),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::OK, "{accepted}");
        TestUser {
            user_id: own.user_id,
            org_id: owner.org_id,
            access_token: accepted["access_token"]
                .as_str()
                .expect("access token")
                .to_owned(),
            refresh_token: accepted["refresh_token"]
                .as_str()
                .expect("refresh token")
                .to_owned(),
        }
    }

    /// Grants (`POST`) or revokes (`DELETE`) `relation` on a document to a user.
    pub async fn share(
        &self,
        method: reqwest::Method,
        by: &TestUser,
        collection: &str,
        doc: Uuid,
        relation: &str,
        to: Uuid,
    ) {
        let (status, body) = self
            .api(
                method,
                &format!("/orgs/{}/shares", by.org_id),
                &by.access_token,
                Some(serde_json::json!({
                    "object_type": collection,
                    "object_id": doc,
                    "relation": relation,
                    "subject": { "type": "user", "id": to },
                })),
            )
            .await;
        assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "{body}");
    }

    /// Creates an org whose members have these roles (the first should be `owner`) directly in
    /// the database, with sessions signed by the server's keys: no password hashing and no
    /// HTTP, for simulations that set up many orgs. The users have no password (they cannot
    /// log in); everything else about them is real.
    pub async fn seed_org(&self, name: &str, roles: &[OrgRole]) -> Vec<TestUser> {
        let org_id = Uuid::now_v7();
        let mut tx = self.db.begin().await.expect("begin");
        sqlx::query("INSERT INTO orgs (id, name) VALUES ($1, $2)")
            .bind(org_id)
            .bind(name)
            .execute(&mut *tx)
            .await
            .expect("insert org");
        sqlx::query("INSERT INTO org_change_seq (org_id, last_seq) VALUES ($1, 0)")
            .bind(org_id)
            .execute(&mut *tx)
            .await
            .expect("insert org seq");
        let now = chrono::Utc::now().timestamp();
        let mut users = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            let user_id = Uuid::now_v7();
            sqlx::query(
                "INSERT INTO users (id, email, display_name, password_hash) VALUES ($1, $2, $3, '!')",
            )
            .bind(user_id)
            .bind(format!("{}-{i}@{org_id}.test", role.as_str()))
            .bind(format!("{name} {i}"))
            .execute(&mut *tx)
            .await
            .expect("insert user");
            sqlx::query("INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, $3)")
                .bind(org_id)
                .bind(user_id)
                .bind(role.as_str())
                .execute(&mut *tx)
                .await
                .expect("insert member");
            users.push(TestUser {
                user_id,
                org_id,
                access_token: self.sign_token(user_id, org_id, now, now + 86_400),
                refresh_token: String::new(),
            });
        }
        tx.commit().await.expect("commit org");
        users
    }

    /// Signs an access token directly (e.g. an expired one).
    pub fn sign_token(&self, user_id: Uuid, org_id: Uuid, iat: i64, exp: i64) -> String {
        self.state
            .keys
            .sign(user_id, org_id, iat, exp)
            .expect("sign")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A protocol-level WebSocket client for tests: sends exactly the frames it is told to.
pub mod raw {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use syncline_protocol::{
        ClientMessage, PROTOCOL_VERSION, ServerMessage, decode_server_frame, encode,
    };
    use tokio::net::TcpStream;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
    use uuid::Uuid;

    /// How long [`RawClient::recv`] waits before failing the test.
    pub const RECV_TIMEOUT: Duration = Duration::from_secs(15);

    /// What arrived.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Received {
        Message(ServerMessage),
        /// The server closed, with its close code and reason.
        Closed(Option<(u16, String)>),
    }

    pub struct RawClient {
        ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
        pub client_id: Uuid,
        /// Number of the last server frame received; every test checks the numbering.
        frames: u64,
    }

    impl std::fmt::Debug for RawClient {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RawClient")
                .field("client_id", &self.client_id)
                .finish_non_exhaustive()
        }
    }

    impl RawClient {
        pub async fn connect(url: &str) -> Self {
            let (ws, _) = connect_async(url).await.expect("websocket connect");
            Self {
                ws,
                client_id: Uuid::now_v7(),
                frames: 0,
            }
        }

        /// Connects, says hello and expects `Welcome`.
        pub async fn hello(url: &str, token: &str) -> Self {
            Self::hello_as(url, token, Uuid::now_v7()).await
        }

        pub async fn hello_as(url: &str, token: &str, client_id: Uuid) -> Self {
            let mut c = Self::connect(url).await;
            c.client_id = client_id;
            c.send(&ClientMessage::Hello {
                protocol_version: PROTOCOL_VERSION,
                token: token.into(),
                client_id,
            })
            .await;
            match c.recv().await {
                Received::Message(ServerMessage::Welcome { .. }) => c,
                other => panic!("expected welcome, got {other:?}"),
            }
        }

        pub async fn send(&mut self, message: &ClientMessage) {
            self.send_bytes(encode(message).expect("encode")).await;
        }

        pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
            self.ws
                .send(Message::Binary(bytes.into()))
                .await
                .expect("send frame");
        }

        pub async fn send_text(&mut self, text: &str) {
            self.ws
                .send(Message::Text(text.into()))
                .await
                .expect("send text frame");
        }

        /// The next protocol message or the close; panics after [`RECV_TIMEOUT`].
        pub async fn recv(&mut self) -> Received {
            loop {
                let next = tokio::time::timeout(RECV_TIMEOUT, self.ws.next())
                    .await
                    .expect("timed out waiting for the server");
                match next {
                    None | Some(Err(_)) => return Received::Closed(None),
                    Some(Ok(Message::Binary(b))) => {
                        let (n, message) =
                            decode_server_frame(&b).expect("server sent an undecodable frame");
                        assert_eq!(
                            n,
                            self.frames + 1,
                            "server frames must be numbered 1, 2, 3, ...: got {message:?}"
                        );
                        self.frames = n;
                        return Received::Message(message);
                    }
                    Some(Ok(Message::Close(frame))) => {
                        return Received::Closed(
                            frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                        );
                    }
                    Some(Ok(_)) => {}
                }
            }
        }

        /// The next message, panicking on close.
        pub async fn message(&mut self) -> ServerMessage {
            match self.recv().await {
                Received::Message(m) => m,
                Received::Closed(c) => panic!("connection closed: {c:?}"),
            }
        }

        /// Skips messages until one matches.
        pub async fn until(
            &mut self,
            mut pred: impl FnMut(&ServerMessage) -> bool,
        ) -> ServerMessage {
            loop {
                let m = self.message().await;
                if pred(&m) {
                    return m;
                }
            }
        }

        /// Subscribes to a collection and reads up to its `Synced`; returns what came before
        /// it (snapshots, changes, replies) and the cursor.
        pub async fn subscribe(
            &mut self,
            sub_id: u32,
            collection: &str,
            cursor: Option<u64>,
        ) -> (Vec<ServerMessage>, u64) {
            self.send(&ClientMessage::Subscribe {
                sub_id,
                scope: syncline_protocol::Scope::Collection {
                    collection: collection.into(),
                },
                cursor,
            })
            .await;
            let mut before = Vec::new();
            loop {
                match self.message().await {
                    ServerMessage::Synced { sub_id: s, cursor } if s == sub_id => {
                        return (before, cursor);
                    }
                    m => before.push(m),
                }
            }
        }

        /// Expects the server to close; returns the close code and reason.
        pub async fn closed(&mut self) -> (u16, String) {
            loop {
                match self.recv().await {
                    Received::Closed(Some(c)) => return c,
                    Received::Closed(None) => return (1006, String::new()),
                    Received::Message(_) => {}
                }
            }
        }
    }
}

/// Automerge changes for tests, made the way clients make them.
pub mod text;

pub mod changes {
    use automerge::AutoCommit;
    use automerge::transaction::Transactable;
    use syncline_protocol::record::{FieldValue, put_field};
    use syncline_protocol::schema::TASKS;

    /// Commits the given task field writes on `doc` and returns the change's bytes.
    pub fn task_change(doc: &mut AutoCommit, fields: &[(&str, Option<FieldValue>)]) -> Vec<u8> {
        try_task_change(doc, fields).expect("the writes change the document")
    }

    /// Like [`task_change`], but `None` when the writes change nothing (automerge makes no
    /// change when a field is set to the value it already has).
    pub fn try_task_change(
        doc: &mut AutoCommit,
        fields: &[(&str, Option<FieldValue>)],
    ) -> Option<Vec<u8>> {
        let before = doc.get_heads();
        for (name, value) in fields {
            put_field(doc, &TASKS, name, value.as_ref()).expect("valid test field");
        }
        doc.commit();
        if doc.get_heads() == before {
            return None;
        }
        Some(last_change(doc))
    }

    /// Commits the given field writes on a record of `schema` and returns the change's bytes.
    pub fn record_change(
        doc: &mut AutoCommit,
        schema: &syncline_protocol::schema::CollectionSchema,
        fields: &[(&str, Option<FieldValue>)],
    ) -> Vec<u8> {
        for (name, value) in fields {
            put_field(doc, schema, name, value.as_ref()).expect("valid test field");
        }
        last_change(doc)
    }

    /// Writes a raw value as one change (bypassing validation, as a hostile client could).
    pub fn raw_put(
        doc: &mut AutoCommit,
        key: &str,
        value: impl Into<automerge::ScalarValue>,
    ) -> Vec<u8> {
        raw_puts(doc, &[(key, value.into())])
    }

    /// Writes several raw values as one change.
    pub fn raw_puts(doc: &mut AutoCommit, values: &[(&str, automerge::ScalarValue)]) -> Vec<u8> {
        for (key, value) in values {
            doc.put(automerge::ROOT, *key, value.clone())
                .expect("raw put");
        }
        last_change(doc)
    }

    fn last_change(doc: &mut AutoCommit) -> Vec<u8> {
        doc.commit();
        doc.get_last_local_change()
            .expect("a local change")
            .raw_bytes()
            .to_vec()
    }

    pub fn s(v: &str) -> Option<FieldValue> {
        Some(FieldValue::String(v.into()))
    }
}
