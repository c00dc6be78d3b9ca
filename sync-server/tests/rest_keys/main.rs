//! API keys, idempotency keys and rate limits of the REST bridge, over real HTTP against a real
//! Postgres: keys shown once and stored hashed, scopes enforced with the error envelope,
//! revocation at once, retried POSTs that create one task, and 429 with its headers.

mod common;
mod idempotency;
mod keys;
mod rate_limit;
