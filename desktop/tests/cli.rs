//! The README walkthrough, automated: two replicas of one account, a task added on one arrives
//! on the other, through the real binary, server and Postgres.

use std::path::Path;

use sync_server::testing::TestServer;

async fn cli(server: &TestServer, db: &Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncline-desktop"))
        .arg("--server")
        .arg(server.http_url(""))
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .await
        .expect("run syncline-desktop");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "syncline-desktop {args:?} failed: {}{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn a_task_added_on_one_replica_arrives_on_another() {
    let server = TestServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (laptop, phone) = (dir.path().join("laptop.db"), dir.path().join("phone.db"));

    cli(
        &server,
        &laptop,
        &["register", "ann@example.com", "long enough password"],
    )
    .await;
    cli(
        &server,
        &phone,
        &["login", "ann@example.com", "long enough password"],
    )
    .await;

    // Offline edits on the laptop, then one sync.
    cli(
        &server,
        &laptop,
        &["add", "Send the proposal", "--priority", "high"],
    )
    .await;
    let list = cli(&server, &laptop, &["list"]).await;
    let short_id = list.split_whitespace().next().expect("an id").to_owned();
    cli(
        &server,
        &laptop,
        &["set", &short_id, "status", "in_progress"],
    )
    .await;
    assert!(
        cli(&server, &laptop, &["status"])
            .await
            .contains("pending changes: 2")
    );
    cli(&server, &laptop, &["sync"]).await;
    assert!(
        cli(&server, &laptop, &["status"])
            .await
            .contains("pending changes: 0")
    );

    cli(&server, &phone, &["sync"]).await;
    let on_phone = cli(&server, &phone, &["list"]).await;
    assert!(on_phone.contains("Send the proposal"), "{on_phone}");
    assert!(
        on_phone.contains("in_progress") && on_phone.contains("high"),
        "{on_phone}"
    );

    // Bad input is refused locally with the protocol's code, and nothing is queued.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncline-desktop"))
        .arg("--db")
        .arg(&phone)
        .args(["set", &short_id, "status", "someday"])
        .output()
        .await
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("invalid_enum_value"));
    assert!(
        cli(&server, &phone, &["status"])
            .await
            .contains("pending changes: 0")
    );
}
