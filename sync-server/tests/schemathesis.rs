//! Schemathesis (from PyPI, pinned and installed by scripts/schemathesis.sh) fuzzes a real
//! server through the OpenAPI document it serves: generated valid and invalid requests to
//! every operation, first with a user's access token, then with an API key on the record
//! collections. It must find no 5xx response and no response that
//! violates the document (status, body schema). Examples per operation and the seed are fixed,
//! so a run is bounded (about a minute) and repeatable.
//!
//! Not covered: the schema check passes responses that are not JSON, so the plain-text 400s of
//! axum's path and query extractors on `/orgs/*` and the empty 405s of unrouted methods (not
//! the error envelope) do not fail it.
//!
//! Set `SYNCLINE_SCHEMATHESIS` to an `st` binary to use another install, and
//! `SYNCLINE_SCHEMATHESIS_ARGS` to add arguments (split at whitespace), e.g.
//! `--include-path /api/v1/tasks --report har --report-dir /tmp/st` to look at the exchanges.

use std::path::PathBuf;
use std::process::Stdio;

use sync_server::rest::openapi;
use sync_server::testing::TestServer;

/// Test cases per operation in the fuzzing phase (the coverage phase makes its own number).
const MAX_EXAMPLES: &str = "25";
const SEED: &str = "20261122";

/// The `st` binary: `SYNCLINE_SCHEMATHESIS`, or the venv scripts/schemathesis.sh makes (run
/// here first; it returns at once when the pinned version is in place).
fn schemathesis() -> PathBuf {
    if let Some(path) = std::env::var_os("SYNCLINE_SCHEMATHESIS") {
        return PathBuf::from(path);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/schemathesis.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .status()
        .expect("run scripts/schemathesis.sh");
    assert!(status.success(), "scripts/schemathesis.sh failed: {status}");
    let venv = std::env::var_os("SYNCLINE_SCHEMATHESIS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/syncline-schemathesis")
        });
    venv.join("bin/st")
}

/// Runs `st` against `server` with `auth` as the `Authorization` header; panics with its
/// output unless it passes.
async fn run(st: &PathBuf, server: &TestServer, auth: &str, phases: &str, extra: &[&str]) {
    let workdir = tempfile::tempdir().expect("temporary directory");
    let output = tokio::process::Command::new(st)
        .current_dir(workdir.path())
        .env("NO_COLOR", "1")
        .args([
            "run",
            &server.http_url(openapi::PATH),
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--phases",
            phases,
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            // One worker: the same seed then gives the same run.
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--generation-database",
            "none",
            // The credential is the header below; generated ones (e.g. a random `X-API-Key`,
            // which takes precedence) would make most requests 401.
            "--generation-with-security-parameters",
            "false",
            "--suppress-health-check",
            "all",
            "--no-color",
            "--header",
            &format!("Authorization: {auth}"),
        ])
        .args(extra)
        .args(
            std::env::var("SYNCLINE_SCHEMATHESIS_ARGS")
                .unwrap_or_default()
                .split_whitespace(),
        )
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap_or_else(|e| panic!("start {} ({e})", st.display()));

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // Shown with `--nocapture`.
    eprintln!("{stdout}");
    // A run that tested nothing would also exit 0.
    assert!(
        stdout.contains("passed"),
        "schemathesis reported no passing test:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let st = schemathesis();
    let server = TestServer::start().await;
    // Thousands of requests from one principal in seconds: the default quota would turn most
    // of them into 429s and leave the handlers untested.
    server.state.rate_limits.set_per_minute(1_000_000);
    let user = server.register("fuzz@example.com").await;

    // Every operation with a user's access token.
    let bearer = format!("Bearer {}", user.access_token);
    run(&st, &server, &bearer, "examples,coverage,fuzzing", &[]).await;

    // The record collections with an API key of every scope (fuzzing only, to stay short).
    let (status, key) = server
        .api(
            reqwest::Method::POST,
            "/api/v1/api-keys",
            &user.access_token,
            Some(serde_json::json!({ "name": "fuzz", "scopes": ["*:write"] })),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{key}");
    let key = key["key"].as_str().expect("the plain key");
    let collections = "^/api/v1/(tasks|contacts|notes|documents|trash)";
    run(
        &st,
        &server,
        &format!("Bearer {key}"),
        "fuzzing",
        &["--include-path-regex", collections],
    )
    .await;
}
