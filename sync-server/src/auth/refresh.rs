//! Rotating refresh tokens (to be written).
