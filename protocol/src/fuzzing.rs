//! The bodies of the fuzz targets in `protocol/fuzz/`, kept here as plain functions so that the
//! fuzzers and an ordinary `cargo test` (`tests/fuzz_regressions.rs`, which replays every
//! committed crash input) run exactly the same code.
//!
//! Each function takes untrusted bytes, feeds them to code that parses or judges what a client
//! or the server sends, and panics only when an invariant that code promises is broken; every
//! error the code under test returns is an acceptable outcome. The targets are:
//!
//! - [`decode_client_frame`] and [`decode_server_frame`]: the CBOR frame decoders, plus the
//!   round trip `decode -> encode -> decode`.
//! - [`authorize_change`]: the server's judgement of a pushed mutation whose payload is
//!   arbitrary bytes (the change-authorization decoder: automerge change parsing,
//!   [`touched_fields`], [`read_record`], [`authorize_write`]).
//! - [`authorize_edits`]: the same judgement of a change made by a real automerge document
//!   through edits derived from the bytes. Random bytes rarely form an automerge change, so this
//!   target is the one that reaches deep into the rules; it also checks that an honest change is
//!   never refused as malformed.
//!
//! Both authorization targets check the property the server's write rules rest on: a change
//! can alter the visible value of a root key (a record field) only if [`touched_fields`]
//! reports that key, so that [`authorize_write`] judges it.
//!
//! [`seed_inputs`] builds small valid inputs for every target; they are committed next to the
//! crash inputs so that each fuzz run starts from inputs that get past the parsers.

use std::collections::BTreeSet;

use automerge::transaction::Transactable;
use automerge::{
    ActorId, AutoCommit, Automerge, Change, ObjId, ObjType, Prop, ROOT, ReadDoc, ScalarValue,
};
use serde_bytes::ByteBuf;
use uuid::Uuid;

use crate::codes::ErrorCode;
use crate::messages::{ClientMessage, DocSnapshot, Mutation, MutationId, Scope, ServerMessage};
use crate::record::{FieldValue, Record, put_field, read_record};
use crate::rules::{Relation, authorize_write, touched_fields};
use crate::schema::{TASK_PRIORITIES, TASK_STATUSES, TASKS};

/// The body of a fuzz target: runs one input, panicking only on a broken invariant.
pub type Target = fn(&[u8]);

/// Every fuzz target: its name (the binary in `protocol/fuzz/fuzz_targets/` and the directory
/// of its inputs in `protocol/fuzz/regressions/`) and its body.
pub const TARGETS: &[(&str, Target)] = &[
    ("decode_client", decode_client_frame),
    ("decode_server", decode_server_frame),
    ("authorize_change", authorize_change),
    ("authorize_edits", authorize_edits),
];

/// The server's limit on one pushed change (`MAX_CHANGE_BYTES` in `sync-server`), mirrored so
/// that [`authorize_change`] judges only what the server would.
const MAX_CHANGE_BYTES: usize = 1 << 20;

/// Decodes `data` as a frame sent by a client.
///
/// The server decodes every frame a client sends before authenticating it, so the decoder must
/// return an error, never panic, on any input. A frame that decodes must survive
/// `encode -> decode` unchanged, or the server and clients could disagree about a message.
pub fn decode_client_frame(data: &[u8]) {
    if let Ok(message) = crate::decode_client(data) {
        let frame = crate::encode(&message).expect("a decoded client message encodes");
        let again = crate::decode_client(&frame).expect("a re-encoded client message decodes");
        assert_eq!(again, message, "client message changed in a round trip");
    }
}

/// Decodes `data` as a frame sent by the server.
///
/// Clients (the browser's wasm build included) decode whatever arrives on their socket; a
/// panic there takes the client down. A frame that decodes must survive `encode -> decode`
/// unchanged.
pub fn decode_server_frame(data: &[u8]) {
    if let Ok(message) = crate::decode_server(data) {
        let frame = crate::encode(&message).expect("a decoded server message encodes");
        let again = crate::decode_server(&frame).expect("a re-encoded server message decodes");
        assert_eq!(again, message, "server message changed in a round trip");
    }
}

