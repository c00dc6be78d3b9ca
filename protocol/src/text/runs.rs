//! The suggestion rules inside a text node that exists before and after the update, run by
//! run: `diff_range(s1, s0)` labels each run of the scratch copy as added, removed or kept, and
//! the kept and removed runs are lined up, UTF-16 unit by unit, with the runs of the same text
//! node read from the `before` document, so that each unit's text and formatting are known
//! before and after.
//!
//! - added text must carry the user's insertion mark;
//! - removed text must have carried it (withdrawing one's own suggestion);
//! - kept text must keep its characters (an insertion between the two UTF-16 units of a
//!   character makes Yjs replace both with U+FFFD) and may only gain, re-date or lose the user's
//!   own deletion mark.

use yrs::branch::BranchPtr;
use yrs::types::Attrs;
use yrs::types::text::{ChangeKind, YChange};
use yrs::{Any, Out, Text, TransactionMut, XmlTextRef};

use super::marks::{attr, has_attr, is_own};
use super::render::{entries, strings_match};
use super::tree::{BodyCheck, only_text, unsupported};
use super::{DELETION, INSERTION, TextRefusal, Violation};
use crate::codes::ErrorCode;

impl BodyCheck<'_, '_> {
    /// A text node that exists before and after: the core of the suggestion rules.
    pub(super) fn kept_text(
        &self,
        after: &mut TransactionMut,
        node: BranchPtr,
        before: BranchPtr,
        depth: usize,
    ) -> Result<(), TextRefusal> {
        let before_runs = entries(self.before, before);
        let after_runs = entries(after, node);
        self.same_node_data(after, node, Some(before), &after_runs, &before_runs, depth)?;
        if !only_text(&before_runs)
            || !only_text(&after_runs)
            || !strings_match(self.before, before, &before_runs)
            || !strings_match(after, node, &after_runs)
        {
            return Err(unsupported(
                "text nodes with embedded values cannot take suggestions",
            ));
        }
        // Before-state runs as (UTF-16 units, units consumed, formatting), consumed in order.
        let mut old = before_runs
            .into_iter()
            .filter_map(|r| match r.insert {
                Out::Any(Any::String(s)) => {
                    Some((s.encode_utf16().collect::<Vec<u16>>(), 0, r.attributes))
                }
                _ => None,
            })
            .collect::<std::collections::VecDeque<_>>();
        let changes = XmlTextRef::from(node).diff_range(
            after,
            Some(self.s1),
            Some(self.s0),
            YChange::identity,
        );
        for run in changes {
            let Out::Any(Any::String(s)) = &run.insert else {
                return Err(unsupported(
                    "text nodes with embedded values cannot take suggestions",
                ));
            };
            let new_attrs = run.attributes.as_deref();
            if matches!(&run.ychange, Some(c) if c.kind == ChangeKind::Added) {
                self.inserted_text(new_attrs)?;
                continue;
            }
            let removed = run.ychange.is_some();
            let units: Vec<u16> = s.encode_utf16().collect();
            let mut at = 0;
            while at < units.len() {
                let Some((old_units, used, old_attrs)) = old.front_mut() else {
                    return Err(misaligned());
                };
                let take = (units.len() - at).min(old_units.len() - *used);
                if removed {
                    if !is_own(old_attrs.as_deref(), INSERTION, self.user) {
                        return Err(TextRefusal::forbidden(
                            Violation::Deletion,
                            "suggesters may not delete text; mark it as a suggested deletion",
                        ));
                    }
                } else {
                    // Yjs replaces both halves of a character split by an insertion between
                    // its UTF-16 units with U+FFFD, which changes existing text.
                    if units[at..at + take] != old_units[*used..*used + take] {
                        return Err(TextRefusal::forbidden(
                            Violation::Deletion,
                            "the update changes existing characters (an insertion splits one)",
                        ));
                    }
                    self.formatting_change(old_attrs.as_deref(), new_attrs)?;
                }
                *used += take;
                at += take;
                if *used == old_units.len() {
                    old.pop_front();
                }
            }
        }
        if !old.is_empty() {
            return Err(misaligned());
        }
        Ok(())
    }

    /// New text must carry the user's own insertion mark (and no one else's deletion mark).
    pub(super) fn inserted_text(&self, attrs: Option<&Attrs>) -> Result<(), TextRefusal> {
        if !is_own(attrs, INSERTION, self.user) {
            return Err(TextRefusal::forbidden(
                Violation::UnmarkedInsertion,
                "text inserted by a suggester must carry their own insertion mark",
            ));
        }
        if has_attr(attrs, DELETION) && !is_own(attrs, DELETION, self.user) {
            return Err(TextRefusal::forbidden(
                Violation::Formatting,
                "suggesters may not add another user's deletion mark",
            ));
        }
        Ok(())
    }

    /// Kept text may only gain, re-date or lose the user's own deletion mark.
    fn formatting_change(
        &self,
        old: Option<&Attrs>,
        new: Option<&Attrs>,
    ) -> Result<(), TextRefusal> {
        let keys = old.into_iter().chain(new).flat_map(|a| a.keys());
        for key in keys {
            let (was, is) = (attr(old, key), attr(new, key));
            if was == is {
                continue;
            }
            let own_or_none =
                |attrs, value: Option<&Any>| value.is_none() || is_own(attrs, DELETION, self.user);
            if key.as_ref() == DELETION && own_or_none(old, was) && own_or_none(new, is) {
                continue;
            }
            return Err(TextRefusal::forbidden(
                Violation::Formatting,
                format!("suggesters may only add or remove their own deletion mark, not `{key}`"),
            ));
        }
        Ok(())
    }
}

fn misaligned() -> TextRefusal {
    TextRefusal::new(
        ErrorCode::Internal,
        "could not line up the text before and after the update",
    )
}
