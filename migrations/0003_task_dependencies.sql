-- Task dependencies: the tasks a task depends on (is blocked by), materialized from the
-- record's `depends_on` list (protocol schema: FieldType::RefList("tasks")). An absent or empty
-- list is an empty array, never NULL. The server refuses changes that would create a cycle.
-- Forward-only: never edit this file once applied; add a new one.

ALTER TABLE tasks ADD COLUMN depends_on uuid[] NOT NULL DEFAULT '{}';

-- "Which tasks depend on X" (depends_on @> ARRAY[X]), used by the cycle check and blockers.
CREATE INDEX tasks_depends_on_idx ON tasks USING gin (depends_on);
