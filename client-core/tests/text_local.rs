//! Text documents on one replica without a server: edits read back, positions, batches as one
//! mutation, what survives reopening the file, editor update exchange, suggestions.

mod common;

use client_core::text::{Any, SuggestionKind};
use client_core::{Client, ClientError, ErrorCode};
use common::{note, temp_client, welcome};
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{
    Doc, GetString, OffsetKind, Options, ReadTxn, StateVector, Text, Transact, Update, WriteTxn,
    XmlFragment, XmlOut,
};

fn bold() -> Option<Any> {
    Some(Any::Map(Default::default()))
}

#[test]
fn edits_read_back_and_survive_reopen() {
    let (mut c, path, _dir) = temp_client();
    let id = note(&mut c, "Minutes");
    let mut body = c.note_body(id);
    assert!(!body.exists().expect("exists"));
    assert_eq!(body.plain_text().expect("text"), "");
    body.insert(0, "Hello world").expect("insert");
    body.insert(5, ", big").expect("insert");
    body.delete(0, 1).expect("delete");
    body.insert(0, "J").expect("insert");
    body.format(0, 5, "bold", bold()).expect("bold");
    body.insert_paragraph(1, "Second").expect("paragraph");
    // Position 16 is the end of the first block, 17 the start of the second.
    assert_eq!(body.len().expect("len"), 16 + 1 + 6);
    body.insert(17, ">").expect("insert into the second block");
    body.insert(16, "!")
        .expect("insert at the end of the first");
    assert_eq!(
        body.plain_text().expect("text"),
        "Jello, big world!\n>Second"
    );
    let blocks = body.blocks().expect("blocks");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].tag, "paragraph");
    assert_eq!(blocks[0].runs[0].text, "Jello");
    assert!(blocks[0].runs[0].marks.contains_key("bold"));
    assert_eq!(blocks[0].runs[1].text, ", big world!");
    assert!(blocks[0].runs[1].marks.is_empty());
    assert_eq!(
        body.xml().expect("xml"),
        "<paragraph><bold>Jello</bold>, big world!</paragraph><paragraph>>Second</paragraph>"
    );
    // One pending mutation per edit, all updates of the body, after the record's creation.
    let outbox = c.outbox().expect("outbox");
    assert_eq!(outbox.len(), 1 + 8);
    assert_eq!(outbox[0].collection, "notes");
    assert!(
        outbox[1..]
            .iter()
            .all(|e| e.collection == "note_bodies" && e.doc_id == id)
    );
    let state = c.note_body(id).encode_state().expect("state");
    drop(c);

    let mut c = Client::open(&path).expect("reopen");
    assert_eq!(c.pending_count(), 9);
    let mut body = c.note_body(id);
    assert_eq!(
        body.plain_text().expect("text"),
        "Jello, big world!\n>Second"
    );
    assert_eq!(body.encode_state().expect("state"), state);
    // Editing continues where it stopped (same Yjs client, clocks after the stored ones).
    body.insert(0, "¡").expect("insert after reopen");
    assert_eq!(
        body.plain_text().expect("text"),
        "¡Jello, big world!\n>Second"
    );
}

#[test]
fn bodies_need_their_record_and_a_text_collection() {
    let (mut c, _path, _dir) = temp_client();
    let err = c
        .note_body(Uuid::now_v7())
        .insert(0, "x")
        .expect_err("no record");
    assert_eq!(err.code(), ErrorCode::NotFound);
    let task = c
        .create(
            "tasks",
            [("title", common::s("T")), ("status", common::s("todo"))],
        )
        .expect("task");
    let err = c
        .note_body(task)
        .insert(0, "x")
        .expect_err("a task has no body");
    assert_eq!(err.code(), ErrorCode::NotFound);
    let err = c.text(task, "tasks").expect_err("not a text collection");
    assert_eq!(err.code(), ErrorCode::UnknownCollection);
    let doc = c
        .create(
            "documents",
            [
                ("title", common::s("Lease")),
                ("type", common::s("contract")),
                ("status", common::s("draft")),
            ],
        )
        .expect("document");
    c.text(doc, "document_bodies")
        .expect("handle")
        .insert(0, "Terms")
        .expect("insert");
    assert_eq!(c.document_body(doc).plain_text().expect("text"), "Terms");
    assert_eq!(c.pending_count(), 3);
}