/// Judges `data` as the payload of a pushed mutation, as the server does, against a document
/// being created and against an existing task.
///
/// The payload is the one thing in a push that an attacker controls byte for byte, and the
/// server parses it (`Change::from_bytes`), applies it, decodes its operations
/// ([`touched_fields`]) and judges them ([`authorize_write`]) before storing anything. None of
/// that may panic, and a change that parses must not alter a field the judgement does not see.
pub fn authorize_change(data: &[u8]) {
    if data.len() > MAX_CHANGE_BYTES {
        return;
    }
    let Ok(change) = Change::from_bytes(data.to_vec()) else {
        return;
    };
    for base in Base::ALL {
        let server = base.doc().document().clone();
        let before = read_record(&server, &TASKS).ok();
        judge(&server, before.as_ref(), &change, None);
    }
}

/// Builds a change by applying edits derived from `data` to a fork of a task document (or of
/// an empty one), optionally with a concurrent change already on the server, and judges it as
/// the server does.
///
/// Random bytes rarely parse as an automerge change, so [`authorize_change`] mostly exercises
/// the parser; this target produces well-formed changes of every shape a client can make (puts
/// of every scalar type, unknown and server-owned keys, nested lists, maps and text, counters,
/// deletes, the typed writer [`put_field`]) and so reaches the rules. Such a change comes from
/// an honest automerge document, so on top of the checks of [`authorize_change`] it must apply,
/// must not be refused as malformed by [`touched_fields`], and may touch only the root keys the
/// edits addressed.
///
/// Input layout: the first byte picks the base document (even: a document being created, odd:
/// an existing task); then each operation is an opcode byte followed by its arguments (see
/// `Edits::step` in this file). An opcode with its high bit set edits the server's concurrent
/// change instead of the client's.
pub fn authorize_edits(data: &[u8]) {
    if let Some(scenario) = Scenario::build(data) {
        judge(
            &scenario.server,
            scenario.before.as_ref(),
            &scenario.change,
            Some(&scenario.addressed),
        );
    }
}

/// The bytes of the change an [`authorize_edits`] input makes, when it has no concurrent edit:
/// an [`authorize_change`] input that applies to the same base. Turns a corpus of edit scripts
/// into a corpus of well-formed changes (`cargo run -p syncline-protocol --example
/// fuzz_corpus`), from which the raw-bytes target mutates its way deeper than from random bytes.
pub fn change_of_edits(data: &[u8]) -> Option<Vec<u8>> {
    let scenario = Scenario::build(data)?;
    (!scenario.concurrent).then(|| scenario.change.raw_bytes().to_vec())
}

/// What the server does with a parsed change (see `WorkingDoc::check` in
/// `sync-server/src/merge/document.rs`), with the invariants checked along the way. `honest`
/// holds the root keys the change's author addressed, when the change was made by a real
/// automerge document.
fn judge(server: &Automerge, before: Option<&Record>, change: &Change, honest: Option<&Keys>) {
    if change
        .deps()
        .iter()
        .any(|h| server.get_change_by_hash(h).is_none())
    {
        assert!(honest.is_none(), "an honest change has its dependencies");
        return;
    }
    let mut merged = server.clone();
    if let Err(e) = merged.apply_changes([change.clone()]) {
        assert!(honest.is_none(), "an honest change does not apply: {e}");
        return;
    }
    // The server validates the record first; both steps are pure, and running touched_fields
    // on every applied change (not only on valid records) reaches more of it.
    let record = read_record(&merged, &TASKS);
    let touched = match touched_fields(change, &merged) {
        Ok(touched) => touched,
        Err(e) => {
            assert!(
                honest.is_none(),
                "an honest change is refused as malformed: {e}"
            );
            return;
        }
    };
    check_changed_fields_are_touched(server, &merged, &touched);
    if let Some(addressed) = honest {
        assert!(
            touched.is_subset(addressed),
            "touched fields {touched:?} include keys the edits did not address ({addressed:?})"
        );
    }
    if let Ok(after) = record {
        check_authorization(before, &after, &touched);
    }
}

/// The soundness of the write rules: a root key whose visible value differs between the
/// server's document before and after the change must be among the touched fields, or
/// [`authorize_write`] would let the change write it unjudged.
fn check_changed_fields_are_touched(server: &Automerge, merged: &Automerge, touched: &Keys) {
    let keys: Keys = server.keys(ROOT).chain(merged.keys(ROOT)).collect();
    for key in keys.difference(touched) {
        let old = visible(server, &ROOT, key.as_str().into());
        let new = visible(merged, &ROOT, key.as_str().into());
        assert!(
            old == new,
            "field `{key}` changed ({old:?} -> {new:?}) but touched_fields reports only {touched:?}"
        );
    }
}

