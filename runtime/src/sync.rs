//! The crate-local sync facade: every atomic takt uses comes from here.
//!
//! Under `cfg(loom)` these are loom's model-checked types, otherwise std's. Any lock-free
//! structure takt writes imports its atomics from this module and nowhere else, so every one
//! of them can be model-checked by building with `RUSTFLAGS="--cfg loom"`.

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(loom)]
pub use loom::sync::Arc;

#[cfg(not(loom))]
pub use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub use std::sync::Arc;
