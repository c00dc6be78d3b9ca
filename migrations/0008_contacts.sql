-- Contacts (issue 6): the second synced record collection, materialized from record documents.
-- Columns mirror `syncline_protocol::schema::CONTACTS` (checked by a test).
-- Forward-only: never edit this file once applied; add a new one.

CREATE TABLE contacts (
    org_id         uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id             uuid NOT NULL,
    contact_type   text NOT NULL CHECK (contact_type IN ('lead', 'client', 'vendor', 'partner')),
    status         text NOT NULL CHECK (status IN ('active', 'inactive', 'archived')),
    first_name     text,
    last_name      text,
    email          text,
    phone          text,
    company        text,
    source         text,
    assigned_to    uuid,
    -- A JSON object as text, written whole by clients (see the protocol schema).
    custom_fields  text,
    deleted_at     timestamptz,
    created_by     uuid NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, id) REFERENCES documents (org_id, id) ON DELETE CASCADE
);
CREATE INDEX contacts_assigned_idx ON contacts (org_id, assigned_to) WHERE deleted_at IS NULL;
CREATE INDEX contacts_email_idx ON contacts (org_id, lower(email));

ALTER TABLE contacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contacts
    USING (org_id = app_org()) WITH CHECK (org_id = app_org());
