//! What attribution costs a dispatcher per job: the two reads of the thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`, a real syscall) next to a `CLOCK_MONOTONIC` read (vDSO).
//!
//! `cargo run --release -p takt --example attribution_cost`
//!
//! Prints the mean cost per call of each clock over a million calls, and the per-job cost
//! of attribution (two CPU-time reads). A measurement, not a test: it asserts nothing.

use std::time::Instant;

fn per_call_ns(calls: u32, mut f: impl FnMut() -> u64) -> f64 {
    let mut sink = 0u64;
    let start = Instant::now();
    for _ in 0..calls {
        sink = sink.wrapping_add(f());
    }
    let ns = start.elapsed().as_nanos() as f64 / f64::from(calls);
    std::hint::black_box(sink);
    ns
}

fn main() {
    const CALLS: u32 = 1_000_000;
    // Warm up both paths once.
    per_call_ns(10_000, takt::dispatch::thread_cpu_ns);
    per_call_ns(10_000, takt::time::monotonic_now_ns);
    let cpu = per_call_ns(CALLS, takt::dispatch::thread_cpu_ns);
    let mono = per_call_ns(CALLS, takt::time::monotonic_now_ns);
    println!("CLOCK_THREAD_CPUTIME_ID: {cpu:.0} ns per read");
    println!("CLOCK_MONOTONIC:         {mono:.0} ns per read");
    println!(
        "attribution per job (two CPU-time reads): {:.2} us",
        2.0 * cpu / 1000.0
    );
}
