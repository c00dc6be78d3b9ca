//! argon2id password hashing (to be written).
