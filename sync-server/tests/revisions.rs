//! Revisions of business documents over HTTP (`/v1/documents/{id}/revisions`, `/redline`): a
//! contract record and its Yjs body are written through the sync protocol, revisions are named
//! between edits, and the redline between two revisions shows exactly the text inserted and
//! deleted between them (by item identity: text added and removed in between never shows),
//! even after the body was compacted. Field changes, content of old revisions, numbering under
//! concurrency and access rules are checked too.

use automerge::{ActorId, AutoCommit};
use reqwest::{Method, StatusCode};
use serde_bytes::ByteBuf;
use serde_json::{Value, json};
use sync_server::testing::changes::{record_change, s};
use sync_server::testing::raw::RawClient;
use sync_server::testing::text::TextReplica;
use sync_server::testing::{TestServer, TestUser};
use sync_server::text::store::COMPACT_AFTER;
use syncline_protocol::rules::OrgRole;
use syncline_protocol::schema::DOCUMENTS;
use syncline_protocol::{ClientMessage, Mutation, MutationId, ServerMessage};
use uuid::Uuid;
use yrs::{XmlElementPrelim, XmlFragment, XmlTextPrelim};

/// Pushes mutations to one document in one `Push` from a new connection; all must be acked.
async fn push(
    server: &TestServer,
    user: &TestUser,
    doc_id: Uuid,
    collection: &str,
    payloads: Vec<Vec<u8>>,
) {
    let mut raw = RawClient::hello(&server.ws_url(), &user.access_token).await;
    let client_id = raw.client_id;
    let last = payloads.len() as u64;
    let mutations = (1..)
        .zip(payloads)
        .map(|(seq, payload)| Mutation {
            mid: MutationId { client_id, seq },
            doc_id,
            collection: collection.into(),
            payload: ByteBuf::from(payload),
        })
        .collect();
    raw.send(&ClientMessage::Push { mutations }).await;
    loop {
        match raw.message().await {
            ServerMessage::Ack { mid, .. } if mid.seq == last => return,
            ServerMessage::Reject { mid, code, message } => {
                panic!("mutation {} rejected: {code:?} {message}", mid.seq)
            }
            _ => {}
        }
    }
}

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> (StatusCode, Value) {
    server.api(method, path, &user.access_token, body).await
}

