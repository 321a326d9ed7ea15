//! The bench's rig: what several parts share.
//!
//! Owns: hand-built deployments (no manifest parser involved) and one-window plans (no
//! planner involved), the two tasks the bench dispatches (`Probe`, which captures its step
//! entry times and the allocation counter, and `Idle`, which does nothing), a dispatcher run
//! that can never hang, pinning and SCHED_FIFO for the bench's own threads, and quantiles of
//! HDR histograms. It never prints and never decides what a figure means.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use takt::dispatch::{self, ClockKind, RunControl, RunOptions, RunReport};
use takt::manifest::{AppSpec, Deployment, ModeSpec, OverrunPolicy, ParamValue, TaskSpec, Wake};
use takt::plan::{CoreTable, ModePlan, Plan, Window};
use takt::task::{
    Ports, Registry, StepContext, Task, TaskBuildError, TaskBuilder, TaskConstructor, TaskReport,
};
use takt::time::monotonic_now_ns;

use super::alloc;

pub const MS_NS: u64 = 1_000_000;

/// SCHED_FIFO priority of every real-time thread of the bench: the dispatcher, cyclictest and
/// the port threads, so no part is favoured over its baseline.
pub const RT_PRIORITY: u8 = 80;

/// Largest value the bench's histograms track: 60 s (larger values are clamped).
const HIGHEST_NS: u64 = 60_000_000_000;

/// A histogram over 1 ns .. 60 s with three significant digits (0.1 % resolution).
pub fn histogram() -> Histogram<u64> {
    // The bounds are constants that satisfy hdrhistogram's rules (low >= 1, high >= 2 * low,
    // 0..=5 significant digits), so creation cannot fail.
    Histogram::new_with_bounds(1, HIGHEST_NS, 3)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// Records `value_ns`, clamped to the histogram's range.
pub fn record(h: &mut Histogram<u64>, value_ns: u64) {
    h.saturating_record(value_ns.min(HIGHEST_NS));
}

/// The median of `values` (the lower middle one for an even count), `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(values[(values.len() - 1) / 2])
}