/// A value as the record reader sees it (through [`ReadDoc`], the winner of any conflict),
/// nested objects included.
#[derive(Debug, PartialEq)]
enum Visible {
    Scalar(ScalarValue),
    /// A float, by its bits so that `NaN` equals itself.
    Float(u64),
    Map(Vec<(String, Option<Visible>)>),
    List(Vec<Option<Visible>>),
    Text(Option<String>),
}

fn visible(doc: &Automerge, obj: &ObjId, prop: Prop) -> Option<Visible> {
    let (value, id) = doc.get(obj, prop).ok()??;
    Some(match value {
        automerge::Value::Scalar(s) => match s.as_ref() {
            ScalarValue::F64(f) => Visible::Float(f.to_bits()),
            other => Visible::Scalar(other.clone()),
        },
        automerge::Value::Object(ObjType::Map | ObjType::Table) => Visible::Map(
            doc.keys(&id)
                .map(|k| {
                    let v = visible(doc, &id, k.as_str().into());
                    (k, v)
                })
                .collect(),
        ),
        automerge::Value::Object(ObjType::List) => Visible::List(
            (0..doc.length(&id))
                .map(|i| visible(doc, &id, i.into()))
                .collect(),
        ),
        automerge::Value::Object(ObjType::Text) => Visible::Text(doc.text(&id).ok()),
    })
}

/// Properties of [`authorize_write`] that hold whatever the rules table says, checked for the
/// task's assignee and for another user at every relation.
fn check_authorization(before: Option<&Record>, after: &Record, touched: &Keys) {
    let client_writable = touched
        .iter()
        .all(|name| TASKS.field(name).is_some_and(|def| !def.server_owned));
    for user in [ASSIGNEE, STRANGER] {
        let allowed = |relation| authorize_write(&TASKS, user, relation, before, after, touched);
        assert!(
            matches!(allowed(None), Err(e) if e.code == ErrorCode::Forbidden),
            "a user who cannot read the document may not write it"
        );
        let mut weaker_allowed = None;
        for relation in Relation::ALL {
            let ok = allowed(Some(relation)).is_ok();
            if let Some(weaker) = weaker_allowed {
                assert!(ok, "{weaker} may write {touched:?} but {relation} may not");
            }
            if ok {
                weaker_allowed.get_or_insert(relation);
                assert!(
                    client_writable,
                    "{relation} may write {touched:?}, which holds a non-client field"
                );
            }
        }
        assert_eq!(
            allowed(Some(Relation::Owner)).is_ok(),
            client_writable,
            "an owner may write every client field of {touched:?} and nothing else"
        );
        if user == STRANGER && !touched.is_empty() {
            assert!(
                allowed(Some(Relation::Viewer)).is_err(),
                "a viewer who is not the assignee wrote {touched:?}"
            );
        }
    }
}

type Keys = BTreeSet<String>;

/// The user the base task is assigned to (the assignee may mark it done).
const ASSIGNEE: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_a551);
/// A user unrelated to the task.
const STRANGER: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_0057);
/// The task the base task depends on.
const DEPENDENCY: Uuid = Uuid::from_u128(0x0192_d2f0_5b1c_7a00_8000_0000_0000_0dea);
const UUIDS: [Uuid; 4] = [ASSIGNEE, STRANGER, DEPENDENCY, Uuid::nil()];

/// Fixed actors, so the base document and its change hashes are the same in every run and a
/// committed change input keeps depending on changes the base has.
const BASE_ACTOR: [u8; 16] = [0xba; 16];
const CLIENT_ACTOR: [u8; 16] = [0xc1; 16];
const OTHER_ACTOR: [u8; 16] = [0x07; 16];

/// The server's copy of the document a change is pushed to.
#[derive(Debug, Clone, Copy)]
enum Base {
    /// A document being created: no state yet.
    New,
    /// A stored task: titled, `todo`, assigned to [`ASSIGNEE`], depending on [`DEPENDENCY`].
    Task,
}

impl Base {
    const ALL: [Self; 2] = [Self::New, Self::Task];

