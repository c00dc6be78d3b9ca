-- Notification emails (issue 7, sync-server/src/email): what each recipient is to be told by
-- email, and the queue of emails (single notifications and digests) the senders work through.
-- Forward-only: never edit this file once applied; add a new one.

-- One row per (org, event, recipient): the notification's text, written by `email::enqueue`
-- in the transaction of the notifications handler, so a handler that runs twice for one event
-- (at-least-once effects) enqueues once. Under row-level security like every org table.
CREATE TABLE email_outbox (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_id    uuid NOT NULL,
    event_type  text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL,
    link        text,
    -- The recipient's digest setting when it was enqueued: `off` is sent on its own (the
    -- email_queue row has this row's id), otherwise it waits for the recipient's next digest.
    digest      text NOT NULL CHECK (digest IN ('off', 'hourly', 'daily')),
    -- The digest email that carried it (NULL until a digest takes it, and for `off`).
    digest_id   uuid,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, event_id, user_id)
);
-- A digest collects the recipient's rows that no digest has taken yet.
CREATE INDEX email_outbox_digest_waiting ON email_outbox (org_id, user_id, created_at)
    WHERE digest <> 'off' AND digest_id IS NULL;
CREATE INDEX email_outbox_by_digest ON email_outbox (org_id, digest_id) WHERE digest_id IS NOT NULL;

ALTER TABLE email_outbox ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON email_outbox
    USING (org_id = app_org()) WITH CHECK (org_id = app_org());

-- The emails to send: `single` (id = the email_outbox row's id) or `digest` (a fresh id that
-- the digest's rows point to). The id is the Message-ID, so a resend carries the same one.
-- Claimed by the senders of every server process with FOR UPDATE SKIP LOCKED before any org is
-- known, hence no row-level security, like effect_jobs: it holds ids and states only; the text
-- is read from email_outbox under the org's RLS.
--
-- A digest row is `collecting` while it waits for its period to end (run_at): the first
-- digest notification of a recipient opens it, later ones join it (at most one collecting row
-- per org and recipient, the partial unique index below); when it is claimed it takes every
-- waiting email_outbox row of the recipient.
CREATE TABLE email_queue (
    id          uuid PRIMARY KEY,
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('single', 'digest')),
    -- For digests: `hourly` or `daily` (the period that opened it); `off` for singles.
    period      text NOT NULL CHECK (period IN ('off', 'hourly', 'daily')),
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('collecting', 'pending', 'sending', 'sent', 'dead')),
    attempts    integer NOT NULL DEFAULT 0,
    run_at      timestamptz NOT NULL DEFAULT now(),
    locked_at   timestamptz,
    locked_by   text,
    last_error  text,
    -- How many notifications a digest carried (0: nothing left to send, none was sent).
    items       integer,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX email_queue_due ON email_queue (run_at) WHERE status IN ('pending', 'collecting');
CREATE INDEX email_queue_sending ON email_queue (locked_at) WHERE status = 'sending';
CREATE UNIQUE INDEX email_queue_one_collecting ON email_queue (org_id, user_id)
    WHERE status = 'collecting';
