//! A private PostgreSQL cluster started from the machine's binaries (API stub: being written).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedPgError {
    #[error("embedded PostgreSQL is not implemented yet")]
    NotImplemented,
}

/// A running private cluster; stopped on drop.
#[derive(Debug)]
pub struct EmbeddedPostgres {}

impl EmbeddedPostgres {
    /// Initializes (first time) and starts a cluster under `data_dir`; blocks until it accepts
    /// connections.
    pub fn start(_data_dir: &Path) -> Result<Self, EmbeddedPgError> {
        Err(EmbeddedPgError::NotImplemented)
    }

    /// A sqlx connection URL to `database` as the cluster's superuser, over its Unix socket.
    pub fn url(&self, database: &str) -> String {
        format!("postgres:///{database}")
    }
}