    fn doc(self) -> AutoCommit {
        let mut doc = AutoCommit::new().with_actor(ActorId::from(BASE_ACTOR));
        if let Self::Task = self {
            let fields = [
                ("title", FieldValue::String("Write docs".into())),
                ("status", FieldValue::String("todo".into())),
                ("assignee_id", FieldValue::Ref(ASSIGNEE)),
                ("depends_on", FieldValue::RefList(vec![DEPENDENCY])),
            ];
            for (name, value) in fields {
                put_field(&mut doc, &TASKS, name, Some(&value)).expect("the base task is valid");
            }
            doc.commit();
        }
        doc
    }
}

/// A change built by [`authorize_edits`] and the server state it is judged against.
struct Scenario {
    /// The server's document: the base, plus the concurrent change if any.
    server: Automerge,
    /// The server's record before the change (`None`: the document does not hold a valid one).
    before: Option<Record>,
    /// The client's change, made on a fork of the base.
    change: Change,
    /// The root keys the client's edits addressed, directly or through a nested object.
    addressed: Keys,
    /// The server holds a concurrent change on top of the base.
    concurrent: bool,
}

impl Scenario {
    fn build(data: &[u8]) -> Option<Self> {
        let mut edits = Edits { input: data };
        let base = Base::ALL[usize::from(edits.byte()?) % Base::ALL.len()];
        let mut base = base.doc();
        let nested: Vec<(ObjId, &'static str)> = TASKS
            .fields
            .iter()
            .filter_map(|def| match base.get(ROOT, def.name) {
                Ok(Some((automerge::Value::Object(_), obj))) => Some((obj, def.name)),
                _ => None,
            })
            .collect();
        let mut client = Side {
            doc: base.fork().with_actor(ActorId::from(CLIENT_ACTOR)),
            objects: nested.clone(),
            addressed: Keys::new(),
        };
        let mut other = Side {
            doc: base.fork().with_actor(ActorId::from(OTHER_ACTOR)),
            objects: nested,
            addressed: Keys::new(),
        };
        for _ in 0..MAX_EDITS {
            let Some(op) = edits.byte() else { break };
            let side = if op & 0x80 == 0 {
                &mut client
            } else {
                &mut other
            };
            edits.step(op, side);
        }
        let mut server = base.document().clone();
        let concurrent = other.doc.commit();
        if let Some(hash) = concurrent {
            let change = other.doc.get_change_by_hash(&hash)?;
            server
                .apply_changes([change])
                .expect("a concurrent change applies to its base");
        }
        let hash = client.doc.commit()?;
        let change = client.doc.get_change_by_hash(&hash)?;
        Some(Self {
            before: read_record(&server, &TASKS).ok(),
            server,
            change,
            addressed: client.addressed,
            concurrent: concurrent.is_some(),
        })
    }
}

/// At most this many edits per input, so that one input stays fast.
const MAX_EDITS: usize = 128;

/// One of the two documents edited by [`authorize_edits`].
struct Side {
    doc: AutoCommit,
    /// Nested objects reachable from the root, with the root key holding each.
    objects: Vec<(ObjId, &'static str)>,
    addressed: Keys,
}

/// Keys the edits use: every field of the schema (server-owned ones included), then keys no
/// schema has.
const EXTRA_KEYS: [&str; 3] = ["colour", "", "Title"];

/// Strings the edits use: valid enum values first, then other words.
const WORDS: [&str; 3] = ["", " ", "Write docs"];

/// A reader of the fuzzer's bytes that yields zeros once they run out.
struct Edits<'a> {
    input: &'a [u8],
}

impl<'a> Edits<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.input.split_first()?;
        self.input = rest;
        Some(first)
    }

    fn arg(&mut self) -> u8 {
        self.byte().unwrap_or(0)
    }

    fn index(&mut self, len: usize) -> usize {
        usize::from(self.arg()) % len.max(1)
    }

    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.input.split_at(n.min(self.input.len()));
        self.input = rest;
        head
    }

    fn u64(&mut self) -> u64 {
        let mut le = [0; 8];
        let bytes = self.bytes(8);
        le[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(le)
    }

    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.u64().to_le_bytes())
    }

    fn key(&mut self) -> &'static str {
        let i = self.index(TASKS.fields.len() + EXTRA_KEYS.len());
        match TASKS.fields.get(i) {
            Some(def) => def.name,
            None => EXTRA_KEYS[i - TASKS.fields.len()],
        }
    }

    fn uuid(&mut self) -> Uuid {
        UUIDS[self.index(UUIDS.len())]
    }

    /// `0`: a word (enum values first), `1`: up to 15 raw bytes, `2`: a long run of `a` (length
    /// limits), `3`: a UUID.
    fn string(&mut self) -> String {
        match self.arg() % 4 {
            0 => {
                let mut words = TASK_STATUSES.iter().chain(TASK_PRIORITIES).chain(&WORDS);
                let n = TASK_STATUSES.len() + TASK_PRIORITIES.len() + WORDS.len();
                words
                    .nth(self.index(n))
                    .map_or_else(String::new, |w| (*w).to_owned())
            }
            1 => {
                let n = usize::from(self.arg() % 16);
                String::from_utf8_lossy(self.bytes(n)).into_owned()
            }
            2 => "a".repeat(usize::from(self.arg()) * 4),
            _ => self.uuid().to_string(),
        }
    }

    fn scalar(&mut self) -> ScalarValue {
        match self.arg() % 10 {
            0 => ScalarValue::Str(self.string().into()),
            1 => ScalarValue::Int(self.i64()),
            2 => ScalarValue::Uint(self.u64()),
            3 => ScalarValue::F64(f64::from(i16::from_le_bytes([self.arg(), self.arg()]))),
            4 => ScalarValue::Boolean(self.arg() & 1 == 1),
            5 => ScalarValue::Timestamp(self.i64()),
            6 => ScalarValue::Null,
            7 => ScalarValue::counter(i64::from(i8::from_le_bytes([self.arg()]))),
            8 => {
                let n = usize::from(self.arg() % 16);
                ScalarValue::Bytes(self.bytes(n).to_vec())
            }
            _ => ScalarValue::Str(self.uuid().to_string().into()),
        }
    }

    /// A value for the typed writer [`put_field`]; `None` clears the field.
    fn field_value(&mut self) -> Option<FieldValue> {
        Some(match self.arg() % 8 {
            0 => return None,
            1 => FieldValue::String(self.string()),
            2 => FieldValue::Int(self.i64()),
            3 => FieldValue::Bool(self.arg() & 1 == 1),
            4 => FieldValue::Timestamp(self.i64()),
            5 => FieldValue::Ref(self.uuid()),
            6 => {
                let n = usize::from(self.arg() % 5);
                FieldValue::RefList((0..n).map(|_| self.uuid()).collect())
            }
            _ => FieldValue::String("a".repeat(usize::from(self.arg()) * 8)),
        })
    }

    fn obj_type(&mut self) -> ObjType {
        [ObjType::Map, ObjType::List, ObjType::Text][self.index(3)]
    }

    /// Applies one edit to `side`. The low three bits of `op` pick it:
    ///
    /// | op | edit | arguments |
    /// |----|------|-----------|
    /// | 0 | put a scalar at a root key | key, scalar |
    /// | 1 | delete a root key | key |
    /// | 2 | put a new map, list or text at a root key | key, type |
    /// | 3 | increment a root key | key, amount |
    /// | 4 | write a field with [`put_field`] | key, value |
    /// | 5 | add inside a nested object (insert, or map put) | object, position, kind, value |
    /// | 6 | delete inside a nested object | object, position or key |
    /// | 7 | overwrite inside a nested object | object, position or key, value |
    ///
    /// Edits automerge refuses (a counter increment on a string, a delete out of range, ...) are
    /// skipped: the change holds whatever succeeded.
    fn step(&mut self, op: u8, side: &mut Side) {
        let doc = &mut side.doc;
        let root_key = match op & 0x07 {
            0 => {
                let key = self.key();
                let _ = doc.put(ROOT, key, self.scalar());
                key
            }
            1 => {
                let key = self.key();
                let _ = doc.delete(ROOT, key);
                key
            }
            2 => {
                let key = self.key();
                if let Ok(obj) = doc.put_object(ROOT, key, self.obj_type()) {
                    side.objects.push((obj, key));
                }
                key
            }
            3 => {
                let key = self.key();
                let _ = doc.increment(ROOT, key, i64::from(i8::from_le_bytes([self.arg()])));
                key
            }
            4 => {
                let key = self.key();
                let _ = put_field(doc, &TASKS, key, self.field_value().as_ref());
                // The typed writer may have created a list object.
                if let Ok(Some((automerge::Value::Object(_), obj))) = doc.get(ROOT, key) {
                    side.objects.push((obj, key));
                }
                key
            }
            op => {
                if side.objects.is_empty() {
                    return;
                }
                let (obj, key) = side.objects[self.index(side.objects.len())].clone();
                let len = doc.length(&obj);
                match (op, doc.object_type(&obj)) {
                    (5, Ok(ObjType::List)) => {
                        let at = self.index(len + 1);
                        if self.arg() & 3 == 0 {
                            if let Ok(new) = doc.insert_object(&obj, at, self.obj_type()) {
                                side.objects.push((new, key));
                            }
                        } else {
                            let _ = doc.insert(&obj, at, self.scalar());
                        }
                    }
                    (5 | 7, Ok(ObjType::Text)) => {
                        let at = self.index(len + 1);
                        let delete = if op == 7 {
                            isize::from(self.arg() % 4)
                        } else {
                            0
                        };
                        let _ = doc.splice_text(&obj, at, delete, &self.string());
                    }
                    (5, Ok(ObjType::Map | ObjType::Table)) => {
                        let field = self.key();
                        if self.arg() & 3 == 0 {
                            if let Ok(new) = doc.put_object(&obj, field, self.obj_type()) {
                                side.objects.push((new, key));
                            }
                        } else {
                            let _ = doc.put(&obj, field, self.scalar());
                        }
                    }
                    (6, Ok(ObjType::List | ObjType::Text)) => {
                        let _ = doc.delete(&obj, self.index(len));
                    }
                    (6, Ok(ObjType::Map | ObjType::Table)) => {
                        let _ = doc.delete(&obj, self.key());
                    }
                    (7, Ok(ObjType::List)) => {
                        let _ = doc.put(&obj, self.index(len), self.scalar());
                    }
                    (7, Ok(ObjType::Map | ObjType::Table)) => {
                        let _ = doc.increment(&obj, self.key(), 1);
                    }
                    _ => return,
                }
                key
            }
        };
        side.addressed.insert(root_key.to_owned());
    }
}

