//! Requests with any headers, and API keys made through the API.

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::rules::OrgRole;

/// A response's status, headers and JSON body.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

pub async fn send(
    server: &TestServer,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut request = reqwest::Client::new().request(method, server.http_url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("json body")
    };
    Reply {
        status,
        headers,
        body,
    }
}

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Makes an API key for `user` with `scopes`; returns the creation response.
pub async fn make_key(server: &TestServer, user: &TestUser, scopes: &[&str]) -> Value {
    let auth = bearer(&user.access_token);
    let reply = send(
        server,
        Method::POST,
        "/api/v1/api-keys",
        &[("authorization", &auth)],
        Some(json!({"name": "zapier", "scopes": scopes})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

pub fn plain(key: &Value) -> String {
    key["key"].as_str().expect("plain key").to_owned()
}

pub async fn owner(server: &TestServer) -> TestUser {
    server.seed_org("Acme", &[OrgRole::Owner]).await.remove(0)
}