#[test]
fn invalid_positions_change_nothing() {
    let (mut c, _path, _dir) = temp_client();
    let id = note(&mut c, "N");
    let mut body = c.note_body(id);
    body.insert(0, "abc").expect("insert");
    for result in [
        body.insert(4, "x"),
        body.delete(2, 2),
        body.format(3, 1, "bold", bold()),
        body.insert_paragraph(2, "p"),
    ] {
        let err = result.expect_err("out of range");
        assert!(matches!(err, ClientError::InvalidPosition { .. }), "{err}");
        assert_eq!(err.code(), ErrorCode::InvalidInput);
    }
    // A batch failing half-way leaves nothing behind, in memory or on disk.
    let err = body
        .edit(|e| {
            e.insert(0, "zzz")?;
            e.delete(10, 1)
        })
        .expect_err("second edit fails");
    assert!(matches!(err, ClientError::InvalidPosition { .. }));
    assert_eq!(body.plain_text().expect("text"), "abc");
    // Nothing changed: nothing recorded.
    assert_eq!(body.edit(|e| e.insert(1, "")).expect("no-op").1, None);
    assert_eq!(c.pending_count(), 2);
}

/// UTF-16 positions, as in JavaScript: "é" is one unit, "😀" two.
#[test]
fn positions_count_utf16_units() {
    let (mut c, _path, _dir) = temp_client();
    let id = note(&mut c, "N");
    let mut body = c.note_body(id);
    body.insert(0, "é😀z").expect("insert");
    assert_eq!(body.len().expect("len"), 4);
    body.insert(3, "|").expect("after the emoji");
    body.delete(1, 2).expect("the emoji");
    assert_eq!(body.plain_text().expect("text"), "é|z");
}

/// A minimal deterministic generator (no dependency for one test).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u32) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % u64::from(n.max(1))) as u32
    }
}

/// The B4 trace's shape: many single-character inserts and deletes at flat positions in one
/// paragraph, applied in batches; each batch is one mutation, and the text matches a plain
/// string model.
#[test]
fn batches_of_edits_are_one_mutation_each() {
    let (mut c, path, _dir) = temp_client();
    let id = note(&mut c, "Trace");
    let mut model = String::new();
    let mut rng = Lcg(42);
    for _ in 0..20 {
        let ((), update) = c
            .note_body(id)
            .edit(|e| {
                for _ in 0..250 {
                    let len = model.len() as u32;
                    if len > 0 && rng.below(3) == 0 {
                        let pos = rng.below(len);
                        e.delete(pos, 1)?;
                        model.remove(pos as usize);
                    } else {
                        let pos = rng.below(len + 1);
                        let ch = char::from(b'a' + rng.below(26) as u8);
                        e.insert(pos, &ch.to_string())?;
                        model.insert(pos as usize, ch);
                    }
                }
                assert_eq!(e.text(), model);
                Ok(())
            })
            .expect("batch");
        assert!(update.is_some());
    }
    assert_eq!(c.pending_count(), 1 + 20);
    assert_eq!(c.note_body(id).plain_text().expect("text"), model);
    drop(c);
    let mut c = Client::open(&path).expect("reopen");
    assert_eq!(c.note_body(id).plain_text().expect("text"), model);
}

/// A browser editor (a Yjs document of its own) loads the body, edits, and hands its update
/// back; the replica records what is new as one mutation.
#[test]
fn editor_updates_round_trip() {
    let (mut c, _path, _dir) = temp_client();
    let id = note(&mut c, "N");
    c.note_body(id).insert(0, "shared").expect("insert");
    let editor = Doc::with_options(Options {
        offset_kind: OffsetKind::Utf16,
        ..Options::with_client_id(yrs::ClientID::new(999))
    });
    let editor_sv = editor.transact().state_vector().encode_v1_bytes();
    let diff = c.note_body(id).encode_diff(&editor_sv).expect("diff");
    editor
        .transact_mut()
        .apply_update(Update::decode_v1(&diff).expect("decode"))
        .expect("apply");
    let before = editor.transact().state_vector();
    {
        let mut txn = editor.transact_mut();
        let body = txn.get_or_insert_xml_fragment("prosemirror");
        let Some(XmlOut::Element(p)) = body.get(&txn, 0) else {
            panic!("paragraph")
        };
        let Some(XmlOut::Text(t)) = p.get(&txn, 0) else {
            panic!("text")
        };
        t.insert(&mut txn, 6, " note");
    }
    let update = editor.transact().encode_diff_v1(&before);
    let recorded = c.note_body(id).apply_update(&update).expect("apply");
    assert!(recorded.is_some());
    assert_eq!(c.note_body(id).plain_text().expect("text"), "shared note");
    // Applying it again adds nothing and records nothing.
    assert_eq!(c.note_body(id).apply_update(&update).expect("again"), None);
    assert_eq!(c.pending_count(), 3);
    // The replica's state vector now includes the editor's client.
    let sv = StateVector::decode_v1(&c.note_body(id).state_vector().expect("sv")).expect("sv");
    assert_eq!(sv.get(&yrs::ClientID::new(999)), 5);

    // Garbage and updates with missing history are refused and store nothing.
    let err = c
        .note_body(id)
        .apply_update(&[1, 2, 3])
        .expect_err("garbage");
    assert!(matches!(err, ClientError::InvalidUpdate { .. }), "{err}");
    let empty = editor
        .transact()
        .encode_diff_v1(&editor.transact().state_vector());
    assert!(
        c.note_body(id)
            .apply_update(&empty)
            .expect("empty")
            .is_none()
    );
    // The editor adds a paragraph, then text in it; the replica only gets the second edit.
    let paragraph = {
        let mut txn = editor.transact_mut();
        let body = txn.get_or_insert_xml_fragment("prosemirror");
        body.insert(&mut txn, 1, yrs::XmlElementPrelim::empty("paragraph"))
    };
    let after_paragraph = editor.transact().state_vector();
    {
        let mut txn = editor.transact_mut();
        paragraph.push_back(&mut txn, yrs::XmlTextPrelim::new("lost"));
    }
    let gap = editor.transact().encode_diff_v1(&after_paragraph);
    let err = c
        .note_body(id)
        .apply_update(&gap)
        .expect_err("missing history");
    assert_eq!(err.code(), ErrorCode::MissingDependency);
    assert_eq!(c.note_body(id).plain_text().expect("text"), "shared note");
    assert_eq!(c.pending_count(), 3);
    let reloaded = Doc::new();
    reloaded
        .transact_mut()
        .apply_update(
            Update::decode_v1(&c.note_body(id).encode_state().expect("state")).expect("decode"),
        )
        .expect("apply");
    let body = reloaded.get_or_insert_xml_fragment("prosemirror");
    assert_eq!(
        body.get_string(&reloaded.transact()),
        "<paragraph>shared note</paragraph>"
    );
}

