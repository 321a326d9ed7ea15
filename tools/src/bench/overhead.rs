//! Part 3, dispatch overhead: the dispatcher's path from wake-up to `step()` entry, and heap
//! allocations per job in steady state.
//!
//! Owns: two runs of one probe task at 1 ms (see `rig::run_probe`): a real-time one
//! (SCHED_FIFO 80, pinned, where permitted) and a simulated one. The task set has no writers
//! (no ports at all), so iceoryx2's own allocation per published sample (one `Arc`, see
//! `runtime/tests/dispatch_alloc.rs`) is excluded and the count is the dispatcher's alone.
//!
//! What the figures are:
//! * `dispatch_overhead_ns_*`: the dispatcher's execution-time reading of the probe's jobs
//!   (`RunReport.tasks[0].execution`): from its clock reading right after the absolute sleep
//!   returns to its reading right after `step` returns. The probe's step is one clock read,
//!   one store and two atomic loads, so this is wake-up to `step()` entry plus those few
//!   tens of nanoseconds: an upper bound of the dispatch overhead, per job, with no estimate
//!   involved.
//! * `dispatch_wakeup_lateness_ns_*`: the dispatcher's own release lateness in the same run
//!   (wake-up minus planned start: the kernel's part).
//! * `dispatch_step_entry_late_ns_*`: per job, the probe's `monotonic_now_ns()` at step entry
//!   minus the planned start, the epoch recovered as `rig::record_step_entry_lateness` says.
//!   It is the sum of the two above, measured per job from inside the task, less the epoch
//!   estimate's error (about one job's dispatch path): compare it with the wake-up row.
//! * `allocations_per_job_*`: process-wide allocations counted by the binary's counting
//!   allocator between the probe's 5th and last job, divided by the jobs in between. The
//!   bench's main thread only sleeps meanwhile (no progress updates), so everything counted
//!   is the dispatcher's. `allocations_per_job` is the larger of the real-time and simulated
//!   figures.

use takt::dispatch::{ClockKind, Quantiles};

use super::report::{fmt_ns, Report, Row};
use super::rig::{self, ProbeCapture, RT_PRIORITY};
use super::Env;

pub const PART: &str = "dispatch";

pub const KEYS: &[&str] = &[
    "dispatch_overhead_ns_p50",
    "dispatch_overhead_ns_p99",
    "dispatch_overhead_ns_max",
    "dispatch_wakeup_lateness_ns_p50",
    "dispatch_wakeup_lateness_ns_p99",
    "dispatch_wakeup_lateness_ns_max",
    "dispatch_step_entry_late_ns_p50",
    "dispatch_step_entry_late_ns_p99",
    "dispatch_step_entry_late_ns_max",
    "dispatch_jobs_real",
    "dispatch_jobs_sim",
    "allocations_per_job",
    "allocations_per_job_real",
    "allocations_per_job_sim",
    "allocated_bytes_per_job_real",
    "allocated_bytes_per_job_sim",
];

/// (allocations, bytes) per steady-state job; `None` in a binary that counts nothing.
fn allocations_per_job(c: &ProbeCapture) -> Option<(f64, f64)> {
    (super::alloc::COUNTING && c.steady_jobs > 0).then(|| {
        let jobs = c.steady_jobs as f64;
        (
            c.steady_allocations as f64 / jobs,
            c.steady_allocated_bytes as f64 / jobs,
        )
    })
}

