//! Carrying out plan steps against the world: local edits through client-core's API, frames
//! carried with their fates, connections, kills, restarts and authorization changes over HTTP.

use client_core::{Client, Received, SyncEvent, TaskDraft, TaskPatch};
use syncline_protocol::encode;
use uuid::Uuid;

use super::SimError;
use super::checks;
use super::net::{Inbound, Link};
use super::plan::{AclOp, Fate, Step, WriteOp};
use super::world::{Fate as MutationFate, MutationRecord, World};

impl World {
    pub async fn run_step(&mut self, step: &Step) -> Result<(), SimError> {
        match step {
            Step::Write { client, op } => self.write(*client, op),
            Step::Acl { org, op } => self.acl(*org, op).await,
            Step::Deliver { client, up, fates } => {
                if *up {
                    self.carry_up(*client, fates).await
                } else {
                    self.carry_down(*client, fates).await
                }
            }
            Step::Disconnect { client } => {
                self.disconnect(*client, "partition").await;
                Ok(())
            }
            Step::Connect { client, node } => self.connect(*client, *node).await,
            Step::Kill { client } => self.kill(*client).await,
            Step::Restart { node } => self.restart(*node).await,
            Step::FailCommit { node } => {
                self.node(*node)?.state.faults.fail_next_commit();
                self.note(format!("node{node} will fail its next commit"));
                Ok(())
            }
        }
    }

    /// The client's tasks in the order the simulation first saw them.
    fn tasks_of(&self, c: usize) -> Result<Vec<Uuid>, SimError> {
        let mut ids =
            crate::client_ids(&self.clients[c].replica, &syncline_protocol::schema::TASKS)
                .map_err(|e| SimError::Harness(e.to_string()))?;
        ids.sort_by_key(|id| self.doc_order.get(id).copied().unwrap_or(usize::MAX));
        Ok(ids)
    }

    fn pick(&self, c: usize, pick: u32) -> Result<Option<Uuid>, SimError> {
        let ids = self.tasks_of(c)?;
        if ids.is_empty() {
            return Ok(None);
        }
        Ok(Some(ids[pick as usize % ids.len()]))
    }

    fn write(&mut self, c: usize, op: &WriteOp) -> Result<(), SimError> {
        let outcome = self.apply_write(c, op)?;
        let line = format!("c{c} {} -> {outcome}", describe_write(op));
        self.note(line);
        self.record_mutations(c)?;
        self.queue_outgoing(c)
    }

    fn apply_write(&mut self, c: usize, op: &WriteOp) -> Result<String, SimError> {
        let org = self.clients[c].org;
        let picked = match op {
            WriteOp::Create { .. } => None,
            WriteOp::Title { pick, .. }
            | WriteOp::Text { pick, .. }
            | WriteOp::Status { pick, .. }
            | WriteOp::Assign { pick, .. }
            | WriteOp::Depend { pick, .. }
            | WriteOp::ClearDependencies { pick }
            | WriteOp::Move { pick, .. }
            | WriteOp::Delete { pick }
            | WriteOp::Restore { pick } => match self.pick(c, *pick)? {
                Some(id) => Some(id),
                None => return Ok("no task".into()),
            },
        };
        let replica = &mut self.clients[c].replica;
        let mut patch = TaskPatch::default();
        let result = match (op, picked) {
            (WriteOp::Create { title, status }, _) => {
                let id = replica
                    .create_task(&TaskDraft::new(title.clone(), status.clone()))
                    .map_err(SimError::client)?;
                self.label_doc(id);
                self.doc_org.insert(id, org);
                return Ok(format!("created {}", self.doc_label(id)));
            }
            (_, None) => return Ok("no task".into()),
            (WriteOp::Title { title, .. }, Some(id)) => {
                patch.title = Some(title.clone());
                replica.update_task(id, &patch).map(|w| (id, w))
            }
            (
                WriteOp::Text {
                    at, delete, insert, ..
                },
                Some(id),
            ) => {
                let current = replica
                    .get_task(id)
                    .map_err(SimError::client)?
                    .and_then(|t| t.description)
                    .unwrap_or_default();
                patch.description = Some(Some(splice(&current, *at, *delete, insert)));
                replica.update_task(id, &patch).map(|w| (id, w))
            }
            (WriteOp::Status { status, .. }, Some(id)) => {
                patch.status = Some(status.clone());
                replica.update_task(id, &patch).map(|w| (id, w))
            }
            (WriteOp::Assign { member, .. }, Some(id)) => {
                let members = &self.orgs[org].members;
                patch.assignee_id = Some(Some(members[*member as usize % members.len()].user_id));
                replica.update_task(id, &patch).map(|w| (id, w))
            }
            (WriteOp::Depend { on, .. }, Some(id)) => {
                let ids = self.tasks_of(c)?;
                let target = ids[*on as usize % ids.len()];
                let replica = &mut self.clients[c].replica;
                let mut deps = replica
                    .get_task(id)
                    .map_err(SimError::client)?
                    .map(|t| t.depends_on)
                    .unwrap_or_default();
                if !deps.contains(&target) {
                    deps.push(target);
                }
                patch.depends_on = Some(deps);
                replica.update_task(id, &patch).map(|w| (id, w))
            }
            (WriteOp::ClearDependencies { .. }, Some(id)) => {
                patch.depends_on = Some(Vec::new());
                replica.update_task(id, &patch).map(|w| (id, w))
            }
            (
                WriteOp::Move {
                    column, position, ..
                },
                Some(id),
            ) => {
                patch.column = Some(Some(column.clone()));
                patch.position = Some(Some(position.clone()));
                replica.update_task(id, &patch).map(|w| (id, w))
            }
            (WriteOp::Delete { .. }, Some(id)) => replica.delete_task(id).map(|w| (id, w)),
            (WriteOp::Restore { .. }, Some(id)) => replica
                .restore(syncline_protocol::schema::TASKS.name, id)
                .map(|w| (id, w)),
        };
        Ok(match result {
            Ok((id, true)) => format!("wrote {}", self.doc_label(id)),
            Ok((id, false)) => format!("unchanged {}", self.doc_label(id)),
            // Refused locally (e.g. a self-dependency fails validation): nothing was stored.
            Err(e) => format!("refused locally: {}", e.code()),
        })
    }

