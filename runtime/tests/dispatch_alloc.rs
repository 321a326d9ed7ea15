//! Steady-state dispatch allocates nothing of its own. A counting global allocator is read by
//! a probe task at its 5th job and at its last, so only the steady state between them counts
//! (all threads of the process, every core):
//! * with only the reader released (no publish), the extra jobs allocate exactly 0;
//! * with the writer too, the extra allocations equal what raw iceoryx2 allocates for the
//!   same number of `loan_uninit` + `send` calls, measured in the same process: iceoryx2
//!   0.10 allocates one small `Arc` per loaned sample (its `ChunkMutSharedState`), which
//!   takt cannot avoid; takt's walk, jitter, histograms and reader add nothing.
//!
//! Both in simulated and, where SCHED_FIFO is permitted, in real time.

use iceoryx2::prelude::*;
use takt::dispatch::{ClockKind, RunControl};
use takt::task::{
    Ports, Reader, Registry, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport,
};

mod common;

// takt's own counting allocator (the one `takt bench` reads), not a copy of it.
takt::counting_allocator!();

fn count<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = takt::alloc_count::allocations();
    let r = f();
    (takt::alloc_count::allocations() - before, r)
}

/// Reads `tick` like the common consumer and samples the allocation counter.
struct Probe {
    input: Reader<common::Tick>,
    jobs: u64,
    at_fifth: u64,
    at_last: u64,
}

impl Task for Probe {
    fn step(&mut self, ctx: &StepContext) {
        let _ = self.input.read(ctx);
        // Every job reports two faults, so the dispatcher's fault path (count, policy) is
        // part of what must not allocate.
        ctx.fault(1);
        ctx.fault(2);
        self.jobs += 1;
        let now = takt::alloc_count::allocations();
        if self.jobs == 5 {
            self.at_fifth = now;
        }
        self.at_last = now;
    }
    fn finish(&mut self, report: &mut TaskReport) {
        report
            .outcome
            .push(("steady_jobs".into(), (self.jobs - 5).to_string()));
        report.outcome.push((
            "steady_allocations".into(),
            (self.at_last - self.at_fifth).to_string(),
        ));
    }
}

fn build_probe(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Probe {
        input: b.reader("tick")?,
        jobs: 0,
        at_fifth: 0,
        at_last: 0,
    }))
}

/// Steady-state (allocations, reader jobs, writer jobs) of a run of `cycles` hyperperiods.
fn takt_run(clock: ClockKind, cycles: u64, reader_only: bool, tag: &str) -> (u64, u64, u64) {
    // The probe shares core 0 with the writer and runs after it in every cycle, so exactly
    // one publish happens per counted cycle, in real time as in simulated time.
    let d = common::deployment(0, takt::manifest::OverrunPolicy::Report, 0);
    let mut registry = Registry::new();
    registry.task(
        "w",
        Ports::new().writes::<common::Tick>("tick"),
        common::build_producer,
    );
    registry.task("r", Ports::new().reads::<common::Tick>("tick"), build_probe);
    let control = RunControl::new(0);
    if reader_only {
        control.request_mode(1);
    }
    let r = common::run_with(
        &d,
        &registry,
        clock,
        cycles * d.hyperperiod_ns,
        tag,
        &control,
    );
    let outcome = |key: &str| -> u64 {
        r.reports
            .iter()
            .flat_map(|(_, rep)| rep.outcome.iter())
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("probe reported {key}"))
    };
    let writer_jobs = r.tasks.iter().find(|t| t.name == "w").map_or(0, |t| t.jobs);
    let probe = r.tasks.iter().find(|t| t.name == "r").expect("probe stats");
    assert_eq!(
        (probe.faults.jobs, probe.faults.reports),
        (probe.jobs, 2 * probe.jobs),
        "every probe job faulted twice"
    );
    (
        outcome("steady_allocations"),
        outcome("steady_jobs"),
        writer_jobs,
    )
}

/// Allocations per `loan_uninit` + `send` of raw iceoryx2, with one subscriber attached.
fn raw_iceoryx2_allocations_per_publish() -> f64 {
    let node = NodeBuilder::new()
        .create::<ipc::Service>()
        .expect("raw node");
    let name = format!("takt-alloc-raw-{}", std::process::id());
    let service = node
        .service_builder(&ServiceName::new(&name).expect("name"))
        .publish_subscribe::<u64>()
        .enable_safe_overflow(true)
        .open_or_create()
        .expect("raw service");
    let publisher = service.publisher_builder().create().expect("raw publisher");
    let subscriber = service
        .subscriber_builder()
        .create()
        .expect("raw subscriber");
    let publish = |n: u64| {
        for i in 0..n {
            let sample = publisher.loan_uninit().expect("loan").write_payload(i);
            sample.send().expect("send");
            while let Ok(Some(_)) = subscriber.receive() {}
        }
    };
    publish(10);
    let (short, ()) = count(|| publish(100));
    let (long, ()) = count(|| publish(400));
    (long - short) as f64 / 300.0
}

#[test]
fn steady_state_dispatch_allocates_nothing_beyond_iceoryx2() {
    // Without the counter every figure below would be 0 and the test would prove nothing.
    let counting = takt::alloc_count::COUNTING;
    assert!(
        counting,
        "the counting allocator needs takt's `test-hooks` feature: `cargo test --workspace` enables it through the CLI's dev-dependencies; alone, run `cargo test -p takt --features test-hooks`"
    );
    let raw = raw_iceoryx2_allocations_per_publish();
    println!("raw iceoryx2: {raw:.3} allocations per loan+send");
    let mut clocks = vec![ClockKind::Sim];
    if takt::dispatch::probe_realtime(60).is_ok() {
        clocks.push(ClockKind::Real);
    } else {
        eprintln!("SKIPPED steady_state_dispatch_allocates_nothing_beyond_iceoryx2 (real part): SCHED_FIFO not permitted");
    }
    for clock in clocks {
        // Reader only: nothing is published, so nothing may be allocated per job.
        let (allocs, jobs, _) = takt_run(clock, 40, true, "ro");
        println!("{clock} reader only: {allocs} allocations in {jobs} steady-state jobs");
        assert_eq!(jobs, 35);
        assert_eq!(allocs, 0, "{clock}: steady-state reader jobs allocated");
        // Writer and reader: at most iceoryx2's own per-publish allocations.
        let (allocs, jobs, writer_jobs) = takt_run(clock, 40, false, "rw");
        assert_eq!(writer_jobs, 40);
        // Between the probe's 5th and last job the writer published `jobs` samples.
        let per_publish = allocs as f64 / jobs as f64;
        println!("{clock} writer+reader: {allocs} allocations in {jobs} steady-state cycles: {per_publish:.3} per publish (raw iceoryx2: {raw:.3})");
        assert!(
            per_publish <= raw + 1e-9,
            "{clock}: takt allocated {per_publish:.3} per publish, raw iceoryx2 {raw:.3}"
        );
    }
}
