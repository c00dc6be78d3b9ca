//! HTML of a body or a redline, for reading revisions outside an editor (review pages, e-mail,
//! exports). Not a ProseMirror serializer: it maps the common TipTap/ProseMirror node and mark
//! types to their usual elements and drops what it does not know, keeping its text.
//!
//! - Nodes: `paragraph` → `<p>`, `heading` → `<h1>`..`<h6>` (its `level`), `blockquote`,
//!   `bulletList`/`taskList` → `<ul>`, `orderedList` → `<ol>` (with `start`), `listItem`/
//!   `taskItem` → `<li>`, `codeBlock` → `<pre><code>`, `horizontalRule` → `<hr>`, `hardBreak` →
//!   `<br>`, `image` → `<img>` (http(s) sources only), tables; anything else → `<div>`.
//! - Marks: `bold` → `<strong>`, `italic` → `<em>`, `underline` → `<u>`, `strike` → `<s>`,
//!   `code` → `<code>`, `link` → `<a href>` (http(s), mailto, relative), suggestion marks →
//!   `<span class="suggestion-insertion|suggestion-deletion" data-author=..>`.
//! - Redline: inserted text in `<ins>`, deleted text in `<del>`; an inserted or deleted node
//!   gets `data-redline="inserted"|"deleted"` (void elements are wrapped in `<ins>`/`<del>`).
//!
//! All text and attribute values are escaped; no attribute is copied through unchecked.

use std::fmt::Write;

use yrs::Any;

use super::history_walk::{Change, Marks, RedlineContent, RedlineNode, RedlineSpan};
use super::{DELETION, INSERTION, SuggestionMark};

/// Renders a body or redline as HTML.
pub(super) fn render(content: &[RedlineContent]) -> String {
    let mut out = String::new();
    content_html(&mut out, content);
    out
}

fn content_html(out: &mut String, content: &[RedlineContent]) {
    for piece in content {
        match piece {
            RedlineContent::Node(node) => node_html(out, node),
            RedlineContent::Text(span) => span_html(out, span),
        }
    }
}

/// Escapes text for element content and double-quoted attribute values.
pub(super) fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

fn number(value: Option<&Any>) -> Option<i64> {
    match value? {
        Any::Number(n) => n.as_i64(),
        Any::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn string(value: Option<&Any>) -> Option<&str> {
    match value? {
        Any::String(s) => Some(s),
        _ => None,
    }
}

fn redline_attr(change: Change) -> &'static str {
    match change {
        Change::Kept => "",
        Change::Inserted => " data-redline=\"inserted\"",
        Change::Deleted => " data-redline=\"deleted\"",
    }
}

fn change_tag(change: Change) -> Option<&'static str> {
    match change {
        Change::Kept => None,
        Change::Inserted => Some("ins"),
        Change::Deleted => Some("del"),
    }
}

/// Whether a URL may be an `href`/`src`: no `javascript:` or other active schemes.
fn safe_url(url: &str, allow_mailto: bool) -> bool {
    let lower = url.trim_start().to_ascii_lowercase();
    lower.starts_with("https://")
        || lower.starts_with("http://")
        || (allow_mailto && lower.starts_with("mailto:"))
        || (lower.starts_with('/') && !lower.starts_with("//"))
        || lower.starts_with('#')
}

fn node_html(out: &mut String, node: &RedlineNode) {
    let mark = redline_attr(node.change);
    match node.tag.as_str() {
        "horizontalRule" | "horizontal_rule" => return void_html(out, node.change, "<hr>"),
        "hardBreak" | "hard_break" => return void_html(out, node.change, "<br>"),
        "image" => {
            let Some(src) = string(node.attrs.get("src")).filter(|s| safe_url(s, false)) else {
                return;
            };
            let mut img = String::from("<img src=\"");
            escape(&mut img, src);
            img.push('"');
            if let Some(alt) = string(node.attrs.get("alt")) {
                img.push_str(" alt=\"");
                escape(&mut img, alt);
                img.push('"');
            }
            img.push('>');
            return void_html(out, node.change, &img);
        }
        "codeBlock" | "code_block" => {
            let _ = write!(out, "<pre{mark}><code>");
            content_html(out, &node.content);
            out.push_str("</code></pre>");
            return;
        }
        _ => {}
    }
    let (tag, extra) = match node.tag.as_str() {
        "paragraph" => ("p", String::new()),
        "heading" => {
            let level = number(node.attrs.get("level")).unwrap_or(1).clamp(1, 6);
            (
                ["h1", "h2", "h3", "h4", "h5", "h6"][level as usize - 1],
                String::new(),
            )
        }
        "blockquote" => ("blockquote", String::new()),
        "bulletList" | "bullet_list" | "taskList" | "task_list" => ("ul", String::new()),
        "orderedList" | "ordered_list" => {
            let start = number(node.attrs.get("start")).filter(|&n| n != 1);
            (
                "ol",
                start.map(|n| format!(" start=\"{n}\"")).unwrap_or_default(),
            )
        }
        "listItem" | "list_item" | "taskItem" | "task_item" => ("li", String::new()),
        "table" => ("table", String::new()),
        "tableRow" | "table_row" => ("tr", String::new()),
        "tableHeader" | "table_header" => ("th", String::new()),
        "tableCell" | "table_cell" => ("td", String::new()),
        _ => ("div", String::new()),
    };
    let _ = write!(out, "<{tag}{extra}{mark}>");
    content_html(out, &node.content);
    let _ = write!(out, "</{tag}>");
}

fn void_html(out: &mut String, change: Change, element: &str) {
    match change_tag(change) {
        Some(tag) => {
            let _ = write!(out, "<{tag}>{element}</{tag}>");
        }
        None => out.push_str(element),
    }
}

/// Opening and closing tags of a run's marks, outermost first.
fn mark_tags(marks: &Marks) -> Vec<(String, &'static str)> {
    let mut tags = Vec::new();
    if let Some(Any::Map(link)) = marks.get("link")
        && let Some(href) = string(link.get("href")).filter(|h| safe_url(h, true))
    {
        let mut open = String::from("<a href=\"");
        escape(&mut open, href);
        open.push_str("\">");
        tags.push((open, "</a>"));
    }
    for (key, open, close) in [
        ("bold", "<strong>", "</strong>"),
        ("italic", "<em>", "</em>"),
        ("underline", "<u>", "</u>"),
        ("strike", "<s>", "</s>"),
        ("code", "<code>", "</code>"),
        ("subscript", "<sub>", "</sub>"),
        ("superscript", "<sup>", "</sup>"),
    ] {
        if marks.contains_key(key) {
            tags.push((open.to_owned(), close));
        }
    }
    for (key, class) in [
        (INSERTION, "suggestion-insertion"),
        (DELETION, "suggestion-deletion"),
    ] {
        let Some(value) = marks.get(key) else {
            continue;
        };
        let mut open = format!("<span class=\"{class}\"");
        if let Some(mark) = SuggestionMark::parse(value) {
            let _ = write!(open, " data-author=\"{}\"", mark.author);
        }
        open.push('>');
        tags.push((open, "</span>"));
    }
    tags
}

fn span_html(out: &mut String, span: &RedlineSpan) {
    let change = change_tag(span.change);
    if let Some(tag) = change {
        let _ = write!(out, "<{tag}>");
    }
    let tags = mark_tags(&span.marks);
    for (open, _) in &tags {
        out.push_str(open);
    }
    escape(out, &span.text);
    for (_, close) in tags.iter().rev() {
        out.push_str(close);
    }
    if let Some(tag) = change {
        let _ = write!(out, "</{tag}>");
    }
}
