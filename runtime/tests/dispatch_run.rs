//! The dispatcher on hand-built deployments and plans (independent of the manifest parser
//! and the planner): LET data flow in simulated time, and in real time pinning, SCHED_FIFO,
//! overrun policies and mode switches at hyperperiod boundaries on every core.
//!
//! Real-time tests need SCHED_FIFO permission; without it they print `SKIPPED <name>` and
//! return.

use std::collections::BTreeMap;
use std::sync::Mutex;

use takt::dispatch::{self, ClockKind, RunControl, RunOptions, RunReport};
use takt::manifest::{AppSpec, ChannelSpec, Deployment, ModeSpec, OverrunPolicy, ParamValue, TaskSpec};
use takt::plan::{ChannelSizing, CoreTable, ModePlan, Plan, Window};
use takt::task::{Ports, Reader, Registry, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport, Writer};
use takt::time::monotonic_now_ns;

const MS: u64 = 1_000_000;

/// Real-time runs in this binary never overlap: they share two cores.
static REALTIME: Mutex<()> = Mutex::new(());

#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct Tick {
    pub job: u64,
}
takt::message!(Tick);

struct Producer {
    out: Writer<Tick>,
    /// Spend this long (busy) in jobs 1, 5, 9, ... (0 = never).
    slow_ns: u64,
}

impl Task for Producer {
    fn step(&mut self, ctx: &StepContext) {
        if self.slow_ns > 0 && ctx.job_index() % 4 == 1 {
            let until = monotonic_now_ns() + self.slow_ns;
            while monotonic_now_ns() < until {
                std::hint::spin_loop();
            }
        }
        let job = ctx.job_index();
        let _ = self.out.publish(ctx, |m| m.job = job);
    }
}

struct Consumer {
    input: Reader<Tick>,
    /// (release, job index seen or -1) per job, capacity fixed at construction.
    log: Vec<(u64, i64)>,
}

impl Task for Consumer {
    fn step(&mut self, ctx: &StepContext) {
        let seen = self.input.read(ctx).map_or(-1, |s| s.job as i64);
        if self.log.len() < self.log.capacity() {
            self.log.push((ctx.release_ns(), seen));
        }
    }
    fn finish(&mut self, report: &mut TaskReport) {
        let text: Vec<String> = self.log.iter().map(|(r, j)| format!("{r}:{j}")).collect();
        report.outcome.push(("log".into(), text.join(",")));
        report.digest = Some([self.log.len() as u8; 32]);
    }
}

fn build_producer(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Producer {
        out: b.writer("tick")?,
        slow_ns: b.param_i64("slow_ns", 0)? as u64,
    }))
}

fn build_consumer(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Consumer {
        input: b.reader("tick")?,
        log: Vec::with_capacity(10_000),
    }))
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.task("w", Ports::new().writes::<Tick>("tick"), build_producer);
    r.task("r", Ports::new().reads::<Tick>("tick"), build_consumer);
    r
}

fn task(name: &str, core: usize, budget_ns: u64, overrun: OverrunPolicy, slow_ns: u64) -> TaskSpec {
    let mut params = BTreeMap::new();
    if slow_ns > 0 {
        params.insert("slow_ns".to_string(), ParamValue::Int(slow_ns as i64));
    }
    TaskSpec {
        name: name.into(),
        app: 0,
        period_ns: 10 * MS,
        offset_ns: 0,
        budget_ns,
        let_ns: 10 * MS,
        core,
        overrun,
        params,
        line: 1,
    }
}