/// A periodic task with offset 0 and LET = period, reporting overruns.
pub fn task_spec(
    name: &str,
    period_ns: u64,
    budget_ns: u64,
    core: usize,
    params: BTreeMap<String, ParamValue>,
) -> TaskSpec {
    TaskSpec {
        name: name.to_string(),
        implementation: name.to_string(),
        topics: BTreeMap::new(),
        app: 0,
        period_ns,
        offset_ns: 0,
        budget_ns,
        let_ns: period_ns,
        core,
        overrun: OverrunPolicy::Report,
        on_fault: Default::default(),
        params,
        line: 0,
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A deployment of `tasks` without channels: one app, one mode running every task, the
/// bench's priority. Fails if a period is 0 or the hyperperiod overflows.
pub fn deployment(
    name: &str,
    cores: Vec<usize>,
    tasks: Vec<TaskSpec>,
) -> Result<Deployment, String> {
    let mut hyperperiod_ns = 1u64;
    for t in &tasks {
        if t.period_ns == 0 {
            return Err(format!("{name}: task `{}` has period 0", t.name));
        }
        hyperperiod_ns = (hyperperiod_ns / gcd(hyperperiod_ns, t.period_ns))
            .checked_mul(t.period_ns)
            .ok_or_else(|| format!("{name}: the hyperperiod of the task periods overflows"))?;
    }
    Ok(Deployment {
        name: name.to_string(),
        source: format!("<takt bench: {name}>"),
        cores,
        priority: RT_PRIORITY,
        apps: vec![AppSpec {
            name: "bench".into(),
            executable: None,
            supervision: Default::default(),
        }],
        modes: vec![ModeSpec {
            name: "run".into(),
            tasks: (0..tasks.len()).collect(),
        }],
        tasks,
        channels: vec![],
        chains: vec![],
        default_mode: 0,
        update_safe_modes: vec![],
        hyperperiod_ns,
        ota: Default::default(),
        wake: Default::default(),
    })
}

/// The plan of a deployment whose only task has period = hyperperiod: one window at the
/// start of every cycle, released at the window start.
pub fn one_window_plan(d: &Deployment) -> Result<Plan, String> {
    let [t] = d.tasks.as_slice() else {
        return Err(format!(
            "{}: a one-window plan needs exactly one task, the deployment has {}",
            d.name,
            d.tasks.len()
        ));
    };
    if t.period_ns != d.hyperperiod_ns || t.budget_ns > t.let_ns {
        return Err(format!(
            "{}: task `{}` does not fit one window per cycle (period {} ns, hyperperiod {} ns, budget {} ns, LET {} ns)",
            d.name, t.name, t.period_ns, d.hyperperiod_ns, t.budget_ns, t.let_ns
        ));
    }
    let windows = vec![Window {
        start_ns: 0,
        task: 0,
        budget_ns: t.budget_ns,
        release_ns: 0,
        deadline_ns: t.let_ns,
        job_in_cycle: 0,
    }];
    let spin_ns = takt::plan::spin_ns(
        &windows,
        d.wake.for_core(t.core).margin_ns(),
        d.hyperperiod_ns,
    );
    Ok(Plan {
        hyperperiod_ns: d.hyperperiod_ns,
        modes: vec![ModePlan {
            mode: 0,
            cores: vec![CoreTable {
                core: t.core,
                windows,
                utilization_ppm: t.budget_ns * 1_000_000 / d.hyperperiod_ns,
                spin_ns,
            }],
        }],
        channels: vec![],
        chains: vec![],
    })
}

/// A registry that builds every task of `d` with `ctor` (the bench's tasks have no ports).
pub fn registry(d: &Deployment, ctor: TaskConstructor) -> Registry {
    let mut r = Registry::new();
    for t in &d.tasks {
        r.task(&t.name, Ports::new(), ctor);
    }
    r
}

/// Jobs a probe lets pass before it starts counting allocations: the first jobs of a run may
/// still touch things for the first time (lazily initialised state, first histogram
/// buckets), which is start-up, not steady state.
pub const PROBE_WARMUP_JOBS: u64 = 5;

/// What a probe task saw, handed over when the run finishes.
#[derive(Debug, Default)]
pub struct ProbeCapture {
    /// `CLOCK_MONOTONIC` at the start of the task's `finish`, right after the dispatcher's
    /// own end-of-run reading.
    pub finish_ns: u64,
    /// Per job (up to the capture capacity): `CLOCK_MONOTONIC` at step entry minus the
    /// job's logical release, i.e. `epoch + lateness of the step entry`.
    pub entry_minus_release_ns: Vec<u64>,
    pub jobs: u64,
    /// Jobs after the warm-up ones.
    pub steady_jobs: u64,
    /// Process-wide heap allocations during those jobs.
    pub steady_allocations: u64,
    /// Bytes those allocations requested.
    pub steady_allocated_bytes: u64,
}

/// The last finished probe's capture. A task constructor is a plain `fn`, so a global slot
/// is the only way out of a task; the bench runs one deployment at a time.
static PROBE_CAPTURE: Mutex<Option<ProbeCapture>> = Mutex::new(None);

/// Takes the capture of the last probe that finished.
pub fn take_probe_capture() -> Option<ProbeCapture> {
    PROBE_CAPTURE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
}

/// Records its step entry time and reads the allocation counter; nothing else. The entry
/// buffer is allocated in the constructor, so `step` never allocates.
struct Probe {
    entry_minus_release_ns: Vec<u64>,
    jobs: u64,
    /// (allocations, bytes) after the warm-up jobs and at the last job.
    allocations_after_warmup: (u64, u64),
    allocations_at_last: (u64, u64),
}

impl Task for Probe {
    fn step(&mut self, ctx: &StepContext) {
        let entry_ns = monotonic_now_ns();
        if self.entry_minus_release_ns.len() < self.entry_minus_release_ns.capacity() {
            self.entry_minus_release_ns
                .push(entry_ns.saturating_sub(ctx.release_ns()));
        }
        self.jobs += 1;
        let allocations = (alloc::allocations(), alloc::allocated_bytes());
        if self.jobs == PROBE_WARMUP_JOBS {
            self.allocations_after_warmup = allocations;
        }
        self.allocations_at_last = allocations;
    }

    fn finish(&mut self, _report: &mut TaskReport) {
        // First, so it is as close as possible to the dispatcher's end-of-run reading.
        let finish_ns = monotonic_now_ns();
        let steady_jobs = self.jobs.saturating_sub(PROBE_WARMUP_JOBS);
        let (first, last) = if steady_jobs == 0 {
            ((0, 0), (0, 0))
        } else {
            (self.allocations_after_warmup, self.allocations_at_last)
        };
        let capture = ProbeCapture {
            finish_ns,
            entry_minus_release_ns: std::mem::take(&mut self.entry_minus_release_ns),
            jobs: self.jobs,
            steady_jobs,
            steady_allocations: last.0 - first.0,
            steady_allocated_bytes: last.1 - first.1,
        };
        *PROBE_CAPTURE
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(capture);
    }
}

/// Builds a probe; parameter `capture` = how many step entries to keep (default 0).
pub fn build_probe(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    let capture = b.param_i64("capture", 0)?;
    let capacity = usize::try_from(capture).map_err(|_| {
        b.fail(format!(
            "parameter `capture` is {capture}; allowed is 0 or a positive number of jobs"
        ))
    })?;
    Ok(Box::new(Probe {
        entry_minus_release_ns: Vec::with_capacity(capacity),
        jobs: 0,
        allocations_after_warmup: (0, 0),
        allocations_at_last: (0, 0),
    }))
}

/// A task whose step does nothing, so a run measures the dispatcher alone.
struct Idle;

impl Task for Idle {
    fn step(&mut self, ctx: &StepContext) {
        std::hint::black_box(ctx);
    }
}

pub fn build_idle(_b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Idle))
}

