//! The email channel of notifications.
//!
//! The notifications handler decides who is told what; when a recipient has the email channel
//! on for an event it calls [`enqueue`] **in its own transaction**, which writes the
//! notification's text to `email_outbox` (once per org, event and recipient: a handler that
//! runs twice for one event enqueues once) and queues the email in `email_queue`:
//!
//! - digest `off`: a `single` email, due now;
//! - digest `hourly` / `daily`: the recipient's open `digest` email (one per org and recipient
//!   at a time), which becomes due one period (scaled by `time_scale`) after the notification
//!   that opened it, and then carries every notification of the recipient no digest has taken.
//!
//! The [`sender`] loop of every server process claims due emails with `FOR UPDATE SKIP
//! LOCKED`, renders them ([`template`]: plain text and HTML, user content escaped), and hands
//! them to the [`transport`]: SMTP when `SYNCLINE_SMTP_URL` is set, otherwise `.eml` files in
//! the mailbox folder (the development default). Delivery is **at least once**: a process that
//! dies after sending and before marking the email sent leaves it `sending`; the reaper gives
//! it back to the queue and it is sent again with the same `Message-ID` (derived from the queue
//! row's id), by which receivers can drop the duplicate, and the same mailbox file name.
//! See docs/email.md.

pub mod sender;
pub mod template;
pub mod transport;

use uuid::Uuid;

use crate::store::Tx;

/// One notification to tell a recipient by email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailNotification {
    /// The domain event this notification is about (with the org and recipient, its key).
    pub event_id: Uuid,
    /// `task.assigned`, `user.mentioned`, ...
    pub event_type: String,
    /// One line: the subject of a single email, the heading of its entry in a digest.
    pub title: String,
    /// Plain text (user content; escaped when rendered as HTML).
    pub body: String,
    /// Where to open the record (http(s) links become HTML links; anything else is shown as
    /// text only).
    pub link: Option<String>,
}

/// How a recipient wants their notification emails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestMode {
    /// One email per notification, sent at once.
    Off,
    /// At most one email per hour, grouping what came in since the last one.
    Hourly,
    /// At most one email per day.
    Daily,
}

impl DigestMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Hourly => "hourly",
            Self::Daily => "daily",
        }
    }

    /// Parses a stored setting; anything unknown means `Off` (an email is never held back by a
    /// setting this server does not understand).
    pub fn parse(value: &str) -> Self {
        match value {
            "hourly" => Self::Hourly,
            "daily" => Self::Daily,
            _ => Self::Off,
        }
    }

    /// The nominal (unscaled) period of a digest.
    pub fn period(self) -> Option<std::time::Duration> {
        match self {
            Self::Off => None,
            Self::Hourly => Some(std::time::Duration::from_secs(3600)),
            Self::Daily => Some(std::time::Duration::from_secs(86_400)),
        }
    }
}

/// Queues `n` for `user_id` by email, in the caller's transaction (opened with
/// [`crate::db::begin_org`] for `org_id`). Idempotent by `(org_id, n.event_id, user_id)`: a
/// second call for the same triple does nothing.
pub async fn enqueue(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
    n: &EmailNotification,
) -> Result<(), sqlx::Error> {
    let mode = digest_mode(tx, org_id, user_id).await?;
    enqueue_with(tx, org_id, user_id, n, mode).await
}

/// [`enqueue`] with the recipient's digest setting given rather than read (for a caller that
/// has just read it, and for tests).
pub async fn enqueue_with(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
    n: &EmailNotification,
    mode: DigestMode,
) -> Result<(), sqlx::Error> {
    let id = Uuid::now_v7();
    let inserted = sqlx::query(
        "INSERT INTO email_outbox (org_id, id, user_id, event_id, event_type, title, body, link, digest) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (org_id, event_id, user_id) DO NOTHING",
    )
    .bind(org_id)
    .bind(id)
    .bind(user_id)
    .bind(n.event_id)
    .bind(&n.event_type)
    .bind(&n.title)
    .bind(&n.body)
    .bind(&n.link)
    .bind(mode.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(());
    }
    match mode {
        DigestMode::Off => {
            sqlx::query(
                "INSERT INTO email_queue (id, org_id, user_id, kind, period, status) \
                 VALUES ($1, $2, $3, 'single', 'off', 'pending')",
            )
            .bind(id)
            .bind(org_id)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        }
        DigestMode::Hourly | DigestMode::Daily => {
            // Opens the recipient's digest, or joins the open one. The no-op update (rather than
            // DO NOTHING) locks the open digest until this transaction ends, so a sender cannot
            // claim it in between and miss this row (its claim skips locked rows; once this
            // commits, the claim sees the row). `run_at` is when the digest opened; the sender
            // adds the scaled period when it looks for due digests.
            sqlx::query(
                "INSERT INTO email_queue (id, org_id, user_id, kind, period, status, run_at) \
                 VALUES ($1, $2, $3, 'digest', $4, 'collecting', now()) \
                 ON CONFLICT (org_id, user_id) WHERE status = 'collecting' \
                 DO UPDATE SET run_at = email_queue.run_at",
            )
            .bind(Uuid::now_v7())
            .bind(org_id)
            .bind(user_id)
            .bind(mode.as_str())
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// The recipient's digest setting in this org: `notification_settings.email_digest`, kept by
/// the notifications module (migration 0012); `off` when never set.
pub async fn digest_mode(
    tx: &mut Tx<'_>,
    org_id: Uuid,
    user_id: Uuid,
) -> Result<DigestMode, sqlx::Error> {
    crate::notifications::preferences::email_digest(tx, org_id, user_id).await
}
