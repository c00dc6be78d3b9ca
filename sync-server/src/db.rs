//! Connection pool and migrations.
//!
//! Migrations run as the role of the database URL (the schema owner). The server's own queries
//! run as `syncline_app` (every pooled connection does `SET ROLE syncline_app`), a role that
//! owns nothing, so PostgreSQL row-level security applies to it; each transaction names its org
//! with [`begin_org`]. See migrations/0004_row_level_security.sql.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, Executor, PgConnection, PgPool};
use uuid::Uuid;

use crate::store::Tx;

/// The forward-only migrations under `migrations/`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The role the server's queries run as (created by the migrations).
pub const APP_ROLE: &str = "syncline_app";

/// Brings the schema up to date, then opens the server's pool (as [`APP_ROLE`]).
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    let mut owner = PgConnection::connect(url).await?;
    MIGRATOR.run(&mut owner).await?;
    owner.close().await?;
    app_pool(url, max_connections).await
}

/// A pool whose connections act as [`APP_ROLE`], subject to row-level security.
pub async fn app_pool(url: &str, max_connections: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("SET ROLE syncline_app").await?;
                Ok(())
            })
        })
        .connect(url)
        .await
}

/// Begins a transaction that sees (and may write) the rows of one org only.
pub async fn begin_org(db: &PgPool, org_id: Uuid) -> Result<Tx<'static>, sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("SELECT set_config('app.org_id', $1, true)")
        .bind(org_id.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
