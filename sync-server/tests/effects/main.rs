//! The transactional outbox over a real server and Postgres: events, jobs and audit rows are
//! written with the change (and only with an accepted change), workers retry with backoff,
//! dead-letter and replay, reap jobs of dead workers, never run a job twice across processes;
//! the audit log is append-only in Postgres; comments and mentions; activity feeds.

mod audit;
mod common;
mod outbox;
mod workers;