    /// Records the outbox entries the last write added, with their automerge hashes.
    fn record_mutations(&mut self, c: usize) -> Result<(), SimError> {
        let client = &mut self.clients[c];
        let known = client.mutations.keys().next_back().copied().unwrap_or(0);
        for entry in client.replica.outbox().map_err(SimError::client)? {
            if entry.seq <= known {
                continue;
            }
            let change = automerge::Change::from_bytes(entry.payload)
                .map_err(|e| SimError::Harness(format!("outbox entry is not a change: {e}")))?;
            client.mutations.insert(
                entry.seq,
                MutationRecord {
                    doc_id: entry.doc_id,
                    hash: change.hash(),
                    fate: MutationFate::Pending,
                },
            );
        }
        Ok(())
    }

    /// The replica gave up waiting for answers and pushes its pending mutations again.
    pub fn resend(&mut self, c: usize) -> Result<(), SimError> {
        let client = &mut self.clients[c];
        let Some(link) = client.link.as_mut() else {
            return Ok(());
        };
        let messages = client
            .replica
            .resend_unanswered()
            .map_err(SimError::client)?;
        if messages.is_empty() {
            return Ok(());
        }
        for message in messages {
            link.outbound.push_back(encode_frame(&message)?);
        }
        self.note(format!("c{c} resends its pending mutations"));
        Ok(())
    }

    /// Queues the pushes the replica has not sent on its connection.
    fn queue_outgoing(&mut self, c: usize) -> Result<(), SimError> {
        let client = &mut self.clients[c];
        let Some(link) = client.link.as_mut() else {
            return Ok(());
        };
        for message in client.replica.take_outgoing().map_err(SimError::client)? {
            link.outbound.push_back(encode_frame(&message)?);
        }
        Ok(())
    }

    async fn carry_up(&mut self, c: usize, fates: &[Fate]) -> Result<(), SimError> {
        let Some(link) = self.clients[c].link.as_mut() else {
            return Ok(());
        };
        let mut carried = Vec::new();
        for fate in fates {
            let Some(frame) = link.outbound.pop_front() else {
                break;
            };
            match fate {
                Fate::Deliver => link.carry_up(frame).await,
                Fate::Drop => {}
                Fate::Duplicate => {
                    link.carry_up(frame.clone()).await;
                    link.carry_up(frame).await;
                }
                Fate::Delay => link.outbound.push_back(frame),
            }
            carried.push(format!("{fate:?}").to_lowercase());
        }
        if carried.is_empty() {
            return Ok(());
        }
        self.note(format!("c{c} up [{}]", carried.join(" ")));
        self.settle(&[c]).await
    }

