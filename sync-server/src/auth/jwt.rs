//! Short-lived JWT access tokens (HS256). The claims name the user and the org the session acts
//! in; every request and sync connection verifies them.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use syncline_protocol::ErrorCode;
use uuid::Uuid;

use crate::error::ServerError;

const ISSUER: &str = "syncline";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    org: Uuid,
    iat: i64,
    exp: i64,
    iss: String,
}

/// A verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    pub user_id: Uuid,
    pub org_id: Uuid,
    /// Unix seconds.
    pub expires_at: i64,
}

/// Signing and verification keys plus token lifetimes.
pub struct AuthKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl std::fmt::Debug for AuthKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthKeys")
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

impl AuthKeys {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
        }
    }

    /// Issues an access token; returns it with its expiry (Unix seconds).
    pub fn issue_access(&self, user_id: Uuid, org_id: Uuid) -> Result<(String, i64), ServerError> {
        let now = chrono::Utc::now().timestamp();
        let exp = now + i64::try_from(self.access_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        self.sign(user_id, org_id, now, exp).map(|t| (t, exp))
    }

    /// Signs a token with explicit times (tests use it to mint expired tokens).
    pub fn sign(
        &self,
        user_id: Uuid,
        org_id: Uuid,
        iat: i64,
        exp: i64,
    ) -> Result<String, ServerError> {
        let claims = Claims {
            sub: user_id,
            org: org_id,
            iat,
            exp,
            iss: ISSUER.into(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ServerError::internal)
    }

    /// Verifies signature, issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<Session, ServerError> {
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(Session {
                user_id: data.claims.sub,
                org_id: data.claims.org,
                expires_at: data.claims.exp,
            }),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(ServerError::new(
                ErrorCode::TokenExpired,
                "access token expired",
            )),
            Err(_) => Err(ServerError::new(
                ErrorCode::Unauthenticated,
                "invalid access token",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> AuthKeys {
        AuthKeys::new(secret, Duration::from_secs(900), Duration::from_secs(86400))
    }

    #[test]
    fn issued_token_verifies() {
        let k = keys(b"secret-one-secret-one-secret-one");
        let (user, org) = (Uuid::now_v7(), Uuid::now_v7());
        let (token, exp) = k.issue_access(user, org).expect("issue");
        let s = k.verify(&token).expect("verify");
        assert_eq!((s.user_id, s.org_id, s.expires_at), (user, org, exp));
    }

    #[test]
    fn expired_forged_and_garbage_tokens_fail_with_distinct_codes() {
        let k = keys(b"secret-one-secret-one-secret-one");
        let now = chrono::Utc::now().timestamp();
        let expired = k
            .sign(Uuid::nil(), Uuid::nil(), now - 100, now - 10)
            .expect("sign");
        assert_eq!(
            k.verify(&expired).expect_err("expired").code,
            ErrorCode::TokenExpired
        );
        let forged = keys(b"another-secret-another-secret-xx")
            .issue_access(Uuid::nil(), Uuid::nil())
            .expect("sign")
            .0;
        assert_eq!(
            k.verify(&forged).expect_err("forged").code,
            ErrorCode::Unauthenticated
        );
        assert_eq!(
            k.verify("not.a.jwt").expect_err("garbage").code,
            ErrorCode::Unauthenticated
        );
    }
}
