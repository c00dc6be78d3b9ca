//! The email channel over a real server and Postgres, with the development transport (`.eml`
//! files in the mailbox folder): one notification becomes one RFC 5322 message with the right
//! recipient, subject and both bodies (parsed back); enqueueing is idempotent per event and
//! recipient and only happens when the caller's transaction commits; digests group a
//! recipient's notifications into one email per period; a sender that stopped before sending,
//! or after sending but before marking the email sent, leads to exactly one message with the
//! same Message-ID; two processes never build the same digest twice.

use std::path::Path;
use std::time::Duration;

#[path = "support/mail.rs"]
mod mail;
use mail::{Tidy, mailbox, until};

use sync_server::effects::EffectsSettings;
use sync_server::email::{self, DigestMode, EmailNotification};
use sync_server::testing::{TestServer, fresh_database_url, test_effects};
use uuid::Uuid;

fn notification(title: &str, body: &str) -> EmailNotification {
    EmailNotification {
        event_id: Uuid::now_v7(),
        event_type: "task.assigned".into(),
        title: title.into(),
        body: body.into(),
        link: Some("https://app.example/tasks/1?a=1&b=2".into()),
    }
}

/// Enqueues in a transaction of the server's own (row-level secured) pool, as the
/// notifications handler does.
async fn enqueue(
    server: &TestServer,
    org: Uuid,
    user: Uuid,
    n: &EmailNotification,
    mode: DigestMode,
) {
    let mut tx = sync_server::db::begin_org(&server.state.db, org)
        .await
        .expect("begin");
    email::enqueue_with(&mut tx, org, user, n, mode)
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
}

/// One parsed email.
#[derive(Debug)]
struct Parsed {
    to: String,
    from: String,
    subject: String,
    message_id: String,
    auto_submitted: String,
    text: String,
    html: String,
}

fn parse(path: &Path) -> Parsed {
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
    assert_eq!(mail.subparts.len(), 2, "a plain and an HTML part");
    assert_eq!(mail.subparts[0].ctype.mimetype, "text/plain");
    assert_eq!(mail.subparts[1].ctype.mimetype, "text/html");
    Parsed {
        to: header("To"),
        from: header("From"),
        subject: header("Subject"),
        message_id: header("Message-ID"),
        auto_submitted: header("Auto-Submitted"),
        // Bodies travel with CRLF line ends (RFC 5322); compare with `\n`.
        text: mail.subparts[0]
            .get_body()
            .expect("text body")
            .replace("\r\n", "\n"),
        html: mail.subparts[1]
            .get_body()
            .expect("html body")
            .replace("\r\n", "\n"),
    }
}

/// The queue rows of a recipient: (id, kind, status, attempts, items).
async fn queue(server: &TestServer, user: Uuid) -> Vec<(Uuid, String, String, i32, Option<i32>)> {
    sqlx::query_as(
        "SELECT id, kind, status, attempts, items FROM email_queue WHERE user_id = $1 ORDER BY created_at, id",
    )
    .bind(user)
    .fetch_all(&server.db)
    .await
    .expect("queue")
}

async fn until_sent(server: &TestServer, user: Uuid, count: usize) {
    until("emails sent", || async {
        let rows = queue(server, user).await;
        (rows.iter().filter(|r| r.2 == "sent").count() >= count).then_some(())
    })
    .await;
}

