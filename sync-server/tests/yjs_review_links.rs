//! Review links (`POST /v1/documents/{id}/review-links`): an external reviewer's token opens one
//! document on `/yjs` as a suggester — suggestions are stored, real edits refused — and
//! nothing else: no other document, not `/sync`, not after it expires or its share is revoked.

mod yjs_client;

use reqwest::{Method, StatusCode};
use serde_json::json;
use sync_server::auth::Session;
use sync_server::testing::raw::RawClient;
use sync_server::testing::text::TextReplica;
use sync_server::testing::{TestServer, TestUser};
use sync_server::yjs::review_links::{self, Review};
use syncline_protocol::rules::OrgRole;
use syncline_protocol::{ClientMessage, PROTOCOL_VERSION};
use uuid::Uuid;
use yjs_client::{Pusher, YClient, stored_text};
use yrs::Transact;

async fn create_link(
    server: &TestServer,
    by: &TestUser,
    doc: Uuid,
) -> (StatusCode, serde_json::Value) {
    server
        .api(
            Method::POST,
            &format!("/v1/documents/{doc}/review-links"),
            &by.access_token,
            Some(json!({ "name": "Jane (counsel)", "expires_in_hours": 24 })),
        )
        .await
}

#[tokio::test]
async fn a_review_link_lets_an_outsider_suggest_on_one_document_only() {
    let server = TestServer::start().await;
    let users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Member, OrgRole::Guest])
        .await;
    let (owner, member, guest) = (&users[0], &users[1], &users[2]);
    let mut pusher = Pusher::connect(&server, owner).await;
    let note = pusher.create_note("Contract").await;
    let other_note = pusher.create_note("Other").await;
    let body = TextReplica::new();
    pusher
        .push(note, "note_bodies", body.push_paragraph("Terms apply"))
        .await;

    // Only editors of the document create links.
    server
        .share(Method::POST, owner, "notes", note, "viewer", guest.user_id)
        .await;
    let (status, _) = create_link(&server, guest, note).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = create_link(&server, member, Uuid::now_v7()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, link) = create_link(&server, member, note).await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    assert_eq!(link["path"], format!("/yjs/{note}"));
    let token = link["token"].as_str().expect("token").to_owned();
    let reviewer: Uuid = link["reviewer_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("reviewer id");

    // The reviewer reads the body and suggests: stored, with the reviewer as author.
    let mut review = YClient::connect(&server, note, &token).await;
    review.sync().await;
    assert_eq!(review.replica.text(), "Terms apply");
    let suggestion = review.replica.suggest_insert(0, 5, " do not", reviewer);
    review.send_update(suggestion).await;
    let mut editor = YClient::synced(&server, note, owner).await;
    if !editor.replica.text().contains("do not") {
        editor.next_update().await;
    }
    let suggestions = syncline_protocol::text::suggestions(&editor.replica.doc.transact());
    assert_eq!(suggestions.len(), 1, "{suggestions:?}");
    assert_eq!(suggestions[0].mark.author, reviewer);
    assert_eq!(suggestions[0].text, " do not");

    // A real deletion is refused, and ends the session.
    let deletion = review.replica.delete(0, 0, 5);
    review.send_update(deletion).await;
    let (denied, code, _) = review.refused().await;
    assert!(denied.expect("permission denied").contains("forbidden"));
    assert_eq!(code, 4403);
    assert!(
        stored_text(&server, note)
            .await
            .expect("stored")
            .contains("Terms")
    );

    // The token opens no other document, and is no access token for `/sync`.
    let mut elsewhere = YClient::connect(&server, other_note, &token).await;
    assert_eq!(elsewhere.refused().await.1, 4403);
    let mut raw = RawClient::connect(&server.ws_url()).await;
    raw.send(&ClientMessage::Hello {
        protocol_version: PROTOCOL_VERSION,
        token: token.clone(),
        client_id: Uuid::now_v7(),
    })
    .await;
    assert_eq!(raw.closed().await.0, 4001);

    // Revoking the reviewer's share ends a live review session.
    let mut live = YClient::connect(&server, note, &token).await;
    live.sync().await;
    server
        .share(Method::DELETE, member, "notes", note, "suggester", reviewer)
        .await;
    let (denied, code, _) = live.refused().await;
    assert!(denied.is_some());
    assert_eq!(code, 4403);
}

#[tokio::test]
async fn an_expired_review_link_is_refused() {
    let server = TestServer::start().await;
    let users = server.seed_org("Acme", &[OrgRole::Owner]).await;
    let note = Pusher::connect(&server, &users[0])
        .await
        .create_note("Memo")
        .await;
    let now = chrono::Utc::now().timestamp();
    let review = Review {
        session: Session {
            user_id: users[0].user_id,
            org_id: users[0].org_id,
            expires_at: now - 10,
        },
        doc_id: note,
    };
    let token = review_links::sign(&server.state.keys, review, now - 100).expect("sign");
    let mut c = YClient::connect(&server, note, &token).await;
    let (_, code, reason) = c.refused().await;
    assert_eq!(code, 4419, "{reason}");
}
