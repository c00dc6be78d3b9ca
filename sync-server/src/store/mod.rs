//! SQL behind the sync protocol (being written).
