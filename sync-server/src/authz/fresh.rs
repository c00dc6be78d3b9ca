//! A transaction of one org together with an authorization model at least as new as the org's
//! latest authorization change seen by that transaction.
//!
//! The model is never loaded while the transaction is open: loading takes a second pooled
//! connection, and with every pooled connection held by a writer waiting for that second one
//! (a cold cache under a burst of concurrent writes), the pool starves until its acquire
//! timeout. So a stale model means: end the transaction, load, begin again.

use std::sync::Arc;

use uuid::Uuid;

use super::OrgAcl;
use crate::AppState;
use crate::store::Tx;

/// Begins an org transaction and returns it with a model that includes every authorization
/// change up to the `acl_seq` visible in it.
pub async fn begin_with_acl(
    state: &AppState,
    org_id: Uuid,
) -> Result<(Tx<'static>, Arc<OrgAcl>), sqlx::Error> {
    let mut acl = state.acl.get(&state.db, org_id).await?;
    loop {
        let mut tx = crate::db::begin_org(&state.db, org_id).await?;
        let acl_seq = super::cache::acl_seq(&mut tx, org_id).await?;
        if acl.loaded_seq >= acl_seq {
            return Ok((tx, acl));
        }
        // Rolled back: nothing was written yet.
        drop(tx);
        acl = state.acl.get_fresh(&state.db, org_id, acl_seq).await?;
    }
}
