-- A version per stored document, bumped by every write of its state, so that a server process
-- can keep recently written documents decoded in memory and know, from the locked row alone,
-- whether its copy is current (sync-server/src/merge/cache.rs; docs/benchmarks.md).
ALTER TABLE documents ADD COLUMN version bigint NOT NULL DEFAULT 0;
