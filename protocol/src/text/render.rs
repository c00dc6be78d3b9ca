//! Reading shared types without trusting their declared type: any branch's sequence is read as
//! formatted runs (`XmlTextRef::diff` walks strings, embeds, nested types and formatting of any
//! branch), its keyed part as a map, and the values `diff` cannot show (list items holding
//! `Any`, JSON, binary or subdocuments, which y-prosemirror never writes) are counted as
//! "hidden" from the branch's length. [`render`] turns a branch into a comparable value, used to
//! prove that a suggester left everything outside the body unchanged.

use std::collections::BTreeMap;

use yrs::branch::{Branch, BranchPtr};
use yrs::types::text::Diff;
use yrs::types::{Attrs, TypeRef};
use yrs::{Any, GetString, Map, MapRef, OffsetKind, Out, ReadTxn, Text, TextRef, XmlTextRef};

use super::{MAX_DEPTH, TextRefusal};

/// The formatted runs of a branch's sequence, in the current state of `txn`.
pub(crate) fn entries<T: ReadTxn>(txn: &T, branch: BranchPtr) -> Vec<Diff<()>> {
    XmlTextRef::from(branch).diff(txn, |_| ())
}

/// The branch behind a shared-type value.
pub(crate) fn branch_of(value: &Out) -> Option<BranchPtr> {
    let branch: &Branch = match value {
        Out::YText(v) => v.as_ref(),
        Out::YArray(v) => v.as_ref(),
        Out::YMap(v) => v.as_ref(),
        Out::YXmlElement(v) => v.as_ref(),
        Out::YXmlFragment(v) => v.as_ref(),
        Out::YXmlText(v) => v.as_ref(),
        Out::UndefinedRef(v) => return Some(*v),
        _ => return None,
    };
    Some(BranchPtr::from(branch))
}

/// Length of a run in `kind` units, as the branch's own length counts it.
pub(crate) fn units(value: &Out, kind: OffsetKind) -> u32 {
    match value {
        Out::Any(Any::String(s)) => match kind {
            OffsetKind::Bytes => s.len() as u32,
            OffsetKind::Utf16 => utf16_len(s),
        },
        _ => 1,
    }
}

pub(crate) fn utf16_len(s: &str) -> u32 {
    s.encode_utf16().count() as u32
}

/// Number of visible list elements `diff` cannot show (see the module header).
pub(crate) fn hidden(branch: BranchPtr, runs: &[Diff<()>], kind: OffsetKind) -> u32 {
    let shown: u32 = runs
        .iter()
        .fold(0u32, |n, run| n.saturating_add(units(&run.insert, kind)));
    branch.content_len().saturating_sub(shown)
}

/// Whether the branch's visible strings are exactly its string runs: an embed whose value is a
/// string looks like text in `diff`, but `get_string` skips it.
pub(crate) fn strings_match<T: ReadTxn>(txn: &T, branch: BranchPtr, runs: &[Diff<()>]) -> bool {
    let mut joined = String::new();
    for run in runs {
        if let Out::Any(Any::String(s)) = &run.insert {
            joined.push_str(s);
        }
    }
    joined == TextRef::from(branch).get_string(txn)
}

/// A comparable rendering of a value or shared type.
#[derive(Debug, PartialEq)]
pub(crate) enum Rendered {
    Value(Any),
    Doc(String),
    Shared(Box<SharedRendering>),
}

/// A comparable rendering of one branch.
#[derive(Debug, PartialEq)]
pub(crate) struct SharedRendering {
    /// Type kind and, for elements, the tag; `None` for roots, whose declared type depends on
    /// how the reading process accessed them.
    kind: Option<String>,
    list: Vec<(Rendered, Option<Box<Attrs>>)>,
    hidden: u32,
    map: BTreeMap<String, Rendered>,
}

/// Renders the root type `name`, or an empty rendering if the document has none.
pub(crate) fn render_root<T: ReadTxn>(
    txn: &T,
    name: &str,
    kind: OffsetKind,
) -> Result<SharedRendering, TextRefusal> {
    match yrs::branch::BranchID::get_root(txn, name) {
        Some(branch) => render_branch(txn, branch, kind, false, 0),
        None => Ok(SharedRendering {
            kind: None,
            list: Vec::new(),
            hidden: 0,
            map: BTreeMap::new(),
        }),
    }
}

/// The keyed part of a branch (an element's attributes), rendered.
pub(crate) fn render_map<T: ReadTxn>(
    txn: &T,
    branch: BranchPtr,
    kind: OffsetKind,
    depth: usize,
) -> Result<BTreeMap<String, Rendered>, TextRefusal> {
    let mut map = BTreeMap::new();
    for (key, value) in MapRef::from(branch).iter(txn) {
        map.insert(key.to_owned(), render_value(txn, &value, kind, depth)?);
    }
    Ok(map)
}

fn render_value<T: ReadTxn>(
    txn: &T,
    value: &Out,
    kind: OffsetKind,
    depth: usize,
) -> Result<Rendered, TextRefusal> {
    if let Out::YDoc(doc) = value {
        return Ok(Rendered::Doc(doc.guid().to_string()));
    }
    match branch_of(value) {
        Some(branch) => Ok(Rendered::Shared(Box::new(render_branch(
            txn,
            branch,
            kind,
            true,
            depth + 1,
        )?))),
        None => match value {
            Out::Any(any) => Ok(Rendered::Value(any.clone())),
            // Only weak links (a yrs feature this crate does not enable) remain.
            _ => Ok(Rendered::Value(Any::Undefined)),
        },
    }
}

/// A nested node, rendered with its type.
pub(crate) fn render_node<T: ReadTxn>(
    txn: &T,
    branch: BranchPtr,
    kind: OffsetKind,
    depth: usize,
) -> Result<SharedRendering, TextRefusal> {
    render_branch(txn, branch, kind, true, depth)
}

fn render_branch<T: ReadTxn>(
    txn: &T,
    branch: BranchPtr,
    kind: OffsetKind,
    nested: bool,
    depth: usize,
) -> Result<SharedRendering, TextRefusal> {
    if depth > MAX_DEPTH {
        return Err(TextRefusal::too_deep());
    }
    let runs = entries(txn, branch);
    let hidden = hidden(branch, &runs, kind);
    let mut list = Vec::with_capacity(runs.len());
    for run in runs {
        list.push((render_value(txn, &run.insert, kind, depth)?, run.attributes));
    }
    let type_kind = nested.then(|| match branch.type_ref() {
        TypeRef::XmlElement(tag) => format!("element:{tag}"),
        other => format!("kind:{}", other.kind()),
    });
    Ok(SharedRendering {
        kind: type_kind,
        list,
        hidden,
        map: render_map(txn, branch, kind, depth)?,
    })
}

/// Whether any shared type of the document, under any root, nests deeper than [`MAX_DEPTH`]
/// (yrs deletes nested types recursively; see the `wire` module). Iterative.
pub(crate) fn nests_too_deep<T: ReadTxn>(txn: &T) -> bool {
    let mut stack: Vec<(BranchPtr, usize)> = txn
        .root_refs()
        .filter_map(|(_, root)| branch_of(&root))
        .map(|b| (b, 0))
        .collect();
    while let Some((branch, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return true;
        }
        let map = MapRef::from(branch);
        let keyed = map.iter(txn).map(|(_, value)| value);
        let listed = entries(txn, branch).into_iter().map(|run| run.insert);
        for value in listed.chain(keyed) {
            if let Some(child) = branch_of(&value) {
                stack.push((child, depth + 1));
            }
        }
    }
    false
}
