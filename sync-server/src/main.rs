//! `syncline-server` binary (to be written).
fn main() {}
