//! Wall-clock time for soft deletes and outbox timestamps. `std::time::SystemTime::now()`
//! panics on `wasm32-unknown-unknown`, so the browser build asks JavaScript's `Date.now()`.

/// Milliseconds since the Unix epoch, UTC.
#[cfg(not(target_arch = "wasm32"))]
pub fn now_millis() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    // A clock before 1970 is a broken machine; 0 keeps the value well-formed rather than failing
    // the user's write over metadata.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Milliseconds since the Unix epoch, UTC.
#[cfg(target_arch = "wasm32")]
pub fn now_millis() -> i64 {
    // `Date.now()` returns an integral number of milliseconds as an f64.
    js_sys::Date::now() as i64
}