/// `w` on core 0 writes `tick`, `r` on core `reader_core` reads it; both 10 ms. Mode 0
/// runs both, mode 1 only `r`.
fn deployment(reader_core: usize, overrun: OverrunPolicy, slow_ns: u64) -> Deployment {
    Deployment {
        name: "disp".into(),
        source: "dispatch_run.rs".into(),
        cores: vec![0, 1],
        priority: 60,
        apps: vec![AppSpec {
            name: "a".into(),
            executable: None,
        }],
        tasks: vec![
            task("w", 0, MS, overrun, slow_ns),
            task("r", reader_core, MS, OverrunPolicy::Report, 0),
        ],
        channels: vec![ChannelSpec {
            topic: "tick".into(),
            type_name: "Tick".into(),
            writer: 0,
            readers: vec![1],
        }],
        chains: vec![],
        modes: vec![
            ModeSpec {
                name: "both".into(),
                tasks: vec![0, 1],
            },
            ModeSpec {
                name: "reader-only".into(),
                tasks: vec![1],
            },
        ],
        default_mode: 0,
        update_safe_modes: vec![],
        hyperperiod_ns: 10 * MS,
    }
}

fn window(task: usize, start_ns: u64) -> Window {
    Window {
        start_ns,
        task,
        budget_ns: MS,
        release_ns: 0,
        deadline_ns: 10 * MS,
        job_in_cycle: 0,
    }
}

fn plan(d: &Deployment) -> Plan {
    let tables = |tasks: &[usize]| -> Vec<CoreTable> {
        let mut cores: Vec<CoreTable> = Vec::new();
        for &t in tasks {
            let core = d.tasks[t].core;
            // Same core: the writer first, the reader 2 ms later.
            let start = if cores.iter().any(|c| c.core == core) { 2 * MS } else { 0 };
            match cores.iter_mut().find(|c| c.core == core) {
                Some(c) => c.windows.push(window(t, start)),
                None => cores.push(CoreTable {
                    core,
                    windows: vec![window(t, start)],
                    utilization_ppm: 0,
                }),
            }
        }
        cores
    };
    Plan {
        hyperperiod_ns: d.hyperperiod_ns,
        modes: vec![
            ModePlan {
                mode: 0,
                cores: tables(&[0, 1]),
            },
            ModePlan {
                mode: 1,
                cores: tables(&[1]),
            },
        ],
        channels: vec![ChannelSizing {
            buffer: 4,
            history: 1,
            max_borrowed: 3,
        }],
        chains: vec![],
    }
}

fn unique(tag: &str) -> String {
    format!("disp{}-{tag}", std::process::id())
}

fn run(d: &Deployment, clock: ClockKind, duration_ns: u64, tag: &str, control: &RunControl) -> RunReport {
    let opts = RunOptions {
        clock,
        duration_ns,
        namespace: Some(unique(tag)),
        ..RunOptions::default()
    };
    dispatch::run(d, &plan(d), &registry(), &opts, control).unwrap_or_else(|e| panic!("run {tag}: {e}"))
}