    async fn carry_down(&mut self, c: usize, fates: &[Fate]) -> Result<(), SimError> {
        let Some(link) = self.clients[c].link.as_mut() else {
            return Ok(());
        };
        link.collect();
        let before = checks::Before::of(&self.clients[c])?;
        let mut notes = Vec::new();
        for fate in fates {
            let Some(link) = self.clients[c].link.as_mut() else {
                break;
            };
            let Some(arrival) = link.inbound.pop_front() else {
                break;
            };
            let frame = match arrival {
                Inbound::Closed(reason) => {
                    notes.push(format!("closed by server ({reason})"));
                    self.disconnect(c, "closed").await;
                    break;
                }
                Inbound::Frame(frame) => frame,
            };
            let times = match fate {
                Fate::Deliver => 1,
                Fate::Drop => 0,
                Fate::Duplicate => 2,
                Fate::Delay => {
                    link.inbound.push_back(Inbound::Frame(frame));
                    notes.push("delay".into());
                    continue;
                }
            };
            if times == 0 {
                notes.push("drop".into());
            }
            for _ in 0..times {
                let received = self.clients[c]
                    .replica
                    .receive(&frame)
                    .map_err(SimError::client)?;
                let note = self.on_received(c, received).await?;
                notes.push(note);
            }
            self.queue_outgoing(c)?;
        }
        if notes.is_empty() {
            return Ok(());
        }
        self.note(format!("c{c} down [{}]", notes.join("; ")));
        checks::after_receive(self, c, &before).await
    }

    /// Notes what a received frame did; a broken stream ends the connection.
    async fn on_received(&mut self, c: usize, received: Received) -> Result<String, SimError> {
        Ok(match received {
            Received::Handled(events) => {
                let mut parts = Vec::new();
                for event in events {
                    if let Some(part) = self.on_event(c, event) {
                        parts.push(part);
                    }
                }
                if parts.is_empty() {
                    "ok".into()
                } else {
                    parts.join(",")
                }
            }
            Received::Duplicate { n } => format!("dup#{n}"),
            Received::Skipped { n, .. } => format!("skip#{n}"),
            broken @ (Received::Gap { .. } | Received::Malformed { .. } | Received::Resync) => {
                self.disconnect(c, "broken stream").await;
                format!("{broken:?} -> reconnect later")
            }
        })
    }

    fn on_event(&mut self, c: usize, event: SyncEvent) -> Option<String> {
        let client = &mut self.clients[c];
        match event {
            SyncEvent::Acked { mid, seq, .. } => {
                if let Some(m) = client.mutations.get_mut(&mid.seq) {
                    m.fate = MutationFate::Acked { seq };
                }
                Some(format!("ack m{}@{seq}", mid.seq))
            }
            SyncEvent::Rejected { mid, code, .. } => {
                if let Some(m) = client.mutations.get_mut(&mid.seq) {
                    m.fate = MutationFate::Rejected { code };
                }
                Some(format!("reject m{} {code}", mid.seq))
            }
            SyncEvent::Evicted { doc_id, .. } => {
                for m in client.mutations.values_mut() {
                    if m.doc_id == doc_id && m.fate == MutationFate::Pending {
                        m.fate = MutationFate::Evicted;
                    }
                }
                Some(format!("evict {}", self.doc_label(doc_id)))
            }
            SyncEvent::Synced { cursor, .. } => Some(format!("synced@{cursor}")),
            SyncEvent::Welcomed { .. } => Some("welcome".into()),
            SyncEvent::ServerError { code, .. } => Some(format!("error {code}")),
            SyncEvent::DocumentChanged { doc_id, .. } => {
                Some(format!("changed {}", self.doc_label(doc_id)))
            }
            SyncEvent::Pong { .. } => Some("pong".into()),
            SyncEvent::Reauthed { .. } | SyncEvent::Disconnected { .. } | SyncEvent::Text(_) => {
                None
            }
        }
    }

    pub async fn connect(&mut self, c: usize, node: usize) -> Result<(), SimError> {
        if self.clients[c].link.is_some() {
            return Ok(());
        }
        let url = self.node(node)?.ws_url();
        let token = self.orgs[self.clients[c].org].members[self.clients[c].member]
            .access_token
            .clone();
        let mut link = Link::connect(&url, node).await?;
        let replica = &mut self.clients[c].replica;
        replica.on_connecting();
        for message in replica.on_connected(&token).map_err(SimError::client)? {
            link.outbound.push_back(encode_frame(&message)?);
        }
        self.clients[c].link = Some(link);
        self.note(format!("c{c} connect node{node}"));
        Ok(())
    }

    pub async fn disconnect(&mut self, c: usize, why: &str) {
        if let Some(link) = self.clients[c].link.take() {
            link.close().await;
            self.clients[c].replica.on_disconnected();
            self.note(format!("c{c} disconnected ({why})"));
        }
    }

    async fn kill(&mut self, c: usize) -> Result<(), SimError> {
        self.disconnect(c, "killed").await;
        let client = &mut self.clients[c];
        // Dropping the old replica first: the new process must find only what reached the file.
        let reopened = {
            let placeholder = Client::open_in_memory().map_err(SimError::client)?;
            drop(std::mem::replace(&mut client.replica, placeholder));
            Client::open_as(&client.path, client.client_id).map_err(SimError::client)?
        };
        client.replica = reopened;
        self.note(format!("c{c} killed and reopened"));
        Ok(())
    }

