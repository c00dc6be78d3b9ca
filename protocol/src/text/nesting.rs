//! How deeply an update nests the shared types it creates, computed from its items alone: yrs
//! deletes and garbage-collects nested types recursively, so an update that creates (and
//! deletes) a long chain of nested elements would overflow the stack while being applied.
//!
//! An item's container is named explicitly (a root, or the item holding the parent type) or, as
//! Yjs encodes most items, implied by a neighbour (`origin` or `right origin`), whose container
//! it shares. Containers outside the update count as depth 0: the document's own depth is
//! bounded separately, after a trial application, so a document stays within twice
//! [`MAX_DEPTH`](super::MAX_DEPTH) while any update is applied to it. The walk is iterative and
//! tolerates references to missing items and cycles (which yrs never integrates).

use std::collections::HashMap;

/// Where an item lives, as its encoding says.
#[derive(Debug, Clone, Copy)]
pub(super) enum Parent {
    /// A root type.
    Root,
    /// The type held by the item with this id.
    Type(u64, u64),
    /// The container of the item with this id (the new item's neighbour).
    Neighbor(u64, u64),
}

/// An item of the update: its clock range, where it lives, whether it holds a type.
#[derive(Debug)]
pub(super) struct Item {
    pub client: u64,
    pub clock: u64,
    pub len: u64,
    pub parent: Parent,
    pub is_type: bool,
}

/// The nesting depth of the deepest type the update creates (1 for a type in a root or in an
/// existing type, 0 if it creates none).
pub(super) fn deepest_new_type(items: &mut [Item]) -> usize {
    items.sort_by_key(|i| (i.client, i.clock));
    let mut by_client: HashMap<u64, (usize, usize)> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        by_client
            .entry(item.client)
            .and_modify(|range| range.1 = i + 1)
            .or_insert((i, i + 1));
    }
    let find = |client: u64, clock: u64| -> Option<usize> {
        let &(start, end) = by_client.get(&client)?;
        let slice = &items[start..end];
        let after = slice.partition_point(|i| i.clock <= clock);
        let candidate = after.checked_sub(1)?;
        let item = &slice[candidate];
        (clock < item.clock.saturating_add(item.len)).then_some(start + candidate)
    };

    // Depth of each item's container, resolved with an explicit stack.
    let mut depth: Vec<Option<usize>> = vec![None; items.len()];
    let mut visiting = vec![false; items.len()];
    let mut deepest = 0;
    for first in 0..items.len() {
        let mut stack = vec![first];
        while let Some(&i) = stack.last() {
            if depth[i].is_some() {
                stack.pop();
                continue;
            }
            // The item whose container depth this one's follows, and what it adds.
            let (dependency, add) = match items[i].parent {
                Parent::Root => (None, 0),
                Parent::Type(c, k) => match find(c, k) {
                    Some(t) if items[t].is_type => (Some(t), 1),
                    _ => (None, 0),
                },
                Parent::Neighbor(c, k) => (find(c, k).filter(|&n| n != i), 0),
            };
            match dependency {
                None => depth[i] = Some(0),
                Some(d) => match depth[d] {
                    Some(known) => depth[i] = Some(known + add),
                    // A cycle: such items never integrate.
                    None if visiting[d] => depth[i] = Some(0),
                    None => {
                        visiting[i] = true;
                        stack.push(d);
                        continue;
                    }
                },
            }
            visiting[i] = false;
            stack.pop();
        }
        if items[first].is_type {
            deepest = deepest.max(depth[first].unwrap_or(0) + 1);
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(client: u64, clock: u64, parent: Parent, is_type: bool) -> Item {
        Item {
            client,
            clock,
            len: 1,
            parent,
            is_type,
        }
    }

    #[test]
    fn chains_of_types_count_however_they_are_encoded() {
        // Root > 1:0 > 2:0 (by explicit parent) > 1:1 (after a sibling 2:5 inside 2:0).
        let mut items = vec![
            item(1, 1, Parent::Type(2, 0), true),
            item(2, 5, Parent::Type(2, 0), false),
            item(2, 0, Parent::Type(1, 0), true),
            item(1, 0, Parent::Root, true),
            item(3, 0, Parent::Neighbor(2, 5), true),
        ];
        assert_eq!(deepest_new_type(&mut items), 3);
        // A long chain, listed deepest first, and a cycle.
        let mut chain: Vec<Item> = (1..5000)
            .rev()
            .map(|k| item(1, k, Parent::Type(1, k - 1), true))
            .collect();
        chain.push(item(1, 0, Parent::Root, true));
        chain.push(item(4, 0, Parent::Neighbor(4, 1), true));
        chain.push(item(4, 1, Parent::Neighbor(4, 0), false));
        assert_eq!(deepest_new_type(&mut chain), 5000);
        assert_eq!(deepest_new_type(&mut []), 0);
    }
}
