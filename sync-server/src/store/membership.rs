//! Org membership lookups.

use sqlx::PgPool;
use uuid::Uuid;

use crate::db::begin_org;

/// The user's role in the org, if the user is a member.
pub async fn role(db: &PgPool, org_id: Uuid, user_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    let mut tx = begin_org(db, org_id).await?;
    let row: Option<(String,)> =
        sqlx::query_as("SELECT role FROM org_members WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(row.map(|(r,)| r))
}
