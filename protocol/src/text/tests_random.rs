//! Randomized tests of [`authorize_update`]: random and mutated bytes never panic, and random
//! suggester edits on random redlined documents obey two properties:
//!
//! - soundness: whenever an update is accepted, rejecting every suggestion of the user in the
//!   documents before and after it gives the same content (the update changed nothing but the
//!   user's own suggestions);
//! - completeness for plain suggestions: an update made only of marked insertions, deletion marks
//!   on unmarked text and marked new paragraphs is accepted.

use std::collections::BTreeMap;

use uuid::Uuid;
use yrs::branch::{BranchID, BranchPtr};
use yrs::types::TypeRef;
use yrs::{Any, Doc, Out, Text, Transact, Xml, XmlElementPrelim, XmlFragment, XmlTextPrelim};

use super::render::{branch_of, entries};
use super::test_support::{apply, bold, document, edit, full_state, other, text_at, user};
use super::{BODY, DELETION, INSERTION, SuggestionMark, TextRole, authorize_update};
use super::{reject_suggestion, suggestions};

/// xorshift64: deterministic, so a failure replays from its round number.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

#[test]
fn random_and_mutated_bytes_never_panic() {
    let doc = document(&["Hello world", "Second"]);
    let valid = edit(&doc, 7, |txn, body| {
        let t = text_at(txn, body, 0).expect("text");
        t.insert_with_attributes(txn, 3, "abc", mark(user(), 1).attrs(INSERTION));
        t.format(txn, 0, 2, mark(user(), 1).attrs(DELETION));
        t.remove_range(txn, 8, 2);
    });
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let roles = [TextRole::Viewer, TextRole::Suggester, TextRole::Editor];
    let rounds = std::env::var("TEXT_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok());
    for round in 0..rounds.unwrap_or(2000u64) {
        let bytes: Vec<u8> = if round % 2 == 0 {
            (0..rng.below(64)).map(|_| rng.next() as u8).collect()
        } else {
            let mut bytes = valid.clone();
            for _ in 0..=rng.below(4) {
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] = rng.next() as u8;
            }
            if rng.below(5) == 0 {
                bytes.truncate(rng.below(bytes.len() as u64) as usize);
            }
            bytes
        };
        let role = roles[(round % 3) as usize];
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            authorize_update(&doc, &bytes, user(), role)
        }));
        assert!(outcome.is_ok(), "round {round} escaped with a panic");
    }
}

fn mark(author: Uuid, time: i64) -> SuggestionMark {
    SuggestionMark::new(author, time)
}

const WORDS: [&str; 6] = ["alpha ", "beta ", "gamma ", "delta ", "épsilon ", "zeta😀 "];

/// A range of `t` starting near `seed` of about `span` units, on character boundaries (an editor
/// never splits a character; what happens when one does is a test of its own).
fn range(txn: &yrs::TransactionMut, t: &yrs::XmlTextRef, seed: u64, span: u64) -> (u32, u32) {
    let units: Vec<u16> = t
        .diff(txn, |_| ())
        .iter()
        .filter_map(|r| match &r.insert {
            Out::Any(Any::String(s)) => Some(s.encode_utf16().collect::<Vec<_>>()),
            _ => None,
        })
        .flatten()
        .collect();
    let len = units.len() as u32;
    let inside = |i: u32| (0xDC00..0xE000).contains(&units.get(i as usize).copied().unwrap_or(0));
    let mut at = if len == 0 {
        0
    } else {
        (seed % len as u64) as u32
    };
    if inside(at) {
        at -= 1;
    }
    let mut end = (at + span as u32).min(len);
    if inside(end) {
        end += 1;
    }
    (at, end - at)
}

