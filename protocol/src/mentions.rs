//! Mentions in comment bodies: `@[Display Name](user:<uuid>)`, the Markdown-link form editors
//! such as TipTap's mention extension can emit. Parsed by the server (a new mention produces a
//! `user.mentioned` event) and by clients (to render the name as a link), the same way.

use uuid::Uuid;

/// The distinct users mentioned in `body`, in order of first appearance. Malformed mentions
/// (no closing bracket, not a UUID) are plain text and mention nobody.
pub fn mentioned_users(body: &str) -> Vec<Uuid> {
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("@[") {
        rest = &rest[start + 2..];
        let Some(name_end) = rest.find("](user:") else {
            break;
        };
        // A name never spans another mention's start or a line break.
        let name = &rest[..name_end];
        if name.contains("@[") || name.contains('\n') {
            continue;
        }
        let after = &rest[name_end + "](user:".len()..];
        let Some(id_end) = after.find(')') else {
            break;
        };
        if let Ok(id) = Uuid::parse_str(&after[..id_end]) {
            if !found.contains(&id) {
                found.push(id);
            }
            rest = &after[id_end + 1..];
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_user_once_and_ignores_malformed_mentions() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        let body = format!(
            "Hi @[Ann Lee](user:{a}), see @[Bob](user:{b}) and again @[Ann](user:{a}). \
             Not: @[x](user:not-a-uuid) @[broken](user:{a} @[open"
        );
        assert_eq!(mentioned_users(&body), vec![a, b]);
        assert!(mentioned_users("no mentions, just an @ sign and [links](x)").is_empty());
        assert_eq!(
            mentioned_users(&format!("@[@[nested](user:{a})")),
            vec![a],
            "the inner, well-formed mention counts"
        );
    }
}