/// The probe's budget: far above what its step needs, so no overrun policy ever acts.
const PROBE_BUDGET_NS: u64 = 100_000;

/// One probe run: what the dispatcher reported and what the probe captured.
pub struct ProbeRun {
    pub report: RunReport,
    pub capture: ProbeCapture,
}

/// Runs one probe task at 1 ms on `core` for `jobs` jobs (SCHED_FIFO [`RT_PRIORITY`] in real
/// time, which must be permitted), keeping up to `capture` step entries. `tick` sees the live
/// control block about every 50 ms and must not allocate when allocations are counted.
pub fn run_probe(
    namespace: String,
    core: usize,
    clock: ClockKind,
    jobs: u64,
    capture: u64,
    tick: impl FnMut(&RunControl),
) -> Result<ProbeRun, String> {
    run_probe_traced(namespace, core, clock, jobs, capture, None, tick)
}

/// [`run_probe`] with the dispatcher waking by `wake` (sleeping or spinning to the start).
pub fn run_probe_waking(
    namespace: String,
    core: usize,
    wake: Wake,
    jobs: u64,
    capture: u64,
    tick: impl FnMut(&RunControl),
) -> Result<ProbeRun, String> {
    probe(
        namespace,
        core,
        ClockKind::Real,
        jobs,
        capture,
        None,
        wake,
        tick,
    )
}

/// [`run_probe`], recording a trace of every job when `trace` is given.
pub fn run_probe_traced(
    namespace: String,
    core: usize,
    clock: ClockKind,
    jobs: u64,
    capture: u64,
    trace: Option<takt::dispatch::TraceOptions>,
    tick: impl FnMut(&RunControl),
) -> Result<ProbeRun, String> {
    probe(
        namespace,
        core,
        clock,
        jobs,
        capture,
        trace,
        Wake::Sleep,
        tick,
    )
}

#[allow(clippy::too_many_arguments)]
fn probe(
    namespace: String,
    core: usize,
    clock: ClockKind,
    jobs: u64,
    capture: u64,
    trace: Option<takt::dispatch::TraceOptions>,
    wake: Wake,
    tick: impl FnMut(&RunControl),
) -> Result<ProbeRun, String> {
    let mut params = BTreeMap::new();
    let capture =
        i64::try_from(capture).map_err(|_| format!("capture count {capture} is too large"))?;
    params.insert("capture".to_string(), ParamValue::Int(capture));
    let task = task_spec("probe", MS_NS, PROBE_BUDGET_NS, core, params);
    let mut d = deployment("bench-probe", vec![core], vec![task])?;
    d.wake.default = wake;
    let plan = one_window_plan(&d)?;
    let registry = registry(&d, build_probe);
    let duration_ns = jobs * MS_NS;
    let opts = RunOptions {
        clock,
        duration_ns,
        allow_non_rt: false,
        priority: Some(RT_PRIORITY),
        namespace: Some(namespace),
        trace,
        ..RunOptions::default()
    };
    let limit = Duration::from_nanos(duration_ns) + Duration::from_secs(30);
    let _ = take_probe_capture(); // nothing stale may pass for this run's capture
    let report = run_bounded(d, plan, registry, opts, limit, tick)?;
    let capture = take_probe_capture().ok_or("the probe task did not report")?;
    if capture.jobs != jobs {
        return Err(format!(
            "the probe ran {} jobs, {jobs} were planned",
            capture.jobs
        ));
    }
    if clock == ClockKind::Real && !report.realtime {
        return Err("the dispatcher did not run under SCHED_FIFO".to_string());
    }
    Ok(ProbeRun { report, capture })
}