#[tokio::test]
async fn one_notification_is_one_eml_with_recipient_subject_and_both_bodies() {
    let server = TestServer::start().await;
    let _tidy = Tidy(server.state.effects.mailbox_dir.clone());
    let ann = server.register("ann@example.com").await;
    let mailbox_dir = server.state.effects.mailbox_dir.clone();
    let n = notification(
        "Ann <script> assigned you \"Ship it\"",
        "Due Friday & important\nsecond line",
    );
    enqueue(&server, ann.org_id, ann.user_id, &n, DigestMode::Off).await;
    // Enqueueing the same (event, recipient) again, as a re-run handler does, changes nothing.
    enqueue(&server, ann.org_id, ann.user_id, &n, DigestMode::Off).await;
    until_sent(&server, ann.user_id, 1).await;

    let files = mailbox(&mailbox_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let rows = queue(&server, ann.user_id).await;
    assert_eq!(rows.len(), 1);
    let (id, kind, _, attempts, items) = rows[0].clone();
    assert_eq!((kind.as_str(), attempts, items), ("single", 1, Some(1)));
    assert_eq!(
        files[0].file_name().and_then(|f| f.to_str()),
        Some(format!("{id}.eml").as_str())
    );

    let mail = parse(&files[0]);
    assert!(mail.to.contains("<ann@example.com>"), "{}", mail.to);
    assert!(
        mail.from.contains("no-reply@syncline.local"),
        "{}",
        mail.from
    );
    assert_eq!(mail.subject, "Ann <script> assigned you \"Ship it\"");
    assert_eq!(mail.message_id, format!("<{id}@syncline.local>"));
    assert_eq!(mail.auto_submitted, "auto-generated");
    assert!(mail.text.contains("Ann <script> assigned you \"Ship it\""));
    assert!(mail.text.contains("Due Friday & important\nsecond line"));
    assert!(
        mail.text
            .contains("Open: https://app.example/tasks/1?a=1&b=2")
    );
    assert!(!mail.html.contains("<script>"), "{}", mail.html);
    assert!(
        mail.html
            .contains("Ann &lt;script&gt; assigned you &quot;Ship it&quot;")
    );
    assert!(mail.html.contains("Due Friday &amp; important<br>"));
    assert!(
        mail.html
            .contains("href=\"https://app.example/tasks/1?a=1&amp;b=2\"")
    );

    let sent_at: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT sent_at FROM email_outbox WHERE id = $1")
            .bind(id)
            .fetch_one(&server.db)
            .await
            .expect("outbox row");
    assert!(sent_at.is_some());
}

#[tokio::test]
async fn nothing_is_queued_when_the_callers_transaction_rolls_back() {
    let server = TestServer::start().await;
    let _tidy = Tidy(server.state.effects.mailbox_dir.clone());
    let ann = server.register("ann@example.com").await;
    let mut tx = sync_server::db::begin_org(&server.state.db, ann.org_id)
        .await
        .expect("begin");
    email::enqueue_with(
        &mut tx,
        ann.org_id,
        ann.user_id,
        &notification("never", ""),
        DigestMode::Off,
    )
    .await
    .expect("enqueue");
    tx.rollback().await.expect("rollback");
    assert!(queue(&server, ann.user_id).await.is_empty());
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM email_outbox")
        .fetch_one(&server.db)
        .await
        .expect("count");
    assert_eq!(outbox, 0);
}

#[tokio::test]
async fn enqueue_reads_the_recipients_digest_setting() {
    let server = TestServer::start().await;
    let _tidy = Tidy(server.state.effects.mailbox_dir.clone());
    let ann = server.register("ann@example.com").await;
    let enqueue_plain = |title: &'static str| {
        let server = &server;
        let ann = &ann;
        async move {
            let mut tx = sync_server::db::begin_org(&server.state.db, ann.org_id)
                .await
                .expect("begin");
            email::enqueue(
                &mut tx,
                ann.org_id,
                ann.user_id,
                &notification(title, "body"),
            )
            .await
            .expect("enqueue");
            tx.commit().await.expect("commit");
        }
    };
    // Never set: every notification is its own email.
    enqueue_plain("on its own").await;
    until_sent(&server, ann.user_id, 1).await;
    assert_eq!(mailbox(&server.state.effects.mailbox_dir).len(), 1);

    // `notification_settings.email_digest` (the notifications module's) holds the next one
    // for the hourly digest.
    sqlx::query(
        "INSERT INTO notification_settings (org_id, user_id, email_digest) VALUES ($1, $2, 'hourly')",
    )
    .bind(ann.org_id)
    .bind(ann.user_id)
    .execute(&server.db)
    .await
    .expect("set the digest");
    enqueue_plain("for the digest").await;
    let rows = queue(&server, ann.user_id).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        (rows[1].1.as_str(), rows[1].2.as_str()),
        ("digest", "collecting"),
        "{rows:?}"
    );
    let digest: String =
        sqlx::query_scalar("SELECT digest FROM email_outbox WHERE title = 'for the digest'")
            .fetch_one(&server.db)
            .await
            .expect("outbox row");
    assert_eq!(digest, "hourly");
}

