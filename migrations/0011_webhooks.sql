-- Outbound webhooks (issue 7, Standard Webhooks): endpoints per org, one delivery per (event,
-- endpoint) with the exact bytes to send, and a log row per attempt.
-- Forward-only: never edit this file once applied; add a new one.

-- Where an org's events are sent. `secret` is the `whsec_` secret (kept in clear: HMAC needs
-- the key itself); during a rotation `previous_secret` signs too until it expires.
CREATE TABLE webhook_endpoints (
    org_id                     uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id                         uuid NOT NULL,
    url                        text NOT NULL,
    description                text NOT NULL DEFAULT '',
    -- Event types sent to this endpoint; empty means every type.
    event_types                text[] NOT NULL DEFAULT '{}',
    secret                     text NOT NULL,
    previous_secret            text,
    previous_secret_expires_at timestamptz,
    -- Set when the endpoint answered 410 or failed continuously for too long (or by an admin).
    disabled_at                timestamptz,
    disabled_reason            text,
    -- Start of the current run of failed attempts (NULL after a success).
    failing_since              timestamptz,
    created_by                 uuid,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);

-- One message to one endpoint. `body` is fixed when the delivery is made, so every attempt
-- (retries, manual resends) sends the same bytes under the same `msg_id` (`webhook-id`).
CREATE TABLE webhook_deliveries (
    org_id          uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id              uuid NOT NULL,
    endpoint_id     uuid NOT NULL,
    event_id        uuid NOT NULL,
    event_type      text NOT NULL,
    msg_id          text NOT NULL,
    body            bytea NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'running', 'succeeded', 'failed')),
    -- Attempts ever made (numbers the log) and attempts of the current round (picks the next
    -- delay of the retry schedule; a manual resend starts a new round).
    attempts        integer NOT NULL DEFAULT 0,
    round_attempts  integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    locked_at       timestamptz,
    locked_by       text,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, event_id, endpoint_id),
    FOREIGN KEY (org_id, endpoint_id) REFERENCES webhook_endpoints (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, event_id) REFERENCES domain_events (org_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_running ON webhook_deliveries (locked_at) WHERE status = 'running';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (org_id, endpoint_id, created_at);

-- The delivery log: one row per attempt.
CREATE TABLE webhook_attempts (
    org_id            uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    delivery_id       uuid NOT NULL,
    attempt           integer NOT NULL,
    started_at        timestamptz NOT NULL,
    duration_ms       integer NOT NULL,
    -- The HTTP status, NULL when no response came (connection refused, timeout, refused address).
    status_code       integer,
    -- The response body, cut at 20 KB.
    response_body     text,
    error             text,
    webhook_timestamp bigint NOT NULL,
    PRIMARY KEY (org_id, delivery_id, attempt),
    FOREIGN KEY (org_id, delivery_id) REFERENCES webhook_deliveries (org_id, id) ON DELETE CASCADE
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['webhook_endpoints', 'webhook_deliveries', 'webhook_attempts'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = app_org()) WITH CHECK (org_id = app_org())', t);
    END LOOP;
END
$$;

-- The delivery loop claims due deliveries of every org before any org is known. Unlike
-- `effect_jobs`, deliveries hold tenant data (the body), so they keep row-level security and
-- the cross-org claim and reap go through these two functions, which return ids only; the
-- loop then reads each delivery under its org.
CREATE FUNCTION syncline_claim_webhook_deliveries(worker text, batch integer)
RETURNS TABLE (claimed_org uuid, claimed_id uuid)
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS
$$ UPDATE webhook_deliveries d
      SET status = 'running', locked_at = now(), locked_by = worker,
          attempts = d.attempts + 1, round_attempts = d.round_attempts + 1
     FROM (SELECT w.org_id, w.id FROM webhook_deliveries w
           WHERE w.status = 'pending' AND w.next_attempt_at <= now()
           ORDER BY w.next_attempt_at LIMIT batch FOR UPDATE SKIP LOCKED) due
    WHERE d.org_id = due.org_id AND d.id = due.id
RETURNING d.org_id, d.id $$;

-- Gives deliveries whose sender died (running since before `stuck_before`) back to the queue,
-- logging the interrupted attempt; the retry reuses the delivery's `msg_id` and body.
CREATE FUNCTION syncline_reap_webhook_deliveries(stuck_before timestamptz)
RETURNS integer
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = public AS
$$ WITH reaped AS (
       UPDATE webhook_deliveries d
          SET status = 'pending', next_attempt_at = now(), locked_at = NULL, locked_by = NULL,
              last_error = 'the process sending it stopped'
         FROM (SELECT w.org_id, w.id, w.locked_at FROM webhook_deliveries w
               WHERE w.status = 'running' AND w.locked_at < stuck_before
               FOR UPDATE SKIP LOCKED) stuck
        WHERE d.org_id = stuck.org_id AND d.id = stuck.id
    RETURNING d.org_id, d.id, d.attempts, stuck.locked_at AS started_at),
   logged AS (
       INSERT INTO webhook_attempts (org_id, delivery_id, attempt, started_at, duration_ms,
                                     error, webhook_timestamp)
       SELECT org_id, id, attempts, started_at, 0, 'the process sending it stopped',
              extract(epoch FROM started_at)::bigint
         FROM reaped
       ON CONFLICT DO NOTHING)
   SELECT count(*)::integer FROM reaped $$;

-- When the next pending delivery of any org is due (the loop sleeps until then).
CREATE FUNCTION syncline_next_webhook_due()
RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT min(next_attempt_at) FROM webhook_deliveries WHERE status = 'pending' $$;

REVOKE ALL ON FUNCTION syncline_claim_webhook_deliveries(text, integer),
    syncline_reap_webhook_deliveries(timestamptz), syncline_next_webhook_due() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION syncline_claim_webhook_deliveries(text, integer),
    syncline_reap_webhook_deliveries(timestamptz), syncline_next_webhook_due() TO syncline_app;
