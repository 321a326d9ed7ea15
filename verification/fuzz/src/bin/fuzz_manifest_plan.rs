//! AFL++ target: one input is one manifest text; every manifest the parser accepts is
//! then synthesized into a plan, which must pass the independent verifier (see
//! `takt_fuzz::manifest`). Slower per input than `fuzz_manifest`, which fuzzes the parser
//! alone. Any panic is a bug.
//!
//! Replay a crash outside the fuzzer: `target/release/fuzz_manifest_plan < crash-file`.

use takt_fuzz::catalogs::Catalogs;
use takt_fuzz::manifest::check_manifest_plan;

fn main() {
    // `AssertUnwindSafe`: task constructors may be closures (not `RefUnwindSafe`), but an
    // input only reads the registries' signatures and never builds a task, so a panic
    // cannot leave them half-changed for the next input.
    let catalogs = std::panic::AssertUnwindSafe(Catalogs::new());
    afl::fuzz!(|data: &[u8]| {
        check_manifest_plan(&catalogs, data);
    });
}