/// Settings whose daily period is about 3 s, sharing one mailbox folder.
fn digest_settings(mailbox_dir: &Path, workers: usize) -> EffectsSettings {
    EffectsSettings {
        time_scale: 3.0 / 86_400.0,
        workers,
        mailbox_dir: mailbox_dir.to_path_buf(),
        ..test_effects()
    }
}

#[tokio::test]
async fn a_daily_digest_groups_three_notifications_into_one_email() {
    let url = fresh_database_url().await;
    let mailbox_dir = test_effects().mailbox_dir;
    let _tidy = Tidy(mailbox_dir.clone());
    // Enqueued while no sender runs, so that all three are waiting when the period ends.
    let mut quiet = TestServer::start_with(url.clone(), digest_settings(&mailbox_dir, 0)).await;
    let ann = quiet.register("ann@example.com").await;
    let titles = ["First <task>", "Second task", "Third task"];
    for title in titles {
        enqueue(
            &quiet,
            ann.org_id,
            ann.user_id,
            &notification(title, "details"),
            DigestMode::Daily,
        )
        .await;
    }
    let rows = queue(&quiet, ann.user_id).await;
    assert_eq!(rows.len(), 1, "one open digest, no single emails: {rows:?}");
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str()),
        ("digest", "collecting")
    );
    quiet.stop().await;

    let server = TestServer::start_with(url, digest_settings(&mailbox_dir, 2)).await;
    until_sent(&server, ann.user_id, 1).await;
    let rows = queue(&server, ann.user_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (digest_id, kind, status, attempts, items) = rows[0].clone();
    assert_eq!(
        (kind.as_str(), status.as_str(), attempts, items),
        ("digest", "sent", 1, Some(3))
    );
    let files = mailbox(&mailbox_dir);
    assert_eq!(files.len(), 1, "{files:?}");
    let mail = parse(&files[0]);
    assert_eq!(mail.subject, "3 new notifications");
    assert_eq!(mail.message_id, format!("<{digest_id}@syncline.local>"));
    for title in titles {
        assert!(mail.text.contains(&format!("- {title}")), "{}", mail.text);
    }
    assert!(mail.html.contains("<strong>First &lt;task&gt;</strong>"));
    assert_eq!(mail.html.matches("<li>").count(), 3);

    // Every notification is marked sent with the digest's id.
    let marked: Vec<(Option<Uuid>, bool)> = sqlx::query_as(
        "SELECT digest_id, sent_at IS NOT NULL FROM email_outbox WHERE user_id = $1",
    )
    .bind(ann.user_id)
    .fetch_all(&server.db)
    .await
    .expect("outbox");
    assert_eq!(marked.len(), 3);
    assert!(
        marked.iter().all(|m| *m == (Some(digest_id), true)),
        "{marked:?}"
    );

    // A later notification opens the next digest rather than joining the sent one.
    enqueue(
        &server,
        ann.org_id,
        ann.user_id,
        &notification("Fourth task", ""),
        DigestMode::Daily,
    )
    .await;
    until_sent(&server, ann.user_id, 2).await;
    let rows = queue(&server, ann.user_id).await;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].4, Some(1));
    let files = mailbox(&mailbox_dir);
    assert_eq!(files.len(), 2);
    let second = files
        .iter()
        .find(|f| f.file_name().and_then(|n| n.to_str()) == Some(&format!("{}.eml", rows[1].0)))
        .expect("second digest file");
    assert_eq!(parse(second).subject, "1 new notification");
}

