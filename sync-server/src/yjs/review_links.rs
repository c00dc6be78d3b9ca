//! Review links: an editor lets someone outside the org suggest changes to one note or business
//! document through a stock y-websocket editor, without an account of their own.
//!
//! `POST /v1/documents/{doc_id}/review-links` (bearer token; the caller must be an editor or
//! owner of the document, which must have a text body), body `{"name"?: string,
//! "expires_in_hours"?: 1..=720}` (default 168), answers `201` with
//! `{"token", "reviewer_id", "expires_at", "path": "/yjs/{doc_id}"}`.
//!
//! What it does:
//! - Creates a reviewer user (no password: it cannot log in) named after `name`, adds it to the
//!   org as a guest and grants it `suggester` on the document, both through
//!   [`crate::authz::changes::apply`], so the reviewer is an ordinary subject of the
//!   authorization model: its suggestions carry its user id as their author, and revoking the
//!   share or removing the member ends the link (live sessions close with 4403 / 4401).
//! - Signs a review token: a JWT (HS256) with claims `sub` (reviewer), `org`, `doc`, `iat`, `exp`
//!   and issuer `syncline-review`, under a key derived from the server's signing secret (so it is
//!   no access token: `/sync` and the HTTP API refuse it). `/yjs/{doc_id}` accepts it as `token`
//!   for that one document only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use syncline_protocol::ErrorCode;
use syncline_protocol::rules::{OrgRole, Relation};
use syncline_protocol::schema;
use uuid::Uuid;

use crate::AppState;
use crate::auth::bearer::Bearer;
use crate::auth::routes::ApiJson;
use crate::auth::{AuthKeys, Session};
use crate::authz::changes::{self, AclChange, Share, SubjectRef};
use crate::error::{ServerError, ServerResult};

const ISSUER: &str = "syncline-review";
/// Default and longest lifetime of a review link, in hours.
const DEFAULT_HOURS: i64 = 7 * 24;
const MAX_HOURS: i64 = 30 * 24;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    org: Uuid,
    doc: Uuid,
    iat: i64,
    exp: i64,
    iss: String,
}

/// A verified review token: the reviewer's session and the one document it opens.
#[derive(Debug, Clone, Copy)]
pub struct Review {
    pub session: Session,
    pub doc_id: Uuid,
}

/// The review tokens' key: HMAC-SHA256 under the server's secret of a fixed message (the
/// signature of a fixed, long-expired access token), as `AuthKeys` exposes signing only. Nobody
/// without the secret can compute it, and it differs from the secret itself, so neither kind of
/// token verifies as the other.
fn key(keys: &AuthKeys) -> ServerResult<Vec<u8>> {
    let fixed = keys.sign(Uuid::nil(), Uuid::nil(), 0, 0)?;
    let signature = fixed
        .rsplit('.')
        .next()
        .ok_or_else(|| ServerError::internal("a JWT without a signature"))?;
    Ok(format!("{ISSUER}:{signature}").into_bytes())
}

/// Signs a review token.
pub fn sign(keys: &AuthKeys, review: Review, iat: i64) -> ServerResult<String> {
    let claims = Claims {
        sub: review.session.user_id,
        org: review.session.org_id,
        doc: review.doc_id,
        iat,
        exp: review.session.expires_at,
        iss: ISSUER.into(),
    };
    let key = EncodingKey::from_secret(&key(keys)?);
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(ServerError::internal)
}

