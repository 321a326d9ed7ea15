//! takt: a deterministic real-time middleware runtime for automotive Linux.
//!
//! # Layers
//!
//! Every module uses only modules listed above it here (bottom first). The test
//! `runtime/tests/layering.rs` reads this list and fails on any `crate::` path that points
//! up or sideways, and on any cycle between the files of one module.
//!
//! 1. [`sync`]: the crate-local facade for atomics (switches to loom under `cfg(loom)`).
//! 2. [`rng`]: SplitMix64, the seeded generator of tasks' noise models and injected jitter.
//! 3. [`alloc_count`]: the counting allocator that shows the hot path allocates nothing.
//! 4. [`logging`]: the stderr sink for what the library logs through the `log` facade.
//! 5. [`fsio`]: bounded reads and durable (fsync'd) writes of files.
//! 6. [`process`]: child processes: spawn, bounded wait, kill.
//! 7. [`time`]: logical time, the monotonic clock contract, real and simulated clocks.
//! 8. [`trace`]: the trace record, the per-core ring and the trace file.
//! 9. [`port`]: typed zero-copy `Writer<T>`/`Reader<T>` over iceoryx2 with LET
//!    visibility, and the structural layout fingerprint of message types.
//! 10. [`manifest`]: TOML deployment manifest → typed, validated model. Pure, no I/O
//!     besides reading the file it is given.
//! 11. [`plan`]: offline schedule synthesis, an independent verifier and analytic chain
//!     bounds. Pure.
//! 12. [`task`]: the `Task` trait, the step context, the registry of constructors.
//! 13. [`dispatch`]: one pinned SCHED_FIFO dispatcher per core walking the static table.
//! 14. [`ota`]: signed update bundles, stage checks, A/B slots and the power-cut-safe
//!     journal.
//! 15. [`catalog`]: what an app executable implements, learnt by the handshake.
//! 16. [`lifecycle`]: the supervisor of one process per app, its control socket and shared
//!     control block, and the app process's entry point.
//!
//! What the library reports (supervision, OTA steps, an app process's failure) goes through
//! the `log` facade, never straight to stderr; [`logging::to_stderr`] is the sink the `takt`
//! CLI and every app process install.
//!
//! Apps link only against the public API re-exported here and build under
//! `#![deny(unsafe_code)]`; every `unsafe` block of takt lives in this crate.
//!
//! # Features
//!
//! * `platform` (default): what the `takt` CLI needs besides an app's own process:
//!   manifest parsing (`manifest::load`, TOML), the supervisor
//!   (`lifecycle::supervise`, mio), [`ota`] (ed25519, HMAC) and the catalog handshake with
//!   executables. An app crate depends on takt with `default-features = false`: its process
//!   is handed a validated host plan by the supervisor
//!   ([`lifecycle::host_plan`]) and never parses or plans.
//! * `test-hooks`: test-only hooks, never in a shipped binary.

pub mod alloc_count;
pub mod catalog;
pub mod dispatch;
pub mod fsio;
// Shared memory across processes holds plain std atomics; loom's model types cannot live there.
#[cfg(not(loom))]
pub mod lifecycle;
pub mod logging;
pub mod manifest;
#[cfg(feature = "platform")]
pub mod ota;
pub mod plan;
pub mod port;
pub mod process;
pub mod rng;
pub mod sync;
pub mod task;
pub mod time;
pub mod trace;

/// What `takt::message!` expands to. Not part of the app API: iceoryx2 is takt's
/// implementation, and an app never names its types.
#[doc(hidden)]
pub mod __private {
    pub use iceoryx2::prelude::ZeroCopySend;
}