#[tokio::test]
async fn digest_and_single_recipients_do_not_mix() {
    let url = fresh_database_url().await;
    let mailbox_dir = test_effects().mailbox_dir;
    let _tidy = Tidy(mailbox_dir.clone());
    let mut quiet = TestServer::start_with(url.clone(), digest_settings(&mailbox_dir, 0)).await;
    let ann = quiet.register("ann@example.com").await;
    let bob = quiet.join(&ann, "bob@example.com", "member").await;
    for i in 0..2 {
        enqueue(
            &quiet,
            ann.org_id,
            ann.user_id,
            &notification(&format!("for ann {i}"), ""),
            DigestMode::Hourly,
        )
        .await;
        enqueue(
            &quiet,
            ann.org_id,
            bob.user_id,
            &notification(&format!("for bob {i}"), ""),
            DigestMode::Off,
        )
        .await;
    }
    quiet.stop().await;
    let server = TestServer::start_with(url, digest_settings(&mailbox_dir, 2)).await;
    until_sent(&server, ann.user_id, 1).await;
    until_sent(&server, bob.user_id, 2).await;
    let mut subjects: Vec<(String, String)> = mailbox(&mailbox_dir)
        .iter()
        .map(|f| {
            let m = parse(f);
            (m.to, m.subject)
        })
        .collect();
    subjects.sort();
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(subjects[0].0.contains("ann@example.com"));
    assert_eq!(subjects[0].1, "2 new notifications");
    assert!(subjects[1].0.contains("bob@example.com"));
    assert_eq!(subjects[1].1, "for bob 0");
    assert_eq!(subjects[2].1, "for bob 1");
}

#[tokio::test]
async fn a_sender_that_stopped_before_sending_leads_to_one_email() {
    let url = fresh_database_url().await;
    let settings = EffectsSettings {
        workers: 0,
        ..test_effects()
    };
    let mailbox_dir = settings.mailbox_dir.clone();
    let _tidy = Tidy(mailbox_dir.clone());
    let mut first = TestServer::start_with(url.clone(), settings.clone()).await;
    let ann = first.register("ann@example.com").await;
    enqueue(
        &first,
        ann.org_id,
        ann.user_id,
        &notification("after the crash", ""),
        DigestMode::Off,
    )
    .await;
    first.stop().await;
    assert!(mailbox(&mailbox_dir).is_empty());

    let second = TestServer::start_with(
        url,
        EffectsSettings {
            workers: 2,
            ..settings
        },
    )
    .await;
    until_sent(&second, ann.user_id, 1).await;
    let rows = queue(&second, ann.user_id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].3, 1, "sent in one attempt");
    assert_eq!(mailbox(&mailbox_dir).len(), 1);
}

#[tokio::test]
async fn a_sender_that_died_after_sending_resends_with_the_same_message_id() {
    let url = fresh_database_url().await;
    let settings = EffectsSettings {
        stuck_after: Duration::from_millis(200),
        ..test_effects()
    };
    let mailbox_dir = settings.mailbox_dir.clone();
    let _tidy = Tidy(mailbox_dir.clone());
    let mut first = TestServer::start_with(url.clone(), settings.clone()).await;
    let ann = first.register("ann@example.com").await;
    enqueue(
        &first,
        ann.org_id,
        ann.user_id,
        &notification("at least once", ""),
        DigestMode::Off,
    )
    .await;
    until_sent(&first, ann.user_id, 1).await;
    first.stop().await;
    let files = mailbox(&mailbox_dir);
    assert_eq!(files.len(), 1);
    let before = parse(&files[0]);
    std::fs::remove_file(&files[0]).expect("take the message out of the mailbox");

    // As if the process had died after handing the message over and before marking it sent.
    let id = queue(&first, ann.user_id).await[0].0;
    sqlx::query(
        "UPDATE email_queue SET status = 'sending', sent_at = NULL, locked_by = 'dead-process', \
                locked_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(id)
    .execute(&first.db)
    .await
    .expect("simulate the crash");

    let second = TestServer::start_with(url, settings).await;
    until_sent(&second, ann.user_id, 1).await;
    let rows = queue(&second, ann.user_id).await;
    assert_eq!(
        (rows.len(), rows[0].3),
        (1, 2),
        "one email, a second attempt"
    );
    let files = mailbox(&mailbox_dir);
    assert_eq!(files.len(), 1);
    let after = parse(&files[0]);
    assert_eq!(after.message_id, before.message_id, "receivers can dedupe");
    assert_eq!(after.subject, before.subject);
}

#[tokio::test]
async fn two_processes_send_a_digest_once() {
    let url = fresh_database_url().await;
    let mailbox_dir = test_effects().mailbox_dir;
    let _tidy = Tidy(mailbox_dir.clone());
    let mut quiet = TestServer::start_with(url.clone(), digest_settings(&mailbox_dir, 0)).await;
    let ann = quiet.register("ann@example.com").await;
    for i in 0..3 {
        enqueue(
            &quiet,
            ann.org_id,
            ann.user_id,
            &notification(&format!("n{i}"), ""),
            DigestMode::Daily,
        )
        .await;
    }
    quiet.stop().await;
    let a = TestServer::start_with(url.clone(), digest_settings(&mailbox_dir, 2)).await;
    let b = TestServer::start_with(url, digest_settings(&mailbox_dir, 2)).await;
    until_sent(&a, ann.user_id, 1).await;
    let rows = queue(&b, ann.user_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].3, rows[0].4),
        (1, Some(3)),
        "claimed once, all three"
    );
    assert_eq!(mailbox(&mailbox_dir).len(), 1);
}

