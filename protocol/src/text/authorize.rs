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
use super::wire::{check_update_shape, check_update_v1};
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

/// What [`apply_editor_update`] did.
#[derive(Debug)]
pub enum EditorUpdate {
    /// Applied; `changed` is false when the update added nothing the document did not have.
    Applied { changed: bool },
    /// Refused. When `doc_tainted`, the update was (partly) applied before it was found wrong:
    /// the caller must rebuild the document from what it had stored.
    Refused {
        refusal: TextRefusal,
        doc_tainted: bool,
    },
}

/// The editors' fast path of [`authorize_update`]: an editor may make any change that decodes
/// and integrates, so instead of judging the update on a scratch copy of the whole document (a
/// cost linear in the document, per update: 260 K updates of the B4 trace made that quadratic),
/// apply it to `doc` itself and check afterwards what the scratch copy would have shown: nothing
/// left pending (missing dependencies), and no nesting beyond [`MAX_DEPTH`](super::MAX_DEPTH),
/// walked only when the update creates types. Cost: linear in the update, plus the document's
/// depth walk for the rare updates that create elements.
///
/// Never panics (yrs runs under `catch_unwind`, see the module header). The caller must not
/// hold a transaction on `doc`.
pub fn apply_editor_update(doc: &Doc, update_v1: &[u8]) -> EditorUpdate {
    let refused = |refusal, doc_tainted| EditorUpdate::Refused {
        refusal,
        doc_tainted,
    };
    let creates_types = match check_update_shape(update_v1) {
        Ok(creates) => creates,
        Err(refusal) => return refused(refusal, false),
    };
    let update = match Update::decode_v1(update_v1) {
        Ok(update) => update,
        Err(e) => return refused(invalid(e), false),
    };
    let applied = catch_unwind(AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        txn.apply_update(update).map_err(invalid)?;
        let pending = txn.store().pending_update().is_some()
            || txn.store().pending_ds().is_some_and(|ds| !ds.is_empty());
        if pending {
            return Err(TextRefusal::new(
                ErrorCode::MissingDependency,
                "the update depends on changes this document does not have",
            ));
        }
        if creates_types && nests_too_deep(&txn) {
            return Err(TextRefusal::too_deep());
        }
        Ok(txn.state_vector() != *txn.before_state() || !txn.delete_set().is_empty())
    }));
    match applied {
        Ok(Ok(changed)) => EditorUpdate::Applied { changed },
        Ok(Err(refusal)) => refused(refusal, true),
        Err(_) => refused(
            TextRefusal::new(
                ErrorCode::InvalidChange,
                "the update could not be integrated",
            ),
            true,
        ),
    }
}

#[cfg(test)]
mod editor_fast_path_tests {
    use yrs::Text;

    use super::*;
    use crate::text::plain_text;
    use crate::text::test_support::{document, edit, replica, text_of};

    fn applied(outcome: EditorUpdate) -> bool {
        match outcome {
            EditorUpdate::Applied { changed } => changed,
            EditorUpdate::Refused { refusal, .. } => panic!("refused: {refusal:?}"),
        }
    }

    #[test]
    fn applies_edits_in_place_and_tells_repeats_apart() {
        let server = document(&["Hello"]);
        let insert = edit(&server, 7, |txn, body| {
            text_of(txn, body, 0).insert(txn, 5, " world")
        });
        assert!(applied(apply_editor_update(&server, &insert)));
        assert!(
            !applied(apply_editor_update(&server, &insert)),
            "a repeat adds nothing"
        );
        let delete = edit(&server, 7, |txn, body| {
            text_of(txn, body, 0).remove_range(txn, 0, 6)
        });
        assert!(
            applied(apply_editor_update(&server, &delete)),
            "a deletion changes"
        );
        assert!(!applied(apply_editor_update(&server, &delete)));
        assert_eq!(plain_text(&server), "world");
    }

    #[test]
    fn refuses_missing_dependencies_and_says_the_copy_is_tainted() {
        let server = document(&["Hello"]);
        // A client edits twice; the server gets only the second edit.
        let client = replica(&server, 9);
        let body = client.get_or_insert_xml_fragment(crate::text::BODY);
        {
            let mut txn = client.transact_mut();
            text_of(&txn, &body, 0).insert(&mut txn, 5, "!");
        }
        let sv1 = client.transact().state_vector();
        {
            let mut txn = client.transact_mut();
            text_of(&txn, &body, 0).insert(&mut txn, 6, "?");
        }
        let second = client.transact().encode_diff_v1(&sv1);
        match apply_editor_update(&server, &second) {
            EditorUpdate::Refused {
                refusal,
                doc_tainted,
            } => {
                assert_eq!(refusal.code, ErrorCode::MissingDependency);
                assert!(doc_tainted);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Garbage is refused before it touches the document.
        match apply_editor_update(&server, &[0xff, 0xff, 0xff]) {
            EditorUpdate::Refused { doc_tainted, .. } => assert!(!doc_tainted),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
