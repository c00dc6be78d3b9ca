-- Row-level security on every tenant table: a row is visible (and writable) only in a
-- transaction whose `app.org_id` setting names its org. The server runs its queries as
-- `syncline_app`, a role that owns nothing and cannot bypass RLS (table owners bypass it), and
-- sets the org per transaction with `SELECT set_config('app.org_id', $1, true)`. A query that
-- forgets its `WHERE org_id = ...` therefore still sees one org only, and a transaction without
-- an org sees nothing.
--
-- Global tables without RLS: users (an account spans orgs), refresh_tokens (looked up by the
-- token's hash before any org is known), _sqlx_migrations.

DO $$
BEGIN
    CREATE ROLE syncline_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
EXCEPTION
    -- Roles are cluster-wide: another database of the cluster may have created it already.
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

-- The migrating (owner) role must be able to `SET ROLE syncline_app` (superusers always can).
DO $$
BEGIN
    EXECUTE format('GRANT syncline_app TO %I', current_user);
EXCEPTION
    WHEN OTHERS THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO syncline_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO syncline_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO syncline_app;

-- The org of the current transaction, or NULL (which matches no row).
CREATE FUNCTION app_org() RETURNS uuid LANGUAGE sql STABLE AS
$$ SELECT NULLIF(current_setting('app.org_id', true), '')::uuid $$;

ALTER TABLE orgs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON orgs USING (id = app_org()) WITH CHECK (id = app_org());

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY[
        'org_members', 'org_change_seq', 'documents', 'change_log', 'client_progress',
        'mutation_rejections', 'tasks', 'teams', 'team_members', 'relation_tuples', 'invitations'
    ] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = app_org()) WITH CHECK (org_id = app_org())', t);
    END LOOP;
END
$$;

-- The few lookups that must cross orgs, each answering one narrow question. SECURITY DEFINER
-- runs them as the migration owner, which RLS does not apply to.

-- Which org owns a document id (ids are unique across orgs): to refuse another org's document
-- instead of mistaking its id for a new one.
CREATE FUNCTION syncline_document_org(doc uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT org_id FROM documents WHERE id = doc $$;

-- The org a login lands in: the user's first membership.
CREATE FUNCTION syncline_first_org(member uuid) RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT org_id FROM org_members WHERE user_id = member ORDER BY created_at, org_id LIMIT 1 $$;

-- Whether a user is (still) a member of an org: checked when a refresh token is used.
CREATE FUNCTION syncline_is_member(org uuid, member uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT EXISTS (SELECT 1 FROM org_members WHERE org_id = org AND user_id = member) $$;

-- An open invitation by the hash of its token.
CREATE FUNCTION syncline_open_invitation(hash bytea)
RETURNS TABLE (org_id uuid, id uuid, role text, email text)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public AS
$$ SELECT i.org_id, i.id, i.role, i.email FROM invitations i
   WHERE i.token_hash = hash AND i.accepted_at IS NULL AND i.expires_at > now() $$;

REVOKE ALL ON FUNCTION syncline_document_org(uuid), syncline_first_org(uuid),
    syncline_is_member(uuid, uuid), syncline_open_invitation(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION syncline_document_org(uuid), syncline_first_org(uuid),
    syncline_is_member(uuid, uuid), syncline_open_invitation(bytea), app_org() TO syncline_app;
