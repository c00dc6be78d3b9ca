//! The task dependency cycle check. Two offline clients can each add one edge of a cycle
//! (A depends on B, B depends on A); checked separately, both edges look fine. So the check
//! runs under a per-org advisory lock held until commit: the second transaction waits for the
//! first, then reads its committed edge and refuses its own.

use std::collections::HashMap;

use syncline_protocol::rules;
use uuid::Uuid;

use crate::store::Tx;

/// Whether `task` depending on `deps` closes a cycle, given the org's committed dependencies
/// overridden by `pending` (tasks changed earlier in this transaction).
pub async fn creates_cycle(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    task: Uuid,
    deps: &[Uuid],
    pending: &HashMap<Uuid, Vec<Uuid>>,
) -> Result<bool, sqlx::Error> {
    if deps.is_empty() {
        return Ok(false);
    }
    if deps.contains(&task) {
        return Ok(true);
    }
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('task_dependencies:' || $1::text, 0))",
    )
    .bind(org_id)
    .execute(&mut **tx)
    .await?;
    let rows: Vec<(Uuid, Vec<Uuid>)> = sqlx::query_as(
        "SELECT id, depends_on FROM tasks \
         WHERE org_id = $1 AND deleted_at IS NULL AND cardinality(depends_on) > 0",
    )
    .bind(org_id)
    .fetch_all(&mut **tx)
    .await?;
    let mut edges: HashMap<Uuid, Vec<Uuid>> = rows.into_iter().collect();
    for (id, deps) in pending {
        edges.insert(*id, deps.clone());
    }
    edges.remove(&task);
    Ok(rules::creates_cycle(task, deps, |t| {
        edges.get(&t).cloned().unwrap_or_default()
    }))
}
