//! Shared helpers: the Python receiver (scripts/webhook_receiver.py, verifying with the
//! `standardwebhooks` package from PyPI) and REST shortcuts.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sync_server::testing::{TestServer, TestUser};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The venv's python, after scripts/pytools.sh made sure `standardwebhooks` is installed
/// (once per test process; the script returns at once when it is in place).
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let status = std::process::Command::new("bash")
                .arg(root.join("scripts/pytools.sh"))
                .status()
                .expect("run scripts/pytools.sh");
            assert!(status.success(), "scripts/pytools.sh failed: {status}");
            let venv = std::env::var_os("SYNCLINE_PYTOOLS_VENV")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                        .join(".cache/syncline-pytools")
                });
            venv.join("bin/python")
        })
        .clone()
}

/// A running receiver; killed when dropped.
pub struct Receiver {
    _child: Child,
    pub port: u16,
}

impl Receiver {
    pub async fn start() -> Self {
        let python = tokio::task::spawn_blocking(python)
            .await
            .expect("install python tools");
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/webhook_receiver.py");
        let mut child = Command::new(python)
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start the webhook receiver");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("receiver's first line");
        let port = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected receiver output: {line:?}"));
        Self {
            _child: child,
            port,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sets the secrets to verify with and the answers to the next requests.
    pub async fn configure(&self, secrets: &[&str], plan: Value) {
        let response = reqwest::Client::new()
            .post(self.url("/_config"))
            .json(&json!({ "secrets": secrets, "plan": plan }))
            .send()
            .await
            .expect("configure the receiver");
        assert!(response.status().is_success());
    }

    /// Every request received so far, in arrival order.
    pub async fn log(&self) -> Vec<Value> {
        let log: Value = reqwest::Client::new()
            .get(self.url("/_log"))
            .send()
            .await
            .expect("receiver log")
            .json()
            .await
            .expect("receiver log json");
        log["requests"].as_array().cloned().unwrap_or_default()
    }

    /// The requests that arrived at `path`.
    pub async fn log_of(&self, path: &str) -> Vec<Value> {
        self.log()
            .await
            .into_iter()
            .filter(|r| r["path"] == path)
            .collect()
    }

    /// Waits (up to 90 s) until `done` holds for the log; returns the log.
    pub async fn until(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        for _ in 0..900 {
            let log = self.log().await;
            if done(&log) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("receiver never saw {what}: {:#?}", self.log().await);
    }
}

/// Creates an endpoint; returns its id and secret.
pub async fn create_endpoint(
    server: &TestServer,
    admin: &TestUser,
    url: &str,
    event_types: &[&str],
) -> (Uuid, String) {
    let (status, body) = server
        .api(
            Method::POST,
            "/api/v1/webhooks/endpoints",
            &admin.access_token,
            Some(json!({ "url": url, "event_types": event_types })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let id = body["data"]["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("endpoint id");
    let secret = body["data"]["secret"].as_str().expect("secret").to_owned();
    (id, secret)
}

/// Creates a task over REST; returns its id.
pub async fn create_task(server: &TestServer, user: &TestUser, fields: Value) -> Uuid {
    let mut body = json!({"title": "a task", "status": "todo"});
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(f.clone());
    }
    let (status, created) = server
        .api(
            Method::POST,
            "/api/v1/tasks",
            &user.access_token,
            Some(body),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("task id")
}

/// The endpoint's deliveries over REST, newest first.
pub async fn deliveries(server: &TestServer, admin: &TestUser, endpoint: Uuid) -> Vec<Value> {
    let (status, body) = server
        .api(
            Method::GET,
            &format!("/api/v1/webhooks/endpoints/{endpoint}/deliveries"),
            &admin.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// Waits (up to 90 s) until the endpoint has `count` deliveries, all with `status`.
pub async fn until_deliveries(
    server: &TestServer,
    admin: &TestUser,
    endpoint: Uuid,
    count: usize,
    status: &str,
) -> Vec<Value> {
    for _ in 0..900 {
        let rows = deliveries(server, admin, endpoint).await;
        if rows.len() == count && rows.iter().all(|r| r["status"] == status) {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "endpoint {endpoint} never had {count} {status} deliveries: {:#?}",
        deliveries(server, admin, endpoint).await
    );
}

/// Waits (up to 90 s) until no effect job of the org is pending or running.
pub async fn until_jobs_done(server: &TestServer, org: Uuid) {
    for _ in 0..900 {
        let (open,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM effect_jobs WHERE org_id = $1 AND status IN ('pending', 'running')",
        )
        .bind(org)
        .fetch_one(&server.db)
        .await
        .expect("jobs");
        if open == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("effect jobs of {org} never finished");
}

/// One delivery with its attempts, over REST.
pub async fn delivery(server: &TestServer, admin: &TestUser, id: &Value) -> Value {
    let id = id.as_str().expect("delivery id");
    let (status, body) = server
        .api(
            Method::GET,
            &format!("/api/v1/webhooks/deliveries/{id}"),
            &admin.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

/// Whether every signature secret verified this request.
pub fn verified_by_all(request: &Value) -> bool {
    request["verified"]
        .as_array()
        .is_some_and(|v| !v.is_empty() && v.iter().all(|b| b == true))
}
