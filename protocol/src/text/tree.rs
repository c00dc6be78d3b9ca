//! The suggester rules, judged on the body's effect rather than on the update's raw items.
//!
//! The update has already been applied to a scratch copy of the document (`after`, kept with
//! `skip_gc`) whose snapshots `s0` (before) and `s1` (after) tell, by item identity, which content
//! existed and which is visible. The walk compares the body node by node (nodes are identified
//! by the id of the item that holds them; `diff_range(s1, s0)` over a node list shows kept, new
//! and removed children), and text nodes run by run (the `runs` module):
//!
//! - a kept node keeps its attributes and content no editor displays; kept elements are walked
//!   on, fully only where yrs reports a change (`changed_parent_types`);
//! - a new node is an element carrying the user's `insertion` attribute, or a text node, holding
//!   only new nodes and text that qualify in turn;
//! - a removed node must have been entirely the user's own suggestion (withdrawn);
//! - types y-prosemirror never writes must stay exactly as they were.
//!
//! Judging effects, not items, is what makes the rules exact: the formatting that applies to
//! inserted text depends on format items anywhere to its left, and Yjs clients legitimately
//! delete format items that have become redundant (formatting cleanup), which changes nothing.

use std::collections::HashSet;

use uuid::Uuid;
use yrs::branch::{BranchID, BranchPtr};
use yrs::types::text::{Diff, YChange};
use yrs::types::{Attrs, TypeRef};
use yrs::{Any, ID, OffsetKind, Out, Snapshot, Text, Transaction, TransactionMut, Xml};
use yrs::{Map, MapRef, XmlElementRef, XmlTextRef};

use super::marks::{is_own, mark_of_out};
use super::render::{branch_of, entries, hidden, render_map, render_node, strings_match};
use super::{BODY, INSERTION, MAX_DEPTH, TextRefusal, Violation};
use crate::codes::ErrorCode;

/// Everything the walk needs about the two states.
pub(super) struct BodyCheck<'a, 'doc> {
    pub user: Uuid,
    pub s0: &'a Snapshot,
    pub s1: &'a Snapshot,
    /// A read transaction on the `before` document.
    pub before: &'a Transaction<'doc>,
    pub before_kind: OffsetKind,
    /// The branches the update changed, with their ancestors.
    pub changed: &'a Changed,
}

/// The branches an update changed, as yrs reports them (`changed_parent_types`).
#[derive(Debug)]
pub(super) enum Changed {
    /// The report was lost (a poisoned lock): everything counts as changed.
    All,
    Some(HashSet<BranchID>),
}

impl Changed {
    fn contains(&self, id: &BranchID) -> bool {
        match self {
            Self::All => true,
            Self::Some(set) => set.contains(id),
        }
    }
}

fn visible(snapshot: &Snapshot, id: &ID) -> bool {
    snapshot.state_map.get(&id.client) > id.clock && !snapshot.delete_set.contains(id)
}

pub(super) fn unsupported(message: impl Into<String>) -> TextRefusal {
    TextRefusal::forbidden(Violation::Unsupported, message)
}

fn nested_id(branch: BranchPtr) -> Result<ID, TextRefusal> {
    match branch.id() {
        BranchID::Nested(id) => Ok(id),
        BranchID::Root(_) => Err(unsupported("a root type appears inside the body")),
    }
}

impl BodyCheck<'_, '_> {
    /// Judges the body of `after` (in its scratch transaction) against `before`.
    pub fn check(&self, after: &mut TransactionMut) -> Result<(), TextRefusal> {
        let Some(root) = BranchID::get_root(after, BODY) else {
            return Ok(());
        };
        let before_root = BranchID::get_root(self.before, BODY);
        self.kept_container(after, root, before_root, 0)
    }

    fn before_branch(&self, id: &ID) -> Result<BranchPtr, TextRefusal> {
        BranchID::get_nested(self.before, id).ok_or_else(|| {
            TextRefusal::new(
                ErrorCode::Internal,
                "a node that existed before is missing from the document",
            )
        })
    }

