-- Collaborative text documents (issue 4): notes and business documents (contracts) as record
-- documents, their bodies as Yjs documents, and contract revisions.
-- Forward-only: never edit this file once applied; add a new one.

-- Notes, materialized from their record documents. Columns mirror
-- `syncline_protocol::schema::NOTES` (checked by a test).
CREATE TABLE notes (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    title       text NOT NULL,
    pinned      boolean,
    deleted_at  timestamptz,
    created_by  uuid NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, id) REFERENCES documents (org_id, id) ON DELETE CASCADE
);

-- Business documents (contracts, ...). Named `document_records` because `documents` holds every
-- synced document's CRDT state. Columns mirror `syncline_protocol::schema::DOCUMENTS`.
CREATE TABLE document_records (
    org_id           uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id               uuid NOT NULL,
    title            text NOT NULL,
    doc_type         text NOT NULL CHECK (doc_type IN ('contract', 'proposal', 'memo', 'other')),
    status           text NOT NULL CHECK (status IN ('draft', 'internal_review', 'client_review', 'sent', 'signed')),
    counterparty_id  uuid,
    payment_terms    text,
    amount           bigint,
    currency         text,
    effective_date   timestamptz,
    deleted_at       timestamptz,
    created_by       uuid NOT NULL,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, id) REFERENCES documents (org_id, id) ON DELETE CASCADE
);
CREATE INDEX document_records_status_idx ON document_records (org_id, status) WHERE deleted_at IS NULL;

-- The Yjs body of a note or business document: same id as its record. `state` is the compacted
-- snapshot (the whole document as one Yjs v1 update); updates accepted since the last compaction
-- are appended to `text_updates` and folded into `state` every few dozen updates. `plain_text`
-- is the body's text, kept current with every accepted update, for search.
CREATE TABLE text_documents (
    org_id           uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id               uuid NOT NULL,
    collection       text NOT NULL,
    state            bytea NOT NULL,
    pending_updates  integer NOT NULL DEFAULT 0,
    version          bigint NOT NULL DEFAULT 0,
    plain_text       text NOT NULL DEFAULT '',
    search           tsvector GENERATED ALWAYS AS (to_tsvector('simple', plain_text)) STORED,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, id) REFERENCES documents (org_id, id) ON DELETE CASCADE
);
CREATE INDEX text_documents_search_idx ON text_documents USING gin (search);

-- Accepted Yjs updates not yet compacted into `text_documents.state`, in order of `id`.
CREATE TABLE text_updates (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    doc_id      uuid NOT NULL,
    id          bigserial,
    payload     bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, doc_id, id),
    FOREIGN KEY (org_id, doc_id) REFERENCES text_documents (org_id, id) ON DELETE CASCADE
);

-- Named revisions of a business document. Revision 0 is the baseline, made automatically with
-- the first revision. `snapshot` is a Yjs snapshot (state vector + delete set, v1 encoding) of
-- the body, from which any two revisions' redline is computed by item identity; `fields` are the
-- record's fields at the revision and `field_changes` what changed since the previous revision.
CREATE TABLE document_revisions (
    org_id         uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    doc_id         uuid NOT NULL,
    number         integer NOT NULL CHECK (number >= 0),
    author_id      uuid NOT NULL,
    description    text NOT NULL,
    snapshot       bytea NOT NULL,
    body_html      text NOT NULL,
    body_text      text NOT NULL,
    fields         jsonb NOT NULL,
    field_changes  jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, doc_id, number),
    FOREIGN KEY (org_id, doc_id) REFERENCES documents (org_id, id) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'notes', 'document_records', 'text_documents', 'text_updates', 'document_revisions'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = app_org()) WITH CHECK (org_id = app_org())', t);
    END LOOP;
END
$$;

GRANT USAGE, SELECT ON SEQUENCE text_updates_id_seq TO syncline_app;