/// A document with redlines from both users, bold text and a suggested paragraph.
fn random_document(rng: &mut Rng) -> Doc {
    let paragraphs: Vec<String> = (0..1 + rng.below(3))
        .map(|_| {
            (0..1 + rng.below(4))
                .map(|_| WORDS[rng.below(6) as usize])
                .collect()
        })
        .collect();
    let doc = document(&paragraphs.iter().map(String::as_str).collect::<Vec<_>>());
    for step in 0..rng.below(7) {
        let (a, b, c) = (rng.next(), rng.next(), rng.next());
        let update = edit(&doc, 1, |txn, body| {
            let p = (a % body.len(txn) as u64) as u32;
            let Some(t) = text_at(txn, body, p) else {
                return;
            };
            let (at, span) = range(txn, &t, b, c % 4);
            let who = if c % 2 == 0 { user() } else { other() };
            match step % 5 {
                0 => t.format(txn, at, span, bold()),
                1 => t.format(txn, at, span, mark(who, 10).attrs(DELETION)),
                2 => t.insert_with_attributes(txn, at, "ins ", mark(who, 20).attrs(INSERTION)),
                3 => t.remove_range(txn, at, span),
                _ => {
                    let el = body.push_back(txn, XmlElementPrelim::empty("paragraph"));
                    el.insert_attribute(txn, INSERTION, mark(user(), 30).to_any());
                    let t = el.push_back(txn, XmlTextPrelim::new(""));
                    t.insert_with_attributes(txn, 0, "own ", mark(user(), 30).attrs(INSERTION));
                }
            }
        });
        apply(&doc, &update);
    }
    doc
}

/// A random suggester edit; the flag says whether it is a plain suggestion (must be accepted).
fn random_edit(doc: &Doc, rng: &mut Rng) -> (Vec<u8>, bool) {
    let mut plain = true;
    let ops: Vec<(u64, u64, u64, u64)> = (0..1 + rng.below(3))
        .map(|_| (rng.below(12), rng.next(), rng.next(), rng.next()))
        .collect();
    let update = edit(doc, 7, |txn, body| {
        for (op, a, b, c) in ops {
            let Some(p) = (a as u32).checked_rem(body.len(txn)) else {
                continue;
            };
            let Some(t) = text_at(txn, body, p) else {
                continue;
            };
            let (at, span) = range(txn, &t, b, c % 5);
            let own = mark(user(), 40);
            match op {
                0 | 1 => t.insert_with_attributes(txn, at, "new", own.attrs(INSERTION)),
                2 | 3 => {
                    let clean = t.diff(txn, |_| ()).iter().all(|run| {
                        run.attributes
                            .as_ref()
                            .is_none_or(|a| !a.contains_key(DELETION))
                    });
                    plain &= clean;
                    t.format(txn, at, span, own.attrs(DELETION));
                }
                4 => {
                    let el = body.insert(txn, p, XmlElementPrelim::empty("paragraph"));
                    el.insert_attribute(txn, INSERTION, own.to_any());
                    let t = el.push_back(txn, XmlTextPrelim::new(""));
                    t.insert_with_attributes(txn, 0, "para", own.attrs(INSERTION));
                }
                5 => {
                    plain = false;
                    t.remove_range(txn, at, span);
                }
                6 => {
                    plain = false;
                    t.format(txn, at, span, bold());
                }
                7 => {
                    plain = false;
                    t.insert(txn, at, "x");
                }
                8 => {
                    plain = false;
                    let none = yrs::types::Attrs::from([(DELETION.into(), Any::Null)]);
                    t.format(txn, at, span, none);
                }
                9 => {
                    plain = false;
                    t.insert_with_attributes(txn, at, "y", mark(other(), 40).attrs(INSERTION));
                }
                10 => {
                    plain = false;
                    body.remove_range(txn, p, 1);
                }
                _ => {
                    plain = false;
                    if let Some(yrs::XmlOut::Element(el)) = body.get(txn, p) {
                        el.insert_attribute(txn, "level", Any::from(2.0));
                    }
                }
            }
        }
    });
    (update, plain)
}

/// The body as comparable data: element tags and attributes, text runs with their marks
/// (adjacent runs with equal marks merged).
fn content(doc: &Doc) -> Vec<String> {
    fn json(value: &Any) -> String {
        serde_json::to_value(value)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }
    fn walk(txn: &yrs::Transaction, node: BranchPtr, out: &mut Vec<String>) {
        if let TypeRef::XmlElement(tag) = node.type_ref() {
            let attrs: BTreeMap<String, String> = yrs::XmlElementRef::from(node)
                .attributes(txn)
                .map(|(k, v)| (k.to_owned(), v.to_string(txn)))
                .collect();
            out.push(format!("<{tag} {attrs:?}>"));
        }
        let mut last: Option<(String, String)> = None;
        for run in entries(txn, node) {
            if let Some(child) = branch_of(&run.insert) {
                out.extend(last.take().map(|(t, a)| format!("{t:?} {a}")));
                walk(txn, child, out);
            } else if let Out::Any(Any::String(s)) = &run.insert {
                let attrs: BTreeMap<String, String> = run
                    .attributes
                    .iter()
                    .flat_map(|a| a.iter())
                    .filter(|(_, v)| !matches!(v, Any::Null))
                    .map(|(k, v)| (k.to_string(), json(v)))
                    .collect();
                let attrs = format!("{attrs:?}");
                match &mut last {
                    Some((text, a)) if *a == attrs => text.push_str(s),
                    _ => {
                        out.extend(last.take().map(|(t, a)| format!("{t:?} {a}")));
                        last = Some((s.to_string(), attrs));
                    }
                }
            }
        }
        out.extend(last.map(|(t, a)| format!("{t:?} {a}")));
        out.push("</>".into());
    }
    let txn = doc.transact();
    let mut out = Vec::new();
    if let Some(root) = BranchID::get_root(&txn, BODY) {
        walk(&txn, root, &mut out);
    }
    out
}

