//! AFL++ target: one input is one manifest text, parsed by `takt::manifest::parse`
//! against the ACC catalog and the manifest-rules catalog. Any panic is a bug: either in
//! the parser or a broken property listed in `takt_fuzz::manifest`.
//!
//! Outside `cargo afl fuzz` the binary reads one input from standard input and checks
//! it, which is how a crash is replayed: `target/release/fuzz_manifest < crash-file`.

use takt_fuzz::catalogs::Catalogs;
use takt_fuzz::manifest::check_manifest;

fn main() {
    // Built once per process, before the fork server starts, so each input pays only
    // for the parse.
    // `AssertUnwindSafe`: task constructors may be closures (not `RefUnwindSafe`), but an
    // input only reads the registries' signatures and never builds a task, so a panic
    // cannot leave them half-changed for the next input.
    let catalogs = std::panic::AssertUnwindSafe(Catalogs::new());
    afl::fuzz!(|data: &[u8]| {
        check_manifest(&catalogs, data);
    });
}
