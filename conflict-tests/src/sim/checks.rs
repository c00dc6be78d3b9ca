//! The invariants. After every frame a client receives:
//!
//! - `cursor-skip`: the cursor never moves past a committed change of a document the replica
//!   has received from the server without that change being in its confirmed state;
//! - `foreign-org`: the replica holds no document of another org.
//!
//! At quiescence (every partition healed, every outbox drained):
//!
//! - `convergence`: every replica holds exactly the documents its user may read, each with the
//!   server's automerge heads and the server's materialized row;
//! - `acked-lost`: every change the server acknowledged is in the server's document and in
//!   every replica that may read it, after all restarts and kills;
//! - `rejected-present`: every rejected change is in no document anywhere;
//! - `unanswered`: every local change was acknowledged, rejected (its author saw the event),
//!   or dropped with its document by an eviction the author saw.

use std::collections::HashMap;

use automerge::{AutoCommit, ChangeHash};
use syncline_protocol::schema::TASKS;
use uuid::Uuid;

use super::world::{Fate, SimClient, World};
use super::{SimError, Violation};
use crate::{client_fields, postgres_fields};

/// A replica's state before it receives frames.
#[derive(Debug)]
pub struct Before {
    cursor: u64,
}

impl Before {
    pub fn of(client: &SimClient) -> Result<Self, SimError> {
        Ok(Self {
            cursor: client
                .replica
                .cursor(TASKS.name)
                .map_err(SimError::client)?
                .unwrap_or(0),
        })
    }
}

fn violation(world: &World, invariant: &'static str, detail: String) -> SimError {
    SimError::Violation(Violation {
        invariant,
        step: world.step,
        detail,
    })
}

/// Documents in a replica's SQLite file.
fn replica_docs(client: &SimClient) -> Result<Vec<Uuid>, SimError> {
    let conn = client.replica.connection();
    let mut stmt = conn
        .prepare("SELECT id FROM documents")
        .map_err(|e| SimError::Harness(e.to_string()))?;
    let ids = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(|e| SimError::Harness(e.to_string()))?
        .collect::<Result<Vec<String>, _>>()
        .map_err(|e| SimError::Harness(e.to_string()))?;
    ids.iter()
        .map(|id| Uuid::parse_str(id).map_err(|e| SimError::Harness(e.to_string())))
        .collect()
}

/// The replica's confirmed and working documents.
fn replica_states(
    client: &SimClient,
    doc: Uuid,
) -> Result<Option<(Option<AutoCommit>, AutoCommit)>, SimError> {
    let Some(states) = client
        .replica
        .document_states(doc)
        .map_err(SimError::client)?
    else {
        return Ok(None);
    };
    let load = |bytes: &[u8]| {
        AutoCommit::load(bytes).map_err(|e| SimError::Harness(format!("replica document: {e}")))
    };
    let confirmed = states.confirmed.as_deref().map(load).transpose()?;
    Ok(Some((confirmed, load(&states.working)?)))
}

fn has(doc: &mut AutoCommit, hash: &ChangeHash) -> bool {
    doc.get_change_by_hash(hash).is_some()
}

fn sorted_heads(doc: &mut AutoCommit) -> Vec<ChangeHash> {
    let mut heads = doc.get_heads();
    heads.sort_unstable();
    heads
}

