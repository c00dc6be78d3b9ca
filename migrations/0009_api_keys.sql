-- API keys and idempotency keys of the REST bridge (issue 6).
-- Forward-only: never edit this file once applied; add a new one.

-- An API key acts as the user who made it, in the org it was made in, narrowed by its scopes.
-- The plain key is `sk_live_<public_id>_<secret>`; only the SHA-256 of the secret is stored.
CREATE TABLE api_keys (
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    -- The 8 characters after `sk_live_`: how a presented key is found before its org is known.
    public_id    text NOT NULL UNIQUE,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text NOT NULL,
    scopes       text[] NOT NULL,
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    PRIMARY KEY (org_id, id)
);
CREATE INDEX api_keys_by_user ON api_keys (org_id, user_id, created_at);

-- The first response to a request sent with an `Idempotency-Key`, per org and principal
-- (`user:<id>` or `key:<id>`). `status` is NULL while the first request is still running, so a
-- concurrent duplicate finds the row and does not execute.
CREATE TABLE idempotency_keys (
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    principal    text NOT NULL,
    key          text NOT NULL,
    -- SHA-256 of method, path and body: the same key with another request is refused.
    request_hash bytea NOT NULL,
    status       smallint,
    headers      jsonb,
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, principal, key)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['api_keys', 'idempotency_keys'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = app_org()) WITH CHECK (org_id = app_org())', t);
    END LOOP;
END
$$;

-- An unrevoked API key by its public id, before any org is known (as
-- `syncline_open_invitation`). The caller compares the secret's hash in constant time.
CREATE FUNCTION syncline_api_key(public text)
RETURNS TABLE (org_id uuid, id uuid, user_id uuid, scopes text[], secret_hash bytea,
               last_used_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT k.org_id, k.id, k.user_id, k.scopes, k.secret_hash, k.last_used_at FROM api_keys k
   WHERE k.public_id = public AND k.revoked_at IS NULL $$;

REVOKE ALL ON FUNCTION syncline_api_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION syncline_api_key(text) TO syncline_app;
