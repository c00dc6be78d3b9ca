-- In-app notifications (issue 7, sync-server/src/notifications): the synced `notifications`
-- collection's typed table, who watches which record, and per-user notification preferences.
-- Forward-only: never edit this file once applied; add a new one.

-- A synced record collection (`syncline_protocol::schema::NOTIFICATIONS`), materialized like
-- every other one. Its documents are personal: only `recipient_id` may read one (see
-- `authz::model`), and the server alone creates them, with an id derived from the event and the
-- recipient (so one event notifies a recipient at most once).
CREATE TABLE notifications (
    org_id            uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id                uuid NOT NULL,
    recipient_id      uuid NOT NULL,
    event_type        text NOT NULL,
    event_id          uuid NOT NULL,
    title             text NOT NULL,
    body              text,
    entity_collection text,
    entity_id         uuid,
    actor_id          uuid,
    read_at           timestamptz,
    created_by        uuid NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, id) REFERENCES documents (org_id, id) ON DELETE CASCADE
);
-- A recipient's list and unread count.
CREATE INDEX notifications_by_recipient ON notifications (org_id, recipient_id, created_at);
CREATE INDEX notifications_unread ON notifications (org_id, recipient_id) WHERE read_at IS NULL;

-- Who is told about changes of a record besides its creator and assignee: creators and
-- commenters are added automatically, anyone may watch or unwatch over REST.
CREATE TABLE watchers (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    collection  text NOT NULL,
    entity_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, collection, entity_id, user_id)
);
CREATE INDEX watchers_by_user ON watchers (org_id, user_id);

-- Per user, per event type (`*` is the user's default for every type) and channel: whether to
-- notify. A missing row falls back to the user's `*` row, then to the server's defaults (in-app
-- on; email on for task.assigned and user.mentioned).
CREATE TABLE notification_preferences (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_type  text NOT NULL,
    in_app      boolean NOT NULL,
    email       boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id, event_type)
);

-- Per user: mute everything until a time, and the email digest frequency (read by the email
-- channel, `email::digest_mode`).
CREATE TABLE notification_settings (
    org_id        uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    muted_until   timestamptz,
    email_digest  text NOT NULL DEFAULT 'off' CHECK (email_digest IN ('off', 'hourly', 'daily')),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);

-- Records a user muted: no notification about them (the user still watches them).
CREATE TABLE notification_mutes (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    collection  text NOT NULL,
    entity_id   uuid NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id, collection, entity_id)
);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['notifications', 'watchers', 'notification_preferences',
                             'notification_settings', 'notification_mutes'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON %I USING (org_id = app_org()) WITH CHECK (org_id = app_org())', t);
    END LOOP;
END
$$;
