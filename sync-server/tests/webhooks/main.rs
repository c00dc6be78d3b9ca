//! Outbound webhooks against a real server, a real Postgres and a Python receiver that
//! verifies every request with the `standardwebhooks` package from PyPI.
//!
//! - `delivery`: signatures, retries with growing delays, the delivery log, 410, filters,
//!   rotation, resend and recovery, auto-disable;
//! - `admin`: the REST surface (secrets shown once, admins only, the SSRF guard);
//! - `crash`: the real `syncline-server` binary killed between commit and delivery.

mod admin;
mod common;
mod crash;
mod delivery;
