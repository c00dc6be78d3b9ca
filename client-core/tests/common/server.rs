//! An in-memory stand-in for the sync server with the protocol's semantics: per-org change
//! log with increasing seqs, snapshots and cursor resumption, in-order idempotent pushes with
//! dependency checks and schema validation, and configurable rejections. Text documents (Yjs
//! bodies) are judged with the protocol's own `authorize_update` under a configurable role,
//! and awareness updates are relayed to the other connected clients.

use std::collections::HashMap;

use automerge::{AutoCommit, Change};
use serde_bytes::ByteBuf;
use syncline_protocol::record::read_record;
use syncline_protocol::schema;
use syncline_protocol::text::{TextRole, authorize_update};
use syncline_protocol::{
    ClientMessage, DocSnapshot, ErrorCode, Mutation, MutationId, PROTOCOL_VERSION, Scope,
    ServerMessage,
};
use uuid::Uuid;
use yrs::updates::decoder::Decode;
use yrs::{Doc, OffsetKind, Options, ReadTxn, StateVector, Transact, Update};

#[derive(Debug, Clone)]
pub struct LoggedChange {
    pub seq: u64,
    pub doc_id: Uuid,
    pub collection: String,
    pub payload: Vec<u8>,
    pub mid: Option<MutationId>,
}

type RejectRule = Box<dyn FnMut(&Mutation) -> Option<(ErrorCode, String)> + Send>;

pub struct FakeServer {
    pub seq: u64,
    pub log: Vec<LoggedChange>,
    pub docs: HashMap<Uuid, (String, AutoCommit)>,
    /// Text documents (bodies) by id: collection and Yjs document.
    pub texts: HashMap<Uuid, (String, Doc)>,
    /// The role every pusher has on text documents.
    pub text_role: TextRole,
    /// Answers already given, so retransmits get the same one.
    pub answered: HashMap<MutationId, ServerMessage>,
    pub reject: Option<RejectRule>,
    pub user_id: Uuid,
    pub org_id: Uuid,
    /// Every mutation received, retransmits included.
    pub received: Vec<MutationId>,
}

/// What the server sends after one client message.
#[derive(Debug, Default)]
pub struct Outcome {
    /// To the client that sent the message.
    pub replies: Vec<ServerMessage>,
    /// To every connected client (the sender included), in order.
    pub broadcast: Vec<ServerMessage>,
    /// To every connected client but the sender (awareness relay).
    pub others: Vec<ServerMessage>,
}

impl Default for FakeServer {
    fn default() -> Self {
        Self {
            seq: 0,
            log: Vec::new(),
            docs: HashMap::new(),
            texts: HashMap::new(),
            text_role: TextRole::Editor,
            answered: HashMap::new(),
            reject: None,
            user_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            received: Vec::new(),
        }
    }
}

impl FakeServer {
    /// Rejects mutations for which `rule` returns a code.
    pub fn reject_when(
        &mut self,
        rule: impl FnMut(&Mutation) -> Option<(ErrorCode, String)> + Send + 'static,
    ) {
        self.reject = Some(Box::new(rule));
    }

    pub fn receive(&mut self, message: ClientMessage) -> Outcome {
        let mut out = Outcome::default();
        match message {
            ClientMessage::Hello { .. } => out.replies.push(ServerMessage::Welcome {
                protocol_version: PROTOCOL_VERSION,
                user_id: self.user_id,
                org_id: self.org_id,
                session_expires_at: 4_000_000_000,
            }),
            ClientMessage::Subscribe {
                sub_id,
                scope: Scope::Collection { collection },
                cursor,
            } => {
                match cursor {
                    None => {
                        let mut docs: Vec<DocSnapshot> = self
                            .docs
                            .iter_mut()
                            .filter(|(_, (c, _))| *c == collection)
                            .map(|(id, (c, doc))| DocSnapshot {
                                doc_id: *id,
                                collection: c.clone(),
                                state: ByteBuf::from(doc.save()),
                            })
                            .collect();
                        docs.extend(
                            self.texts
                                .iter()
                                .filter(|(_, (c, _))| *c == collection)
                                .map(|(id, (c, doc))| DocSnapshot {
                                    doc_id: *id,
                                    collection: c.clone(),
                                    state: ByteBuf::from(
                                        doc.transact()
                                            .encode_state_as_update_v1(&StateVector::default()),
                                    ),
                                }),
                        );
                        // Two chunks when there is more than one document, to exercise chunking.
                        let half = docs.len() / 2;
                        let (a, b) = docs.split_at(half);
                        for chunk in [a, b] {
                            if !chunk.is_empty() {
                                out.replies.push(ServerMessage::Snapshot {
                                    sub_id,
                                    docs: chunk.to_vec(),
                                });
                            }
                        }
                    }
                    Some(after) => {
                        for c in self
                            .log
                            .iter()
                            .filter(|c| c.seq > after && c.collection == collection)
                        {
                            out.replies.push(change_message(c));
                        }
                    }
                }
                out.replies.push(ServerMessage::Synced {
                    sub_id,
                    cursor: self.seq,
                });
            }
            ClientMessage::Subscribe { .. } | ClientMessage::Unsubscribe { .. } => {}
            ClientMessage::Push { mutations } => {
                for m in mutations {
                    self.received.push(m.mid);
                    if let Some(answer) = self.answered.get(&m.mid) {
                        out.replies.push(answer.clone());
                        continue;
                    }
                    let answer = match self.apply(&m) {
                        Ok(seq) => {
                            out.broadcast
                                .push(change_message(self.log.last().expect("logged")));
                            ServerMessage::Ack { mid: m.mid, seq }
                        }
                        Err((code, message)) => ServerMessage::Reject {
                            mid: m.mid,
                            code,
                            message,
                        },
                    };
                    self.answered.insert(m.mid, answer.clone());
                    out.replies.push(answer);
                }
            }
            ClientMessage::Reauth { .. } => out.replies.push(ServerMessage::Reauthed {
                session_expires_at: 4_000_000_001,
            }),
            ClientMessage::Ping { nonce } => out.replies.push(ServerMessage::Pong { nonce }),
            ClientMessage::Awareness { doc_id, update } => {
                out.others.push(ServerMessage::Awareness { doc_id, update })
            }
        }
        out
    }

