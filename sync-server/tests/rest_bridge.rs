//! The REST bridge end to end over real HTTP against a real Postgres: CRUD on every record
//! collection, the list API (paging, cursors, sorting, filters, search, trash), error envelopes
//! for bad input, authorization by the same rules as sync, and REST writes arriving live at
//! sync clients and merging with their concurrent edits.

use automerge::{AutoCommit, ReadDoc};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sync_server::testing::raw::RawClient;
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::ServerMessage;
use syncline_protocol::rules::OrgRole;
use uuid::Uuid;

async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    user: &TestUser,
    body: Option<Value>,
) -> (StatusCode, Value) {
    server.api(method, path, &user.access_token, body).await
}

async fn create_task(server: &TestServer, user: &TestUser, body: Value) -> Value {
    let (status, task) = call(server, Method::POST, "/api/v1/tasks", user, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task
}

fn id_of(record: &Value) -> Uuid {
    record["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("record id")
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn tasks_and_contacts_are_created_read_patched_deleted_and_restored() {
    let server = TestServer::start().await;
    let owner = server.seed_org("Acme", &[OrgRole::Owner]).await.remove(0);
    let task = create_task(
        &server,
        &owner,
        json!({"title": "Write docs", "status": "todo", "priority": "high",
               "due_date": "2026-12-01T09:30:00Z"}),
    )
    .await;
    let id = id_of(&task);
    assert_eq!(task["title"], "Write docs");
    assert_eq!(task["due_date"], "2026-12-01T09:30:00.000Z");
    assert_eq!(task["created_by"], owner.user_id.to_string());
    assert_eq!(task["deleted_at"], Value::Null);
    assert_eq!(task["depends_on"], json!([]));

    // PATCH writes only the given fields; null clears an optional one.
    let path = format!("/api/v1/tasks/{id}");
    let (status, patched) = call(
        &server,
        Method::PATCH,
        &path,
        &owner,
        Some(json!({"status": "in_progress", "priority": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["status"], "in_progress");
    assert_eq!(patched["priority"], Value::Null);
    assert_eq!(patched["title"], "Write docs");
    let (status, got) = call(&server, Method::GET, &path, &owner, None).await;
    assert_eq!((status, &got), (StatusCode::OK, &patched));
    let (pg_status,): (String,) = sqlx::query_as("SELECT status FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(&server.db)
        .await
        .expect("row");
    assert_eq!(pg_status, "in_progress");

    // Soft delete: hidden from the list, listed in the trash, restorable.
    let (status, _) = call(&server, Method::DELETE, &path, &owner, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, got) = call(&server, Method::GET, &path, &owner, None).await;
    assert!(got["deleted_at"].is_string(), "{got}");
    let (_, live) = call(&server, Method::GET, "/api/v1/tasks", &owner, None).await;
    assert_eq!(live["meta"]["total"], 0, "{live}");
    let trash = "/api/v1/tasks?filter[deleted]=true";
    let (_, trashed) = call(&server, Method::GET, trash, &owner, None).await;
    assert_eq!(trashed["data"][0]["id"], id.to_string());
    let restore = format!("/api/v1/trash/{id}/restore");
    let (status, restored) = call(&server, Method::POST, &restore, &owner, None).await;
    assert_eq!(status, StatusCode::OK, "{restored}");
    assert_eq!(restored["deleted_at"], Value::Null);
    let (_, live) = call(&server, Method::GET, "/api/v1/tasks", &owner, None).await;
    assert_eq!(live["meta"]["total"], 1);

    // Contacts: the bridge is generic over the protocol's collections.
    let custom = json!({"industry": "retail"}).to_string();
    let (status, contact) = call(
        &server,
        Method::POST,
        "/api/v1/contacts",
        &owner,
        Some(
            json!({"type": "lead", "status": "active", "first_name": "Ada",
                    "last_name": "Lovelace", "email": "ada@example.com",
                    "assigned_to": owner.user_id, "custom_fields": custom}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{contact}");
    assert_eq!(contact["type"], "lead");
    assert_eq!(contact["custom_fields"], custom);
    let (contact_type, email): (String, String) =
        sqlx::query_as("SELECT contact_type, email FROM contacts WHERE id = $1")
            .bind(id_of(&contact))
            .fetch_one(&server.db)
            .await
            .expect("contact row");
    assert_eq!(
        (contact_type.as_str(), email.as_str()),
        ("lead", "ada@example.com")
    );

    // A client-chosen id is kept; reusing it is a conflict.
    let chosen = Uuid::now_v7();
    let body = json!({"id": chosen, "title": "Mine", "status": "todo"});
    let task = create_task(&server, &owner, body.clone()).await;
    assert_eq!(id_of(&task), chosen);
    let (status, err) = call(&server, Method::POST, "/api/v1/tasks", &owner, Some(body)).await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "conflict")
    );
    // So is an id taken by a record of another collection.
    let note = json!({"title": "A note"});
    let (status, note) = call(&server, Method::POST, "/api/v1/notes", &owner, Some(note)).await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    let body = json!({"id": note["id"], "title": "Twin", "status": "todo"});
    let (status, err) = call(&server, Method::POST, "/api/v1/tasks", &owner, Some(body)).await;
    assert_eq!(
        (status, error_code(&err)),
        (StatusCode::CONFLICT, "conflict")
    );
    let note_as_task = format!("/api/v1/tasks/{}", note["id"].as_str().unwrap_or_default());
    let (status, _) = call(&server, Method::GET, &note_as_task, &owner, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a note is not a task");
    let leads = "/api/v1/contacts?filter[type]=lead&search=lovelace";
    let (_, found) = call(&server, Method::GET, leads, &owner, None).await;
    assert_eq!(found["data"][0]["first_name"], "Ada", "{found}");
    let vendors = "/api/v1/contacts?filter[type]=vendor";
    let (_, none) = call(&server, Method::GET, vendors, &owner, None).await;
    assert_eq!(none["meta"]["total"], 0);
}

#[tokio::test]
async fn lists_page_by_number_and_cursor_sort_filter_and_search() {
    let server = TestServer::start().await;
    let owner = server.seed_org("Acme", &[OrgRole::Owner]).await.remove(0);
    let titles = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf 100%",
    ];
    for (i, title) in titles.iter().enumerate() {
        let status = if i % 2 == 0 { "todo" } else { "done" };
        let due = format!("2026-12-0{}T00:00:00Z", i + 1);
        create_task(
            &server,
            &owner,
            json!({"title": title, "status": status, "due_date": due}),
        )
        .await;
    }
    // Cursor paging by title: every record once, in order.
    let mut seen = Vec::new();
    let mut path = "/api/v1/tasks?sort=title:asc&limit=3".to_owned();
    loop {
        let (status, page) = call(&server, Method::GET, &path, &owner, None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(page["meta"]["total"], 7);
        assert!(page["data"].as_array().expect("data").len() <= 3);
        for record in page["data"].as_array().expect("data") {
            seen.push(record["title"].as_str().expect("title").to_owned());
        }
        match page["meta"]["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/tasks?sort=title:asc&limit=3&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, titles);

    // Page numbers, descending sort.
    let (_, page) = call(
        &server,
        Method::GET,
        "/api/v1/tasks?sort=title:desc&limit=2&page=2",
        &owner,
        None,
    )
    .await;
    let got: Vec<&str> = page["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|r| r["title"].as_str())
        .collect();
    assert_eq!(got, ["echo", "delta"]);
    assert_eq!(page["meta"]["page"], 2);
    assert_eq!(page["meta"]["limit"], 2);

    let titles_of = |page: &Value| -> Vec<String> {
        let mut t: Vec<String> = page["data"]
            .as_array()
            .expect("data")
            .iter()
            .filter_map(|r| r["title"].as_str().map(str::to_owned))
            .collect();
        t.sort();
        t
    };
    let (_, done) = call(
        &server,
        Method::GET,
        "/api/v1/tasks?filter[status]=done",
        &owner,
        None,
    )
    .await;
    assert_eq!(titles_of(&done), ["bravo", "delta", "foxtrot"]);
    let (_, both) = call(
        &server,
        Method::GET,
        "/api/v1/tasks?filter[status]=done,todo",
        &owner,
        None,
    )
    .await;
    assert_eq!(both["meta"]["total"], 7);
    let range = "/api/v1/tasks?filter[due_date.gte]=2026-12-03T00:00:00Z&filter[due_date.lt]=2026-12-05T00:00:00Z";
    let (_, ranged) = call(&server, Method::GET, range, &owner, None).await;
    assert_eq!(titles_of(&ranged), ["charlie", "delta"]);
    // Search is case-insensitive and takes `%` literally.
    let (_, found) = call(
        &server,
        Method::GET,
        "/api/v1/tasks?search=ALP",
        &owner,
        None,
    )
    .await;
    assert_eq!(titles_of(&found), ["alpha"]);
    let (_, found) = call(
        &server,
        Method::GET,
        "/api/v1/tasks?search=0%25",
        &owner,
        None,
    )
    .await;
    assert_eq!(titles_of(&found), ["golf 100%"]);
    // Defaults: 25 per page, newest first.
    let (_, all) = call(&server, Method::GET, "/api/v1/tasks", &owner, None).await;
    assert_eq!(all["meta"]["limit"], 25);
    assert_eq!(all["data"][0]["title"], "golf 100%");
    assert_eq!(all["meta"]["nextCursor"], Value::Null);
}

/// Method, path, body, expected status, error code and the field named in the details.
type Case = (
    Method,
    String,
    Option<Value>,
    StatusCode,
    &'static str,
    Option<&'static str>,
);

#[tokio::test]
async fn bad_input_gets_envelopes_with_field_details_never_a_500() {
    let server = TestServer::start().await;
    let owner = server.seed_org("Acme", &[OrgRole::Owner]).await.remove(0);
    let task = create_task(&server, &owner, json!({"title": "t", "status": "todo"})).await;
    let path = format!("/api/v1/tasks/{}", id_of(&task));
    let client = reqwest::Client::new();
    let raw = |method: Method, path: &str, body: Vec<u8>| {
        client
            .request(method, server.http_url(path))
            .bearer_auth(&owner.access_token)
            .header("content-type", "application/json")
            .header("x-correlation-id", "rest-test-1")
            .body(body)
    };
    let response = raw(Method::POST, "/api/v1/tasks", b"{\"title\": ".to_vec())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["x-correlation-id"], "rest-test-1");
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "invalid_input");
    assert_eq!(body["error"]["correlationId"], "rest-test-1");

    let response = raw(Method::PATCH, &path, vec![b' '; 2 << 20])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.expect("json");
    assert_eq!(error_code(&body), "too_large");

    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/v1/tasks".into(),
            Some(json!([1])),
            StatusCode::BAD_REQUEST,
            "invalid_input",
            None,
        ),
        (
            Method::POST,
            "/api/v1/tasks".into(),
            Some(json!({"title": "x", "status": "todo", "colour": "red"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_field",
            Some("colour"),
        ),
        (
            Method::POST,
            "/api/v1/tasks".into(),
            Some(json!({"status": "todo"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_required_field",
            Some("title"),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"status": "nope"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_enum_value",
            Some("status"),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"title": 42})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field_type",
            Some("title"),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"title": null})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_required_field",
            Some("title"),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"due_date": "tomorrow"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field_type",
            Some("due_date"),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"created_by": Uuid::now_v7()})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "server_owned_field",
            Some("created_by"),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"depends_on": [task["id"]]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "dependency_cycle",
            Some("depends_on"),
        ),
        (
            Method::PATCH,
            path.clone(),
            Some(json!({"title": "nul\u{0}byte"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field_value",
            Some("title"),
        ),
        (
            Method::GET,
            "/api/v1/tasks?search=%00".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            None,
        ),
        (
            Method::GET,
            "/api/v1/widgets".into(),
            None,
            StatusCode::NOT_FOUND,
            "unknown_collection",
            None,
        ),
        (
            Method::GET,
            format!("/api/v1/tasks/{}", Uuid::now_v7()),
            None,
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/tasks/{}", Uuid::now_v7()),
            Some(json!({"title": "x"})),
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        ),
        (
            Method::GET,
            "/api/v1/tasks/not-a-uuid".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            None,
        ),
        (
            Method::GET,
            "/api/v1/tasks?cursor=garbage".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            None,
        ),
        (
            Method::GET,
            "/api/v1/tasks?limit=101".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            None,
        ),
        (
            Method::GET,
            "/api/v1/tasks?sort=colour:asc".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            None,
        ),
        (
            Method::GET,
            "/api/v1/tasks?filter[status]=nope".into(),
            None,
            StatusCode::BAD_REQUEST,
            "invalid_input",
            None,
        ),
        (
            Method::GET,
            "/api/v1/tasks?filter[title.gte]=".into(),
            None,
            StatusCode::OK,
            "",
            None,
        ),
    ];
    for (method, path, body, status, code, field) in cases {
        let (got, body) = call(&server, method.clone(), &path, &owner, body).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        if status.is_success() {
            continue;
        }
        assert_eq!(error_code(&body), code, "{method} {path}: {body}");
        assert!(body["error"]["timestamp"].is_string());
        if let Some(field) = field {
            let detail = body["error"]["details"]["fields"][field]
                .as_str()
                .unwrap_or_default();
            assert!(detail.starts_with(code), "{method} {path}: {body}");
        }
    }
    // A cursor of another sort is refused too.
    let (_, page) = call(
        &server,
        Method::GET,
        "/api/v1/tasks?limit=1&sort=title:asc",
        &owner,
        None,
    )
    .await;
    let _ = create_task(&server, &owner, json!({"title": "u", "status": "todo"})).await;
    let (_, page2) = call(
        &server,
        Method::GET,
        "/api/v1/tasks?limit=1&sort=title:asc",
        &owner,
        None,
    )
    .await;
    let cursor = page2["meta"]["nextCursor"].as_str().expect("a next page");
    let other = format!("/api/v1/tasks?limit=1&sort=title:desc&cursor={cursor}");
    let (status, body) = call(&server, Method::GET, &other, &owner, None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_input")
    );
    assert!(page["meta"]["nextCursor"].is_null());
    let (status, _) = server
        .api(Method::GET, "/api/v1/tasks", "not-a-token", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn guests_read_only_what_is_shared_and_write_by_their_relation() {
    let server = TestServer::start().await;
    let mut users = server
        .seed_org("Acme", &[OrgRole::Owner, OrgRole::Guest])
        .await;
    let (guest, owner) = (users.remove(1), users.remove(0));
    let shared = id_of(
        &create_task(
            &server,
            &owner,
            json!({"title": "shared", "status": "todo"}),
        )
        .await,
    );
    let private = id_of(
        &create_task(
            &server,
            &owner,
            json!({"title": "private", "status": "todo"}),
        )
        .await,
    );
    server
        .share(
            Method::POST,
            &owner,
            "tasks",
            shared,
            "viewer",
            guest.user_id,
        )
        .await;

    let (status, list) = call(&server, Method::GET, "/api/v1/tasks", &guest, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["meta"]["total"], 1, "{list}");
    assert_eq!(list["data"][0]["id"], shared.to_string());

    let private_path = format!("/api/v1/tasks/{private}");
    let (status, _) = call(&server, Method::GET, &private_path, &guest, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &server,
        Method::PATCH,
        &private_path,
        &guest,
        Some(json!({"title": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let shared_path = format!("/api/v1/tasks/{shared}");
    let (status, _) = call(&server, Method::GET, &shared_path, &guest, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(
        &server,
        Method::PATCH,
        &shared_path,
        &guest,
        Some(json!({"title": "mine"})),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "field_forbidden"),
        "{body}"
    );
    assert!(
        body["error"]["details"]["fields"]["title"].is_string(),
        "{body}"
    );
    let (status, body) = call(&server, Method::DELETE, &shared_path, &guest, None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "field_forbidden"),
        "{body}"
    );
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/tasks",
        &guest,
        Some(json!({"title": "g", "status": "todo"})),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    let (_, got) = call(&server, Method::GET, &shared_path, &owner, None).await;
    assert_eq!(got["title"], "shared");
    // Deleting a record already in the trash is refused to those who may not delete either.
    let (status, _) = call(&server, Method::DELETE, &shared_path, &owner, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(&server, Method::DELETE, &shared_path, &guest, None).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "field_forbidden"),
        "{body}"
    );
}

#[tokio::test]
async fn rest_writes_arrive_live_and_merge_with_a_concurrent_client_edit() {
    let server = TestServer::start().await;
    let owner = server.seed_org("Acme", &[OrgRole::Owner]).await.remove(0);
    let mut client = RawClient::hello(&server.ws_url(), &owner.access_token).await;
    client.subscribe(1, "tasks", None).await;

    let task = create_task(
        &server,
        &owner,
        json!({"title": "From REST", "status": "todo"}),
    )
    .await;
    let id = id_of(&task);
    let mut doc = AutoCommit::new();
    let first = live_change(&mut client, id).await;
    apply(&mut doc, first);
    assert_eq!(text(&doc, "title"), "From REST");

    // The client edits the title on what it has while a REST PATCH changes the status; the
    // client's change, made without the PATCH, merges instead of being overwritten or refused.
    let mut offline = doc.fork();
    let title_change = sync_server::testing::changes::task_change(
        &mut offline,
        &[("title", sync_server::testing::changes::s("Edited offline"))],
    );
    let (status, _) = call(
        &server,
        Method::PATCH,
        &format!("/api/v1/tasks/{id}"),
        &owner,
        Some(json!({"status": "done"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let patch = live_change(&mut client, id).await;
    apply(&mut doc, patch);
    assert_eq!(text(&doc, "status"), "done");

    client
        .send(&syncline_protocol::ClientMessage::Push {
            mutations: vec![syncline_protocol::Mutation {
                mid: syncline_protocol::MutationId {
                    client_id: client.client_id,
                    seq: 1,
                },
                doc_id: id,
                collection: "tasks".into(),
                payload: serde_bytes::ByteBuf::from(title_change),
            }],
        })
        .await;
    let ack = client
        .until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
        .await;
    assert!(matches!(ack, ServerMessage::Ack { .. }), "{ack:?}");
    let (_, got) = call(
        &server,
        Method::GET,
        &format!("/api/v1/tasks/{id}"),
        &owner,
        None,
    )
    .await;
    assert_eq!(
        (got["title"].as_str(), got["status"].as_str()),
        (Some("Edited offline"), Some("done"))
    );
}

/// The next live change of `doc_id`; it carries no mutation id (the server authored it).
async fn live_change(client: &mut RawClient, doc_id: Uuid) -> Vec<u8> {
    match client
        .until(|m| matches!(m, ServerMessage::Change { doc_id: d, .. } if *d == doc_id))
        .await
    {
        ServerMessage::Change { payload, mid, .. } => {
            assert_eq!(mid, None);
            payload.into_vec()
        }
        _ => unreachable!(),
    }
}

fn apply(doc: &mut AutoCommit, change: Vec<u8>) {
    let change = automerge::Change::from_bytes(change).expect("a change");
    doc.apply_changes([change]).expect("applies");
}

fn text(doc: &AutoCommit, field: &str) -> String {
    match doc.get(automerge::ROOT, field).expect("get") {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            automerge::ScalarValue::Str(v) => v.to_string(),
            other => panic!("{field} is {other:?}"),
        },
        other => panic!("{field} is {other:?}"),
    }
}