pub fn run(env: &Env, r: &mut Report) {
    let sim_jobs: u64 = if env.quick { 20_000 } else { 200_000 };
    let real_jobs: u64 = if env.quick { 2_000 } else { 10_000 };

    env.step(format!(
        "simulated: {sim_jobs} probe jobs, counting allocations"
    ));
    let namespace = |clock: ClockKind| format!("{}-dispatch-{clock}", env.namespace);
    let core = env.measure_core();
    // No progress updates during the runs (`|_| {}`): they would allocate on this thread
    // while the probe counts the process's allocations.
    let sim_allocations = match rig::run_probe(
        namespace(ClockKind::Sim),
        core,
        ClockKind::Sim,
        sim_jobs,
        0,
        |_| {},
    ) {
        Ok(run) => {
            r.set_count("dispatch_jobs_sim", run.capture.jobs);
            allocations_per_job(&run.capture)
        }
        Err(e) => {
            env.fail(r, PART, format!("simulated probe run: {e}"));
            None
        }
    };
    if let Some((a, bytes)) = sim_allocations {
        r.set("allocations_per_job_sim", a);
        r.set("allocated_bytes_per_job_sim", bytes);
    }

    let mut real_allocations = None;
    let mut overhead: Option<Quantiles> = None;
    let mut wakeup: Option<Quantiles> = None;
    let mut entry: Option<Quantiles> = None;
    match &env.not_realtime {
        Some(why) => env.skip(
            r,
            "dispatch (real time)",
            format!("SCHED_FIFO {RT_PRIORITY} is not permitted here: {why}"),
        ),
        None => {
            env.step(format!(
                "real time: {real_jobs} probe jobs at 1 ms on core {core}"
            ));
            match rig::run_probe(
                namespace(ClockKind::Real),
                core,
                ClockKind::Real,
                real_jobs,
                real_jobs,
                |_| {},
            ) {
                Ok(run) => {
                    r.set_count("dispatch_jobs_real", run.capture.jobs);
                    real_allocations = allocations_per_job(&run.capture);
                    overhead = run.report.tasks.first().map(|t| t.execution);
                    wakeup = run.report.tasks.first().map(|t| t.lateness);
                    let mut h = rig::histogram();
                    if rig::record_step_entry_lateness(&mut h, &run) {
                        entry = Some(Quantiles::of(&h));
                    }
                }
                Err(e) => env.fail(r, PART, format!("real-time probe run: {e}")),
            }
        }
    }
    if let Some((a, bytes)) = real_allocations {
        r.set("allocations_per_job_real", a);
        r.set("allocated_bytes_per_job_real", bytes);
    }
    if let Some(q) = overhead {
        r.set("dispatch_overhead_ns_p50", q.p50_ns as f64);
        r.set("dispatch_overhead_ns_p99", q.p99_ns as f64);
        r.set("dispatch_overhead_ns_max", q.max_ns as f64);
    }
    if let Some(q) = wakeup {
        r.set("dispatch_wakeup_lateness_ns_p50", q.p50_ns as f64);
        r.set("dispatch_wakeup_lateness_ns_p99", q.p99_ns as f64);
        r.set("dispatch_wakeup_lateness_ns_max", q.max_ns as f64);
    }
    if let Some(q) = entry {
        r.set("dispatch_step_entry_late_ns_p50", q.p50_ns as f64);
        r.set("dispatch_step_entry_late_ns_p99", q.p99_ns as f64);
        r.set("dispatch_step_entry_late_ns_max", q.max_ns as f64);
    }
    let real_allocations = real_allocations.map(|(a, _)| a);
    let sim_allocations = sim_allocations.map(|(a, _)| a);
    if !super::alloc::COUNTING {
        // A shipped binary has no counting allocator (a test hook, issue #12.11): its
        // figures would read 0 without having counted anything.
        env.skip(
            r,
            "dispatch allocations",
            "this takt binary counts no allocations: the counting allocator is a test hook (`cargo test -p takt-cli --test bench` builds it in)",
        );
    }
    let worst = match (real_allocations, sim_allocations) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    if let Some(a) = worst {
        r.set("allocations_per_job", a);
    }

    let ns = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |v| fmt_ns(v as f64));
    for (name, value, target) in [
        ("p50", overhead.map(|q| q.p50_ns), false),
        ("p99", overhead.map(|q| q.p99_ns), true),
        ("max", overhead.map(|q| q.max_ns), false),
    ] {
        let mut row = Row::new(
            PART,
            format!("wake-up to step() entry {name} (upper bound)"),
        )
        .takt(ns(value));
        if target {
            row = row.at_most(value.map(|v| v as f64), 1000.0, "<= 1 us");
        }
        r.row(row);
    }
    for (name, woke, entered) in [
        ("p50", wakeup.map(|q| q.p50_ns), entry.map(|q| q.p50_ns)),
        ("p99", wakeup.map(|q| q.p99_ns), entry.map(|q| q.p99_ns)),
        ("max", wakeup.map(|q| q.max_ns), entry.map(|q| q.max_ns)),
    ] {
        r.row(
            Row::new(PART, format!("wake-up after planned start {name} (kernel)")).takt(ns(woke)),
        );
        r.row(Row::new(PART, format!("step() entry after planned start {name}")).takt(ns(entered)));
    }
    for (name, value) in [
        ("allocations per job, real time", real_allocations),
        ("allocations per job, simulated", sim_allocations),
    ] {
        r.row(
            Row::new(PART, name)
                .takt(value.map_or_else(|| "-".to_string(), |v| format!("{v:.3}")))
                .at_most(value, 0.0, "0"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_per_steady_job() {
        let c = ProbeCapture {
            steady_jobs: 4,
            steady_allocations: 2,
            steady_allocated_bytes: 64,
            ..ProbeCapture::default()
        };
        assert_eq!(allocations_per_job(&c), Some((0.5, 16.0)));
        assert_eq!(allocations_per_job(&ProbeCapture::default()), None);
    }
}
