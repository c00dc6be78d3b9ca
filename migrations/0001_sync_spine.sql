-- Sync spine: tenancy, users, documents, the per-org change log, client mutation progress and
-- the typed `tasks` table. Forward-only: never edit this file once applied; add a new one.
-- Every tenant table has org_id first in its primary key (shardable by org, see docs/architecture.md).

CREATE TABLE orgs (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL,
    display_name   text NOT NULL,
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE org_members (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL CHECK (role IN ('owner', 'admin', 'member', 'guest')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX org_members_user_idx ON org_members (user_id);

-- Rotating refresh tokens. Only a SHA-256 of the token is stored. Presenting a token that was
-- already rotated revokes its whole family (a stolen token is then useless to both parties).
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);

-- The per-org change counter. A committing transaction increments it while holding the row
-- lock until commit, so sequence numbers become visible in order: a reader that sees seq N
-- committed also sees every seq below N (the no-gap invariant, docs/protocol.md).
CREATE TABLE org_change_seq (
    org_id    uuid PRIMARY KEY REFERENCES orgs (id) ON DELETE CASCADE,
    last_seq  bigint NOT NULL DEFAULT 0
);

-- Every synced document with its merged CRDT state.
CREATE TABLE documents (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    collection  text NOT NULL,
    state       bytea NOT NULL,
    created_by  uuid NOT NULL REFERENCES users (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);
-- Document ids are client-generated UUIDv7s and unique across orgs, so a change naming another
-- org's document is recognised and refused instead of creating a twin.
CREATE UNIQUE INDEX documents_id_key ON documents (id);
CREATE INDEX documents_collection_idx ON documents (org_id, collection);

-- The per-org change log: one row per committed change, in seq order without gaps.
CREATE TABLE change_log (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    doc_id      uuid NOT NULL,
    collection  text NOT NULL,
    payload     bytea NOT NULL,
    user_id     uuid,
    client_id   uuid,
    client_seq  bigint,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, seq)
);
CREATE UNIQUE INDEX change_log_mutation_key ON change_log (org_id, client_id, client_seq)
    WHERE client_id IS NOT NULL;
CREATE INDEX change_log_doc_idx ON change_log (org_id, doc_id, seq);

-- Per-client mutation progress: the highest mutation seq processed (acked or rejected).
CREATE TABLE client_progress (
    org_id           uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    client_id        uuid NOT NULL,
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_client_seq  bigint NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, client_id)
);

-- Outcomes of rejected mutations, so a retransmitted one is rejected again identically.
CREATE TABLE mutation_rejections (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    client_id   uuid NOT NULL,
    client_seq  bigint NOT NULL,
    doc_id      uuid NOT NULL,
    code        text NOT NULL,
    message     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, client_id, client_seq)
);

-- Tasks, materialized from their record documents in the transaction that merges each change.
-- Columns mirror `syncline_protocol::schema::TASKS` (checked by a test).
CREATE TABLE tasks (
    org_id        uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id            uuid NOT NULL,
    title         text NOT NULL,
    description   text,
    status        text NOT NULL CHECK (status IN ('backlog', 'todo', 'in_progress', 'in_review', 'done', 'cancelled')),
    priority      text CHECK (priority IN ('none', 'low', 'medium', 'high', 'urgent')),
    due_date      timestamptz,
    assignee_id   uuid,
    board_id      uuid,
    board_column  text,
    position      text,
    parent_id     uuid,
    deleted_at    timestamptz,
    created_by    uuid NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, id) REFERENCES documents (org_id, id) ON DELETE CASCADE
);
CREATE INDEX tasks_assignee_idx ON tasks (org_id, assignee_id) WHERE deleted_at IS NULL;
CREATE INDEX tasks_status_idx ON tasks (org_id, status) WHERE deleted_at IS NULL;
