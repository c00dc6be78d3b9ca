//! API keys: their format, hashing, and the SQL behind them.
//!
//! A key reads `sk_live_<public id>_<secret>`: 8 lowercase alphanumerics that find the row
//! (through `syncline_api_key`, before the org is known) and 32 random bytes in hex that prove
//! possession. Only the SHA-256 of the secret is stored. A fast unsalted hash is enough here,
//! unlike for passwords: 256 random bits cannot be guessed or looked up in a table, so a slow
//! hash would only add latency to every request.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::Rng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use super::principal::{Principal, PrincipalKind};
use crate::AppState;
use crate::db::begin_org;
use crate::error::ServerError;

/// What every API key starts with (`sk_`), told apart from JWTs in `Authorization: Bearer`.
pub const KEY_PREFIX_FAMILY: &str = "sk_";
/// The prefix of keys made by this server.
pub const KEY_PREFIX: &str = "sk_live_";
const PUBLIC_ID_LEN: usize = 8;
const SECRET_BYTES: usize = 32;

/// `last_used_at` is written at most this often per key, not on every request.
const TOUCH_INTERVAL_SECS: i64 = 60;

/// A new key: the plain text (shown once) and what is stored.
#[derive(Debug)]
pub struct NewKey {
    pub plain: String,
    pub public_id: String,
    pub secret_hash: Vec<u8>,
}

/// Makes a new random key.
pub fn generate() -> NewKey {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let public_id: String = (0..PUBLIC_ID_LEN)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect();
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret);
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    NewKey {
        plain: format!("{KEY_PREFIX}{public_id}_{secret}"),
        secret_hash: hash(&secret),
        public_id,
    }
}

fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// The public id and secret of a well-formed key.
fn parse(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (public_id, secret) = rest.split_once('_')?;
    let well_formed = public_id.len() == PUBLIC_ID_LEN
        && public_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && secret.len() == SECRET_BYTES * 2
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some((public_id, secret))
}

/// Equality that takes the same time wherever the first difference is, so response times do
/// not reveal how much of a guessed secret's hash was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    org_id: Uuid,
    id: Uuid,
    user_id: Uuid,
    scopes: Vec<String>,
    secret_hash: Vec<u8>,
    last_used_at: Option<DateTime<Utc>>,
}

/// The principal of an API key, or 401: the key is malformed, unknown, revoked, or its user is
/// no longer a member of its org. Marks the key used (at most once a minute).
pub async fn authenticate(state: &AppState, key: &str) -> Result<Principal, ServerError> {
    let invalid = || ServerError::new(ErrorCode::Unauthenticated, "invalid or revoked API key");
    let (public_id, secret) = parse(key).ok_or_else(invalid)?;
    let row: Option<KeyRow> = sqlx::query_as("SELECT * FROM syncline_api_key($1)")
        .bind(public_id)
        .fetch_optional(&state.db)
        .await?;
    let row = row.ok_or_else(invalid)?;
    if !constant_time_eq(&hash(secret), &row.secret_hash) {
        return Err(invalid());
    }
    let acl = state.acl.get(&state.db, row.org_id).await?;
    if acl.role(row.user_id).is_none() {
        return Err(invalid());
    }
    let stale = row
        .last_used_at
        .is_none_or(|t| (Utc::now() - t).num_seconds() >= TOUCH_INTERVAL_SECS);
    if stale {
        touch(state, row.org_id, row.id).await?;
    }
    Ok(Principal {
        user_id: row.user_id,
        org_id: row.org_id,
        kind: PrincipalKind::ApiKey {
            key_id: row.id,
            scopes: Arc::from(row.scopes),
        },
    })
}

async fn touch(state: &AppState, org_id: Uuid, id: Uuid) -> Result<(), sqlx::Error> {
    let mut tx = begin_org(&state.db, org_id).await?;
    // The condition repeats the staleness check so concurrent requests write once.
    sqlx::query(
        "UPDATE api_keys SET last_used_at = now() WHERE org_id = $1 AND id = $2 \
         AND (last_used_at IS NULL OR last_used_at < now() - make_interval(secs => $3))",
    )
    .bind(org_id)
    .bind(id)
    .bind(TOUCH_INTERVAL_SECS as f64)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// An API key as listed (never its secret or hash).
#[derive(Debug, serde::Serialize, sqlx::FromRow)]
pub struct KeyInfo {
    pub id: Uuid,
    pub name: String,
    /// `sk_live_<public id>`: enough to recognise a key, useless to authenticate.
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The columns of a [`KeyInfo`]; the literal is [`KEY_PREFIX`] (checked by a test). A macro
/// so that queries are `concat!`-ed static strings.
macro_rules! info_columns {
    () => {
        "id, name, 'sk_live_' || public_id AS prefix, scopes, created_at, last_used_at, revoked_at"
    };
}

/// Stores a new key of `user_id` in `org_id`.
pub async fn insert(
    state: &AppState,
    org_id: Uuid,
    user_id: Uuid,
    name: &str,
    scopes: &[String],
    key: &NewKey,
) -> Result<KeyInfo, sqlx::Error> {
    let mut tx = begin_org(&state.db, org_id).await?;
    let info = sqlx::query_as(concat!(
        "INSERT INTO api_keys (org_id, id, public_id, user_id, name, scopes, secret_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING ",
        info_columns!()
    ))
    .bind(org_id)
    .bind(Uuid::now_v7())
    .bind(&key.public_id)
    .bind(user_id)
    .bind(name)
    .bind(scopes)
    .bind(&key.secret_hash)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(info)
}

/// The keys `user_id` made in `org_id`, newest first, revoked ones included.
pub async fn list(
    state: &AppState,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<KeyInfo>, sqlx::Error> {
    let mut tx = begin_org(&state.db, org_id).await?;
    let keys = sqlx::query_as(concat!(
        "SELECT ",
        info_columns!(),
        " FROM api_keys WHERE org_id = $1 AND user_id = $2 ORDER BY created_at DESC, id DESC"
    ))
    .bind(org_id)
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(keys)
}

/// Revokes a key of `user_id`; false when there is no such key (or it was revoked already).
pub async fn revoke(
    state: &AppState,
    org_id: Uuid,
    user_id: Uuid,
    id: Uuid,
) -> Result<bool, sqlx::Error> {
    let mut tx = begin_org(&state.db, org_id).await?;
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = now() \
         WHERE org_id = $1 AND user_id = $2 AND id = $3 AND revoked_at IS NULL",
    )
    .bind(org_id)
    .bind(user_id)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_hash_to_the_stored_hash() {
        let key = generate();
        assert!(key.plain.starts_with(KEY_PREFIX));
        let (public_id, secret) = parse(&key.plain).expect("well formed");
        assert_eq!(public_id, key.public_id);
        assert!(constant_time_eq(&hash(secret), &key.secret_hash));
        assert_ne!(generate().plain, key.plain);
    }

    #[test]
    fn listed_prefix_is_the_key_prefix() {
        assert!(info_columns!().contains(&format!("'{KEY_PREFIX}'")));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        let key = generate().plain;
        for bad in [
            "sk_live_",
            "sk_test_abcdefgh_00",
            &key[..key.len() - 1],
            &key.replace(KEY_PREFIX, "sk_live_X"),
            &format!("{key}0"),
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
