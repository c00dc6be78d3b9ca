-- The seq of each org's latest authorization change, so that every server process can tell
-- whether its cached authorization model is current (see sync-server/src/authz/cache.rs).
ALTER TABLE org_change_seq ADD COLUMN acl_seq bigint NOT NULL DEFAULT 0;
