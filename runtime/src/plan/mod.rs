//! Offline schedule synthesis and verification. (being written)
