//! `syncline-server`: runs the sync server.
//!
//! Configuration comes from the environment (see `sync_server::config`). Without
//! `DATABASE_URL` it starts a private PostgreSQL cluster under `<data dir>/postgres` and stops
//! it on exit. Stops gracefully on Ctrl-C or SIGTERM. Failures print one line and exit 1.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sync_server::app::{AppState, serve};
use sync_server::auth::AuthKeys;
use sync_server::config::Config;
use sync_server::db;
use sync_server::embedded_pg::EmbeddedPostgres;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// Connections the server's pool may open.
const POOL_SIZE: u32 = 32;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the context chain on one line: no backtrace, no "Caused by" block.
            eprintln!("syncline-server: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    let secret = config
        .jwt_secret()
        .context("loading the JWT signing secret")?;

    // Started before the async runtime (it blocks) and dropped after it, so PostgreSQL stops
    // only once every connection is closed.
    let (embedded, database_url) = match &config.database_url {
        Some(url) => (None, url.clone()),
        None => {
            let dir = config.postgres_dir();
            tracing::info!(dir = %dir.display(), "no DATABASE_URL: starting the embedded PostgreSQL");
            let pg = EmbeddedPostgres::start(&dir).with_context(|| {
                format!("starting the embedded PostgreSQL in {}", dir.display())
            })?;
            let url = pg.url("postgres");
            (Some(pg), url)
        }
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve_until_shutdown(&config, &database_url, secret));
    drop(runtime);
    if let Some(pg) = embedded {
        tracing::info!("stopping the embedded PostgreSQL");
        pg.stop().context("stopping the embedded PostgreSQL")?;
    }
    result
}

async fn serve_until_shutdown(
    config: &Config,
    database_url: &str,
    secret: Vec<u8>,
) -> anyhow::Result<()> {
    let pool: PgPool = db::connect_and_migrate(database_url, POOL_SIZE)
        .await
        .context("connecting to PostgreSQL and running migrations")?;
    let keys = AuthKeys::new(&secret, config.access_token_ttl, config.refresh_token_ttl);
    let effects = sync_server::effects::EffectsSettings::from_lookup(
        |k| std::env::var(k).ok(),
        &config.data_dir,
    )
    .context("invalid effects configuration")?;
    let state = AppState::new(pool.clone(), keys).with_effects(effects);
    state
        .rate_limits
        .set_per_minute(config.rate_limit_per_minute);
    // Live changes reach connections of other server processes on the same database.
    let cluster = sync_server::cluster::start(&state)
        .await
        .context("listening for changes of other server processes")?;

    // Effect workers: notifications, webhooks, ... of committed changes (see `effects`).
    let mut workers = sync_server::effects::worker::start(&state);

    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("binding {}", config.bind))?;
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    tracing::info!(%addr, "syncline-server listening");

    serve(listener, state.clone(), shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("shutting down");
    drop(cluster);
    // A job cut short stays `running` and is reaped (retried) by the next process.
    workers.abort();
    // Sync sessions outlive the HTTP server's graceful shutdown (upgraded connections are not
    // tracked): closing the hub ends each with 1013. Some may still hold database connections
    // for a moment; don't wait for them forever.
    state.hub.shut_down();
    if tokio::time::timeout(Duration::from_secs(10), pool.close())
        .await
        .is_err()
    {
        tracing::warn!("database connections still in use after 10s; closing anyway");
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