/// Records, per captured job of a real-time probe run, step entry minus planned start
/// (`epoch + release`) into `h`. Returns false when there is nothing to record.
///
/// The runtime does not hand the epoch to tasks, so it is recovered from two observable
/// upper bounds and the tighter one is used: (a) the probe's clock reading at the start of
/// `finish` minus `RunReport.wall_ns` (the dispatcher reads the clock for the end of the run
/// just before calling `finish`), and (b) the smallest `entry - release` minus the
/// dispatcher's smallest measured lateness (a step cannot start before its wake-up). Both
/// can only overestimate the epoch, so the figures can only come out too small. On the
/// development VM (b) always won, by 30..570 ns; its error is the dispatch path (wake-up to
/// step entry) of the job with the smallest entry lateness, typically 0.1..0.4 µs. So in
/// effect these figures are the wake-up lateness plus the *variation* of the dispatch path.
/// Exact figures need the epoch (or each job's planned start) from the runtime.
pub fn record_step_entry_lateness(h: &mut Histogram<u64>, run: &ProbeRun) -> bool {
    match run.report.tasks.first() {
        Some(stats) => record_entries(h, &run.capture, run.report.wall_ns, stats.lateness.min_ns),
        None => false,
    }
}

/// [`record_step_entry_lateness`] on the figures it uses: the capture, the run's wall time
/// and the dispatcher's smallest lateness.
fn record_entries(
    h: &mut Histogram<u64>,
    capture: &ProbeCapture,
    wall_ns: u64,
    lateness_min_ns: u64,
) -> bool {
    let Some(&smallest) = capture.entry_minus_release_ns.iter().min() else {
        return false;
    };
    let (Some(bound_from_finish), Some(bound_from_lateness)) = (
        capture.finish_ns.checked_sub(wall_ns),
        smallest.checked_sub(lateness_min_ns),
    ) else {
        return false;
    };
    let epoch_ns = bound_from_finish.min(bound_from_lateness);
    for y in &capture.entry_minus_release_ns {
        record(h, y.saturating_sub(epoch_ns));
    }
    true
}

/// How often a bounded run looks at its worker.
const RUN_POLL: Duration = Duration::from_millis(50);
/// How long a run may take to honour a stop request before it is abandoned.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs `dispatch::run` on a worker thread and waits at most `limit` for it. Past the limit
/// it requests a stop (the dispatcher ends at the next hyperperiod boundary) and reports an
/// error; if even that does not end the run within 10 s the worker is abandoned, so the
/// caller never hangs. `tick` is called about every 50 ms with the live control block (for
/// progress); it must not allocate when allocations are being counted.
pub fn run_bounded(
    d: Deployment,
    plan: Plan,
    registry: Registry,
    opts: RunOptions,
    limit: Duration,
    mut tick: impl FnMut(&RunControl),
) -> Result<RunReport, String> {
    let control = Arc::new(RunControl::new(d.default_mode));
    let worker_control = Arc::clone(&control);
    let name = d.name.clone();
    let worker = std::thread::Builder::new()
        .name("takt-bench-run".into())
        .spawn(move || {
            dispatch::run(&d, &plan, &registry, &opts, &worker_control).map_err(|e| e.to_string())
        })
        .map_err(|e| format!("{name}: cannot start the run thread: {e}"))?;
    let started = Instant::now();
    let mut stop_requested: Option<Instant> = None;
    while !worker.is_finished() {
        std::thread::sleep(RUN_POLL);
        tick(&control);
        match stop_requested {
            None if started.elapsed() > limit => {
                control.request_stop();
                stop_requested = Some(Instant::now());
            }
            Some(at) if at.elapsed() > STOP_GRACE => {
                return Err(format!(
                    "{name}: the run did not end within {limit:?}, nor within {STOP_GRACE:?} of a stop request; it was abandoned"
                ));
            }
            _ => {}
        }
    }
    let result = worker
        .join()
        .map_err(|_| format!("{name}: the run thread panicked"))?;
    if stop_requested.is_some() {
        return Err(format!(
            "{name}: the run did not end within {limit:?} and was stopped early"
        ));
    }
    result.map_err(|e| format!("{name}: {e}"))
}

