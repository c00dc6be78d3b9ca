//! Property test: random sequences of role changes, team changes, grants, revokes, edits and
//! reads never let a user read or write beyond what a simple reference model of the rules
//! allows, and never refuse what it allows. Seeded: a failure prints `SEED=...`; rerun with
//! that `SEED` to replay the same sequence. `AUTHZ_SEEDS` and `AUTHZ_OPS` scale it up.

use std::collections::{BTreeSet, HashMap};

use automerge::{ActorId, AutoCommit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_bytes::ByteBuf;
use sync_server::testing::changes::{s, task_change, try_task_change};
use sync_server::testing::raw::RawClient;
use sync_server::testing::{TestServer, TestUser};
use syncline_protocol::record::FieldValue;
use syncline_protocol::{ClientMessage, ErrorCode, Mutation, MutationId, Scope, ServerMessage};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rel {
    Viewer,
    Commenter,
    Suggester,
    Editor,
    Owner,
}
const RELS: [(Rel, &str); 5] = [
    (Rel::Viewer, "viewer"),
    (Rel::Commenter, "commenter"),
    (Rel::Suggester, "suggester"),
    (Rel::Editor, "editor"),
    (Rel::Owner, "owner"),
];

/// The reference model: written from the rules as documented, independent of the server code.
#[derive(Debug, Default)]
struct Model {
    roles: HashMap<Uuid, &'static str>,
    teams: HashMap<Uuid, BTreeSet<Uuid>>,
    /// (doc, relation name, subject is team, subject id)
    tuples: BTreeSet<(Uuid, &'static str, bool, Uuid)>,
    creator: HashMap<Uuid, Uuid>,
    assignee: HashMap<Uuid, Uuid>,
}

impl Model {
    fn relation(&self, user: Uuid, doc: Uuid) -> Option<Rel> {
        let mut best = match *self.roles.get(&user)? {
            "owner" | "admin" => Some(Rel::Owner),
            "member" => Some(Rel::Editor),
            _ => None,
        };
        for (d, rel, is_team, subject) in &self.tuples {
            let applies = *d == doc
                && if *is_team {
                    self.teams.get(subject).is_some_and(|m| m.contains(&user))
                } else {
                    *subject == user
                };
            let rel = RELS.iter().find(|(_, n)| n == rel).map(|(r, _)| *r);
            if applies && rel > best {
                best = rel;
            }
        }
        if best.is_some() && self.creator.get(&doc) == Some(&user) {
            best = Some(Rel::Owner);
        }
        best
    }

    /// Whether `user` may make this edit; `Err(code)` names the refusal.
    fn may_edit(&self, user: Uuid, doc: Uuid, edit: &Edit) -> Result<(), ErrorCode> {
        let Some(rel) = self.relation(user, doc) else {
            return Err(ErrorCode::Forbidden);
        };
        let ok = match edit {
            Edit::Title(_) => rel >= Rel::Editor,
            Edit::Status("done") => rel >= Rel::Editor || self.assignee.get(&doc) == Some(&user),
            Edit::Status(_) => rel >= Rel::Editor,
            Edit::Delete => rel >= Rel::Owner,
        };
        if ok {
            Ok(())
        } else {
            Err(ErrorCode::FieldForbidden)
        }
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Title(String),
    Status(&'static str),
    Delete,
}

struct World {
    server: TestServer,
    owner: TestUser,
    users: Vec<TestUser>,
    clients: HashMap<Uuid, (RawClient, u64)>,
    docs: Vec<Uuid>,
    teams: Vec<Uuid>,
    model: Model,
}

impl World {
    async fn new() -> Self {
        let server = TestServer::start().await;
        let owner = server.register("owner@example.com").await;
        let mut model = Model::default();
        model.roles.insert(owner.user_id, "owner");
        let mut users = Vec::new();
        for (i, role) in ["member", "guest", "guest"].into_iter().enumerate() {
            let u = server
                .join(&owner, &format!("user{i}@example.com"), role)
                .await;
            model.roles.insert(u.user_id, role);
            users.push(u);
        }
        let mut teams = Vec::new();
        for name in ["red", "blue"] {
            let (status, body) = server
                .api(
                    Method::POST,
                    &format!("/orgs/{}/teams", owner.org_id),
                    &owner.access_token,
                    Some(serde_json::json!({ "name": name })),
                )
                .await;
            assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
            let id = Uuid::parse_str(body["id"].as_str().expect("team id")).expect("uuid");
            model.teams.insert(id, BTreeSet::new());
            teams.push(id);
        }
        let mut world = World {
            server,
            owner,
            users,
            clients: HashMap::new(),
            docs: Vec::new(),
            teams,
            model,
        };
        for i in 0..3 {
            let owner = world.owner.clone();
            let doc = Uuid::now_v7();
            let mut d = AutoCommit::new().with_actor(ActorId::random());
            let change = task_change(
                &mut d,
                &[("title", s(&format!("doc {i}"))), ("status", s("todo"))],
            );
            let reply = world.push(&owner, doc, change).await;
            assert!(matches!(reply, ServerMessage::Ack { .. }), "{reply:?}");
            world.model.creator.insert(doc, owner.user_id);
            world.docs.push(doc);
        }
        world
    }

    async fn push(&mut self, user: &TestUser, doc: Uuid, payload: Vec<u8>) -> ServerMessage {
        if !self.clients.contains_key(&user.user_id) {
            let c = RawClient::hello(&self.server.ws_url(), &user.access_token).await;
            self.clients.insert(user.user_id, (c, 0));
        }
        let (client, seq) = self.clients.get_mut(&user.user_id).expect("client");
        *seq += 1;
        let mutation = Mutation {
            mid: MutationId {
                client_id: client.client_id,
                seq: *seq,
            },
            doc_id: doc,
            collection: "tasks".into(),
            payload: ByteBuf::from(payload),
        };
        client
            .send(&ClientMessage::Push {
                mutations: vec![mutation],
            })
            .await;
        client
            .until(|m| matches!(m, ServerMessage::Ack { .. } | ServerMessage::Reject { .. }))
            .await
    }

    async fn admin(&self, method: Method, path: String, body: serde_json::Value) {
        let (status, reply) = self
            .server
            .api(method, &path, &self.owner.access_token, Some(body))
            .await;
        assert!(status.is_success(), "{path}: {status} {reply}");
    }

    /// The document as stored now, as a new actor would edit it (a client that just synced).
    async fn load_doc(&self, doc: Uuid) -> AutoCommit {
        let (state,): (Vec<u8>,) = sqlx::query_as("SELECT state FROM documents WHERE id = $1")
            .bind(doc)
            .fetch_one(&self.server.db)
            .await
            .expect("doc state");
        AutoCommit::load(&state)
            .expect("load")
            .with_actor(ActorId::random())
    }

    /// Builds an edit on the document's current stored state, as a client that synced would;
    /// `None` when the edit would change nothing.
    async fn change_for(&self, doc: Uuid, edit: &Edit) -> Option<Vec<u8>> {
        let mut d = self.load_doc(doc).await;
        match edit {
            Edit::Title(t) => try_task_change(&mut d, &[("title", s(t))]),
            Edit::Status(v) => try_task_change(&mut d, &[("status", s(v))]),
            Edit::Delete => {
                try_task_change(&mut d, &[("deleted_at", Some(FieldValue::Timestamp(1)))])
            }
        }
    }

    async fn readable_by_snapshot(&self, user: &TestUser) -> BTreeSet<Uuid> {
        let mut c = RawClient::hello(&self.server.ws_url(), &user.access_token).await;
        c.send(&ClientMessage::Subscribe {
            sub_id: 1,
            scope: Scope::Collection {
                collection: "tasks".into(),
            },
            cursor: None,
        })
        .await;
        let mut seen = BTreeSet::new();
        loop {
            match c.message().await {
                ServerMessage::Snapshot { docs, .. } => seen.extend(docs.iter().map(|d| d.doc_id)),
                ServerMessage::Synced { .. } => return seen,
                _ => {}
            }
        }
    }

    async fn step(&mut self, rng: &mut StdRng, log: &mut Vec<String>) {
        let org = self.owner.org_id;
        let user = self.users[rng.random_range(0..self.users.len())].clone();
        let doc = self.docs[rng.random_range(0..self.docs.len())];
        match rng.random_range(0..10) {
            0 => {
                let role = ["guest", "member", "admin"][rng.random_range(0..3)];
                log.push(format!("role {} -> {role}", user.user_id));
                self.admin(
                    Method::PATCH,
                    format!("/orgs/{org}/members/{}", user.user_id),
                    serde_json::json!({ "role": role }),
                )
                .await;
                self.model.roles.insert(user.user_id, role);
            }
            1 => {
                let team = self.teams[rng.random_range(0..self.teams.len())];
                let members = self.model.teams.get_mut(&team).expect("team");
                if members.contains(&user.user_id) {
                    log.push(format!("team {team} -= {}", user.user_id));
                    members.remove(&user.user_id);
                    self.admin(
                        Method::DELETE,
                        format!("/orgs/{org}/teams/{team}/members/{}", user.user_id),
                        serde_json::Value::Null,
                    )
                    .await;
                } else {
                    log.push(format!("team {team} += {}", user.user_id));
                    members.insert(user.user_id);
                    self.admin(
                        Method::POST,
                        format!("/orgs/{org}/teams/{team}/members"),
                        serde_json::json!({ "user_id": user.user_id }),
                    )
                    .await;
                }
            }
            2 | 3 => {
                let (_, rel) = RELS[rng.random_range(0..RELS.len())];
                let team = rng.random_bool(0.3);
                let subject = if team {
                    self.teams[rng.random_range(0..self.teams.len())]
                } else {
                    user.user_id
                };
                let tuple = (doc, rel, team, subject);
                let body = serde_json::json!({
                    "object_type": "tasks", "object_id": doc, "relation": rel,
                    "subject": { "type": if team { "team" } else { "user" }, "id": subject },
                });
                if self.model.tuples.contains(&tuple) {
                    log.push(format!("revoke {tuple:?}"));
                    self.model.tuples.remove(&tuple);
                    self.admin(Method::DELETE, format!("/orgs/{org}/shares"), body)
                        .await;
                } else {
                    log.push(format!("grant {tuple:?}"));
                    self.model.tuples.insert(tuple);
                    self.admin(Method::POST, format!("/orgs/{org}/shares"), body)
                        .await;
                }
            }
            4 => {
                // The owner assigns the task (always allowed).
                log.push(format!("assign {doc} to {}", user.user_id));
                let owner = self.owner.clone();
                let mut d = self.load_doc(doc).await;
                let Some(change) = try_task_change(
                    &mut d,
                    &[("assignee_id", Some(FieldValue::Ref(user.user_id)))],
                ) else {
                    log.push("  (no-op: already assigned)".into());
                    return;
                };
                let reply = self.push(&owner, doc, change).await;
                assert!(
                    matches!(reply, ServerMessage::Ack { .. }),
                    "owner assign: {reply:?}"
                );
                self.model.assignee.insert(doc, user.user_id);
            }
            5..=8 => {
                let edit = match rng.random_range(0..4) {
                    0 => Edit::Title(format!("t{}", rng.random_range(0..1000))),
                    1 => Edit::Status("done"),
                    2 => Edit::Status("in_progress"),
                    _ => Edit::Delete,
                };
                let expected = self.model.may_edit(user.user_id, doc, &edit);
                log.push(format!(
                    "edit {edit:?} of {doc} by {} (model: {expected:?})",
                    user.user_id
                ));
                let Some(change) = self.change_for(doc, &edit).await else {
                    log.push("  (no-op: the field already has that value)".into());
                    return;
                };
                let reply = self.push(&user, doc, change).await;
                let actual = match &reply {
                    ServerMessage::Ack { .. } => Ok(()),
                    ServerMessage::Reject { code, .. } => Err(*code),
                    other => panic!("unexpected {other:?}"),
                };
                assert_eq!(
                    actual, expected,
                    "edit outcome differs from the model: {reply:?}"
                );
                if actual.is_ok() && matches!(edit, Edit::Delete) {
                    // Restore it (as the owner) so later steps keep editing a live task.
                    let owner = self.owner.clone();
                    let mut d = self.load_doc(doc).await;
                    let change = task_change(&mut d, &[("deleted_at", None)]);
                    assert!(matches!(
                        self.push(&owner, doc, change).await,
                        ServerMessage::Ack { .. }
                    ));
                }
            }
            _ => {
                let expected: BTreeSet<Uuid> = self
                    .docs
                    .iter()
                    .copied()
                    .filter(|d| self.model.relation(user.user_id, *d).is_some())
                    .collect();
                log.push(format!(
                    "read by {} (model: {} docs)",
                    user.user_id,
                    expected.len()
                ));
                assert_eq!(
                    self.readable_by_snapshot(&user).await,
                    expected,
                    "readable set differs from the model"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_role_grant_and_edit_sequences_match_the_reference_model() {
    let seeds: Vec<u64> = match std::env::var("SEED") {
        Ok(s) => vec![s.parse().expect("SEED is a number")],
        Err(_) => {
            let n: u64 = std::env::var("AUTHZ_SEEDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(4);
            let base: u64 = rand::random();
            (0..n).map(|i| base.wrapping_add(i)).collect()
        }
    };
    let ops: usize = std::env::var("AUTHZ_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    for seed in seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut world = World::new().await;
        let mut log = Vec::new();
        for _ in 0..ops {
            let step = std::panic::AssertUnwindSafe(world.step(&mut rng, &mut log));
            if let Err(panic) = futures_util::FutureExt::catch_unwind(step).await {
                eprintln!(
                    "authorization model test failed: SEED={seed}\nplan so far:\n  {}",
                    log.join("\n  ")
                );
                std::panic::resume_unwind(panic);
            }
        }
    }
}
