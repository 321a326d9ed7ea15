//! AFL++ target: one input is the bytes of one trace file, read by every reader entry
//! point of `takt::trace`, as it is and with its checksums repaired (see
//! `takt_fuzz::trace`). Any panic is a bug.
//!
//! Replay a crash outside the fuzzer: `target/release/fuzz_trace < crash-file`.

use takt_fuzz::trace::check_trace;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        check_trace(data);
    });
}