/// A copy of `doc` with every suggestion of `author` rejected.
fn without_suggestions_of(doc: &Doc, author: Uuid) -> Doc {
    let copy = Doc::with_client_id(99);
    apply(&copy, &full_state(doc));
    let marks: Vec<SuggestionMark> = suggestions(&copy.transact())
        .into_iter()
        .map(|s| s.mark)
        .filter(|m| m.author == author)
        .collect();
    for m in marks {
        reject_suggestion(&mut copy.transact_mut(), &m);
    }
    copy
}

#[test]
fn random_suggester_edits_change_nothing_but_their_own_suggestions() {
    let seed = std::env::var("TEXT_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    let mut rng = Rng(seed.unwrap_or(0x2545_f491_4f6c_dd1d));
    let (mut accepted, mut refused) = (0, 0);
    let rounds: u64 = std::env::var("TEXT_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    for round in 0..rounds {
        let doc = random_document(&mut rng);
        let (update, plain) = random_edit(&doc, &mut rng);
        match authorize_update(&doc, &update, user(), TextRole::Suggester) {
            Ok(()) => {
                accepted += 1;
                let after = Doc::with_client_id(98);
                apply(&after, &full_state(&doc));
                apply(&after, &update);
                assert_eq!(
                    content(&without_suggestions_of(&doc, user())),
                    content(&without_suggestions_of(&after, user())),
                    "round {round}: an accepted update changed more than suggestions"
                );
            }
            Err(e) => {
                refused += 1;
                assert!(!plain, "round {round}: a plain suggestion was refused: {e}");
            }
        }
    }
    eprintln!("{accepted} accepted, {refused} refused");
    assert!(
        accepted > 100 && refused > 50,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn deep_type_chains_are_refused_before_yrs_applies_them() {
    let doc = document(&["x"]);
    let chain = |doc: &Doc, client: u64, levels: usize, under: u32| {
        edit(doc, client, move |txn, body| {
            let mut node = match body.get(txn, under) {
                Some(yrs::XmlOut::Element(e)) => e,
                _ => body.push_back(txn, XmlElementPrelim::empty("div")),
            };
            for _ in 0..levels {
                node = match node.get(txn, 0) {
                    Some(yrs::XmlOut::Element(e)) => e,
                    _ => node.push_back(txn, XmlElementPrelim::empty("div")),
                };
            }
        })
    };
    // Thousands of levels in one update: refused by the structural walk, for every role.
    let deep = chain(&doc, 7, 5_000, 1);
    assert_eq!(
        super::check_update_v1(&deep).map_err(|e| e.code),
        Err(crate::codes::ErrorCode::TooLarge)
    );
    for role in [TextRole::Viewer, TextRole::Suggester, TextRole::Editor] {
        let err = authorize_update(&doc, &deep, user(), role).expect_err("deep");
        assert_eq!(err.code, crate::codes::ErrorCode::TooLarge);
    }
    // Sixty levels pass; ten more in a later update exceed the bound on the document.
    let sixty = chain(&doc, 7, 60, 1);
    assert_eq!(
        authorize_update(&doc, &sixty, user(), TextRole::Editor),
        Ok(())
    );
    apply(&doc, &sixty);
    let seventy = chain(&doc, 8, 70, 1);
    assert_eq!(super::check_update_v1(&seventy), Ok(()));
    let err = authorize_update(&doc, &seventy, user(), TextRole::Editor).expect_err("deeper");
    assert_eq!(err.code, crate::codes::ErrorCode::TooLarge);
}
