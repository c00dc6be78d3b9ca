//! Acceptance test of the y-websocket endpoint with stock clients: Node processes running
//! `yjs` + `y-websocket`'s `WebsocketProvider` (conflict-tests/js/yjs-client.mjs, installed by
//! scripts/npm-ci.sh from its package-lock.json) edit a note body through `/yjs/{doc_id}`
//! concurrently with a client-core replica (the native client, on `/sync`); all converge to
//! the same text, which is what the server stored. A viewer's edit from a stock client is
//! refused (permission-denied message, close 4403) and reaches neither the replica nor the
//! store. Presence (awareness) crosses between the two endpoints.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use client_core::native::NativeClient;
use client_core::{SyncEvent, TextEvent};
use conflict_tests::harness::online;
use serde_json::{Value, json};
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::record::FieldValue;
use syncline_protocol::rules::OrgRole;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::broadcast;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Installs the harness's packages once per test process.
fn npm_ci() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/npm-ci.sh");
        let status = std::process::Command::new("bash")
            .arg(script)
            .status()
            .expect("run scripts/npm-ci.sh");
        assert!(status.success(), "scripts/npm-ci.sh failed: {status}");
    });
}

/// A stock Yjs client in a Node process.
struct JsClient {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next_id: u64,
    /// Events read while waiting for something else.
    events: Vec<Value>,
}

impl JsClient {
    async fn spawn(server: &TestServer, doc: Uuid, token: &str) -> Self {
        npm_ci();
        let mut child = Command::new("node")
            .arg(js_dir().join("yjs-client.mjs"))
            .args(["--url", &format!("ws://{}/yjs", server.addr)])
            .args(["--doc", &doc.to_string()])
            .args(["--token", token])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start node (is Node.js installed? scripts/npm-ci.sh installs it)");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        Self {
            child,
            stdin,
            lines: BufReader::new(stdout).lines(),
            next_id: 0,
            events: Vec::new(),
        }
    }

    async fn next_line(&mut self) -> Value {
        let line = tokio::time::timeout(WAIT, self.lines.next_line())
            .await
            .expect("the Node client answers in time")
            .expect("read the Node client's output")
            .expect("the Node client exited early");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    }

    /// Sends a command and returns its answer.
    async fn call(&mut self, mut command: Value) -> Value {
        self.next_id += 1;
        command["id"] = json!(self.next_id);
        let line = format!("{command}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to node");
        loop {
            let message = self.next_line().await;
            if message["id"] == json!(self.next_id) {
                assert!(message.get("error").is_none(), "{command}: {message}");
                return message;
            }
            self.events.push(message);
        }
    }

    /// Waits for an event (one already seen counts).
    async fn event(&mut self, name: &str) -> Value {
        if let Some(i) = self.events.iter().position(|e| e["event"] == name) {
            return self.events.remove(i);
        }
        loop {
            let message = self.next_line().await;
            if message["event"] == name {
                return message;
            }
            self.events.push(message);
        }
    }

    async fn synced(server: &TestServer, doc: Uuid, user: &TestUser) -> Self {
        Self::synced_with(server, doc, &user.access_token).await
    }

    async fn synced_with(server: &TestServer, doc: Uuid, token: &str) -> Self {
        let mut c = Self::spawn(server, doc, token).await;
        let answer = c
            .call(json!({"cmd": "wait_synced", "timeout_ms": 20000}))
            .await;
        assert_eq!(
            answer["ok"], true,
            "y-websocket never synced: {:?}",
            c.events
        );
        c
    }

    async fn text(&mut self) -> String {
        let answer = self.call(json!({"cmd": "read"})).await;
        answer["text"].as_str().expect("text").to_owned()
    }

    async fn insert(&mut self, paragraph: u32, at: u32, text: &str) {
        self.call(json!({"cmd": "insert", "paragraph": paragraph, "at": at, "text": text}))
            .await;
    }

    async fn close(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
    }
}

/// The body as the replica reads it.
fn replica_text(c: &NativeClient, id: Uuid) -> String {
    c.write(|c| c.note_body(id).plain_text())
        .expect("read the body")
}

