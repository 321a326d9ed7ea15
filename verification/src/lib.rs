//! Shared helpers for the verification suites.
