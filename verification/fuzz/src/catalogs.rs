//! The task and message catalogs a fuzzed manifest is validated against.
//!
//! Owns: two registries, the ACC demo's real one (which `config/acc.toml` validates
//! against) and the one the manifest rule tests use (which
//! `runtime/src/manifest/testdata/good.toml` validates against). Both seeds only reach
//! the cross-reference rules of validation (task implementations, port types, readers
//! and writers) when their own catalog is used, and the two declare tasks of the same
//! names with different ports, so each input is checked against both. It must never
//! build a task: validation only reads the signatures.

use takt::task::Registry;

/// Both catalogs, built once per fuzzer process (building them allocates and is not
/// what is being fuzzed).
pub struct Catalogs {
    /// `takt_acc::registry()`: the demo deployment's tasks and messages.
    pub acc: Registry,
    /// The registry of `runtime/tests/manifest_rules.rs`.
    pub rules: Registry,
}

impl Catalogs {
    pub fn new() -> Self {
        Catalogs {
            acc: takt_acc::registry(),
            rules: rules_registry(),
        }
    }
}

impl Default for Catalogs {
    fn default() -> Self {
        Catalogs::new()
    }
}

// The registry of `runtime/tests/manifest_rules.rs`, the very same file.
#[path = "../../../runtime/src/manifest/testdata/rules_catalog.rs"]
mod rules_catalog;
use rules_catalog::registry as rules_registry;