/// Verifies a review token: `Unauthenticated` if it is none, `TokenExpired` if it expired.
pub fn verify(keys: &AuthKeys, token: &str) -> ServerResult<Review> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[ISSUER]);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub", "iss"]);
    let key = DecodingKey::from_secret(&key(keys)?);
    match jsonwebtoken::decode::<Claims>(token, &key, &validation) {
        Ok(data) => Ok(Review {
            session: Session {
                user_id: data.claims.sub,
                org_id: data.claims.org,
                expires_at: data.claims.exp,
            },
            doc_id: data.claims.doc,
        }),
        Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(ServerError::new(
            ErrorCode::TokenExpired,
            "review link expired",
        )),
        Err(_) => Err(ServerError::new(
            ErrorCode::Unauthenticated,
            "invalid access token",
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateReviewLink {
    name: Option<String>,
    expires_in_hours: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ReviewLink {
    token: String,
    reviewer_id: Uuid,
    expires_at: i64,
    path: String,
}

/// `POST /v1/documents/{doc_id}/review-links`.
pub async fn create(
    State(state): State<AppState>,
    bearer: Bearer,
    Path(doc_id): Path<Uuid>,
    ApiJson(body): ApiJson<CreateReviewLink>,
) -> ServerResult<(StatusCode, Json<ReviewLink>)> {
    let Bearer(caller) = bearer;
    let hours = body.expires_in_hours.unwrap_or(DEFAULT_HOURS);
    if !(1..=MAX_HOURS).contains(&hours) {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            format!("expires_in_hours must be 1..={MAX_HOURS}"),
        ));
    }
    let name = body.name.unwrap_or_else(|| "External reviewer".into());
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(ServerError::new(
            ErrorCode::InvalidInput,
            "name must be 1 to 200 characters",
        ));
    }
    let org_id = caller.org_id;
    let acl = state.acl.get(&state.db, org_id).await?;
    if acl
        .relation(caller.user_id, doc_id)
        .is_none_or(|r| r < Relation::Editor)
    {
        return Err(ServerError::new(
            ErrorCode::Forbidden,
            "only editors of the document may create review links",
        ));
    }
    let mut tx = crate::db::begin_org(&state.db, org_id).await?;
    let record: Option<(String,)> =
        sqlx::query_as("SELECT collection FROM documents WHERE org_id = $1 AND id = $2")
            .bind(org_id)
            .bind(doc_id)
            .fetch_optional(&mut *tx)
            .await?;
    drop(tx);
    let collection = record
        .map(|(c,)| c)
        .filter(|c| schema::body_collection(c).is_some())
        .ok_or_else(|| ServerError::new(ErrorCode::NotFound, "no note or document with this id"))?;

    let reviewer_id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO users (id, email, display_name, password_hash) VALUES ($1, $2, $3, '!')",
    )
    .bind(reviewer_id)
    .bind(format!("review-{reviewer_id}@reviewers.invalid"))
    .bind(name)
    .execute(&state.db)
    .await?;
    let member = AclChange::MemberAdded {
        user_id: reviewer_id,
        role: OrgRole::Guest,
    };
    changes::apply(&state, org_id, caller.user_id, member).await?;
    let share = Share {
        object_type: collection,
        object_id: doc_id,
        relation: Relation::Suggester,
        subject: SubjectRef::User(reviewer_id),
    };
    changes::apply(&state, org_id, caller.user_id, AclChange::Grant(share)).await?;

    let now = chrono::Utc::now().timestamp();
    let expires_at = now + hours * 3600;
    let review = Review {
        session: Session {
            user_id: reviewer_id,
            org_id,
            expires_at,
        },
        doc_id,
    };
    let token = sign(&state.keys, review, now)?;
    tracing::info!(%doc_id, %reviewer_id, by = %caller.user_id, hours, "review link created");
    Ok((
        StatusCode::CREATED,
        Json(ReviewLink {
            token,
            reviewer_id,
            expires_at,
            path: format!("/yjs/{doc_id}"),
        }),
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn review_tokens_and_access_tokens_never_verify_as_each_other() {
        let keys = AuthKeys::new(
            b"secret-one-secret-one-secret-one",
            Duration::from_secs(900),
            Duration::from_secs(86_400),
        );
        let now = chrono::Utc::now().timestamp();
        let session = Session {
            user_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            expires_at: now + 60,
        };
        let doc_id = Uuid::now_v7();
        let token = sign(&keys, Review { session, doc_id }, now).expect("sign");
        let review = verify(&keys, &token).expect("verify");
        assert_eq!((review.session, review.doc_id), (session, doc_id));
        assert!(keys.verify(&token).is_err(), "not an access token");

        let (access, _) = keys
            .issue_access(session.user_id, session.org_id)
            .expect("issue");
        assert_eq!(
            verify(&keys, &access).expect_err("not a review token").code,
            ErrorCode::Unauthenticated
        );
        let other = AuthKeys::new(
            b"another-secret-another-secret-xx",
            Duration::from_secs(900),
            Duration::from_secs(86_400),
        );
        assert!(verify(&other, &token).is_err(), "another server's link");
        let expired = Review {
            session: Session {
                expires_at: now - 10,
                ..session
            },
            doc_id,
        };
        let expired = sign(&keys, expired, now - 100).expect("sign");
        assert_eq!(
            verify(&keys, &expired).expect_err("expired").code,
            ErrorCode::TokenExpired
        );
    }
}