fn reader_log(r: &RunReport) -> Vec<(u64, i64)> {
    let log = r
        .reports
        .iter()
        .find(|(n, _)| n == "r")
        .and_then(|(_, rep)| rep.outcome.first())
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    log.split(',')
        .filter(|s| !s.is_empty())
        .filter_map(|item| {
            let (a, b) = item.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

/// Under LET with period = LET = 10 ms the reader released at k*10ms sees writer job k-1.
fn assert_let_flow(log: &[(u64, i64)]) {
    assert!(log.len() >= 20, "the reader ran: {} jobs", log.len());
    for &(release, seen) in log {
        let expected = (release / (10 * MS)) as i64 - 1;
        assert_eq!(seen, expected, "reader released at {release} ns");
    }
}

fn realtime_or_skip(test: &str) -> bool {
    match dispatch::probe_realtime(60) {
        Ok(()) => true,
        Err(why) => {
            eprintln!("SKIPPED {test}: SCHED_FIFO not permitted here: {why}");
            false
        }
    }
}

#[test]
fn sim_run_follows_let_on_one_and_two_cores() {
    for reader_core in [0, 1] {
        let d = deployment(reader_core, OverrunPolicy::Report, 0);
        let r = run(&d, ClockKind::Sim, 300 * MS, &format!("sim{reader_core}"), &RunControl::new(0));
        assert_eq!(r.cycles, 30);
        assert_eq!(r.tasks.len(), 2);
        assert!(r.tasks.iter().all(|t| t.jobs == 30 && t.overruns == 0), "{:?}", r.tasks);
        assert_let_flow(&reader_log(&r));
    }
}

#[test]
fn sim_mode_request_switches_at_a_boundary() {
    let d = deployment(1, OverrunPolicy::Report, 0);
    let control = RunControl::new(0);
    control.request_mode(1); // decided at cycle 0, before anything runs
    let r = run(&d, ClockKind::Sim, 100 * MS, "simmode", &control);
    let w = r.tasks.iter().find(|t| t.name == "w").map_or(0, |t| t.jobs);
    assert_eq!(w, 0, "the writer is not released in `reader-only`");
    let log = reader_log(&r);
    assert!(log.iter().all(|&(_, seen)| seen == -1), "no sample was ever published");
}

#[test]
fn real_run_pins_threads_and_matches_sim() {
    if !realtime_or_skip("real_run_pins_threads_and_matches_sim") {
        return;
    }
    let _g = REALTIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = deployment(1, OverrunPolicy::Report, 0);
    let real = run(&d, ClockKind::Real, 300 * MS, "real", &RunControl::new(0));
    assert!(real.realtime);
    assert_let_flow(&reader_log(&real));
    let sim = run(&d, ClockKind::Sim, 300 * MS, "realsim", &RunControl::new(0));
    assert_eq!(real.digest_hex(), sim.digest_hex());
    assert_eq!(reader_log(&real), reader_log(&sim));
    for t in &real.tasks {
        assert!(t.execution.max_ns > 0, "{} was measured", t.name);
    }
}

#[test]
fn real_overrun_with_skip_next_drops_the_following_job() {
    if !realtime_or_skip("real_overrun_with_skip_next_drops_the_following_job") {
        return;
    }
    let _g = REALTIME.lock().unwrap_or_else(|e| e.into_inner());
    // Every 4th writer job (index 1, 5, 9, ...) spins 3 ms against a 1 ms budget.
    let d = deployment(1, OverrunPolicy::SkipNext, 3 * MS);
    let r = run(&d, ClockKind::Real, 200 * MS, "skip", &RunControl::new(0));
    let w = r.tasks.iter().find(|t| t.name == "w").expect("writer stats");
    assert!(w.overruns >= 4, "overruns were detected: {w:?}");
    assert_eq!(w.skipped, w.overruns, "each overrun skipped the next job: {w:?}");
    assert_eq!(w.jobs + w.skipped, 20);
    assert!(w.execution.max_ns >= 3 * MS);
}

#[test]
fn real_overrun_escalates_to_a_mode_switch_on_every_core() {
    if !realtime_or_skip("real_overrun_escalates_to_a_mode_switch_on_every_core") {
        return;
    }
    let _g = REALTIME.lock().unwrap_or_else(|e| e.into_inner());
    let d = deployment(1, OverrunPolicy::Escalate(1), 3 * MS);
    let r = run(&d, ClockKind::Real, 200 * MS, "esc", &RunControl::new(0));
    assert_eq!(r.mode_history.len(), 2, "{:?}", r.mode_history);
    let (switch_cycle, ref mode) = r.mode_history[1];
    assert_eq!(mode, "reader-only");
    // Job 1 overran in cycle 1; the switch is decided at the next undecided boundary.
    assert!(switch_cycle == 2 || switch_cycle == 3, "switch at cycle {switch_cycle}");
    let w = r.tasks.iter().find(|t| t.name == "w").expect("writer stats");
    assert_eq!(w.jobs, switch_cycle, "the writer ran exactly until the boundary");
    let rd = r.tasks.iter().find(|t| t.name == "r").expect("reader stats");
    assert_eq!(rd.jobs, 20, "the reader, active in both modes, kept every release");
}
