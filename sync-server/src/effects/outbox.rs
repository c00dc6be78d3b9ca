//! Writing effects in the transaction of a change: domain events, their jobs, audit rows.

use std::net::IpAddr;

use chrono::Utc;
use serde_json::{Value, json};
use syncline_protocol::record::Record;
use syncline_protocol::schema::CollectionSchema;
use uuid::Uuid;

use super::Handlers;
use super::events::{self, NewEvent};
use crate::store::Tx;

tokio::task_local! {
    /// Where the change being made comes from (set per HTTP request and per sync connection).
    pub static ORIGIN: Origin;
}

/// The transport, address and correlation id of the request making a change, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// `rest` or `ws`.
    pub via: &'static str,
    pub ip: Option<IpAddr>,
    pub correlation_id: Option<String>,
}

impl Origin {
    /// The origin of the current task, or an unknown one (a worker's own changes).
    pub fn current() -> Self {
        ORIGIN.try_with(Clone::clone).unwrap_or(Self {
            via: "server",
            ip: None,
            correlation_id: None,
        })
    }
}

/// One accepted record change, as the merge saw it.
#[derive(Debug, Clone)]
pub struct RecordWrite {
    pub schema: &'static CollectionSchema,
    pub doc_id: Uuid,
    /// The record before the change (`None`: created now).
    pub before: Option<Record>,
    pub after: Record,
}

/// An accepted edit of a text body (Yjs).
#[derive(Debug, Clone)]
pub struct TextEdit {
    /// `note_bodies` or `document_bodies`.
    pub collection: &'static str,
    pub doc_id: Uuid,
    /// The edit only adds suggestions (its author is a suggester).
    pub suggestion: bool,
}

/// Records the events, jobs and audit rows of `writes` and `edits`, made by `actor` in `org_id`.
/// Returns how many jobs were queued (the caller wakes the workers after commit when > 0).
pub async fn record(
    tx: &mut Tx<'_>,
    handlers: &Handlers,
    org_id: Uuid,
    actor: Option<Uuid>,
    writes: &[RecordWrite],
    edits: &[TextEdit],
) -> Result<usize, sqlx::Error> {
    let origin = Origin::current();
    let mut queued = 0;
    let mut audit = AuditRows::default();
    for w in writes {
        let changes = events::field_changes(w.schema, w.before.as_ref(), &w.after);
        if w.before.is_some() && changes.as_object().is_some_and(|c| c.is_empty()) {
            continue;
        }
        audit.push(actor, action(w), w.schema.name, w.doc_id, changes);
        for event in events::derive(w.schema, w.doc_id, w.before.as_ref(), &w.after) {
            queued += insert_event(
                tx,
                handlers,
                org_id,
                actor,
                w.schema.name,
                w.doc_id,
                event,
                &origin,
            )
            .await?;
        }
    }
    for e in edits {
        audit.push(actor, "edit", e.collection, e.doc_id, json!({}));
        if e.suggestion && e.collection == "document_bodies" {
            let event = NewEvent {
                event_type: "document.suggestion_received".into(),
                data: json!({"document_id": e.doc_id.to_string(), "suggester_id": actor.map(|a| a.to_string())}),
            };
            queued += insert_event(
                tx,
                handlers,
                org_id,
                actor,
                "documents",
                e.doc_id,
                event,
                &origin,
            )
            .await?;
        }
    }
    audit.insert(tx, org_id, &origin).await?;
    Ok(queued)
}

/// Records one event the server raises on its own (e.g. `webhook.endpoint_disabled`) in `tx`,
/// with its jobs. Call [`super::worker::Wakeup::wake`] after commit when it returns > 0.
#[allow(clippy::too_many_arguments)]
pub async fn emit(
    tx: &mut Tx<'_>,
    handlers: &Handlers,
    org_id: Uuid,
    actor: Option<Uuid>,
    collection: &str,
    entity_id: Uuid,
    event_type: &str,
    data: Value,
) -> Result<usize, sqlx::Error> {
    let event = NewEvent {
        event_type: event_type.to_owned(),
        data,
    };
    insert_event(
        tx,
        handlers,
        org_id,
        actor,
        collection,
        entity_id,
        event,
        &Origin::current(),
    )
    .await
}