/// The checks after client `c` received frames.
pub async fn after_receive(world: &World, c: usize, before: &Before) -> Result<(), SimError> {
    let client = &world.clients[c];
    for doc in replica_docs(client)? {
        if let Some(&org) = world.doc_org.get(&doc)
            && org != client.org
        {
            return Err(violation(
                world,
                "foreign-org",
                format!(
                    "client c{c} (org {}) holds {} of org {org}",
                    client.org,
                    world.doc_label(doc)
                ),
            ));
        }
    }
    // Rows as well as documents: a materialized row of another org is as bad as its document.
    let rows =
        crate::client_ids(&client.replica, &TASKS).map_err(|e| SimError::Harness(e.to_string()))?;
    for doc in rows {
        if world
            .doc_org
            .get(&doc)
            .is_some_and(|&org| org != client.org)
        {
            return Err(violation(
                world,
                "foreign-org",
                format!(
                    "client c{c} (org {}) has a row of {}",
                    client.org,
                    world.doc_label(doc)
                ),
            ));
        }
    }
    let after = Before::of(client)?.cursor;
    if after <= before.cursor {
        return Ok(());
    }
    let org = &world.orgs[client.org];
    // Documents the user may no longer read wait for their `Evict` (quiescence checks they go);
    // their changes after the revocation are rightly not delivered.
    let node = world.node(0)?;
    let acl = node
        .state
        .acl
        .get_fresh(&node.state.db, org.id, org.last_seq())
        .await
        .map_err(|e| SimError::Harness(e.to_string()))?;
    let user = org.members[client.member].user_id;
    let mut loaded: HashMap<Uuid, Option<AutoCommit>> = HashMap::new();
    for entry in org
        .log
        .iter()
        .filter(|e| e.seq > before.cursor && e.seq <= after && e.collection == TASKS.name)
    {
        let Some(hash) = entry.hash else { continue };
        if !acl.can_read(user, entry.doc_id) {
            continue;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = loaded.entry(entry.doc_id) {
            // Only documents the replica has received from the server: one it may not read is
            // absent by design, and one it only created locally may be one it lost access to
            // (quiescence checks that it goes away).
            let confirmed = replica_states(client, entry.doc_id)?.and_then(|(c, _)| c);
            slot.insert(confirmed);
        }
        if let Some(Some(doc)) = loaded.get_mut(&entry.doc_id)
            && !has(doc, &hash)
        {
            return Err(violation(
                world,
                "cursor-skip",
                format!(
                    "client c{c} moved its cursor {} -> {after} past seq {} of {} without it",
                    before.cursor,
                    entry.seq,
                    world.doc_label(entry.doc_id)
                ),
            ));
        }
    }
    Ok(())
}

/// The checks at quiescence.
pub async fn at_quiescence(world: &mut World) -> Result<(), SimError> {
    // The server's documents, per org.
    let mut server_docs: HashMap<Uuid, AutoCommit> = HashMap::new();
    for org in &world.orgs {
        let rows: Vec<(Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT id, state FROM documents WHERE org_id = $1")
                .bind(org.id)
                .fetch_all(&world.db)
                .await
                .map_err(|e| SimError::Harness(e.to_string()))?;
        for (id, state) in rows {
            let doc = AutoCommit::load(&state)
                .map_err(|e| SimError::Harness(format!("server document: {e}")))?;
            server_docs.insert(id, doc);
        }
    }
    let node = world.node(0)?;
    let mut acls = Vec::new();
    for org in &world.orgs {
        let acl = node
            .state
            .acl
            .get_fresh(&node.state.db, org.id, org.last_seq())
            .await
            .map_err(|e| SimError::Harness(e.to_string()))?;
        acls.push(acl);
    }
    // What happened to each acknowledged and rejected change first: it names the cause of a
    // divergence more precisely than the divergence itself.
    check_mutations(world, &mut server_docs, &acls)?;
    let mut lines = Vec::new();
    for c in 0..world.clients.len() {
        let client = &world.clients[c];
        let org = &world.orgs[client.org];
        let user = org.members[client.member].user_id;
        let held = replica_docs(client)?;
        for doc in &held {
            if !org.docs.contains(doc) {
                return Err(violation(
                    world,
                    "convergence",
                    format!(
                        "client c{c} holds {} which its org's server does not have",
                        world.doc_label(*doc)
                    ),
                ));
            }
        }
        for &doc in &org.docs {
            let readable = acls[client.org].can_read(user, doc);
            let state = replica_states(client, doc)?;
            match (readable, state) {
                (false, None) => {}
                (false, Some(_)) => {
                    return Err(violation(
                        world,
                        "convergence",
                        format!(
                            "client c{c} holds {} which its user may not read",
                            world.doc_label(doc)
                        ),
                    ));
                }
                (true, None) => {
                    return Err(violation(
                        world,
                        "convergence",
                        format!(
                            "client c{c} lacks {} which its user may read",
                            world.doc_label(doc)
                        ),
                    ));
                }
                (true, Some((confirmed, mut working))) => {
                    let server = server_docs.get_mut(&doc).ok_or_else(|| {
                        SimError::Harness(format!("{} not in documents", world.doc_label(doc)))
                    })?;
                    let expected = sorted_heads(server);
                    let confirmed_heads = confirmed.map(|mut d| sorted_heads(&mut d));
                    if confirmed_heads.as_ref() != Some(&expected)
                        || sorted_heads(&mut working) != expected
                    {
                        return Err(violation(
                            world,
                            "convergence",
                            format!(
                                "client c{c}'s {} has other heads than the server's",
                                world.doc_label(doc)
                            ),
                        ));
                    }
                    let mine = client_fields(&client.replica, &TASKS, doc)
                        .map_err(|e| SimError::Harness(e.to_string()))?;
                    let theirs = postgres_fields(&world.db, &TASKS, doc)
                        .await
                        .map_err(|e| SimError::Harness(e.to_string()))?;
                    if mine != theirs {
                        return Err(violation(
                            world,
                            "convergence",
                            format!(
                                "client c{c}'s row of {} differs from Postgres: {mine:?} vs {theirs:?}",
                                world.doc_label(doc)
                            ),
                        ));
                    }
                }
            }
        }
        lines.push(format!(
            "c{c} holds {} documents, cursor {:?}",
            held.len(),
            client
                .replica
                .cursor(TASKS.name)
                .map_err(SimError::client)?
        ));
    }
    for line in lines {
        world.note(line);
    }
    Ok(())
}

fn check_mutations(
    world: &World,
    server_docs: &mut HashMap<Uuid, AutoCommit>,
    acls: &[std::sync::Arc<sync_server::authz::OrgAcl>],
) -> Result<(), SimError> {
    for author in &world.clients {
        for (seq, m) in &author.mutations {
            let what = format!(
                "c{}'s m{seq} on {}",
                author.index,
                world.doc_label(m.doc_id)
            );
            match &m.fate {
                Fate::Pending => {
                    return Err(violation(
                        world,
                        "unanswered",
                        format!("{what} was neither acknowledged nor rejected"),
                    ));
                }
                Fate::Evicted => {}
                Fate::Acked { .. } => {
                    let on_server = server_docs
                        .get_mut(&m.doc_id)
                        .is_some_and(|d| has(d, &m.hash));
                    if !on_server {
                        return Err(violation(
                            world,
                            "acked-lost",
                            format!("{what} was acknowledged but the server lacks it"),
                        ));
                    }
                    for reader in &world.clients {
                        let org = &world.orgs[reader.org];
                        let user = org.members[reader.member].user_id;
                        if reader.org != author.org || !acls[reader.org].can_read(user, m.doc_id) {
                            continue;
                        }
                        let present = replica_states(reader, m.doc_id)?
                            .and_then(|(confirmed, _)| confirmed)
                            .is_some_and(|mut d| has(&mut d, &m.hash));
                        if !present {
                            return Err(violation(
                                world,
                                "acked-lost",
                                format!("{what} was acknowledged but c{} lacks it", reader.index),
                            ));
                        }
                    }
                }
                Fate::Rejected { code } => {
                    if server_docs
                        .get_mut(&m.doc_id)
                        .is_some_and(|d| has(d, &m.hash))
                    {
                        return Err(violation(
                            world,
                            "rejected-present",
                            format!("{what} was rejected ({code}) but the server has it"),
                        ));
                    }
                    for reader in &world.clients {
                        if let Some((confirmed, mut working)) = replica_states(reader, m.doc_id)? {
                            let in_confirmed = confirmed.is_some_and(|mut d| has(&mut d, &m.hash));
                            if in_confirmed || has(&mut working, &m.hash) {
                                return Err(violation(
                                    world,
                                    "rejected-present",
                                    format!(
                                        "{what} was rejected ({code}) but c{} has it",
                                        reader.index
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}