#[test]
fn suggestions_carry_the_welcomed_user_and_resolve() {
    let (mut c, _path, _dir) = temp_client();
    let id = note(&mut c, "N");
    c.note_body(id).insert(0, "The quick fox").expect("insert");
    let err = c
        .note_body(id)
        .suggest_insert(4, "very ")
        .expect_err("no session");
    assert!(matches!(err, ClientError::NoSession));
    let user = Uuid::from_u128(0xabc);
    welcome(&mut c, user);

    let mut body = c.note_body(id);
    let (inserted, _) = body
        .edit(|e| e.suggest_insert(10, "brown "))
        .expect("suggest");
    let (deleted, _) = body
        .edit(|e| e.suggest_delete(4, 6))
        .expect("suggest delete");
    assert_eq!(inserted.author, user);
    assert_eq!(deleted.author, user);
    // Suggested text stays in the text until resolved.
    assert_eq!(body.plain_text().expect("text"), "The quick brown fox");
    let found = body.suggestions().expect("suggestions");
    let kinds: Vec<_> = found.iter().map(|s| (s.kind, s.text.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (SuggestionKind::Deletion, "quick "),
            (SuggestionKind::Insertion, "brown ")
        ]
    );
    assert!(found.iter().all(|s| s.mark.author == user));
    // Suggesting the deletion of one's own suggested insertion withdraws it.
    body.suggest_delete(10, 6).expect("withdraw");
    assert_eq!(body.plain_text().expect("text"), "The quick fox");
    // Plain typing next to a suggestion is not part of it.
    body.insert(10, "red ").expect("insert");
    body.suggest_insert(14, "old ").expect("suggest");
    body.insert(18, "sly ")
        .expect("insert after the suggestion");
    let texts: Vec<_> = body
        .suggestions()
        .expect("suggestions")
        .into_iter()
        .filter(|s| s.kind == SuggestionKind::Insertion)
        .map(|s| s.text)
        .collect();
    assert_eq!(texts, vec!["old "]);
    assert_eq!(
        body.plain_text().expect("text"),
        "The quick red old sly fox"
    );

    body.reject(&deleted).expect("keep quick");
    assert_eq!(
        body.plain_text().expect("text"),
        "The quick red old sly fox"
    );
    body.reject_all().expect("reject the rest");
    assert_eq!(body.plain_text().expect("text"), "The quick red sly fox");
    body.suggest_delete(0, 4).expect("suggest");
    body.accept_all().expect("accept");
    assert_eq!(body.plain_text().expect("text"), "quick red sly fox");
    assert!(body.suggestions().expect("none left").is_empty());
}

trait EncodeSv {
    fn encode_v1_bytes(&self) -> Vec<u8>;
}

impl EncodeSv for StateVector {
    fn encode_v1_bytes(&self) -> Vec<u8> {
        yrs::updates::encoder::Encode::encode_v1(self)
    }
}
