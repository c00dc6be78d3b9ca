//! docs/openapi.json is the committed copy of the OpenAPI document the server generates and
//! serves at `/api/v1/openapi.json`. This test fails when the two differ;
//! `SYNCLINE_BLESS=1 cargo test -p sync-server --test openapi` rewrites the copy after an
//! intended change. It also checks the served document is the generated one, and the rules
//! every operation follows (error envelope on 4xx/5xx, bearer auth unless public).

use std::path::PathBuf;

use sync_server::rest::openapi;
use sync_server::testing::TestServer;

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json")
}

#[test]
fn committed_document_matches_the_generated_one() {
    let generated = openapi::json();
    if std::env::var_os("SYNCLINE_BLESS").is_some() {
        std::fs::write(doc_path(), generated).expect("write docs/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(doc_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the generated OpenAPI document: rerun with \
         SYNCLINE_BLESS=1 cargo test -p sync-server --test openapi"
    );
}

#[test]
fn document_is_openapi_3_1_with_the_shared_rules() {
    let doc: serde_json::Value = serde_json::from_str(openapi::json()).expect("valid JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"][openapi::BEARER]["scheme"],
        "bearer"
    );
    assert_eq!(
        doc["components"]["securitySchemes"][openapi::API_KEY]["name"],
        "X-API-Key"
    );
    let paths = doc["paths"].as_object().expect("paths");
    for path in [
        "/api/v1/trash/{id}/restore",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{id}",
        "/auth/login",
        "/v1/documents/{id}/revisions",
        "/v1/documents/{id}/redline",
    ] {
        assert!(paths.contains_key(path), "{path} is not documented");
    }
    for collection in ["tasks", "contacts"] {
        let list = &paths[&format!("/api/v1/{collection}")]["get"];
        let names: Vec<&str> = list["parameters"]
            .as_array()
            .expect("list parameters")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for name in ["page", "limit", "cursor", "sort", "filter", "search"] {
            assert!(names.contains(&name), "{collection}: no `{name}` parameter");
        }
        let create = &paths[&format!("/api/v1/{collection}")]["post"];
        assert!(
            create["parameters"]
                .as_array()
                .expect("create parameters")
                .iter()
                .any(|p| p["name"] == "Idempotency-Key"),
            "{collection}: POST has no Idempotency-Key"
        );
        assert!(list["responses"]["429"]["headers"]["Retry-After"].is_object());
        let ok = &list["responses"]["200"];
        assert!(ok["headers"]["X-RateLimit-Limit"].is_object());
        assert!(ok["headers"]["X-RateLimit-Remaining"].is_object());
    }
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let responses = operation["responses"].as_object().expect("responses");
            let error_statuses: Vec<&String> = responses
                .keys()
                .filter(|s| s.starts_with('4') || s.starts_with('5'))
                .collect();
            assert!(
                error_statuses.iter().any(|s| s.starts_with('4'))
                    && error_statuses.iter().any(|s| s.starts_with('5')),
                "{method} {path}: no 4xx or 5xx response"
            );
            for status in error_statuses {
                assert_eq!(
                    responses[status]["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorEnvelope",
                    "{method} {path} {status}"
                );
            }
        }
    }
}

#[tokio::test]
async fn served_document_is_the_generated_one() {
    let server = TestServer::start().await;
    let response = reqwest::get(server.http_url(openapi::PATH))
        .await
        .expect("GET openapi.json");
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/json",
        "content type"
    );
    assert!(response.headers().contains_key("x-correlation-id"));
    let body = response.text().await.expect("body");
    assert_eq!(body, openapi::json());
}
