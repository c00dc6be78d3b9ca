//! argon2id password hashing (PHC strings, the `argon2` crate's defaults: 19 MiB, 2 passes,
//! 1 lane, the OWASP minimum). Hashing takes tens of milliseconds of CPU, so it runs on the
//! blocking pool, never on an async worker.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Argon2, password_hash};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

use crate::error::ServerError;

/// Hashes `password` with a fresh random salt; returns the PHC string to store.
pub async fn hash(password: String) -> Result<String, ServerError> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(ServerError::internal)?
}

/// Checks `password` against a stored PHC string. `Ok(false)` for a wrong password; an
/// unparsable stored hash is an internal error.
pub async fn verify(password: String, stored: String) -> Result<bool, ServerError> {
    tokio::task::spawn_blocking(move || verify_blocking(&password, &stored))
        .await
        .map_err(ServerError::internal)?
}

/// Spends the time of a real verification against a hash of nothing, so that a login for an
/// unknown email takes as long as one with a wrong password (no account enumeration by timing).
pub async fn verify_dummy(password: String) -> Result<(), ServerError> {
    tokio::task::spawn_blocking(move || {
        let stored = dummy_hash()?;
        verify_blocking(&password, stored).map(|_| ())
    })
    .await
    .map_err(ServerError::internal)?
}

fn hash_blocking(password: &str) -> Result<String, ServerError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(argon2_error)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(argon2_error)
}

fn verify_blocking(password: &str, stored: &str) -> Result<bool, ServerError> {
    let parsed = PasswordHash::new(stored).map_err(argon2_error)?;
    // The parameters come from the stored string, so hashes made with older settings still
    // verify.
    match Argon2::default().verify_password(password.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(password_hash::Error::Password) => Ok(false),
        Err(e) => Err(argon2_error(e)),
    }
}

/// `password_hash::Error` implements `std::error::Error` only with the crate's `std` feature,
/// which we don't enable; keep its text as the logged cause.
fn argon2_error(e: password_hash::Error) -> ServerError {
    ServerError::internal(format!("argon2: {e}"))
}

/// A hash of a random password with the current parameters, made once per process.
fn dummy_hash() -> Result<&'static str, ServerError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h);
    }
    let mut random = [0u8; 16];
    rand::rng().fill_bytes(&mut random);
    let made = hash_blocking(&URL_SAFE_NO_PAD.encode(random))?;
    Ok(DUMMY.get_or_init(|| made))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_only_the_same_password() {
        let h = hash("correct horse battery staple".into())
            .await
            .expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(
            verify("correct horse battery staple".into(), h.clone())
                .await
                .expect("verify")
        );
        assert!(
            !verify("correct horse battery stapler".into(), h.clone())
                .await
                .expect("verify")
        );
        let again = hash("correct horse battery staple".into())
            .await
            .expect("hash");
        assert_ne!(h, again, "salted");
    }

    #[tokio::test]
    async fn garbage_stored_hash_is_an_error_and_dummy_runs() {
        assert!(verify("x".into(), "not-a-phc-string".into()).await.is_err());
        verify_dummy("whatever".into())
            .await
            .expect("dummy verification");
    }
}