/// Pins the calling thread to `core` and, with `priority`, puts it under SCHED_FIFO: the
/// dispatcher's own calls, so the bench's threads are set up as takt's are.
pub fn pin_and_prioritize(core: usize, priority: Option<u8>) -> Result<(), String> {
    takt::dispatch::pin_current(core).map_err(|e| e.to_string())?;
    if let Some(priority) = priority {
        takt::dispatch::set_fifo_current(priority).map_err(|e| format!("core {core}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use takt::dispatch::Quantiles;

    #[test]
    fn deployment_hyperperiod_is_the_lcm_of_the_periods() {
        let tasks = [2, 10, 20, 100]
            .iter()
            .enumerate()
            .map(|(i, p)| task_spec(&format!("t{i}"), p * MS_NS, 1_000, 0, BTreeMap::new()))
            .collect();
        let d = deployment("lcm", vec![0], tasks).expect("valid");
        assert_eq!(d.hyperperiod_ns, 100 * MS_NS);
        assert_eq!(d.modes[0].tasks, vec![0, 1, 2, 3]);
        let zero = vec![task_spec("z", 0, 1, 0, BTreeMap::new())];
        assert!(deployment("zero", vec![0], zero)
            .unwrap_err()
            .contains("period 0"));
    }

    #[test]
    fn one_window_plan_needs_one_task_per_hyperperiod() {
        let one = vec![task_spec("tick", MS_NS, 100_000, 1, BTreeMap::new())];
        let d = deployment("one", vec![1], one).expect("valid");
        let p = one_window_plan(&d).expect("fits");
        assert_eq!(p.hyperperiod_ns, MS_NS);
        let table = &p.modes[0].cores[0];
        assert_eq!((table.core, table.windows.len()), (1, 1));
        assert_eq!(table.utilization_ppm, 100_000);
        let two = vec![
            task_spec("a", MS_NS, 1, 0, BTreeMap::new()),
            task_spec("b", MS_NS, 1, 0, BTreeMap::new()),
        ];
        let d = deployment("two", vec![0], two).expect("valid");
        assert!(one_window_plan(&d)
            .unwrap_err()
            .contains("exactly one task"));
    }

    /// Equal within the histograms' 0.1 % resolution.
    fn close(a: u64, b: u64) -> bool {
        a.abs_diff(b) <= b / 1000 + 1
    }

    #[test]
    fn step_entry_lateness_uses_the_tighter_epoch_bound() {
        let epoch = 1_000_000_000;
        // Entries 20, 25 and 30 us after their planned starts.
        let capture = || ProbeCapture {
            finish_ns: epoch + 3 * MS_NS + 100,
            entry_minus_release_ns: vec![epoch + 20_000, epoch + 25_000, epoch + 30_000],
            jobs: 3,
            ..ProbeCapture::default()
        };
        // The finish bound is 100 ns high, the lateness bound 500 ns: the finish one wins.
        let mut h = histogram();
        assert!(record_entries(&mut h, &capture(), 3 * MS_NS, 19_500));
        let q = Quantiles::of(&h);
        assert!(close(q.min_ns, 19_900) && close(q.max_ns, 29_900), "{q:?}");
        // A loose finish bound (10 us late) loses to the lateness bound (exact here).
        let late = ProbeCapture {
            finish_ns: epoch + 3 * MS_NS + 10_000,
            ..capture()
        };
        let mut h = histogram();
        assert!(record_entries(&mut h, &late, 3 * MS_NS, 20_000));
        let q = Quantiles::of(&h);
        assert!(close(q.min_ns, 20_000) && close(q.max_ns, 30_000), "{q:?}");
        assert_eq!(h.len(), 3);
        let mut h = histogram();
        assert!(!record_entries(&mut h, &ProbeCapture::default(), 0, 0));
        assert!(h.is_empty());
    }

    #[test]
    fn quantiles_and_median() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            record(&mut h, v);
        }
        let q = Quantiles::of(&h);
        assert_eq!(
            (q.min_ns, q.p50_ns, q.p99_ns, q.max_ns),
            (1, 500, 990, 1000)
        );
        assert_eq!(Quantiles::of(&histogram()), Quantiles::default());
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut []), None);
    }
}
