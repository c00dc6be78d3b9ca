//! The simulated world: server nodes on one database, two orgs, client replicas with their
//! SQLite files, the links between them, and what the simulation observed (every local
//! mutation with its automerge hash and fate, a mirror of each org's change log, a trace).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use automerge::ChangeHash;
use client_core::Client;
use sqlx::PgPool;
use sync_server::effects::EffectsSettings;
use sync_server::testing::{TestServer, TestUser, fresh_migrated_database_url, test_effects};
use syncline_protocol::ErrorCode;
use syncline_protocol::rules::OrgRole;
use uuid::Uuid;

use super::SimError;
use super::net::Link;
use super::plan::Plan;

/// What became of a local mutation, as its author saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    Pending,
    Acked {
        seq: u64,
    },
    Rejected {
        code: ErrorCode,
    },
    /// Dropped with its document when the author lost access to it (`Evict`).
    Evicted,
}

/// A local mutation: one automerge change of one document.
#[derive(Debug, Clone)]
pub struct MutationRecord {
    pub doc_id: Uuid,
    pub hash: ChangeHash,
    pub fate: Fate,
}

/// One entry of an org's change log as the simulation mirrors it.
#[derive(Debug, Clone)]
pub struct LogEntry {
    pub seq: u64,
    pub doc_id: Uuid,
    pub collection: String,
    /// The automerge change's hash (`None` for authorization entries).
    pub hash: Option<ChangeHash>,
}

/// An org and its members (index 0 is the owner, who makes the authorization changes).
#[derive(Debug)]
pub struct Org {
    pub id: Uuid,
    pub members: Vec<TestUser>,
    pub roles: Vec<OrgRole>,
    /// Mirror of the change log, in seq order.
    pub log: Vec<LogEntry>,
    /// Documents committed in this org, in the order of their first log entry.
    pub docs: Vec<Uuid>,
}

impl Org {
    pub fn last_seq(&self) -> u64 {
        self.log.last().map_or(0, |e| e.seq)
    }
}

/// A client replica and its process.
pub struct SimClient {
    pub index: usize,
    pub org: usize,
    pub member: usize,
    pub client_id: Uuid,
    pub path: PathBuf,
    pub replica: Client,
    pub link: Option<Link>,
    /// Every local mutation, by its mutation seq.
    pub mutations: BTreeMap<u64, MutationRecord>,
}

impl std::fmt::Debug for SimClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimClient")
            .field("index", &self.index)
            .field("org", &self.org)
            .field("member", &self.member)
            .finish_non_exhaustive()
    }
}

pub struct World {
    pub plan: Plan,
    pub nodes: Vec<Option<TestServer>>,
    pub database_url: String,
    /// The database owner's pool (reads every org, not subject to row-level security).
    pub db: PgPool,
    pub orgs: Vec<Org>,
    pub clients: Vec<SimClient>,
    /// Documents in the order the simulation first saw them (their label is the position).
    pub doc_order: HashMap<Uuid, usize>,
    /// The org of every document a client created.
    pub doc_org: HashMap<Uuid, usize>,
    /// What happened, step by step, with ids replaced by labels: the run's outcome, compared
    /// when a seed is replayed.
    pub trace: Vec<String>,
    pub next_nonce: u64,
    pub step: usize,
    _dir: tempfile::TempDir,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("seed", &self.plan.seed)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

/// Org roles of the members, by position: an owner, then a mix (guests read only what is
/// shared with them, so they provoke refusals and evictions).
const ROLE_CYCLE: [OrgRole; 5] = [
    OrgRole::Owner,
    OrgRole::Admin,
    OrgRole::Member,
    OrgRole::Member,
    OrgRole::Guest,
];

impl World {
    /// Starts the server nodes on a fresh database, creates the orgs and opens the replicas.
    pub async fn start(plan: Plan) -> Result<Self, SimError> {
        let database_url = fresh_migrated_database_url().await;
        let mut nodes = Vec::new();
        for _ in 0..plan.nodes {
            // No effect workers: their handlers (notifications of assignments, ...) run on
            // their own timers, outside the seeded schedule, and would make replays diverge.
            // Effects are tested by sync-server's effects, notifications and webhooks suites.
            let effects = EffectsSettings {
                workers: 0,
                ..test_effects()
            };
            nodes.push(Some(
                TestServer::start_with(database_url.clone(), effects).await,
            ));
        }
        let first = nodes[0]
            .as_ref()
            .ok_or_else(|| SimError::Harness("no server node".into()))?;
        let db = first.db.clone();
        // Org 1 gets a quarter of the clients (at least one), org 0 the rest. In org 0 with
        // four clients or more, the last client is a second device of member 2.
        let small = (plan.clients / 4).max(1);
        let sizes = [plan.clients - small, small];
        let mut orgs = Vec::new();
        let mut placement = Vec::new();
        for (o, &clients) in sizes.iter().enumerate() {
            let shared_device = o == 0 && clients >= 4;
            let members = if shared_device { clients - 1 } else { clients };
            let roles: Vec<OrgRole> = (0..members)
                .map(|m| {
                    if o == 1 && m > 0 {
                        OrgRole::Member
                    } else {
                        ROLE_CYCLE[m % ROLE_CYCLE.len()]
                    }
                })
                .collect();
            let users = first.seed_org(&format!("sim org {o}"), &roles).await;
            for c in 0..clients {
                let member = if shared_device && c == clients - 1 {
                    2
                } else {
                    c
                };
                placement.push((o, member));
            }
            orgs.push(Org {
                id: users[0].org_id,
                members: users,
                roles,
                log: Vec::new(),
                docs: Vec::new(),
            });
        }
        let dir = tempfile::Builder::new()
            .prefix("syncline-sim-")
            .tempdir()
            .map_err(|e| SimError::Harness(format!("temporary directory: {e}")))?;
        let mut clients = Vec::new();
        for (index, (org, member)) in placement.into_iter().enumerate() {
            let path = dir.path().join(format!("client-{index}.sqlite3"));
            // Reproducible actors: automerge orders concurrent writes by actor id.
            let client_id = Uuid::from_u64_pair(plan.seed, index as u64 + 1);
            let replica = Client::open_as(&path, client_id).map_err(SimError::client)?;
            clients.push(SimClient {
                index,
                org,
                member,
                client_id,
                path,
                replica,
                link: None,
                mutations: BTreeMap::new(),
            });
        }
        Ok(Self {
            plan,
            nodes,
            database_url,
            db,
            orgs,
            clients,
            doc_order: HashMap::new(),
            doc_org: HashMap::new(),
            trace: Vec::new(),
            next_nonce: 1 << 62,
            step: 0,
            _dir: dir,
        })
    }