/// Edits the replica's body (one pending mutation, pushed in the background).
fn replica_edit(
    c: &NativeClient,
    id: Uuid,
    f: impl FnOnce(&mut client_core::TextDoc<'_>) -> client_core::Result<Option<Vec<u8>>>,
) {
    c.write(|c| f(&mut c.note_body(id))).expect("edit the body");
}

async fn stored_text(server: &TestServer, doc_id: Uuid) -> String {
    let (text,): (String,) = sqlx::query_as("SELECT plain_text FROM text_documents WHERE id = $1")
        .bind(doc_id)
        .fetch_one(&server.db)
        .await
        .expect("the body is stored");
    text
}

/// Waits until the replica (with nothing left to push) and the Node client show the same text,
/// containing every one of `needles`.
async fn converge(rust: &NativeClient, id: Uuid, js: &mut JsClient, needles: &[String]) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        rust.wait_synced(WAIT)
            .await
            .expect("the replica pushed everything");
        let (ours, theirs) = (replica_text(rust, id), js.text().await);
        if ours == theirs && needles.iter().all(|n| ours.contains(n)) {
            return ours;
        }
        assert!(
            Instant::now() < deadline,
            "no convergence:\n rust: {ours:?}\n node: {theirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_yjs_clients_and_a_native_replica_converge_and_a_viewer_is_refused() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Member, OrgRole::Guest])
        .await;
    let (owner, member, guest) = (&users[0], &users[1], &users[2]);
    let dir = tempfile::tempdir().expect("tempdir");

    // The native replica creates the note and its first paragraph.
    let rust = online(&server, owner, &dir.path().join("owner.db"));
    rust.wait_synced(WAIT).await.expect("synced");
    let note = rust
        .create("notes", [("title", FieldValue::String("Interop".into()))])
        .expect("create the note");
    replica_edit(&rust, note, |b| b.insert_paragraph(0, "Hello world"));
    rust.wait_synced(WAIT).await.expect("synced");

    let mut js = JsClient::synced(&server, note, member).await;
    assert_eq!(js.text().await, "Hello world");

    // Concurrent edits: neither side waits for the other's before making its own; every third
    // round both insert at the same position. Words are inserted at word boundaries only, so
    // each stays whole whatever the merge order.
    let mut needles = Vec::new();
    for round in 0..12u32 {
        let (js_word, rust_word) = (format!("<j{round}>"), format!("<r{round}>"));
        js.insert(0, 0, &js_word).await;
        replica_edit(&rust, note, |b| {
            let at = if round % 3 == 0 {
                0
            } else {
                let text = b.plain_text()?;
                let first = text.split('\n').next().unwrap_or_default();
                u32::try_from(first.encode_utf16().count()).unwrap_or(0)
            };
            b.insert(at, &rust_word)
        });
        needles.extend([js_word, rust_word]);
    }
    js.call(json!({"cmd": "push_paragraph", "text": "from node"}))
        .await;
    replica_edit(&rust, note, |b| {
        let blocks = u32::try_from(b.plain_text()?.split('\n').count()).unwrap_or(1);
        b.insert_paragraph(blocks, "from rust")
    });
    needles.extend(["from node".to_owned(), "from rust".to_owned()]);

    let converged = converge(&rust, note, &mut js, &needles).await;
    assert_eq!(stored_text(&server, note).await, converged);
    let mut late = JsClient::synced(&server, note, owner).await;
    assert_eq!(
        late.text().await,
        converged,
        "a new stock client loads the same"
    );
    late.close().await;

    // Presence crosses endpoints: the replica's reaches the stock client, and back.
    let mut events = rust.events();
    let rust_presence = br#"{"user":"rust"}"#;
    let mut update = vec![1, 7, 1, u8::try_from(rust_presence.len()).expect("short")];
    update.extend_from_slice(rust_presence);
    assert!(rust.write(|c| c.send_awareness(note, update)));
    let deadline = Instant::now() + WAIT;
    loop {
        let states = js.call(json!({"cmd": "awareness_states"})).await;
        if states["states"]["7"] == json!({"user": "rust"}) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node never saw the replica: {states}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    js.call(json!({"cmd": "awareness", "state": {"user": "node"}}))
        .await;
    let heard = tokio::time::timeout(WAIT, async {
        loop {
            match events.recv().await {
                Ok(SyncEvent::Text(TextEvent::Awareness { doc_id, update }))
                    if doc_id == note && update.windows(15).any(|w| w == br#"{"user":"node"}"#) =>
                {
                    return;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    })
    .await;
    assert!(
        heard.is_ok(),
        "the replica never saw the stock client's presence"
    );

    // A viewer's stock client reads the body, but its edit is refused and goes nowhere.
    server
        .share(
            reqwest::Method::POST,
            owner,
            "notes",
            note,
            "viewer",
            guest.user_id,
        )
        .await;
    let mut viewer = JsClient::synced(&server, note, guest).await;
    assert_eq!(viewer.text().await, converged);
    viewer.insert(0, 0, "HACK").await;
    let denied = viewer.event("permission_denied").await;
    let reason = denied["reason"].as_str().expect("a reason");
    assert!(reason.contains("forbidden"), "{reason}");
    let closed = viewer.event("closed").await;
    assert_eq!(closed["code"], 4403, "{closed}");
    viewer.close().await;

    // The editors go on; the refused edit never reaches them or the store.
    js.insert(1, 0, "still live: ").await;
    needles.push("still live: ".to_owned());
    let after = converge(&rust, note, &mut js, &needles).await;
    assert!(!after.contains("HACK"), "{after}");
    assert_eq!(stored_text(&server, note).await, after);
    let first_paragraph = converged.split('\n').next().unwrap_or_default();
    assert!(after.starts_with(first_paragraph), "{after}");
    js.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_review_link_lets_a_stock_client_suggest_but_not_edit() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let owner = &users[0];
    let dir = tempfile::tempdir().expect("tempdir");
    let rust = online(&server, owner, &dir.path().join("owner.db"));
    rust.wait_synced(WAIT).await.expect("synced");
    let note = rust
        .create("notes", [("title", FieldValue::String("Offer".into()))])
        .expect("create the note");
    replica_edit(&rust, note, |b| b.insert_paragraph(0, "Pay in 30 days"));
    rust.wait_synced(WAIT).await.expect("synced");

    let (status, link) = server
        .api(
            reqwest::Method::POST,
            &format!("/v1/documents/{note}/review-links"),
            &owner.access_token,
            Some(json!({ "name": "Counsel" })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{link}");
    let token = link["token"].as_str().expect("token");
    let reviewer = link["reviewer_id"].as_str().expect("reviewer id");

    // The reviewer's stock editor suggests an insertion: the owner's replica shows it as the
    // reviewer's suggestion.
    let mut js = JsClient::synced_with(&server, note, token).await;
    assert_eq!(js.text().await, "Pay in 30 days");
    js.call(json!({"cmd": "suggest_insert", "paragraph": 0, "at": 7, "text": "within ", "author": reviewer}))
        .await;
    let deadline = Instant::now() + WAIT;
    while replica_text(&rust, note) != "Pay in within 30 days" {
        assert!(Instant::now() < deadline, "the suggestion never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let found = rust
        .write(|c| c.note_body(note).suggestions())
        .expect("suggestions");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].mark.author.to_string(), reviewer);

    // A real deletion is refused: the stock client is told, and the replica never sees it.
    js.call(json!({"cmd": "delete", "paragraph": 0, "at": 0, "len": 4}))
        .await;
    let denied = js.event("permission_denied").await;
    assert!(
        denied["reason"]
            .as_str()
            .is_some_and(|r| r.contains("forbidden")),
        "{denied}"
    );
    assert_eq!(js.event("closed").await["code"], 4403);
    js.close().await;
    rust.wait_synced(WAIT).await.expect("synced");
    assert_eq!(replica_text(&rust, note), "Pay in within 30 days");
    assert_eq!(stored_text(&server, note).await, "Pay in within 30 days");
}
