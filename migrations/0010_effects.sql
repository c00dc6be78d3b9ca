-- Server-side effects (issue 7): the transactional outbox, its job queue, the append-only audit
-- log, and comments (a synced record collection whose mentions produce events).
-- Forward-only: never edit this file once applied; add a new one.

-- Domain events derived from accepted changes, written in the change's transaction.
CREATE TABLE domain_events (
    org_id         uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    event_type     text NOT NULL,
    collection     text NOT NULL,
    entity_id      uuid NOT NULL,
    actor_id       uuid,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    data           jsonb NOT NULL,
    correlation_id text,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX domain_events_entity ON domain_events (org_id, entity_id, occurred_at);
CREATE INDEX domain_events_time ON domain_events (org_id, occurred_at);

-- One job per (event, handler). A queue shared by every org, claimed by the workers of every
-- server process with FOR UPDATE SKIP LOCKED before any org is known, hence no row-level
-- security: it holds ids and states only, never the event's data (read under the org's RLS).
CREATE TABLE effect_jobs (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    event_id    uuid NOT NULL,
    handler     text NOT NULL,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'running', 'done', 'dead')),
    attempts    integer NOT NULL DEFAULT 0,
    run_at      timestamptz NOT NULL DEFAULT now(),
    locked_at   timestamptz,
    locked_by   text,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    PRIMARY KEY (org_id, event_id, handler),
    FOREIGN KEY (org_id, event_id) REFERENCES domain_events (org_id, id) ON DELETE CASCADE
);
CREATE INDEX effect_jobs_due ON effect_jobs (run_at) WHERE status = 'pending';
CREATE INDEX effect_jobs_running ON effect_jobs (locked_at) WHERE status = 'running';
CREATE INDEX effect_jobs_dead ON effect_jobs (org_id, finished_at) WHERE status = 'dead';

-- Every mutation, appended in the transaction that made it. The database refuses UPDATE,
-- DELETE and TRUNCATE (triggers, which bind the owner too; the app role also lacks the grants).
CREATE TABLE audit_log (
    org_id         uuid NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    actor_id       uuid,
    -- `create`, `update`, `delete`, `restore` (records), `edit` (text bodies).
    action         text NOT NULL,
    collection     text NOT NULL,
    entity_id      uuid NOT NULL,
    -- `{field: {"from": .., "to": ..}}`; `{}` for text edits.
    changes        jsonb NOT NULL,
    -- `ws` (a push) or `rest`.
    via            text NOT NULL,
    ip             inet,
    correlation_id text,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX audit_log_entity ON audit_log (org_id, entity_id, id);
CREATE INDEX audit_log_time ON audit_log (org_id, occurred_at);

CREATE FUNCTION refuse_audit_log_change() RETURNS trigger LANGUAGE plpgsql AS
$$ BEGIN RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP; END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_audit_log_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_audit_log_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM syncline_app;

-- Comments on any record: a synced record collection (`syncline_protocol::schema::COMMENTS`).
CREATE TABLE comments (
    org_id            uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id                uuid NOT NULL,
    record_collection text NOT NULL,
    record_id         uuid NOT NULL,
    parent_id         uuid,
    body              text NOT NULL,
    edited_at         timestamptz,
    deleted_at        timestamptz,
    created_by        uuid NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, id) REFERENCES documents (org_id, id) ON DELETE CASCADE
);
CREATE INDEX comments_by_record ON comments (org_id, record_id, created_at);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['domain_events', 'audit_log', 'comments'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = app_org()) WITH CHECK (org_id = app_org())', t);
    END LOOP;
END
$$;