    /// A changed node that exists before and after keeps its attributes and holds no content
    /// no editor displays.
    pub(super) fn same_node_data(
        &self,
        after: &TransactionMut,
        node: BranchPtr,
        before: Option<BranchPtr>,
        after_runs: &[Diff<()>],
        before_runs: &[Diff<()>],
        depth: usize,
    ) -> Result<(), TextRefusal> {
        let old = match before {
            Some(b) => render_map(self.before, b, self.before_kind, depth)?,
            None => Default::default(),
        };
        if old != render_map(after, node, OffsetKind::Utf16, depth)? {
            return Err(TextRefusal::forbidden(
                Violation::NodeAttributes,
                "suggesters may not change the attributes of existing nodes",
            ));
        }
        // List values `diff` cannot show: no y-prosemirror client writes them, so a changed node
        // holding any is not judged (counting them could not tell one swapped for another).
        let old_hidden = before.map_or(0, |b| hidden(b, before_runs, self.before_kind));
        if old_hidden != 0 || hidden(node, after_runs, OffsetKind::Utf16) != 0 {
            return Err(unsupported("the node holds content no editor displays"));
        }
        Ok(())
    }

    /// The body root or an element that exists before and after. Unchanged ones are only
    /// descended into (a change inside a type yrs cannot observe marks no ancestor).
    fn kept_container(
        &self,
        after: &mut TransactionMut,
        node: BranchPtr,
        before: Option<BranchPtr>,
        depth: usize,
    ) -> Result<(), TextRefusal> {
        if depth > MAX_DEPTH {
            return Err(TextRefusal::too_deep());
        }
        let after_runs = entries(after, node);
        if !self.changed.contains(&node.id()) {
            for run in &after_runs {
                if let Some(child) = branch_of(&run.insert) {
                    let id = nested_id(child)?;
                    self.kept_node(after, child, &id, depth + 1)?;
                }
            }
            return Ok(());
        }
        let before_runs = before.map_or_else(Vec::new, |b| entries(self.before, b));
        self.same_node_data(after, node, before, &after_runs, &before_runs, depth)?;
        // Values other than nodes in a node list (never written by y-prosemirror) stay as they are.
        let non_nodes = |runs: &[Diff<()>]| -> Vec<(Any, Option<Box<Attrs>>)> {
            runs.iter()
                .filter_map(|r| match &r.insert {
                    Out::Any(any) => Some((any.clone(), r.attributes.clone())),
                    _ => None,
                })
                .collect()
        };
        if non_nodes(&before_runs) != non_nodes(&after_runs) {
            return Err(unsupported(
                "suggesters may only insert nodes into node lists",
            ));
        }
        let changes = XmlTextRef::from(node).diff_range(
            after,
            Some(self.s1),
            Some(self.s0),
            YChange::identity,
        );
        for run in changes {
            let Some(child) = branch_of(&run.insert) else {
                continue; // a value, judged above
            };
            let id = nested_id(child)?;
            match (visible(self.s0, &id), visible(self.s1, &id)) {
                (true, true) => self.kept_node(after, child, &id, depth + 1)?,
                (false, true) => self.new_node(after, child, depth + 1)?,
                (true, false) => {
                    let old = self.before_branch(&id)?;
                    if !self.retractable(old, depth + 1)? {
                        return Err(TextRefusal::forbidden(
                            Violation::Deletion,
                            "suggesters may not delete nodes other than their own suggested ones",
                        ));
                    }
                }
                (false, false) => {}
            }
        }
        Ok(())
    }

