//! Outbound webhooks against a real server, a real Postgres and a Python receiver that
//! verifies every request with the `standardwebhooks` package from PyPI.
//!
//! - `delivery`: signatures and rotation, retries with growing delays, `Retry-After`,
//!   timeouts, the delivery log, two processes;
//! - `lifecycle`: 410 and auto-disable with admin notifications, filters, resend and recovery,
//!   personal records;
//! - `admin`: the REST surface (secrets shown once, admins only, the SSRF guard);
//! - `crash`: the real `syncline-server` binary killed between commit and delivery.

mod admin;
mod common;
mod crash;
mod delivery;
mod lifecycle;
