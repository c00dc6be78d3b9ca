//! The system under test: one embedded PostgreSQL cluster per benchmark run, with the server's
//! production settings (fsync and synchronous_commit on: `Options::default()`, never `fast`),
//! and a fresh database plus a real server on a loopback port per row.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use client_core::native::SyncConfig;
use sqlx::{Connection, PgConnection};
use sync_server::embedded_pg::{EmbeddedPostgres, Options};
use sync_server::testing::{TestServer, TestUser};
use uuid::Uuid;

pub struct Cluster {
    admin_url: String,
    pg: Option<EmbeddedPostgres>,
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// Starts a durable cluster in a temporary directory (blocking: call outside the runtime
    /// or in `spawn_blocking`).
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("syncline-bench-pg-")
            .tempdir()
            .context("create a temporary directory for the benchmark cluster")?;
        // Durable settings (fsync, synchronous_commit, full_page_writes on), like the real
        // server; only the directory is throwaway.
        let options = Options {
            fast: false,
            remove_data_dir_on_exit: true,
            bin_dirs: None,
        };
        let pg = EmbeddedPostgres::start_with(dir.path(), options)
            .context("start the benchmark PostgreSQL cluster")?;
        Ok(Self {
            admin_url: pg.url("postgres"),
            pg: Some(pg),
            _dir: Some(dir),
        })
    }

    /// Uses the cluster another benchmark process started (see [`Cluster::admin_url`]).
    pub fn attach(admin_url: String) -> Self {
        Self {
            admin_url,
            pg: None,
            _dir: None,
        }
    }

    /// The superuser URL, for a child process to [`Cluster::attach`] to.
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// PostgreSQL's version and the durability settings in force, for the report.
    pub async fn settings(&self) -> Result<String> {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .context("connect to the cluster")?;
        let mut out = Vec::new();
        for name in [
            "server_version",
            "fsync",
            "synchronous_commit",
            "full_page_writes",
            "wal_sync_method",
            "shared_buffers",
            "max_connections",
        ] {
            let (value,): (String,) = sqlx::query_as(sqlx::AssertSqlSafe(format!("SHOW {name}")))
                .fetch_one(&mut admin)
                .await
                .with_context(|| format!("SHOW {name}"))?;
            out.push(format!("{name}={value}"));
        }
        admin.close().await.ok();
        Ok(out.join(" "))
    }

    /// A fresh database with a server on `127.0.0.1:<port>`.
    pub async fn server(&self, row: &str) -> Result<TestServer> {
        let name = format!(
            "bench_{}_{}",
            row.replace('-', "_"),
            Uuid::new_v4().simple()
        );
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .context("connect to the cluster")?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .context("create the row's database")?;
        admin.close().await.ok();
        let url = replace_database(&self.admin_url, &name);
        Ok(TestServer::start_on(url).await)
    }

    pub fn stop(mut self) {
        if let Some(pg) = self.pg.take()
            && let Err(e) = pg.stop()
        {
            eprintln!("stopping the benchmark cluster: {e}");
        }
    }
}

/// Stops a row's server and closes its pools, so the next row starts from a quiet cluster.
pub async fn shutdown(mut server: TestServer) {
    server.stop().await;
    server.state.db.close().await;
    server.db.close().await;
}

fn replace_database(url: &str, db: &str) -> String {
    // `postgres:///postgres?host=...`: the database is the path after the last `/` before `?`.
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix_end = base.rfind('/').map_or(base.len(), |i| i + 1);
    let mut out = format!("{}{}", &base[..prefix_end], db);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Serves the same server (state, hub, database) on a second loopback port whose accepted
/// sockets have TCP_NODELAY (Linux copies it from the listening socket): a diagnostic that
/// shows what Nagle's algorithm on the server's sockets costs, without changing the server.
/// Returns the endpoint's URL and the sender that stops it.
pub async fn nodelay_endpoint(
    server: &TestServer,
) -> Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind port 0")?;
    nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::TcpNoDelay, &true)
        .context("TCP_NODELAY on the listening socket")?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = server.state.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = rx.await;
        };
        if let Err(e) = sync_server::app::serve(listener, state, shutdown).await {
            eprintln!("the TCP_NODELAY endpoint stopped: {e}");
        }
    });
    Ok((format!("ws://{addr}/sync"), tx))
}

/// Sync settings of the real clients: reconnect quickly if something drops.
pub fn sync_config(server: &TestServer, user: &TestUser) -> SyncConfig {
    sync_config_at(&server.ws_url(), user)
}

pub fn sync_config_at(url: &str, user: &TestUser) -> SyncConfig {
    let mut config = SyncConfig::new(url, user.access_token.clone());
    config.min_backoff = Duration::from_millis(50);
    config.max_backoff = Duration::from_secs(2);
    config
}

/// A replica file under `dir`.
pub fn replica(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.db"))
}
