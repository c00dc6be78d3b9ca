//! The email channel end to end: a task assigned over REST raises `task.assigned`, the
//! notifications handler decides the assignee is told by email (the default for that event
//! type) and enqueues it, and the sender writes one `.eml` to the mailbox; with the assignee's
//! `email_digest` set to `daily` (over REST), three assignments become one digest email and
//! nothing is sent on its own.

use std::path::Path;

#[path = "support/mail.rs"]
mod mail;
use mail::{Tidy, mailbox, until};

use reqwest::Method;
use serde_json::json;
use sync_server::effects::EffectsSettings;
use sync_server::testing::{TestServer, TestUser, fresh_database_url, test_effects};
use uuid::Uuid;

/// (To, Subject, plain text, HTML) of a message.
fn parse(path: &Path) -> (String, String, String, String) {
    let bytes = std::fs::read(path).expect("read eml");
    let mail = mailparse::parse_mail(&bytes).expect("an RFC 5322 message");
    let header = |name: &str| {
        mail.headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
            .unwrap_or_default()
    };
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    assert_eq!(mail.subparts.len(), 2);
    assert_eq!(mail.subparts[0].ctype.mimetype, "text/plain");
    assert_eq!(mail.subparts[1].ctype.mimetype, "text/html");
    (
        header("To"),
        header("Subject"),
        mail.subparts[0]
            .get_body()
            .expect("text")
            .replace("\r\n", "\n"),
        mail.subparts[1]
            .get_body()
            .expect("html")
            .replace("\r\n", "\n"),
    )
}

async fn assign(server: &TestServer, by: &TestUser, to: Uuid, title: &str) {
    let (status, body) = server
        .api(
            Method::POST,
            "/api/v1/tasks",
            &by.access_token,
            Some(json!({"title": title, "status": "todo", "assignee_id": to})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// (kind, status, items) of the recipient's queued emails.
async fn queue(server: &TestServer, user: Uuid) -> Vec<(String, String, Option<i32>)> {
    sqlx::query_as(
        "SELECT kind, status, items FROM email_queue WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user)
    .fetch_all(&server.db)
    .await
    .expect("queue")
}

#[tokio::test]
async fn assigning_a_task_emails_the_assignee_once() {
    let server = TestServer::start().await;
    let _tidy = Tidy(server.state.effects.mailbox_dir.clone());
    let ann = server.register("ann@example.com").await;
    let bob = server.join(&ann, "bob@example.com", "member").await;
    assign(&server, &ann, bob.user_id, "Ship <the> release").await;

    until("bob's email", || async {
        let rows = queue(&server, bob.user_id).await;
        (rows.len() == 1 && rows[0].1 == "sent").then_some(())
    })
    .await;
    let files = mailbox(&server.state.effects.mailbox_dir);
    assert_eq!(files.len(), 1, "one email, to the assignee only: {files:?}");
    let (to, subject, text, html) = parse(&files[0]);
    assert!(to.contains("<bob@example.com>"), "{to}");
    assert!(subject.contains("Ship <the> release"), "{subject}");
    assert!(text.contains("Ship <the> release"), "{text}");
    assert!(html.contains("Ship &lt;the&gt; release"), "{html}");
    assert!(!html.contains("<the>"), "{html}");
    // The same text as the in-app notification.
    let title: String = sqlx::query_scalar(
        "SELECT title FROM notifications WHERE recipient_id = $1 AND event_type = 'task.assigned'",
    )
    .bind(bob.user_id)
    .fetch_one(&server.db)
    .await
    .expect("in-app notification");
    assert_eq!(subject, title);
}

#[tokio::test]
async fn with_a_daily_digest_three_assignments_are_one_email() {
    let url = fresh_database_url().await;
    let mailbox_dir = test_effects().mailbox_dir;
    let _tidy = Tidy(mailbox_dir.clone());
    let settings = |daily_seconds: f64| EffectsSettings {
        time_scale: daily_seconds / 86_400.0,
        mailbox_dir: mailbox_dir.clone(),
        ..test_effects()
    };
    // A first server whose day lasts an hour: the notifications are enqueued, the digest stays
    // open while we wait for all three.
    let mut first = TestServer::start_with(url.clone(), settings(3600.0)).await;
    let ann = first.register("ann@example.com").await;
    let bob = first.join(&ann, "bob@example.com", "member").await;
    let (status, body) = first
        .api(
            Method::PUT,
            "/api/v1/notification-preferences",
            &bob.access_token,
            Some(json!({"email_digest": "daily"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let titles = ["Write the spec", "Review <the> spec", "Ship the spec"];
    for title in titles {
        assign(&first, &ann, bob.user_id, title).await;
    }
    until("three notifications queued for the digest", || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM email_outbox WHERE user_id = $1 AND digest = 'daily'",
        )
        .bind(bob.user_id)
        .fetch_one(&first.db)
        .await
        .expect("count");
        (n == 3).then_some(())
    })
    .await;
    first.stop().await;
    assert!(mailbox(&mailbox_dir).is_empty());

    // A server whose day lasts a second sends the digest.
    let second = TestServer::start_with(url, settings(1.0)).await;
    until("the digest", || async {
        let rows = queue(&second, bob.user_id).await;
        rows.iter().any(|r| r.1 == "sent").then_some(())
    })
    .await;
    assert_eq!(
        queue(&second, bob.user_id).await,
        vec![("digest".to_owned(), "sent".to_owned(), Some(3))],
        "one digest, nothing sent on its own"
    );
    let files = mailbox(&mailbox_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let (to, subject, text, html) = parse(&files[0]);
    assert!(to.contains("<bob@example.com>"), "{to}");
    assert_eq!(subject, "3 new notifications");
    for title in titles {
        assert!(text.contains(title), "{title} in {text}");
    }
    assert!(html.contains("Review &lt;the&gt; spec"), "{html}");
}

#[tokio::test]
async fn an_assignment_committed_while_no_worker_ran_is_emailed_once_after_a_restart() {
    let url = fresh_database_url().await;
    let settings = test_effects();
    let mailbox_dir = settings.mailbox_dir.clone();
    let _tidy = Tidy(mailbox_dir.clone());
    // The process that accepts the change dies before any effect ran (no workers at all).
    let mut first = TestServer::start_with(
        url.clone(),
        EffectsSettings {
            workers: 0,
            ..settings.clone()
        },
    )
    .await;
    let ann = first.register("ann@example.com").await;
    let bob = first.join(&ann, "bob@example.com", "member").await;
    assign(&first, &ann, bob.user_id, "Survive the crash").await;
    first.stop().await;
    assert!(mailbox(&mailbox_dir).is_empty());

    let second = TestServer::start_with(url, settings).await;
    until("bob's email", || async {
        let rows = queue(&second, bob.user_id).await;
        (rows.len() == 1 && rows[0].1 == "sent").then_some(())
    })
    .await;
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM email_queue WHERE user_id = $1")
        .bind(bob.user_id)
        .fetch_one(&second.db)
        .await
        .expect("attempts");
    assert_eq!(attempts, 1);
    let files = mailbox(&mailbox_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let (to, subject, _, _) = parse(&files[0]);
    assert!(to.contains("<bob@example.com>"), "{to}");
    assert!(subject.contains("Survive the crash"), "{subject}");
}
