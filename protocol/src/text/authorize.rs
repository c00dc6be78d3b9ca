//! [`authorize_update`]: judging a Yjs update pushed to a text document before it is stored.
//!
//! How: the update is first walked by [`check_update_v1`] (inputs that crash or bloat yrs's
//! decoder are refused), decoded with `Update::decode_v1` (malformed → `InvalidChange`), then
//! applied to a scratch copy of `before` (its state re-encoded into a fresh `Doc` with `skip_gc`,
//! UTF-16 offsets and no formatting cleanup, so the copy shows exactly the update's effect).
//! Snapshots of the copy before and after the update tell, by item identity, what existed and
//! what is visible. An update that leaves part of itself pending (it needs changes the document
//! lacks) is refused with `MissingDependency`, and one that leaves types nested deeper than
//! [`MAX_DEPTH`](super::MAX_DEPTH) with `TooLarge` (so stored documents stay shallow enough for
//! yrs's recursion). Then editors pass; viewers pass only if the snapshots are equal; suggesters
//! are judged by comparing the two states: roots other than the body must render identically,
//! and the body is walked as described in the `tree` and `runs` modules, fully only where yrs
//! reports a change (`changed_parent_types`).
//!
//! Panics: yrs's decoder and integration are written for trusted peers. The whole judgement runs
//! under `std::panic::catch_unwind`, and a panic refuses the update as `InvalidChange`. The only
//! panic random inputs found in yrs 0.28.1 is `ClientID::new`'s `debug_assert` on ids wider than
//! 53 bits (debug builds), which [`check_update_v1`] now refuses first; the guard stays for what
//! the tests did not find. It needs `panic = "unwind"`, the default except on wasm32, where panics
//! abort. Stack overflows cannot be caught at all, hence the depth bounds here and in the walk.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};

use uuid::Uuid;
use yrs::branch::BranchID;
use yrs::updates::decoder::Decode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update, WriteTxn};

use super::render::{nests_too_deep, render_root};
use super::tree::{BodyCheck, Changed};
use super::wire::check_update_v1;
use super::{BODY, TextRefusal, TextRole, Violation};
use crate::codes::ErrorCode;

/// Judges a Yjs update (lib0 v1 encoding) that `user`, with `role`, pushes to the text document
/// whose current state is `before`. `Ok` means it may be applied and stored.
///
/// - [`TextRole::Editor`]: anything that decodes and integrates.
/// - [`TextRole::Viewer`]: only updates that change nothing (e.g. re-sent, already known items).
/// - [`TextRole::Suggester`]: only suggestions (see [`Violation`] for the rules): no deletion of
///   existing content, every inserted character carries an [`INSERTION`](super::INSERTION) mark
///   authored by `user` (and every inserted node an `insertion` attribute), and the only
///   formatting change to existing text is adding, re-dating or removing `user`'s own
///   [`DELETION`](super::DELETION) mark. A suggester may withdraw their own suggestions: delete
///   text or nodes carrying their own insertion mark, or remove their own deletion mark.
///   Nothing outside the [`BODY`] fragment may change.
///
/// Never panics on any input (see the module header). The caller must not hold a transaction on
/// `before` in this thread (yrs would deadlock). Cost: linear in the size of `before`.
pub fn authorize_update(
    before: &Doc,
    update_v1: &[u8],
    user: Uuid,
    role: TextRole,
) -> Result<(), TextRefusal> {
    match catch_unwind(AssertUnwindSafe(|| judge(before, update_v1, user, role))) {
        Ok(result) => result,
        Err(_) => Err(TextRefusal::new(
            ErrorCode::InvalidChange,
            "the update could not be integrated",
        )),
    }
}

fn invalid(error: impl std::fmt::Display) -> TextRefusal {
    TextRefusal::new(
        ErrorCode::InvalidChange,
        format!("not a valid Yjs update: {error}"),
    )
}

fn judge(before: &Doc, update_v1: &[u8], user: Uuid, role: TextRole) -> Result<(), TextRefusal> {
    check_update_v1(update_v1)?;
    let update = Update::decode_v1(update_v1).map_err(invalid)?;
    let state = before
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let scratch = Doc::with_options(Options {
        skip_gc: true,
        offset_kind: OffsetKind::Utf16,
        cleanup_formatting: false,
        ..Options::default()
    });
    {
        let mut txn = scratch.transact_mut();
        let current = Update::decode_v1(&state).map_err(|e| {
            TextRefusal::new(
                ErrorCode::Internal,
                format!("the stored document does not re-encode: {e}"),
            )
        })?;
        txn.apply_update(current).map_err(|e| {
            TextRefusal::new(
                ErrorCode::Internal,
                format!("the stored document does not re-apply: {e}"),
            )
        })?;
        // Defined, so that yrs reports changes inside it.
        txn.get_or_insert_xml_fragment(BODY);
    }
    let s0 = scratch.transact().snapshot();

    let reported = Arc::new(Mutex::new(HashSet::<BranchID>::new()));
    {
        let mut txn = scratch.transact_mut();
        let sink = Arc::clone(&reported);
        txn.observe_after_transaction("syncline-text-authorize", move |txn| {
            if let Ok(mut set) = sink.lock() {
                set.extend(txn.changed_parent_types().iter().map(|b| b.id()));
            }
        });
        txn.apply_update(update).map_err(invalid)?;
        txn.commit();
    }
    let changed = match reported.lock() {
        Ok(set) => Changed::Some(set.clone()),
        Err(_) => Changed::All,
    };

    let mut txn = scratch.transact_mut();
    let pending = txn.store().pending_update().is_some()
        || txn.store().pending_ds().is_some_and(|ds| !ds.is_empty());
    if pending {
        return Err(TextRefusal::new(
            ErrorCode::MissingDependency,
            "the update depends on changes this document does not have",
        ));
    }
    if nests_too_deep(&txn) {
        return Err(TextRefusal::too_deep());
    }
    let s1 = txn.snapshot();
    match role {
        TextRole::Editor => return Ok(()),
        _ if s0 == s1 => return Ok(()),
        TextRole::Viewer => {
            return Err(TextRefusal::forbidden(
                Violation::ReadOnly,
                "viewers may not change text documents",
            ));
        }
        TextRole::Suggester => {}
    }

    let before_txn = before.transact();
    let before_kind = before.offset_kind();
    let mut names: Vec<String> = before_txn.root_refs().map(|(n, _)| n.to_owned()).collect();
    names.extend(txn.root_refs().map(|(n, _)| n.to_owned()));
    names.sort();
    names.dedup();
    for name in names.iter().filter(|n| n.as_str() != BODY) {
        if render_root(&before_txn, name, before_kind)?
            != render_root(&txn, name, OffsetKind::Utf16)?
        {
            return Err(TextRefusal::forbidden(
                Violation::Unsupported,
                format!("suggesters may only change the document body, not `{name}`"),
            ));
        }
    }
    BodyCheck {
        user,
        s0: &s0,
        s1: &s1,
        before: &before_txn,
        before_kind,
        changed: &changed,
    }
    .check(&mut txn)
}