/// One small valid input of a fuzz target, committed under
/// `protocol/fuzz/regressions/<target>/seed-<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub target: &'static str,
    pub name: &'static str,
    pub bytes: Vec<u8>,
}

/// Edit scripts for [`authorize_edits`] (see [`Edits::step`]). The changes of those without a
/// concurrent edit are also the seeds of [`authorize_change`] (see [`change_of_edits`]).
const EDIT_SEEDS: &[(&str, &[u8])] = &[
    // Task base; put_field(title, String(raw "New")).
    ("set-title", &[1, 4, 0, 1, 1, 3, b'N', b'e', b'w']),
    // Task base; put_field(status, String(word 4 = "done")): the assignee may do this.
    ("mark-done", &[1, 4, 2, 1, 0, 4]),
    // Task base; put_field(depends_on, RefList[ASSIGNEE, STRANGER]).
    ("set-deps", &[1, 4, 10, 6, 2, 0, 1]),
    // New base; put_field(title, "T"), put_field(status, "todo").
    ("create", &[0, 4, 0, 1, 1, 1, b'T', 4, 2, 1, 0, 1]),
    // Task base; put(colour, Str "done"): an unknown field.
    ("unknown-field", &[1, 0, 15, 0, 0, 4]),
    // Task base; put(created_by, Str(STRANGER)): a server-owned field.
    ("server-owned", &[1, 0, 12, 9, 1]),
    // Task base; insert ASSIGNEE's id into the depends_on list at position 1.
    ("list-insert", &[1, 5, 0, 1, 1, 9, 0]),
    // Task base; put(deleted_at, Timestamp 1).
    ("soft-delete", &[1, 0, 11, 5, 1, 0, 0, 0, 0, 0, 0, 0]),
    // Task base; the server concurrently clears depends_on, the client inserts into the list.
    ("concurrent-list", &[1, 0x84, 10, 0, 5, 0, 1, 1, 9, 1]),
    // Task base; put a text at description, then splice into it.
    ("text", &[1, 2, 1, 2, 5, 1, 0, 1, 2, b'h', b'i']),
];

