//! Server configuration from the environment (to be written).
