//! The signed-in session of a replica: tokens from the server's `/auth` endpoints, kept in a
//! JSON file next to the SQLite replica so later commands reuse them.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What `/auth/register`, `/auth/login` and `/auth/refresh` return, plus the server it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    #[serde(default)]
    pub server: String,
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub access_token: String,
    pub refresh_token: String,
}

/// `<replica>.session.json`.
pub fn session_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".session.json");
    PathBuf::from(name)
}

pub fn load(db: &Path) -> anyhow::Result<Session> {
    let path = session_path(db);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no session in {} (run `register` or `login` first)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))
}

pub fn save(db: &Path, session: &Session) -> anyhow::Result<()> {
    let path = session_path(db);
    std::fs::write(&path, serde_json::to_vec_pretty(session)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Calls one of the `/auth/*` endpoints and turns the error envelope into a readable error.
pub async fn call(server: &str, path: &str, body: serde_json::Value) -> anyhow::Result<Session> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let response = reqwest::Client::new()
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url} (is the server running?)"))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .context("reading the server's answer")?;
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let e = v.get("error")?;
                Some(format!(
                    "{}: {}",
                    e.get("code")?.as_str()?,
                    e.get("message")?.as_str()?
                ))
            })
            .unwrap_or(text);
        bail!("{path} failed ({status}): {message}");
    }
    let mut session: Session =
        serde_json::from_str(&text).context("unexpected answer from the server")?;
    session.server = server.trim_end_matches('/').to_owned();
    Ok(session)
}

/// Exchanges the refresh token for a fresh pair (rotation) and saves it.
pub async fn refresh(db: &Path, session: &Session) -> anyhow::Result<Session> {
    let fresh = call(
        &session.server,
        "/auth/refresh",
        serde_json::json!({ "refresh_token": session.refresh_token }),
    )
    .await?;
    save(db, &fresh)?;
    Ok(fresh)
}

/// The WebSocket URL of the sync endpoint for an `http(s)://` server URL.
pub fn sync_url(server: &str) -> String {
    let base = server.trim_end_matches('/');
    let ws = if let Some(rest) = base.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base.to_owned()
    };
    format!("{ws}/sync")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_url_follows_the_http_scheme() {
        assert_eq!(
            sync_url("http://127.0.0.1:8080/"),
            "ws://127.0.0.1:8080/sync"
        );
        assert_eq!(
            sync_url("https://sync.example.com"),
            "wss://sync.example.com/sync"
        );
        assert_eq!(
            session_path(Path::new("/tmp/a.db")),
            PathBuf::from("/tmp/a.db.session.json")
        );
    }
}
