//! Helpers shared by the email test binaries (`email.rs`, `email_e2e.rs`, `email_smtp.rs`),
//! included with `#[path]`: polling with a deadline, the mailbox folder's `.eml` files, and
//! clean-up of a test's mailbox.

#![allow(dead_code)] // each binary uses a different subset

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Polls `check` every 50 ms for up to 60 s (a guard against a hang, not a timing assertion).
pub async fn until<F, Fut, T>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..1200 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Removes a test's mailbox folder when the test ends (also when it fails).
pub struct Tidy(pub PathBuf);

impl Drop for Tidy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `.eml` files of a mailbox folder, sorted.
pub fn mailbox(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
