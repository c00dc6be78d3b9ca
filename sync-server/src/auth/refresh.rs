//! Rotating refresh tokens.
//!
//! A token is 32 random bytes, base64url (no padding); only its SHA-256 is stored. Every login
//! starts a *family*; each refresh marks the presented token rotated and issues the next one of
//! the same family. A rotated token presented again means two parties hold the family (the
//! token was stolen, or the client replayed it), so the whole family is revoked and the
//! caller gets `refresh_token_reused`: whoever holds the newest token has to log in again.
//!
//! Rotation locks the token row (`SELECT ... FOR UPDATE`): of two concurrent refreshes with one
//! token, the second waits, then sees the token rotated and is treated as reuse.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use crate::error::ServerError;

/// Random bytes per token.
pub const TOKEN_BYTES: usize = 32;

/// Length of a well-formed token: base64url of [`TOKEN_BYTES`] without padding.
const TOKEN_LEN: usize = 43;

/// A new random token (base64url text).
pub fn generate() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored for a token: SHA-256 of its text. A fast hash is enough because the token is
/// 256 random bits, not a guessable secret.
pub fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn ttl_secs(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 4)
}

/// Stores a new token of `family_id` valid for `ttl` and returns its text. Runs on the
/// caller's connection so it joins the caller's transaction (registration is one transaction).
pub async fn issue(
    conn: &mut PgConnection,
    user_id: Uuid,
    org_id: Uuid,
    family_id: Uuid,
    ttl: Duration,
) -> Result<String, ServerError> {
    let token = generate();
    sqlx::query(
        "INSERT INTO refresh_tokens (id, family_id, user_id, org_id, token_hash, expires_at) \
         VALUES ($1, $2, $3, $4, $5, now() + $6::bigint * interval '1 second')",
    )
    .bind(Uuid::now_v7())
    .bind(family_id)
    .bind(user_id)
    .bind(org_id)
    .bind(digest(&token))
    .bind(ttl_secs(ttl))
    .execute(conn)
    .await?;
    Ok(token)
}

/// The session a rotation continues, with the family's next token.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub family_id: Uuid,
    pub refresh_token: String,
}

#[derive(sqlx::FromRow)]
struct Presented {
    id: Uuid,
    family_id: Uuid,
    user_id: Uuid,
    org_id: Uuid,
    rotated: bool,
    revoked: bool,
    expired: bool,
    member: bool,
}

fn invalid() -> ServerError {
    ServerError::new(
        ErrorCode::Unauthenticated,
        "invalid or expired refresh token",
    )
}

/// Exchanges `presented` for the next token of its family.
///
/// Errors: `refresh_token_reused` (the family is now revoked) for a token that was already
/// rotated; `unauthenticated` for an unknown, revoked or expired token, or one whose user has
/// left the org.
pub async fn rotate(db: &PgPool, presented: &str, ttl: Duration) -> Result<Rotated, ServerError> {
    // Our tokens all have one shape; anything else cannot match and needs no database trip.
    if presented.len() != TOKEN_LEN {
        return Err(invalid());
    }
    let mut tx = db.begin().await?;
    let row: Option<Presented> = sqlx::query_as(
        "SELECT rt.id, rt.family_id, rt.user_id, rt.org_id, \
                rt.rotated_at IS NOT NULL AS rotated, \
                rt.revoked_at IS NOT NULL AS revoked, \
                rt.expires_at <= now() AS expired, \
                syncline_is_member(rt.org_id, rt.user_id) AS member \
         FROM refresh_tokens rt WHERE rt.token_hash = $1 FOR UPDATE OF rt",
    )
    .bind(digest(presented))
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(invalid());
    };

    if row.rotated {
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = now() \
             WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(row.family_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        // The revocation must stick even though the request fails.
        tx.commit().await?;
        tracing::warn!(
            user_id = %row.user_id,
            family_id = %row.family_id,
            revoked,
            "rotated refresh token presented again; revoked its family"
        );
        return Err(ServerError::new(
            ErrorCode::RefreshTokenReused,
            "refresh token was already used; all sessions of this login are revoked",
        ));
    }
    if row.revoked || row.expired || !row.member {
        return Err(invalid());
    }

    sqlx::query("UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1")
        .bind(row.id)
        .execute(&mut *tx)
        .await?;
    let refresh_token = issue(&mut tx, row.user_id, row.org_id, row.family_id, ttl).await?;
    tx.commit().await?;
    Ok(Rotated {
        user_id: row.user_id,
        org_id: row.org_id,
        family_id: row.family_id,
        refresh_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_base64url_of_32_bytes() {
        let a = generate();
        let b = generate();
        assert_ne!(a, b);
        assert_eq!(a.len(), TOKEN_LEN);
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&a).expect("base64url").len(),
            TOKEN_BYTES
        );
        assert_eq!(digest(&a).len(), 32);
        assert_eq!(digest(&a), digest(&a.clone()));
        assert_ne!(digest(&a), digest(&b));
    }
}