    /// A node that exists before and after, inside a kept container.
    fn kept_node(
        &self,
        after: &mut TransactionMut,
        node: BranchPtr,
        id: &ID,
        depth: usize,
    ) -> Result<(), TextRefusal> {
        let before = self.before_branch(id)?;
        match node.type_ref() {
            TypeRef::XmlElement(_) => self.kept_container(after, node, Some(before), depth),
            TypeRef::XmlText => {
                // Unchanged plain text needs no look; text holding embedded values (whose
                // insides yrs may not observe) is always judged, and refused.
                if self.changed.contains(&node.id()) || !only_text(&entries(after, node)) {
                    self.kept_text(after, node, before, depth)
                } else {
                    Ok(())
                }
            }
            _ => {
                // Types y-prosemirror never writes: they must stay exactly as they were.
                let old = render_node(self.before, before, self.before_kind, depth)?;
                if old == render_node(after, node, OffsetKind::Utf16, depth)? {
                    Ok(())
                } else {
                    Err(unsupported(
                        "suggesters may only change elements and text nodes",
                    ))
                }
            }
        }
    }

    /// A node the update inserted: an element carrying the user's insertion attribute, or a
    /// text node, holding only new nodes and text that qualify in turn.
    fn new_node(
        &self,
        after: &TransactionMut,
        node: BranchPtr,
        depth: usize,
    ) -> Result<(), TextRefusal> {
        if depth > MAX_DEPTH {
            return Err(TextRefusal::too_deep());
        }
        let runs = entries(after, node);
        if hidden(node, &runs, OffsetKind::Utf16) != 0 {
            return Err(unsupported("the update inserts content no editor displays"));
        }
        let map = MapRef::from(node);
        if map
            .iter(after)
            .any(|(_, value)| branch_of(&value).is_some())
        {
            return Err(unsupported("node attributes may not hold shared types"));
        }
        match node.type_ref() {
            TypeRef::XmlElement(_) => {
                let mark = XmlElementRef::from(node)
                    .get_attribute(after, INSERTION)
                    .as_ref()
                    .and_then(mark_of_out);
                if mark.is_none_or(|m| m.author != self.user) {
                    return Err(TextRefusal::forbidden(
                        Violation::UnmarkedInsertion,
                        "a node inserted by a suggester must carry their own insertion attribute",
                    ));
                }
                for run in &runs {
                    let Some(child) = branch_of(&run.insert) else {
                        return Err(unsupported(
                            "suggesters may only insert nodes into node lists",
                        ));
                    };
                    self.new_node(after, child, depth + 1)?;
                }
                Ok(())
            }
            TypeRef::XmlText => {
                if !only_text(&runs) || !strings_match(after, node, &runs) {
                    return Err(unsupported("suggesters may not insert embedded values"));
                }
                runs.iter()
                    .try_for_each(|run| self.inserted_text(run.attributes.as_deref()))
            }
            _ => Err(unsupported(
                "suggesters may only insert elements and text nodes",
            )),
        }
    }

    /// Whether a node of the before state is entirely the user's own suggested insertion, so
    /// that deleting it withdraws the suggestion.
    fn retractable(&self, node: BranchPtr, depth: usize) -> Result<bool, TextRefusal> {
        if depth > MAX_DEPTH {
            return Err(TextRefusal::too_deep());
        }
        let runs = entries(self.before, node);
        if hidden(node, &runs, self.before_kind) != 0 {
            return Ok(false);
        }
        match node.type_ref() {
            TypeRef::XmlElement(_) => {
                let own = XmlElementRef::from(node)
                    .get_attribute(self.before, INSERTION)
                    .as_ref()
                    .and_then(mark_of_out)
                    .is_some_and(|m| m.author == self.user);
                if !own {
                    return Ok(false);
                }
                for run in &runs {
                    match branch_of(&run.insert) {
                        Some(child) if self.retractable(child, depth + 1)? => {}
                        _ => return Ok(false),
                    }
                }
                Ok(true)
            }
            TypeRef::XmlText => Ok(only_text(&runs)
                && strings_match(self.before, node, &runs)
                && runs
                    .iter()
                    .all(|r| is_own(r.attributes.as_deref(), INSERTION, self.user))),
            _ => Ok(false),
        }
    }
}

pub(super) fn only_text<T>(runs: &[Diff<T>]) -> bool {
    runs.iter()
        .all(|r| matches!(r.insert, Out::Any(Any::String(_))))
}
