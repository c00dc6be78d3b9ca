//! Fault injection for the deterministic simulation in `conflict-tests` (docs/testing.md): a
//! server process can be told to fail the next push's transaction just before it commits, as
//! when the database connection drops mid-transaction. Nothing in the server sets it; in
//! production it costs one atomic load per push.

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct Faults {
    fail_next_commit: AtomicBool,
}

impl Faults {
    /// Makes the next push on this process fail before its commit (the connection is closed
    /// with 1013 and nothing of the push is stored).
    pub fn fail_next_commit(&self) {
        self.fail_next_commit.store(true, Ordering::SeqCst);
    }

    /// Whether this commit must fail; disarms the fault.
    pub(crate) fn take_commit_failure(&self) -> bool {
        self.fail_next_commit.swap(false, Ordering::SeqCst)
    }
}