    async fn restart(&mut self, node: usize) -> Result<(), SimError> {
        let Some(server) = self.nodes.get_mut(node).and_then(Option::take) else {
            return Ok(());
        };
        self.nodes[node] = Some(server.restart().await);
        // Its connections end; wait until each has seen it, so that the end is queued at a
        // well-defined point of its stream.
        for client in &mut self.clients {
            if let Some(link) = client.link.as_mut().filter(|l| l.node == node) {
                link.await_end().await?;
            }
        }
        self.note(format!("node{node} restarted"));
        Ok(())
    }

    async fn acl(&mut self, o: usize, op: &AclOp) -> Result<(), SimError> {
        let Some(org) = self.orgs.get(o) else {
            return Ok(());
        };
        let owner = &org.members[0];
        let member_at = |m: u32| m as usize % org.members.len();
        let (method, path, body, line) = match op {
            AclOp::Share {
                doc,
                member,
                relation,
            }
            | AclOp::Unshare {
                doc,
                member,
                relation,
            } => {
                if org.docs.is_empty() {
                    return Ok(());
                }
                let doc_id = org.docs[*doc as usize % org.docs.len()];
                let m = member_at(*member);
                let grant = matches!(op, AclOp::Share { .. });
                (
                    if grant {
                        reqwest::Method::POST
                    } else {
                        reqwest::Method::DELETE
                    },
                    format!("/orgs/{}/shares", org.id),
                    serde_json::json!({
                        "object_type": "tasks",
                        "object_id": doc_id,
                        "relation": relation,
                        "subject": { "type": "user", "id": org.members[m].user_id },
                    }),
                    format!(
                        "o{o} {} {} {relation} to m{m}",
                        if grant { "share" } else { "unshare" },
                        self.doc_label(doc_id)
                    ),
                )
            }
            AclOp::Role { member, role } => {
                // Member 0 stays the owner who makes these changes.
                let m = 1 + (*member as usize % (org.members.len().max(2) - 1));
                let Some(user) = org.members.get(m) else {
                    return Ok(());
                };
                (
                    reqwest::Method::PATCH,
                    format!("/orgs/{}/members/{}", org.id, user.user_id),
                    serde_json::json!({ "role": role }),
                    format!("o{o} role of m{m} -> {role}"),
                )
            }
        };
        let token = owner.access_token.clone();
        let (status, _) = self.node(0)?.api(method, &path, &token, Some(body)).await;
        if let AclOp::Role { member, role } = op
            && status.is_success()
        {
            let org = &mut self.orgs[o];
            let m = 1 + (*member as usize % (org.members.len().max(2) - 1));
            if let (Some(slot), Some(parsed)) = (org.roles.get_mut(m), parse_role(role)) {
                *slot = parsed;
            }
        }
        self.note(format!("{line}: {}", status.as_u16()));
        self.settle(&[]).await
    }
}

fn parse_role(role: &str) -> Option<syncline_protocol::rules::OrgRole> {
    syncline_protocol::rules::OrgRole::ALL
        .into_iter()
        .find(|r| r.as_str() == role)
}

fn encode_frame(message: &client_core::ClientMessage) -> Result<Vec<u8>, SimError> {
    encode(message).map_err(|e| SimError::Harness(format!("encode: {e}")))
}

/// `delete` characters removed at `at` (clamped, on character boundaries), then `insert`.
fn splice(text: &str, at: u32, delete: u32, insert: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = (at as usize).min(chars.len());
    let end = (at + delete as usize).min(chars.len());
    let mut out: String = chars[..at].iter().collect();
    out.push_str(insert);
    out.extend(&chars[end..]);
    out
}

fn describe_write(op: &WriteOp) -> String {
    match op {
        WriteOp::Create { title, status } => format!("create '{title}' {status}"),
        WriteOp::Title { title, .. } => format!("title '{title}'"),
        WriteOp::Text {
            at, delete, insert, ..
        } => format!("text @{at} -{delete} +'{insert}'"),
        WriteOp::Status { status, .. } => format!("status {status}"),
        WriteOp::Assign { member, .. } => format!("assign m{member}"),
        WriteOp::Depend { .. } => "depend".into(),
        WriteOp::ClearDependencies { .. } => "clear deps".into(),
        WriteOp::Move {
            column, position, ..
        } => format!("move {column}/{position}"),
        WriteOp::Delete { .. } => "delete".into(),
        WriteOp::Restore { .. } => "restore".into(),
    }
}