    fn apply(&mut self, m: &Mutation) -> Result<u64, (ErrorCode, String)> {
        if let Some(rule) = self.reject.as_mut()
            && let Some(refusal) = rule(m)
        {
            return Err(refusal);
        }
        if let Some(text) = schema::text_collection(&m.collection) {
            return self.apply_text(m, text);
        }
        let schema = schema::collection(&m.collection)
            .ok_or((ErrorCode::UnknownCollection, String::new()))?;
        let change = Change::try_from(&m.payload[..])
            .map_err(|e| (ErrorCode::InvalidChange, e.to_string()))?;
        let (collection, doc) = self
            .docs
            .entry(m.doc_id)
            .or_insert_with(|| (m.collection.clone(), AutoCommit::new()));
        if *collection != m.collection {
            return Err((ErrorCode::CollectionMismatch, String::new()));
        }
        if !change
            .deps()
            .iter()
            .all(|d| doc.get_change_by_hash(d).is_some())
        {
            return Err((ErrorCode::MissingDependency, "unknown dependency".into()));
        }
        let mut candidate = doc.fork();
        candidate
            .apply_changes([change])
            .map_err(|e| (ErrorCode::InvalidChange, e.to_string()))?;
        read_record(&candidate, schema).map_err(|e| (e.code, e.message))?;
        *doc = candidate;
        self.log_accepted(m);
        Ok(self.seq)
    }

    /// Judges and applies a text update as the real server does: the body's record must exist,
    /// then `authorize_update` under `text_role`.
    fn apply_text(
        &mut self,
        m: &Mutation,
        text: &schema::TextCollection,
    ) -> Result<u64, (ErrorCode, String)> {
        match self.docs.get(&m.doc_id) {
            Some((c, _)) if c == text.parent.name => {}
            Some(_) => return Err((ErrorCode::CollectionMismatch, String::new())),
            None => return Err((ErrorCode::MissingDependency, "no record".into())),
        }
        let (collection, doc) = self.texts.entry(m.doc_id).or_insert_with(|| {
            (
                m.collection.clone(),
                Doc::with_options(Options {
                    offset_kind: OffsetKind::Utf16,
                    cleanup_formatting: false,
                    ..Options::default()
                }),
            )
        });
        if *collection != m.collection {
            return Err((ErrorCode::CollectionMismatch, String::new()));
        }
        authorize_update(doc, &m.payload, self.user_id, self.text_role)
            .map_err(|r| (r.code, r.message))?;
        let update = Update::decode_v1(&m.payload).expect("authorized update decodes");
        doc.transact_mut()
            .apply_update(update)
            .expect("authorized update applies");
        self.log_accepted(m);
        Ok(self.seq)
    }

    fn log_accepted(&mut self, m: &Mutation) {
        self.seq += 1;
        self.log.push(LoggedChange {
            seq: self.seq,
            doc_id: m.doc_id,
            collection: m.collection.clone(),
            payload: m.payload.to_vec(),
            mid: Some(m.mid),
        });
    }

    /// The plain text of a body as the server has it.
    pub fn text(&self, doc_id: Uuid) -> Option<String> {
        let (_, doc) = self.texts.get(&doc_id)?;
        Some(syncline_protocol::text::plain_text(doc))
    }

    /// The server's current record of a document.
    pub fn record(&self, doc_id: Uuid) -> Option<syncline_protocol::record::Record> {
        let (collection, doc) = self.docs.get(&doc_id)?;
        read_record(doc, schema::collection(collection)?).ok()
    }
}

fn change_message(c: &LoggedChange) -> ServerMessage {
    ServerMessage::Change {
        seq: c.seq,
        doc_id: c.doc_id,
        collection: c.collection.clone(),
        payload: ByteBuf::from(c.payload.clone()),
        mid: c.mid,
    }
}
