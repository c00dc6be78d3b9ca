//! The real `syncline-server` binary, SIGKILLed between the commit of a change and the
//! delivery of its webhook, then started again on the same database: the receiver sees every
//! event at least once and, deduplicating on `webhook-id`, exactly once.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;
use sync_server::testing::fresh_database_url;
use tokio::process::{Child, Command};

use crate::common::{Receiver, verified_by_all};

/// Signs tokens across restarts (at least 32 bytes).
const JWT_SECRET: &str = "webhook-crash-test-secret-0123456789abcdef";

/// A `syncline-server` process.
struct ServerProcess {
    child: Child,
    base: String,
}

impl ServerProcess {
    async fn start(database_url: &str, workers: u32, dir: &Path) -> Self {
        // A free port: bound, read and released (the server binds it right after).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("server log");
        let child = Command::new(env!("CARGO_BIN_EXE_syncline-server"))
            .env("DATABASE_URL", database_url)
            .env("SYNCLINE_BIND", format!("127.0.0.1:{port}"))
            .env("SYNCLINE_DATA_DIR", dir)
            .env("SYNCLINE_JWT_SECRET", JWT_SECRET)
            .env("SYNCLINE_EFFECT_WORKERS", workers.to_string())
            .env("SYNCLINE_EFFECT_TIME_SCALE", "0.001")
            .env("SYNCLINE_WEBHOOK_ALLOW_PRIVATE", "true")
            .env("RUST_LOG", "warn,sync_server::webhooks=info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("start syncline-server");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..600 {
            if let Ok(r) = reqwest::get(format!("{}/health/live", server.base)).await
                && r.status().is_success()
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "syncline-server did not come up: {}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
    }

    /// SIGKILL: no shutdown code runs.
    async fn kill(mut self) {
        self.child.kill().await.expect("kill syncline-server");
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> Value {
        let mut request = reqwest::Client::new()
            .request(method, format!("{}{path}", self.base))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let body: Value = response.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }
}

/// Registers a user, makes an endpoint at `url`; returns the token and the secret.
async fn setup(server: &ServerProcess, url: &str) -> (String, String) {
    let registered = server
        .call(
            reqwest::Method::POST,
            "/auth/register",
            None,
            json!({"email": "owner@crash.hooks", "password": "correct horse battery staple", "display_name": "Owner"}),
        )
        .await;
    let token = registered["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let endpoint = server
        .call(
            reqwest::Method::POST,
            "/api/v1/webhooks/endpoints",
            Some(&token),
            json!({"url": url, "event_types": ["task.created"]}),
        )
        .await;
    let secret = endpoint["data"]["secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    (token, secret)
}

async fn create_task(server: &ServerProcess, token: &str, title: &str) {
    server
        .call(
            reqwest::Method::POST,
            "/api/v1/tasks",
            Some(token),
            json!({"title": title, "status": "todo"}),
        )
        .await;
}

/// Waits (up to 90 s) until every delivery in the database succeeded; returns how many.
async fn until_all_delivered(db: &PgPool, expected: i64) {
    for _ in 0..900 {
        let (done, all): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FROM webhook_deliveries",
        )
        .fetch_one(db)
        .await
        .expect("deliveries");
        if done == expected && all == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("deliveries never all succeeded");
}

/// Requests per webhook-id.
fn by_id(log: &[Value]) -> BTreeMap<String, Vec<&Value>> {
    let mut out: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for r in log {
        out.entry(r["webhook_id"].as_str().expect("webhook-id").to_owned())
            .or_default()
            .push(r);
    }
    out
}

#[tokio::test]
async fn killed_after_commit_before_any_attempt_each_event_arrives_once_after_restart() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database_url().await;
    // No workers: the changes commit (with their outbox jobs) and nothing is sent.
    let first = ServerProcess::start(&url, 0, dir.path()).await;
    let (token, secret) = setup(&first, &receiver.url("/hook")).await;
    receiver.configure(&[&secret], json!([])).await;
    for i in 0..3 {
        create_task(&first, &token, &format!("task {i}")).await;
    }
    first.kill().await;
    let db = PgPool::connect(&url).await.expect("connect");
    let (queued,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM effect_jobs WHERE handler = 'webhooks' AND status = 'pending'",
    )
    .fetch_one(&db)
    .await
    .expect("jobs");
    assert!(queued >= 3, "the outbox holds the events: {queued}");
    assert!(receiver.log().await.is_empty());

    let second = ServerProcess::start(&url, 2, dir.path()).await;
    until_all_delivered(&db, 3).await;
    let log = receiver.log().await;
    let ids = by_id(&log);
    assert_eq!(ids.len(), 3, "three events, three webhook-ids: {log:#?}");
    assert!(ids.values().all(|requests| requests.len() == 1), "{log:#?}");
    assert!(log.iter().all(verified_by_all));
    second.kill().await;
}

#[tokio::test]
async fn killed_while_a_delivery_is_in_flight_the_retry_reuses_the_webhook_id() {
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = fresh_database_url().await;
    let first = ServerProcess::start(&url, 2, dir.path()).await;
    let (token, secret) = setup(&first, &receiver.url("/hook")).await;
    // The first request is held: the server dies before it gets an answer.
    receiver
        .configure(&[&secret], json!([{"status": 200, "hold": 30}]))
        .await;
    create_task(&first, &token, "in flight").await;
    receiver
        .until("the first attempt", |log| log.len() == 1)
        .await;
    first.kill().await;

    let db = PgPool::connect(&url).await.expect("connect");
    let (running,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM webhook_deliveries WHERE status = 'running'")
            .fetch_one(&db)
            .await
            .expect("deliveries");
    assert_eq!(running, 1, "the dead process left its delivery running");

    // The new process gives the abandoned delivery back to the queue once the request timeout
    // plus a grace period has passed, and sends it again.
    let second = ServerProcess::start(&url, 2, dir.path()).await;
    until_all_delivered(&db, 1).await;
    let log = receiver.log().await;
    let ids = by_id(&log);
    assert_eq!(ids.len(), 1, "one event, one webhook-id: {log:#?}");
    let requests = ids.values().next().expect("requests");
    assert!(requests.len() >= 2, "sent again after the crash: {log:#?}");
    assert!(requests.iter().all(|r| r["body"] == requests[0]["body"]));
    assert!(log.iter().all(verified_by_all));
    // The delivery log shows the interrupted attempt, then the one that got through.
    let attempts: Vec<(i32, Option<i32>, Option<String>)> =
        sqlx::query_as("SELECT attempt, status_code, error FROM webhook_attempts ORDER BY attempt")
            .fetch_all(&db)
            .await
            .expect("attempts");
    assert_eq!(
        attempts.first(),
        Some(&(1, None, Some("the process sending it stopped".to_owned())))
    );
    assert_eq!(
        attempts.last().map(|a| a.1),
        Some(Some(200)),
        "{attempts:?}"
    );
    second.kill().await;
}
