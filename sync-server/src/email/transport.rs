//! Where emails go: an SMTP server (`SYNCLINE_SMTP_URL`, through lettre) or, by default, the
//! mailbox folder, one RFC 5322 `.eml` file per email named after its id.
//!
//! The message is built here from a [`Rendered`] email: `multipart/alternative` with the plain
//! text first and the HTML second (clients show the last part they understand), a `Message-ID`
//! of `<id@domain of the From address>`, so a resend of the same queue row carries the same id,
//! and `Auto-Submitted: auto-generated` so that auto-responders stay quiet (RFC 3834).

use std::path::{Path, PathBuf};

use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use super::template::Rendered;

/// Why an email was not handed over.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The address or message cannot be sent, ever (a bad recipient or From address).
    #[error("invalid email: {0}")]
    Invalid(String),
    /// The SMTP server refused or failed for now, or the mailbox folder is not writable.
    #[error("{0}")]
    Failed(String),
}

/// The configured way out.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Mailbox(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp(_) => f.write_str("Transport::Smtp"),
            Self::Mailbox(dir) => f.debug_tuple("Transport::Mailbox").field(dir).finish(),
        }
    }
}

impl Transport {
    /// SMTP when `smtp_url` is given (`smtp://host:port`, `smtp://host:port?tls=required` for
    /// STARTTLS, `smtps://host:port`, credentials as `user:pass@`), otherwise the mailbox.
    pub fn new(smtp_url: Option<&str>, mailbox_dir: &Path) -> Result<Self, TransportError> {
        match smtp_url {
            Some(url) => AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                .map(|b| Self::Smtp(b.build()))
                .map_err(|e| TransportError::Invalid(format!("SYNCLINE_SMTP_URL: {e}"))),
            None => Ok(Self::Mailbox(mailbox_dir.to_path_buf())),
        }
    }

    /// Sends one message.
    pub async fn send(&self, id: Uuid, message: &Message) -> Result<(), TransportError> {
        match self {
            Self::Smtp(smtp) => smtp.send(message.clone()).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() {
                    TransportError::Invalid(format!("smtp: {e}"))
                } else {
                    TransportError::Failed(format!("smtp: {e}"))
                }
            }),
            Self::Mailbox(dir) => write_eml(dir, id, &message.formatted())
                .await
                .map_err(|e| TransportError::Failed(format!("mailbox {}: {e}", dir.display()))),
        }
    }
}

/// Writes `<dir>/<id>.eml` whole or not at all (a temporary file renamed into place): a reader
/// of the mailbox never sees half a message, and a resend replaces the file rather than adding
/// a second one.
async fn write_eml(dir: &Path, id: Uuid, bytes: &[u8]) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::rename(&tmp, dir.join(format!("{id}.eml"))).await
}

/// Builds the message of `rendered` from `from` to `to_name <to_email>`.
pub fn build_message(
    id: Uuid,
    from: &str,
    to_name: &str,
    to_email: &str,
    rendered: &Rendered,
) -> Result<Message, TransportError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| TransportError::Invalid(format!("From address `{from}`: {e}")))?;
    let to_address = to_email
        .parse()
        .map_err(|e| TransportError::Invalid(format!("recipient address `{to_email}`: {e}")))?;
    // A display name is user content: one line, like every header value.
    let to = Mailbox::new(Some(super::template::one_line(to_name)), to_address);
    let message_id = format!("<{id}@{}>", from.email.domain());
    let mut message = Message::builder()
        .message_id(Some(message_id))
        .from(from)
        .to(to)
        .subject(rendered.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .map_err(|e| TransportError::Invalid(format!("building the message: {e}")))?;
    message.headers_mut().insert_raw(HeaderValue::new(
        HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-generated".to_owned(),
    ));
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_display_name_cannot_add_headers_and_the_message_id_is_the_row_id() {
        let id = Uuid::now_v7();
        let rendered = Rendered {
            subject: "s".into(),
            text: "t".into(),
            html: "<p>h</p>".into(),
        };
        let message = build_message(
            id,
            "Syncline <no-reply@mail.example>",
            "Mallory\r\nBcc: victim@example.com",
            "mallory@example.com",
            &rendered,
        )
        .expect("message");
        let text = String::from_utf8(message.formatted()).expect("utf-8");
        let headers = text.split("\r\n\r\n").next().unwrap_or_default();
        assert!(!headers.lines().any(|l| l.starts_with("Bcc")), "{headers}");
        assert!(headers.contains(&format!("Message-ID: <{id}@mail.example>")));
        assert!(headers.contains("Auto-Submitted: auto-generated"));
        assert!(matches!(
            build_message(id, "not an address", "x", "x@example.com", &rendered),
            Err(TransportError::Invalid(_))
        ));
        assert!(matches!(
            build_message(id, "a@example.com", "x", "no at sign", &rendered),
            Err(TransportError::Invalid(_))
        ));
    }
}