    pub fn node(&self, node: usize) -> Result<&TestServer, SimError> {
        self.nodes
            .get(node)
            .and_then(Option::as_ref)
            .ok_or_else(|| SimError::Harness(format!("node {node} is not running")))
    }

    /// Notes a document the first time the simulation sees it.
    pub fn label_doc(&mut self, doc: Uuid) -> usize {
        let next = self.doc_order.len();
        *self.doc_order.entry(doc).or_insert(next)
    }

    pub fn doc_label(&self, doc: Uuid) -> String {
        self.doc_order
            .get(&doc)
            .map_or_else(|| format!("?{doc}"), |i| format!("d{i}"))
    }

    /// A user's label: `o<org>m<member>`.
    pub fn user_label(&self, user: Uuid) -> String {
        for (o, org) in self.orgs.iter().enumerate() {
            if let Some(m) = org.members.iter().position(|u| u.user_id == user) {
                return format!("o{o}m{m}");
            }
        }
        format!("?{user}")
    }

    pub fn note(&mut self, line: String) {
        tracing::debug!(seed = self.plan.seed, step = self.step, "{line}");
        self.trace.push(format!("{:>5} {line}", self.step));
    }

    /// Reads the org change-log entries the mirror lacks.
    pub async fn refresh_logs(&mut self) -> Result<(), SimError> {
        for o in 0..self.orgs.len() {
            let (org_id, after) = (self.orgs[o].id, self.orgs[o].last_seq());
            let rows: Vec<(i64, Uuid, String, Vec<u8>)> = sqlx::query_as(
                "SELECT seq, doc_id, collection, payload FROM change_log \
                 WHERE org_id = $1 AND seq > $2 ORDER BY seq",
            )
            .bind(org_id)
            .bind(i64::try_from(after).unwrap_or(i64::MAX))
            .fetch_all(&self.db)
            .await
            .map_err(|e| SimError::Harness(format!("read the change log: {e}")))?;
            for (seq, doc_id, collection, payload) in rows {
                let hash = if collection.starts_with('_') {
                    None
                } else {
                    let change = automerge::Change::from_bytes(payload).map_err(|e| {
                        SimError::Harness(format!("change log seq {seq} is not a change: {e}"))
                    })?;
                    Some(change.hash())
                };
                if hash.is_some() && !self.orgs[o].docs.contains(&doc_id) {
                    self.orgs[o].docs.push(doc_id);
                    self.label_doc(doc_id);
                }
                self.orgs[o].log.push(LogEntry {
                    seq: u64::try_from(seq).unwrap_or(0),
                    doc_id,
                    collection,
                    hash,
                });
            }
        }
        Ok(())
    }

    /// Waits until the server nodes have done everything the last step gave them, and every
    /// frame that caused is queued in the links (see [`super::net`]): first the connections
    /// that carried client frames, then all the others.
    pub async fn settle(&mut self, carried: &[usize]) -> Result<(), SimError> {
        // Their pushes are committed once they answer...
        self.probe(carried).await?;
        // ...and then every connection, those included, has been sent what the commits made.
        let all: Vec<usize> = (0..self.clients.len()).collect();
        self.probe(&all).await?;
        self.refresh_logs().await
    }

    async fn probe(&mut self, clients: &[usize]) -> Result<(), SimError> {
        let mut sent = Vec::new();
        for &c in clients {
            let nonce = self.next_nonce;
            if let Some(link) = self.clients[c].link.as_mut().filter(|l| l.probeable()) {
                self.next_nonce += 1;
                link.send_probe(nonce).await?;
                sent.push((c, nonce));
            }
        }
        for (c, nonce) in sent {
            if let Some(link) = self.clients[c].link.as_mut() {
                link.await_probe(nonce).await?;
            }
        }
        Ok(())
    }
}