fn action(w: &RecordWrite) -> &'static str {
    let was = w.before.as_ref().map(|r| r.contains_key("deleted_at"));
    let is = w.after.contains_key("deleted_at");
    match (was, is) {
        (None, _) => "create",
        (Some(false), true) => "delete",
        (Some(true), false) => "restore",
        _ => "update",
    }
}

#[allow(clippy::too_many_arguments)]
async fn insert_event(
    tx: &mut Tx<'_>,
    handlers: &Handlers,
    org_id: Uuid,
    actor: Option<Uuid>,
    collection: &str,
    entity_id: Uuid,
    event: NewEvent,
    origin: &Origin,
) -> Result<usize, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO domain_events (org_id, id, event_type, collection, entity_id, actor_id, \
         occurred_at, data, correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(org_id)
    .bind(id)
    .bind(&event.event_type)
    .bind(collection)
    .bind(entity_id)
    .bind(actor)
    .bind(Utc::now())
    .bind(&event.data)
    .bind(&origin.correlation_id)
    .execute(&mut **tx)
    .await?;
    let wanting: Vec<(&str, Option<&str>)> = handlers.wanting(&event.event_type).collect();
    if wanting.is_empty() {
        return Ok(0);
    }
    // Unconditional handlers in one row set; each conditional one adds a row only when its
    // condition holds. Names and conditions are the handlers' static strings, never input.
    let always: Vec<&str> = wanting
        .iter()
        .filter(|(_, condition)| condition.is_none())
        .map(|(name, _)| *name)
        .collect();
    let mut sql = String::from(
        "INSERT INTO effect_jobs (org_id, event_id, handler) \
         SELECT $1, $2, h FROM UNNEST($3::text[]) AS h",
    );
    for (name, condition) in &wanting {
        if let Some(condition) = condition {
            sql.push_str(&format!(
                " UNION ALL SELECT $1, $2, '{name}' WHERE ({condition})"
            ));
        }
    }
    let queued = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(org_id)
        .bind(id)
        .bind(&always)
        .execute(&mut **tx)
        .await?;
    Ok(usize::try_from(queued.rows_affected()).unwrap_or(usize::MAX))
}

/// Audit rows of one transaction, inserted in one statement.
#[derive(Default)]
struct AuditRows {
    actors: Vec<Option<Uuid>>,
    actions: Vec<&'static str>,
    collections: Vec<&'static str>,
    entities: Vec<Uuid>,
    changes: Vec<Value>,
}

impl AuditRows {
    fn push(
        &mut self,
        actor: Option<Uuid>,
        action: &'static str,
        collection: &'static str,
        entity: Uuid,
        changes: Value,
    ) {
        self.actors.push(actor);
        self.actions.push(action);
        self.collections.push(collection);
        self.entities.push(entity);
        self.changes.push(changes);
    }

    async fn insert(
        self,
        tx: &mut Tx<'_>,
        org_id: Uuid,
        origin: &Origin,
    ) -> Result<(), sqlx::Error> {
        if self.entities.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO audit_log (org_id, actor_id, action, collection, entity_id, changes, via, ip, correlation_id) \
             SELECT $1, a, act, c, e, ch, $7, $8::inet, $9 \
             FROM UNNEST($2::uuid[], $3::text[], $4::text[], $5::uuid[], $6::jsonb[]) AS t(a, act, c, e, ch)",
        )
        .bind(org_id)
        .bind(&self.actors)
        .bind(&self.actions)
        .bind(&self.collections)
        .bind(&self.entities)
        .bind(&self.changes)
        .bind(origin.via)
        .bind(origin.ip.map(ipnetwork_free))
        .bind(&origin.correlation_id)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// The address as text, cast to `inet` by Postgres (sqlx binds `IpAddr` only with the
/// `ipnetwork`/`ipnet` features, which would add a dependency for one column).
fn ipnetwork_free(ip: IpAddr) -> String {
    ip.to_string()
}
