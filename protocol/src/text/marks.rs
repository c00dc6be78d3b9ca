//! The value of a suggestion mark (`{"author": <uuid>, "time": <unix ms>}`) and the attribute
//! helpers the checks and the resolvers share. Parsing is strict where it grants rights (a
//! suggester's own mark must parse and name them) and lenient elsewhere (an unparsable mark is
//! simply nobody's own).

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;
use yrs::types::Attrs;
use yrs::{Any, Out};

use super::{MARK_AUTHOR, MARK_TIME};

/// The value of an [`INSERTION`](super::INSERTION) or [`DELETION`](super::DELETION) mark: who
/// suggested the change and when. Author and time together identify one suggestion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SuggestionMark {
    pub author: Uuid,
    /// Unix time in milliseconds.
    pub time: i64,
}

impl SuggestionMark {
    pub fn new(author: Uuid, time: i64) -> Self {
        Self { author, time }
    }

    /// Reads a mark value: a map whose `author` is a UUID string and whose `time` is an integer
    /// (JSON numbers arrive as integers or integral floats).
    pub fn parse(value: &Any) -> Option<Self> {
        let Any::Map(map) = value else {
            return None;
        };
        let Some(Any::String(author)) = map.get(MARK_AUTHOR) else {
            return None;
        };
        let author = Uuid::parse_str(author).ok()?;
        let time = match map.get(MARK_TIME)? {
            Any::Number(n) => n.as_i64()?,
            _ => return None,
        };
        Some(Self { author, time })
    }

    /// The mark value as y-prosemirror stores it (the mark's attributes).
    pub fn to_any(&self) -> Any {
        let mut map = HashMap::new();
        map.insert(MARK_AUTHOR.to_owned(), Any::from(self.author.to_string()));
        // JSON has one number type: store the time as JavaScript would (`Date.now()`).
        map.insert(MARK_TIME.to_owned(), Any::from(self.time as f64));
        Any::Map(Arc::new(map))
    }

    /// Formatting attributes holding this mark under `key` (for `insert_with_attributes`).
    pub fn attrs(&self, key: &str) -> Attrs {
        Attrs::from([(Arc::from(key), self.to_any())])
    }
}

/// The mark under `key` in a run's attributes, if present and well formed.
pub(crate) fn mark_in(attrs: Option<&Attrs>, key: &str) -> Option<SuggestionMark> {
    attrs
        .and_then(|a| a.get(key))
        .and_then(SuggestionMark::parse)
}

/// Whether a run's attributes hold a (possibly malformed) mark under `key`. y-prosemirror stores
/// a removed mark as `null`, which counts as absent.
pub(crate) fn has_attr(attrs: Option<&Attrs>, key: &str) -> bool {
    attr(attrs, key).is_some()
}

/// The value under `key`, with `null`/`undefined` meaning absent.
pub(crate) fn attr<'a>(attrs: Option<&'a Attrs>, key: &str) -> Option<&'a Any> {
    attrs
        .and_then(|a| a.get(key))
        .filter(|v| !matches!(v, Any::Null | Any::Undefined))
}

/// Whether the mark under `key` is well formed and authored by `user`.
pub(crate) fn is_own(attrs: Option<&Attrs>, key: &str, user: Uuid) -> bool {
    mark_in(attrs, key).is_some_and(|m| m.author == user)
}

/// An element attribute as a mark, if it is one (y-prosemirror stores node attributes as plain
/// values).
pub(crate) fn mark_of_out(value: &Out) -> Option<SuggestionMark> {
    match value {
        Out::Any(any) => SuggestionMark::parse(any),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_reject_malformed_values() {
        let mark = SuggestionMark::new(Uuid::now_v7(), 1_700_000_000_123);
        assert_eq!(SuggestionMark::parse(&mark.to_any()), Some(mark));

        let mut map = HashMap::new();
        map.insert(MARK_AUTHOR.to_owned(), Any::from("not a uuid"));
        map.insert(MARK_TIME.to_owned(), Any::from(1.0));
        assert_eq!(SuggestionMark::parse(&Any::Map(Arc::new(map))), None);

        let mut map = HashMap::new();
        map.insert(MARK_AUTHOR.to_owned(), Any::from(mark.author.to_string()));
        map.insert(MARK_TIME.to_owned(), Any::from(1.5));
        assert_eq!(SuggestionMark::parse(&Any::Map(Arc::new(map))), None);
        assert_eq!(SuggestionMark::parse(&Any::from("x")), None);
        assert_eq!(SuggestionMark::parse(&Any::Null), None);
    }
}