#[tokio::test]
async fn an_unusable_recipient_address_is_dead_lettered_at_once() {
    let server = TestServer::start().await;
    let _tidy = Tidy(server.state.effects.mailbox_dir.clone());
    let ann = server.register("ann@example.com").await;
    sqlx::query("UPDATE users SET email = 'not an address' WHERE id = $1")
        .bind(ann.user_id)
        .execute(&server.db)
        .await
        .expect("break the address");
    enqueue(
        &server,
        ann.org_id,
        ann.user_id,
        &notification("undeliverable", ""),
        DigestMode::Off,
    )
    .await;
    let (status, attempts) = until("the email to be dead", || async {
        let rows = queue(&server, ann.user_id).await;
        rows.first()
            .filter(|r| r.2 == "dead")
            .map(|r| (r.2.clone(), r.3))
    })
    .await;
    assert_eq!((status.as_str(), attempts), ("dead", 1));
    assert!(mailbox(&server.state.effects.mailbox_dir).is_empty());
}

#[tokio::test]
async fn a_digest_is_not_claimed_while_a_notification_is_joining_it() {
    let url = fresh_database_url().await;
    let mailbox_dir = test_effects().mailbox_dir;
    let _tidy = Tidy(mailbox_dir.clone());
    // Time scale 0: a digest is due as soon as it is open. No sender runs in this process; the
    // test claims by hand.
    let quiet_settings = EffectsSettings {
        time_scale: 0.0,
        workers: 0,
        mailbox_dir: mailbox_dir.clone(),
        ..test_effects()
    };
    let mut quiet = TestServer::start_with(url.clone(), quiet_settings.clone()).await;
    let ann = quiet.register("ann@example.com").await;
    enqueue(
        &quiet,
        ann.org_id,
        ann.user_id,
        &notification("first", ""),
        DigestMode::Daily,
    )
    .await;

    // A second notification joins the open digest in a transaction still open...
    let mut joining = sync_server::db::begin_org(&quiet.state.db, ann.org_id)
        .await
        .expect("begin");
    email::enqueue_with(
        &mut joining,
        ann.org_id,
        ann.user_id,
        &notification("second", ""),
        DigestMode::Daily,
    )
    .await
    .expect("enqueue");
    // ...so a sender skips the digest rather than send it without the second one.
    let claimed = email::sender::claim(&quiet.state, "test-sender", 10)
        .await
        .expect("claim");
    assert!(claimed.is_empty(), "{claimed:?}");
    joining.commit().await.expect("commit");
    let claimed = email::sender::claim(&quiet.state, "test-sender", 10)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].kind, "digest");
    quiet.stop().await;

    // The claiming sender "dies"; a running one reaps the claim and sends both notifications.
    let server = TestServer::start_with(
        url,
        EffectsSettings {
            workers: 2,
            stuck_after: Duration::from_millis(100),
            ..quiet_settings
        },
    )
    .await;
    until_sent(&server, ann.user_id, 1).await;
    let rows = queue(&server, ann.user_id).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0].3, rows[0].4),
        (2, Some(2)),
        "reaped once, both carried"
    );
    let files = mailbox(&mailbox_dir);
    assert_eq!(files.len(), 1);
    assert_eq!(parse(&files[0]).subject, "2 new notifications");
}