/// Small valid inputs for every target, built from fixed values so that they are the same in
/// every run.
pub fn seed_inputs() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut changes = Vec::new();
    for &(name, script) in EDIT_SEEDS {
        seeds.push(Seed {
            target: "authorize_edits",
            name,
            bytes: script.to_vec(),
        });
        if let Some(change) = change_of_edits(script) {
            changes.push((name, change));
        }
    }
    let payload = changes.first().map(|(_, c)| c.clone()).unwrap_or_default();
    for (name, bytes) in changes {
        seeds.push(Seed {
            target: "authorize_change",
            name,
            bytes,
        });
    }
    let mid = MutationId {
        client_id: STRANGER,
        seq: 1,
    };
    let client = [
        (
            "hello",
            ClientMessage::Hello {
                protocol_version: crate::PROTOCOL_VERSION,
                token: "eyJ".into(),
                client_id: STRANGER,
            },
        ),
        (
            "subscribe",
            ClientMessage::Subscribe {
                sub_id: 1,
                scope: Scope::Collection {
                    collection: TASKS.name.into(),
                },
                cursor: Some(42),
            },
        ),
        (
            "subscribe-doc",
            ClientMessage::Subscribe {
                sub_id: 2,
                scope: Scope::Document { doc_id: DEPENDENCY },
                cursor: None,
            },
        ),
        ("unsubscribe", ClientMessage::Unsubscribe { sub_id: 2 }),
        (
            "push",
            ClientMessage::Push {
                mutations: vec![Mutation {
                    mid,
                    doc_id: DEPENDENCY,
                    collection: TASKS.name.into(),
                    payload: ByteBuf::from(payload.clone()),
                }],
            },
        ),
        ("reauth", ClientMessage::Reauth { token: "x".into() }),
        ("ping", ClientMessage::Ping { nonce: 9 }),
    ];
    let server = [
        (
            "welcome",
            ServerMessage::Welcome {
                protocol_version: crate::PROTOCOL_VERSION,
                user_id: STRANGER,
                org_id: ASSIGNEE,
                session_expires_at: 1_700_000_000,
            },
        ),
        (
            "snapshot",
            ServerMessage::Snapshot {
                sub_id: 1,
                docs: vec![DocSnapshot {
                    doc_id: DEPENDENCY,
                    collection: TASKS.name.into(),
                    state: ByteBuf::from(vec![0x85, 0x6f, 0x4a, 0x83]),
                }],
            },
        ),
        (
            "change",
            ServerMessage::Change {
                seq: 5,
                doc_id: DEPENDENCY,
                collection: TASKS.name.into(),
                payload: ByteBuf::from(payload),
                mid: Some(mid),
            },
        ),
        (
            "reject",
            ServerMessage::Reject {
                mid,
                code: ErrorCode::FieldForbidden,
                message: "status".into(),
            },
        ),
        ("evict", ServerMessage::Evict { doc_id: DEPENDENCY }),
        (
            "error",
            ServerMessage::Error {
                code: ErrorCode::UnknownMessageType,
                message: "m".into(),
            },
        ),
    ];
    for (name, message) in client {
        if let Ok(bytes) = crate::encode(&message) {
            seeds.push(Seed {
                target: "decode_client",
                name,
                bytes,
            });
        }
    }
    for (name, message) in server {
        if let Ok(bytes) = crate::encode(&message) {
            seeds.push(Seed {
                target: "decode_server",
                name,
                bytes,
            });
        }
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_has_seeds_and_they_pass() {
        let seeds = seed_inputs();
        for (target, run) in TARGETS {
            let mine: Vec<_> = seeds.iter().filter(|s| s.target == *target).collect();
            assert!(!mine.is_empty(), "{target} has seeds");
            for seed in mine {
                run(&seed.bytes);
            }
        }
    }

    #[test]
    fn edit_seeds_reach_the_rules() {
        for &(name, script) in EDIT_SEEDS {
            let scenario = Scenario::build(script).expect("the seed makes a change");
            let mut merged = scenario.server.clone();
            merged
                .apply_changes([scenario.change.clone()])
                .expect("applies");
            let touched = touched_fields(&scenario.change, &merged).expect("decodes");
            assert!(!touched.is_empty(), "{name} touches a field");
            assert_eq!(touched, scenario.addressed, "{name}");
        }
    }

    #[test]
    fn seed_changes_apply_to_their_base() {
        for seed in seed_inputs()
            .iter()
            .filter(|s| s.target == "authorize_change")
        {
            let change = Change::from_bytes(seed.bytes.clone()).expect("parses");
            let applies = Base::ALL.iter().any(|base| {
                let server = base.doc().document().clone();
                change
                    .deps()
                    .iter()
                    .all(|h| server.get_change_by_hash(h).is_some())
            });
            assert!(applies, "{} depends on a base change", seed.name);
        }
    }
}
