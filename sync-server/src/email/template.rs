//! The text of notification emails: a subject, a plain-text body and an HTML body per email
//! (sent as `multipart/alternative`). Hand-written templates rather than a template engine:
//! there are two shapes (one notification, a digest of several) and one rule that matters,
//! that every piece of user content is HTML-escaped ([`escape_html`]) and only `http(s)` links
//! become `href`s (a `javascript:` link stays inert text).

use std::fmt::Write as _;

use super::EmailNotification;

/// A rendered email, ready for the transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The product name shown in every email.
const PRODUCT: &str = "Syncline";

/// The email telling one notification.
pub fn single(recipient_name: &str, n: &EmailNotification) -> Rendered {
    let subject = one_line(&n.title);
    let mut text = format!(
        "Hi {},\n\n{}\n",
        one_line(recipient_name),
        one_line(&n.title)
    );
    if !n.body.trim().is_empty() {
        let _ = write!(text, "\n{}\n", n.body.trim_end());
    }
    if let Some(link) = &n.link {
        let _ = write!(text, "\nOpen: {link}\n");
    }
    text.push_str(&text_footer());

    let mut html = html_head(&subject);
    let _ = write!(
        html,
        "<p>Hi {},</p>\n<h2 style=\"font-size:16px\">{}</h2>\n",
        escape_html(&one_line(recipient_name)),
        escape_html(&one_line(&n.title)),
    );
    if !n.body.trim().is_empty() {
        let _ = writeln!(html, "<p>{}</p>", paragraph(&n.body));
    }
    if let Some(link) = &n.link {
        let _ = writeln!(html, "<p>{}</p>", link_html(link, "Open in Syncline"));
    }
    html.push_str(&html_footer());
    Rendered {
        subject,
        text,
        html,
    }
}

/// The digest email grouping `items` (oldest first).
pub fn digest(recipient_name: &str, items: &[EmailNotification]) -> Rendered {
    let subject = match items.len() {
        1 => "1 new notification".to_owned(),
        n => format!("{n} new notifications"),
    };
    let mut text = format!(
        "Hi {},\n\nHere is what happened since your last digest:\n",
        one_line(recipient_name)
    );
    let mut html = html_head(&subject);
    let _ = write!(
        html,
        "<p>Hi {},</p>\n<p>Here is what happened since your last digest:</p>\n<ul>\n",
        escape_html(&one_line(recipient_name)),
    );
    for n in items {
        let _ = write!(text, "\n- {}\n", one_line(&n.title));
        for line in n.body.trim_end().lines() {
            let _ = writeln!(text, "  {line}");
        }
        if let Some(link) = &n.link {
            let _ = writeln!(text, "  Open: {link}");
        }
        let _ = write!(
            html,
            "<li><strong>{}</strong>",
            escape_html(&one_line(&n.title))
        );
        if !n.body.trim().is_empty() {
            let _ = write!(html, "<br>{}", paragraph(&n.body));
        }
        if let Some(link) = &n.link {
            let _ = write!(html, "<br>{}", link_html(link, "Open"));
        }
        html.push_str("</li>\n");
    }
    html.push_str("</ul>\n");
    text.push_str(&text_footer());
    html.push_str(&html_footer());
    Rendered {
        subject,
        text,
        html,
    }
}

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Collapses control characters and runs of whitespace: a subject or heading is one line
/// (a newline in a title must not start a new header or paragraph).
pub(crate) fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Escaped text with its line breaks kept.
fn paragraph(s: &str) -> String {
    s.trim_end()
        .lines()
        .map(escape_html)
        .collect::<Vec<_>>()
        .join("<br>\n")
}

/// A link, or (for anything but http and https) the escaped text of it.
fn link_html(link: &str, label: &str) -> String {
    let lower = link.trim_start().to_ascii_lowercase();
    if lower.starts_with("https://") || lower.starts_with("http://") {
        format!(
            "<a href=\"{}\">{}</a>",
            escape_html(link.trim()),
            escape_html(label)
        )
    } else {
        escape_html(link)
    }
}

fn html_head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title></head>\n\
         <body style=\"font-family:sans-serif;line-height:1.4\">\n",
        escape_html(title)
    )
}

fn html_footer() -> String {
    format!(
        "<hr>\n<p style=\"color:#666;font-size:12px\">You receive this email because email \
         notifications are on in your {PRODUCT} settings.</p>\n</body></html>\n"
    )
}

fn text_footer() -> String {
    format!(
        "\n-- \nYou receive this email because email notifications are on in your {PRODUCT} settings.\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn n(title: &str, body: &str, link: Option<&str>) -> EmailNotification {
        EmailNotification {
            event_id: Uuid::nil(),
            event_type: "task.assigned".into(),
            title: title.into(),
            body: body.into(),
            link: link.map(Into::into),
        }
    }

    #[test]
    fn user_content_is_escaped_in_html_and_kept_in_text() {
        let r = single(
            "Ann <admin>",
            &n(
                "Fix <script>alert(1)</script>",
                "a & b\n\"quoted\" 'x'",
                Some("https://app.example/t?a=1&b=\"2\""),
            ),
        );
        assert_eq!(r.subject, "Fix <script>alert(1)</script>");
        assert!(r.text.contains("Fix <script>alert(1)</script>"));
        assert!(r.text.contains("a & b\n\"quoted\" 'x'"));
        assert!(!r.html.contains("<script>"), "{}", r.html);
        assert!(r.html.contains("Fix &lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(
            r.html
                .contains("a &amp; b<br>\n&quot;quoted&quot; &#39;x&#39;")
        );
        assert!(r.html.contains("Ann &lt;admin&gt;"));
        assert!(
            r.html
                .contains("href=\"https://app.example/t?a=1&amp;b=&quot;2&quot;\"")
        );
    }

    #[test]
    fn only_http_links_become_hrefs() {
        let r = single("Ann", &n("t", "", Some("javascript:alert(1)")));
        assert!(!r.html.contains("href"), "{}", r.html);
        assert!(r.html.contains("javascript:alert(1)"));
    }

    #[test]
    fn a_subject_is_one_line() {
        let r = single("Ann", &n("line one\r\nBcc: evil@example.com", "", None));
        assert_eq!(r.subject, "line one Bcc: evil@example.com");
    }

    #[test]
    fn a_digest_lists_every_item_and_counts_them() {
        let items = [
            n("First <1>", "body one", None),
            n("Second", "", Some("https://x.example/2")),
            n("Third", "multi\nline", None),
        ];
        let r = digest("Ann", &items);
        assert_eq!(r.subject, "3 new notifications");
        for title in ["First <1>", "Second", "Third"] {
            assert!(r.text.contains(&format!("- {title}")), "{}", r.text);
        }
        assert!(r.text.contains("  multi\n  line"));
        assert!(r.html.contains("<strong>First &lt;1&gt;</strong>"));
        assert_eq!(r.html.matches("<li>").count(), 3);
        assert_eq!(digest("Ann", &items[..1]).subject, "1 new notification");
    }
}
