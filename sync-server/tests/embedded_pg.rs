//! The embedded PostgreSQL cluster: start, connect with sqlx, stop, restart on the same data
//! directory, and never outlive an owner that is killed with SIGKILL.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use sync_server::embedded_pg::{EmbeddedPostgres, Options};

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("syncline-pg-test-")
        .tempdir()
        .expect("tempdir")
}

fn fast() -> Options {
    Options {
        fast: true,
        ..Options::default()
    }
}

async fn setting(conn: &mut PgConnection, name: &'static str) -> String {
    sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("SHOW {name}")))
        .fetch_one(conn)
        .await
        .expect("SHOW")
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

fn process_alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

fn postmaster_pid(data_dir: &Path) -> i32 {
    let text =
        std::fs::read_to_string(data_dir.join("pgdata/postmaster.pid")).expect("postmaster.pid");
    text.lines()
        .next()
        .expect("pid line")
        .trim()
        .parse()
        .expect("pid")
}

#[tokio::test]
async fn starts_on_a_unix_socket_only_connects_and_stops() {
    let dir = temp_dir();
    let pg = EmbeddedPostgres::start_with(dir.path(), fast()).expect("start");
    let url = pg.url("postgres");
    assert!(url.starts_with("postgres:///postgres?host=/"), "{url}");

    let mut conn = PgConnection::connect(&url)
        .await
        .expect("connect over the socket");
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(user, "postgres");
    assert_eq!(setting(&mut conn, "listen_addresses").await, "");
    assert_eq!(setting(&mut conn, "fsync").await, "off");
    assert_eq!(setting(&mut conn, "server_encoding").await, "UTF8");
    conn.close().await.expect("close");

    let pid = postmaster_pid(dir.path());
    pg.stop().expect("stop");
    assert!(!process_alive(pid), "postgres exited");
    assert!(
        !dir.path().join("pgdata/postmaster.pid").exists(),
        "clean shutdown removes the pid file"
    );
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test]
async fn restart_reuses_the_data_directory_and_durable_defaults_keep_fsync_on() {
    let dir = temp_dir();
    {
        let pg = EmbeddedPostgres::start_with(dir.path(), Options::default()).expect("first start");
        let mut conn = PgConnection::connect(&pg.url("postgres"))
            .await
            .expect("connect");
        assert_eq!(
            setting(&mut conn, "fsync").await,
            "on",
            "durable by default"
        );
        sqlx::query("CREATE TABLE kept (v int)")
            .execute(&mut conn)
            .await
            .expect("create");
        sqlx::query("INSERT INTO kept VALUES (42)")
            .execute(&mut conn)
            .await
            .expect("insert");
        conn.close().await.expect("close");
        // Dropped here: stopped by Drop.
    }
    let pg = EmbeddedPostgres::start_with(dir.path(), fast()).expect("second start");
    let mut conn = PgConnection::connect(&pg.url("postgres"))
        .await
        .expect("reconnect");
    let v: i32 = sqlx::query_scalar("SELECT v FROM kept")
        .fetch_one(&mut conn)
        .await
        .expect("data survived");
    assert_eq!(v, 42);
    conn.close().await.expect("close");
    assert!(
        dir.path().join("postgres.log.1").is_file(),
        "the first run's log is kept"
    );
    drop(pg);
}

#[tokio::test]
async fn throwaway_cluster_removes_its_data_directory() {
    let parent = temp_dir();
    let data = parent.path().join("cluster");
    let pg = EmbeddedPostgres::start_with(&data, Options::throwaway()).expect("start");
    let mut conn = PgConnection::connect(&pg.url("postgres"))
        .await
        .expect("connect");
    sqlx::query("SELECT 1")
        .execute(&mut conn)
        .await
        .expect("query");
    conn.close().await.expect("close");
    pg.stop().expect("stop");
    assert!(!data.exists(), "data directory removed");
}

/// Env var naming the data directory for [`owner_process`].
const OWNER_DIR_ENV: &str = "SYNCLINE_TEST_PG_OWNER_DIR";

/// Not a test on its own: the process that owns a cluster in
/// [`cluster_does_not_outlive_a_killed_owner`]. It starts the cluster, writes a marker file,
/// and sleeps until it is killed.
#[test]
#[ignore = "helper process, run by cluster_does_not_outlive_a_killed_owner"]
fn owner_process() {
    let Some(dir) = std::env::var_os(OWNER_DIR_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let pg = EmbeddedPostgres::start_with(&dir.join("cluster"), fast()).expect("start");
    std::fs::write(dir.join("ready"), b"ready").expect("marker");
    std::thread::sleep(Duration::from_secs(600));
    drop(pg);
}

#[test]
fn cluster_does_not_outlive_a_killed_owner() {
    let dir = temp_dir();
    let mut owner = Command::new(std::env::current_exe().expect("current exe"))
        .args(["owner_process", "--exact", "--ignored", "--test-threads=1"])
        .env(OWNER_DIR_ENV, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the owner process");
    let ready = eventually(Duration::from_secs(120), || {
        dir.path().join("ready").exists()
    });
    if !ready {
        let _ = owner.kill();
        panic!("the owner process never started its cluster");
    }
    let cluster = dir.path().join("cluster");
    let pid = postmaster_pid(&cluster);
    assert!(process_alive(pid));

    owner.kill().expect("SIGKILL the owner");
    owner.wait().expect("reap the owner");

    assert!(
        eventually(Duration::from_secs(30), || !process_alive(pid)),
        "postgres {pid} must exit once its owner is gone"
    );
    assert!(
        !cluster.join("pgdata/postmaster.pid").exists(),
        "it shut down cleanly"
    );
}
