//! The task catalog of the manifest rule tests: the implementations
//! `runtime/src/manifest/testdata/good.toml` uses, plus a few whose signatures break a rule
//! when a manifest names them.
//!
//! Owns: three message types and one [`Registry`]. Not part of the library: it is compiled
//! into `runtime/tests/manifest_rules.rs` and into the manifest fuzzer
//! (`verification/fuzz/src/catalogs.rs`) with `#[path]`, so both validate against the very
//! same signatures. It must never build a task: validation only reads the signatures.

use takt::task::{Ports, Registry, Task, TaskBuildError, TaskBuilder};

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct RadarTrack {
        pub range_m: f64,
        pub speed_mps: f64,
    }
}

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Objects {
        pub nearest_m: f64,
        pub count: u32,
        pub flags: u32,
    }
}

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Command {
        pub accel_mps2: f64,
    }
}

/// Validation never constructs tasks; a constructor that refuses keeps that visible.
pub fn not_built(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Err(b.fail("manifest tests and fuzz targets never construct tasks"))
}

/// The implementations `good.toml` uses, plus a few whose signatures break a rule when a
/// test (or a fuzzed input) adds them to the manifest.
pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.task(
        "radar",
        Ports::new().writes::<RadarTrack>("radar_track"),
        not_built,
    );
    r.task(
        "camera",
        Ports::new().writes::<Objects>("camera_objects"),
        not_built,
    );
    r.task(
        "perception",
        Ports::new()
            .reads::<RadarTrack>("radar_track")
            .reads::<Objects>("camera_objects")
            .writes::<Objects>("objects"),
        not_built,
    );
    r.task(
        "planner",
        Ports::new()
            .reads::<Objects>("objects")
            .writes::<Command>("command"),
        not_built,
    );
    r.task(
        "controller",
        Ports::new().reads::<Command>("command"),
        not_built,
    );
    // A second implementation writing the radar's topic.
    r.task(
        "radar2",
        Ports::new().writes::<RadarTrack>("radar_track"),
        not_built,
    );
    // Reads `objects` with the wrong type.
    r.task(
        "bad_reader",
        Ports::new().reads::<Command>("objects"),
        not_built,
    );
    // Writes a topic no channel in `GOOD` declares.
    r.task(
        "ghost",
        Ports::new().writes::<Objects>("ghost_topic"),
        not_built,
    );
    // Reads `objects` correctly, but `GOOD` does not list it as a reader.
    r.task(
        "logger",
        Ports::new().reads::<Objects>("objects"),
        not_built,
    );
    for name in ["tick_a", "tick_b", "slow"] {
        r.task(name, Ports::new(), not_built);
    }
    r
}
