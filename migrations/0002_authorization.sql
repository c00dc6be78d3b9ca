-- Authorization: teams, Zanzibar-style relation tuples for per-document sharing, and
-- invitations to an org. Org roles live in org_members (0001).
--
-- A tuple reads `object_type:object_id#relation@subject_type:subject_id[#subject_relation]`,
-- e.g. `task:42#editor@user:7` or `task:42#viewer@team:3#member`.

CREATE TABLE teams (
    org_id      uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id          uuid NOT NULL,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, id)
);

CREATE TABLE team_members (
    org_id      uuid NOT NULL,
    team_id     uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, team_id, user_id),
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE
);

CREATE TABLE relation_tuples (
    org_id            uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    object_type       text NOT NULL,
    object_id         uuid NOT NULL,
    relation          text NOT NULL CHECK (relation IN ('viewer', 'commenter', 'suggester', 'editor', 'owner')),
    subject_type      text NOT NULL CHECK (subject_type IN ('user', 'team')),
    subject_id        uuid NOT NULL,
    -- For team subjects: the team relation that grants, always 'member' today.
    subject_relation  text CHECK (subject_relation IS NULL OR subject_relation = 'member'),
    created_by        uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, object_type, object_id, relation, subject_type, subject_id)
);
CREATE INDEX relation_tuples_subject_idx ON relation_tuples (org_id, subject_type, subject_id);

-- Invitations by e-mail token: only a SHA-256 of the token is stored; accepting creates the
-- membership with the invited role.
CREATE TABLE invitations (
    org_id       uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    id           uuid NOT NULL,
    email        text NOT NULL,
    role         text NOT NULL CHECK (role IN ('admin', 'member', 'guest')),
    token_hash   bytea NOT NULL UNIQUE,
    invited_by   uuid NOT NULL REFERENCES users (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    accepted_at  timestamptz,
    accepted_by  uuid REFERENCES users (id),
    PRIMARY KEY (org_id, id)
);