/// Creates a revision; returns the response body after checking the status.
async fn revise(server: &TestServer, user: &TestUser, doc: Uuid, description: &str) -> Value {
    let path = format!("/v1/documents/{doc}/revisions");
    let body = match description {
        "" => json!({}),
        d => json!({ "description": d }),
    };
    let (status, revision) = call(server, Method::POST, &path, user, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{revision}");
    revision
}

/// A redline as the browser gets it: status, content type and body.
async fn redline_page(
    server: &TestServer,
    user: &TestUser,
    doc: Uuid,
    query: &str,
) -> (StatusCode, String, String) {
    let response = reqwest::Client::new()
        .get(server.http_url(&format!("/v1/documents/{doc}/redline?{query}")))
        .bearer_auth(&user.access_token)
        .send()
        .await
        .expect("redline request");
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

struct Contract {
    server: TestServer,
    owner: TestUser,
    member: TestUser,
    /// A guest the contract is shared with as viewer.
    viewer: TestUser,
    /// A guest it is not shared with.
    guest: TestUser,
    doc: Uuid,
    /// The editor's replica of the body.
    body: TextReplica,
}

/// rev0 "Original" → edits (and a field change) → rev1 → edits → rev2.
async fn contract_with_three_revisions() -> Contract {
    let server = TestServer::start().await;
    let roles = [
        OrgRole::Owner,
        OrgRole::Member,
        OrgRole::Guest,
        OrgRole::Guest,
    ];
    let users = server.seed_org("Acme", &roles).await;
    let [owner, member, viewer, guest] = <[TestUser; 4]>::try_from(users).expect("four users");

    let doc = Uuid::now_v7();
    let mut record = AutoCommit::new().with_actor(ActorId::random());
    let created = record_change(
        &mut record,
        &DOCUMENTS,
        &[
            ("title", s("Supply agreement")),
            ("type", s("contract")),
            ("status", s("draft")),
            ("payment_terms", s("Net 30")),
        ],
    );
    push(&server, &owner, doc, "documents", vec![created]).await;
    let viewer_id = viewer.user_id;
    server
        .share(Method::POST, &owner, "documents", doc, "viewer", viewer_id)
        .await;
    let body = TextReplica::new();
    let paragraphs = vec![
        body.push_paragraph("The Supplier shall deliver the goods."),
        body.push_paragraph("Payment is due in 30 days."),
        body.push_paragraph("This clause will be removed."),
    ];
    push(&server, &owner, doc, "document_bodies", paragraphs).await;

    let rev0 = revise(&server, &owner, doc, "").await;
    assert_eq!(rev0["number"], 0);
    assert_eq!(rev0["description"], "Original");
    assert_eq!(rev0["field_changes"], json!([]));

    let edits = vec![
        body.insert(0, 19, "promptly "),
        body.delete(1, 18, 2),
        body.insert(1, 18, "45"),
        body.insert(1, 0, "DRAFT "),
    ];
    push(&server, &owner, doc, "document_bodies", edits).await;
    let terms = record_change(&mut record, &DOCUMENTS, &[("payment_terms", s("Net 45"))]);
    push(&server, &owner, doc, "documents", vec![terms]).await;
    // A member (editor by role) names the next revision.
    let rev1 = revise(&server, &member, doc, "Supplier comments").await;
    assert_eq!(rev1["number"], 1);

    let edits = vec![
        body.delete(1, 0, 6), // "DRAFT " again: never in rev0 nor rev2
        body.edit(|txn, fragment| fragment.remove_range(txn, 2, 1)),
        body.edit(|txn, fragment| {
            let p = fragment.push_back(txn, XmlElementPrelim::empty("paragraph"));
            p.push_back(txn, XmlTextPrelim::new("Governed by Delaware law."));
        }),
    ];
    push(&server, &owner, doc, "document_bodies", edits).await;
    let rev2 = revise(&server, &owner, doc, "Final").await;
    assert_eq!(rev2["number"], 2);
    Contract {
        server,
        owner,
        member,
        viewer,
        guest,
        doc,
        body,
    }
}

const REDLINE_0_2: &str = "<p>The Supplier shall <ins>promptly </ins>deliver the goods.</p>\
    <p>Payment is due in <del>30</del><ins>45</ins> days.</p>\
    <p data-redline=\"inserted\"><ins>Governed by Delaware law.</ins></p>\
    <p data-redline=\"deleted\"><del>This clause will be removed.</del></p>";

#[tokio::test]
async fn redlines_show_exactly_what_changed_between_revisions_even_after_compaction() {
    let c = contract_with_three_revisions().await;
    let (status, content_type, html) =
        redline_page(&c.server, &c.owner, c.doc, "from=0&to=2").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(content_type, "text/html; charset=utf-8");
    assert_eq!(html, REDLINE_0_2);

    // Through the middle revision the transient "DRAFT " shows: inserted, then deleted.
    let path = format!("/v1/documents/{}/redline?from=0&to=1&format=json", c.doc);
    let (status, body) = call(&c.server, Method::GET, &path, &c.owner, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["html"],
        "<p>The Supplier shall <ins>promptly </ins>deliver the goods.</p>\
         <p><ins>DRAFT </ins>Payment is due in <del>30</del><ins>45</ins> days.</p>\
         <p>This clause will be removed.</p>"
    );
    let (_, _, html) = redline_page(&c.server, &c.owner, c.doc, "from=1&to=2").await;
    assert!(
        html.contains("<p><del>DRAFT </del>Payment is due in 45 days.</p>"),
        "{html}"
    );

    // Enough further updates to fold the body into one compacted state: deleted content is
    // kept by the server's copy, so old revisions still compare exactly.
    let churn: Vec<Vec<u8>> = (0..COMPACT_AFTER)
        .map(|i| match i % 2 {
            0 => c.body.insert(0, 0, "x"),
            _ => c.body.delete(0, 0, 1),
        })
        .collect();
    push(&c.server, &c.owner, c.doc, "document_bodies", churn).await;
    let (pending,): (i32,) =
        sqlx::query_as("SELECT pending_updates FROM text_documents WHERE id = $1")
            .bind(c.doc)
            .fetch_one(&c.server.db)
            .await
            .expect("body row");
    assert_eq!(pending, 0, "the body was compacted");
    let (_, _, html) = redline_page(&c.server, &c.owner, c.doc, "from=0&to=2").await;
    assert_eq!(html, REDLINE_0_2);
}

#[tokio::test]
async fn revisions_keep_their_content_and_field_changes() {
    let c = contract_with_three_revisions().await;
    let path = format!("/v1/documents/{}/revisions", c.doc);
    let (status, list) = call(&c.server, Method::GET, &path, &c.viewer, None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let list = list.as_array().expect("a list").clone();
    let described: Vec<Value> = (list.iter())
        .map(|r| json!([r["number"], r["description"], r["author_id"]]))
        .collect();
    let (owner, member) = (c.owner.user_id, c.member.user_id);
    assert_eq!(
        described,
        [
            json!([0, "Original", owner]),
            json!([1, "Supplier comments", member]),
            json!([2, "Final", owner]),
        ]
    );
    assert_eq!(
        list[1]["field_changes"],
        json!([{
            "field": "payment_terms",
            "label": "Payment terms",
            "old": "Net 30",
            "new": "Net 45",
        }])
    );
    assert_eq!(list[2]["field_changes"], json!([]));

    let (status, rev0) = call(&c.server, Method::GET, &format!("{path}/0"), &c.owner, None).await;
    assert_eq!(status, StatusCode::OK, "{rev0}");
    assert_eq!(
        rev0["html"],
        "<p>The Supplier shall deliver the goods.</p><p>Payment is due in 30 days.</p>\
         <p>This clause will be removed.</p>"
    );
    assert_eq!(
        rev0["text"],
        "The Supplier shall deliver the goods.\nPayment is due in 30 days.\n\
         This clause will be removed."
    );
    assert_eq!(
        rev0["fields"],
        json!({
            "title": "Supply agreement",
            "type": "contract",
            "status": "draft",
            "payment_terms": "Net 30",
        })
    );
    let (_, rev2) = call(&c.server, Method::GET, &format!("{path}/2"), &c.owner, None).await;
    assert_eq!(
        rev2["text"],
        "The Supplier shall promptly deliver the goods.\nPayment is due in 45 days.\n\
         Governed by Delaware law."
    );
    assert_eq!(rev2["fields"]["payment_terms"], "Net 45");

    // Concurrent requests get distinct, consecutive numbers.
    let (a, b) = tokio::join!(
        revise(&c.server, &c.owner, c.doc, "a"),
        revise(&c.server, &c.member, c.doc, "b"),
    );
    let mut numbers = [a["number"].as_i64(), b["number"].as_i64()];
    numbers.sort();
    assert_eq!(numbers, [Some(3), Some(4)]);
}

const GET: Method = Method::GET;
const POST: Method = Method::POST;

/// `"<status> <error code>"` of a JSON call (just the status on success); `body` is JSON text,
/// or empty for none.
async fn outcome(c: &Contract, method: Method, path: &str, who: &TestUser, body: &str) -> String {
    let body = (!body.is_empty()).then(|| serde_json::from_str(body).expect("JSON body"));
    let (status, body) = call(&c.server, method, path, who, body).await;
    let code = error_code(&body);
    format!("{} {code}", status.as_u16()).trim_end().to_owned()
}

#[tokio::test]
async fn access_and_parameters_are_checked() {
    let c = contract_with_three_revisions().await;
    let (owner, viewer, guest) = (&c.owner, &c.viewer, &c.guest);
    let stranger = &c.server.seed_org("Other", &[OrgRole::Owner]).await[0];
    let revisions = &format!("/v1/documents/{}/revisions", c.doc);
    // As JSON (error envelopes are JSON either way), unless the case is about the format.
    let redline = |query: &str| match query.contains("format") {
        true => format!("/v1/documents/{}/redline?{query}", c.doc),
        false => format!("/v1/documents/{}/redline?{query}&format=json", c.doc),
    };
    let unknown = &format!("/v1/documents/{}/revisions", Uuid::now_v7());
    let long = &json!({ "description": "x".repeat(501) }).to_string();
    #[rustfmt::skip]
    let checks = [
        // Without a share, a guest cannot even learn that the document exists.
        (GET, revisions.clone(), guest, "", "404 not_found"),
        (GET, redline("from=0&to=2"), guest, "", "404 not_found"),
        // A viewer reads revisions and redlines but may not create revisions.
        (GET, redline("from=0&to=2"), viewer, "", "200"),
        (POST, revisions.clone(), viewer, r#"{"description": "mine"}"#, "403 forbidden"),
        // Another org's member: not found, whatever they ask.
        (GET, revisions.clone(), stranger, "", "404 not_found"),
        (POST, revisions.clone(), stranger, "{}", "404 not_found"),
        // Malformed input is 400 invalid_input; unknown revisions and documents 404.
        (GET, redline("from=0"), owner, "", "400 invalid_input"),
        (GET, redline("from=x&to=1"), owner, "", "400 invalid_input"),
        (GET, redline("from=-1&to=1"), owner, "", "400 invalid_input"),
        (GET, redline("from=0&to=1&format=pdf"), owner, "", "400 invalid_input"),
        (GET, redline("from=0&to=9"), owner, "", "404 not_found"),
        (GET, "/v1/documents/nope/revisions".into(), owner, "", "400 invalid_input"),
        (GET, unknown.clone(), owner, "", "404 not_found"),
        (GET, format!("{revisions}/7"), owner, "", "404 not_found"),
        (GET, format!("{revisions}/x"), owner, "", "400 invalid_input"),
        (POST, revisions.clone(), owner, long, "400 invalid_input"),
    ];
    for (method, path, who, body, expected) in checks {
        let got = outcome(&c, method.clone(), &path, who, body).await;
        assert_eq!(got, expected, "{method} {path}");
    }
    let (_, list) = call(&c.server, GET, revisions, viewer, None).await;
    assert_eq!(list.as_array().map(Vec::len), Some(3), "nothing created");
    // No token at all.
    let response = reqwest::Client::new()
        .get(c.server.http_url(revisions))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}
