//! Merging consecutive unsent updates of one text document before they are pushed.
//!
//! Typing offline, or faster than the connection drains, leaves one outbox entry per edit. A
//! run of consecutive entries that update the same text document is merged into one Yjs
//! update (`merge_updates_v1`) stored under the run's last seq; the others are deleted. Order
//! with everything else in the outbox is unchanged, since only adjacent entries merge.
//!
//! Only entries no connection ever carried are merged (above `Client::pushed_up_to`): the
//! server answers a mutation id it has seen without reading the payload again, so changing the
//! payload of a sent mutation could lose the added edits. Runs are bounded because merging many
//! updates at once is superlinear in yrs (DESIGN.md section 8).

use rusqlite::TransactionBehavior;
use syncline_protocol::schema;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::store::outbox::{self, OutboxEntry};

/// At most this many entries merge into one.
const MAX_RUN: usize = 256;
/// A run stops growing once its payloads reach this many bytes.
const MAX_RUN_BYTES: usize = 256 * 1024;

impl Client {
    /// Merges runs of never-pushed updates of the same text document (see the module header).
    pub(super) fn coalesce_unsent(&mut self) -> Result<()> {
        let after = self.sync.sent_up_to.max(self.pushed_up_to);
        // Called after every frame by transports: a plain read first, so that the usual case
        // (nothing to merge) takes no write lock.
        if !has_run(&outbox::after(&self.conn, after)?) {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        crate::client::refresh(&mut self.cache, &mut self.texts, &mut self.pending, &tx)?;
        let entries = outbox::after(&tx, after)?;
        let mut removed = 0u64;
        let mut start = 0;
        while start < entries.len() {
            let end = run_end(&entries, start);
            if end - start > 1 {
                let run = &entries[start..end];
                let merged = yrs::merge_updates_v1(run.iter().map(|e| e.payload.as_slice()))
                    .map_err(|e| ClientError::document(run[0].doc_id, e))?;
                for entry in &run[..run.len() - 1] {
                    outbox::remove(&tx, entry.seq)?;
                    removed += 1;
                }
                if let Some(last) = run.last() {
                    outbox::set_payload(&tx, last.seq, &merged)?;
                }
                tracing::debug!(doc_id = %run[0].doc_id, entries = run.len(), bytes = merged.len(), "unsent text updates merged");
            }
            start = end;
        }
        tx.commit()?;
        self.pending = self.pending.saturating_sub(removed);
        Ok(())
    }
}

/// Whether some run of `entries` has more than one entry: two neighbours that merge.
fn has_run(entries: &[OutboxEntry]) -> bool {
    entries.windows(2).any(|pair| run_end(pair, 0) == 2)
}

/// The end (exclusive) of the run of mergeable entries starting at `start`.
fn run_end(entries: &[OutboxEntry], start: usize) -> usize {
    let first = &entries[start];
    if schema::text_collection(&first.collection).is_none() {
        return start + 1;
    }
    let mut bytes = first.payload.len();
    let mut end = start + 1;
    while let Some(next) = entries.get(end) {
        if next.doc_id != first.doc_id
            || next.collection != first.collection
            || end - start >= MAX_RUN
            || bytes + next.payload.len() > MAX_RUN_BYTES
        {
            break;
        }
        bytes += next.payload.len();
        end += 1;
    }
    end
}
