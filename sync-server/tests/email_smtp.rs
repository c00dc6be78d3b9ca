//! The email channel over real SMTP: the server sends through lettre to an SMTP server built on
//! `aiosmtpd` from PyPI (pinned and installed into a venv by scripts/aiosmtpd.sh; the server is
//! scripts/smtp_sink.py), which writes each accepted message to a folder. A refused message
//! (451) is retried until accepted; the received message is a valid multipart email with the
//! recipient in the envelope; two server processes deliver one digest once.
//!
//! Set `SYNCLINE_AIOSMTPD_VENV` to use another virtualenv that has aiosmtpd.

use std::path::{Path, PathBuf};
use std::process::Stdio;

#[path = "support/mail.rs"]
mod mail;
use mail::until;

use sync_server::effects::EffectsSettings;
use sync_server::email::{self, DigestMode, EmailNotification};
use sync_server::testing::{TestServer, fresh_database_url, test_effects};
use tokio::io::{AsyncBufReadExt, BufReader};
use uuid::Uuid;

/// The venv's python (scripts/aiosmtpd.sh runs first; it returns at once when in place).
fn python() -> PathBuf {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/aiosmtpd.sh");
    let status = std::process::Command::new("bash")
        .arg(&script)
        .status()
        .expect("run scripts/aiosmtpd.sh");
    assert!(status.success(), "scripts/aiosmtpd.sh failed: {status}");
    std::env::var_os("SYNCLINE_AIOSMTPD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/syncline-aiosmtpd")
        })
        .join("bin/python")
}

/// A running SMTP sink; killed when dropped.
struct Sink {
    _child: tokio::process::Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Sink {
    async fn start(fail_first: u32) -> Self {
        let dir = tempfile::tempdir().expect("sink folder");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/smtp_sink.py");
        let mut child = tokio::process::Command::new(python())
            .arg(&script)
            .arg(dir.path())
            .arg("--fail-first")
            .arg(fail_first.to_string())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the SMTP sink");
        let stdout = child.stdout.take().expect("sink stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("the sink's port");
        let port = line.trim().parse().expect("a port number");
        Self {
            _child: child,
            port,
            dir,
        }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages accepted so far, in order.
    fn messages(&self) -> Vec<PathBuf> {
        (1..)
            .map(|n| self.dir.path().join(format!("{n}.eml")))
            .take_while(|p| p.exists())
            .collect()
    }

    fn refused(&self) -> u32 {
        std::fs::read_to_string(self.dir.path().join("refused"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

async fn enqueue(server: &TestServer, org: Uuid, user: Uuid, title: &str, mode: DigestMode) {
    let n = EmailNotification {
        event_id: Uuid::now_v7(),
        event_type: "task.assigned".into(),
        title: title.into(),
        body: "over SMTP & back".into(),
        link: None,
    };
    let mut tx = sync_server::db::begin_org(&server.state.db, org)
        .await
        .expect("begin");
    email::enqueue_with(&mut tx, org, user, &n, mode)
        .await
        .expect("enqueue");
    tx.commit().await.expect("commit");
}

/// (id, status, attempts, items) of the recipient's one email, once it is sent.
async fn until_sent(server: &TestServer, user: Uuid) -> (Uuid, String, i32, Option<i32>) {
    until("the email to be sent", || async {
        let row: Option<(Uuid, String, i32, Option<i32>)> = sqlx::query_as(
            "SELECT id, status, attempts, items FROM email_queue WHERE user_id = $1",
        )
        .bind(user)
        .fetch_optional(&server.db)
        .await
        .expect("queue");
        row.filter(|r| r.1 == "sent")
    })
    .await
}

fn header(mail: &mailparse::ParsedMail<'_>, name: &str) -> String {
    mail.headers
        .iter()
        .find(|h| h.get_key().eq_ignore_ascii_case(name))
        .map(|h| h.get_value())
        .unwrap_or_default()
}

fn parse(path: &Path) -> (String, String, String, String, String) {
    let bytes = std::fs::read(path).expect("read message");
    let mail = mailparse::parse_mail(&bytes).expect("an RFC 5322 message");
    assert_eq!(mail.ctype.mimetype, "multipart/alternative");
    assert_eq!(mail.subparts.len(), 2);
    assert_eq!(mail.subparts[0].ctype.mimetype, "text/plain");
    assert_eq!(mail.subparts[1].ctype.mimetype, "text/html");
    (
        header(&mail, "To"),
        header(&mail, "Subject"),
        header(&mail, "Message-ID"),
        mail.subparts[0].get_body().expect("text"),
        mail.subparts[1].get_body().expect("html"),
    )
}

#[tokio::test]
async fn a_refused_message_is_retried_until_the_smtp_server_accepts_it() {
    let sink = Sink::start(2).await;
    let settings = EffectsSettings {
        smtp_url: Some(sink.url()),
        ..test_effects()
    };
    let mailbox_dir = settings.mailbox_dir.clone();
    let server = TestServer::start_with(fresh_database_url().await, settings).await;
    let ann = server.register("ann@example.com").await;
    enqueue(
        &server,
        ann.org_id,
        ann.user_id,
        "Over SMTP",
        DigestMode::Off,
    )
    .await;

    let (id, _, attempts, items) = until_sent(&server, ann.user_id).await;
    assert_eq!((attempts, items), (3, Some(1)), "two refusals, then sent");
    assert_eq!(sink.refused(), 2);
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let rcpt = std::fs::read_to_string(messages[0].with_extension("rcpt")).expect("envelope");
    assert_eq!(rcpt.trim(), "ann@example.com");
    let (to, subject, message_id, text, html) = parse(&messages[0]);
    assert!(to.contains("<ann@example.com>"), "{to}");
    assert_eq!(subject, "Over SMTP");
    assert_eq!(message_id, format!("<{id}@syncline.local>"));
    assert!(text.contains("over SMTP & back"), "{text}");
    assert!(html.contains("over SMTP &amp; back"), "{html}");
    assert!(
        !mailbox_dir.exists()
            || std::fs::read_dir(&mailbox_dir)
                .into_iter()
                .flatten()
                .count()
                == 0,
        "nothing goes to the mailbox folder when SMTP is configured"
    );
}

#[tokio::test]
async fn two_processes_deliver_one_digest_once_over_smtp() {
    let sink = Sink::start(0).await;
    let settings = |workers| EffectsSettings {
        smtp_url: Some(sink.url()),
        time_scale: 2.0 / 3600.0,
        workers,
        ..test_effects()
    };
    let url = fresh_database_url().await;
    let mut quiet = TestServer::start_with(url.clone(), settings(0)).await;
    let ann = quiet.register("ann@example.com").await;
    for i in 0..3 {
        enqueue(
            &quiet,
            ann.org_id,
            ann.user_id,
            &format!("hourly {i}"),
            DigestMode::Hourly,
        )
        .await;
    }
    quiet.stop().await;
    let a = TestServer::start_with(url.clone(), settings(2)).await;
    let _b = TestServer::start_with(url, settings(2)).await;
    let (_, _, attempts, items) = until_sent(&a, ann.user_id).await;
    assert_eq!((attempts, items), (1, Some(3)), "claimed once, all three");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let (_, subject, _, text, _) = parse(&messages[0]);
    assert_eq!(subject, "3 new notifications");
    for i in 0..3 {
        assert!(text.contains(&format!("- hourly {i}")), "{text}");
    }
}
