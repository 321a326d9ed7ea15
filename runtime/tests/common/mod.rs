//! A hand-built deployment and plan for the dispatcher tests, independent of the manifest
//! parser and the planner: `w` (core 0) writes `tick` every 10 ms, `r` reads it.
#![allow(dead_code)] // each test binary uses a different part

use std::collections::BTreeMap;
use std::sync::Mutex;

use takt::dispatch::{self, ClockKind, RunControl, RunOptions, RunReport};
use takt::manifest::{
    AppSpec, ChannelSpec, Deployment, ModeSpec, OverrunPolicy, ParamValue, TaskSpec,
};
use takt::plan::{ChannelSizing, CoreTable, ModePlan, Plan, Window};
use takt::task::{
    Ports, Reader, Registry, StepContext, Task, TaskBuildError, TaskBuilder, TaskReport, Writer,
};
use takt::time::monotonic_now_ns;

pub const MS: u64 = 1_000_000;

/// Real-time runs in one test binary never overlap: they share two cores.
pub static REALTIME: Mutex<()> = Mutex::new(());

takt::message! {
    #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
    pub struct Tick {
        pub job: u64,
    }
}

struct Producer {
    out: Writer<Tick>,
    /// Spend this long (busy, on the CPU) in jobs 1, 5, 9, ... (0 = never).
    slow_ns: u64,
    /// Report faults in jobs `k` with `k % fault_every == fault_at` (0 = never): two
    /// reports, codes `100 + k` then `999`.
    fault_every: u64,
    fault_at: u64,
}

impl Task for Producer {
    fn step(&mut self, ctx: &StepContext) {
        if self.slow_ns > 0 && ctx.job_index() % 4 == 1 {
            // Until the thread has *used* that much CPU time and that much wall time, so a
            // host stall during the spin cannot make the job look cheaper than it is.
            let until = monotonic_now_ns() + self.slow_ns;
            let until_cpu = dispatch::thread_cpu_ns() + self.slow_ns;
            while monotonic_now_ns() < until || dispatch::thread_cpu_ns() < until_cpu {
                std::hint::spin_loop();
            }
        }
        let job = ctx.job_index();
        if self.fault_every > 0 && job % self.fault_every == self.fault_at {
            ctx.fault(100 + job as u16);
            ctx.fault(999);
        }
        let _ = self.out.publish(ctx, |m| m.job = job);
    }
}

struct Consumer {
    input: Reader<Tick>,
    /// (release, job index seen or -1) per job, capacity fixed at construction (0: no log).
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
        if self.log.capacity() == 0 {
            return;
        }
        let text: Vec<String> = self.log.iter().map(|(r, j)| format!("{r}:{j}")).collect();
        report.outcome.push(("log".into(), text.join(",")));
        report.digest = Some([self.log.len() as u8; 32]);
    }
}

pub fn build_producer(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Producer {
        out: b.writer("tick")?,
        slow_ns: b.param_i64("slow_ns", 0)? as u64,
        fault_every: b.param_i64("fault_every", 0)?.max(0) as u64,
        fault_at: b.param_i64("fault_at", 0)?.max(0) as u64,
    }))
}

pub fn build_consumer(b: &TaskBuilder<'_>) -> Result<Box<dyn Task>, TaskBuildError> {
    Ok(Box::new(Consumer {
        input: b.reader("tick")?,
        log: Vec::with_capacity(b.param_i64("log", 10_000)?.max(0) as usize),
    }))
}

pub fn registry() -> Registry {
    let mut r = Registry::new();
    r.task("w", Ports::new().writes::<Tick>("tick"), build_producer);
    r.task("r", Ports::new().reads::<Tick>("tick"), build_consumer);
    r
}

pub fn task(
    name: &str,
    core: usize,
    budget_ns: u64,
    overrun: OverrunPolicy,
    slow_ns: u64,
) -> TaskSpec {
    let mut params = BTreeMap::new();
    if slow_ns > 0 {
        params.insert("slow_ns".to_string(), ParamValue::Int(slow_ns as i64));
    }
    TaskSpec {
        name: name.into(),
        implementation: name.into(),
        topics: BTreeMap::new(),
        app: 0,
        period_ns: 10 * MS,
        offset_ns: 0,
        budget_ns,
        let_ns: 10 * MS,
        core,
        overrun,
        on_fault: Default::default(),
        params,
        line: 1,
    }
}

/// `w` on core 0 writes `tick`, `r` on core `reader_core` reads it; both 10 ms. Mode 0
/// runs both, mode 1 only `r`.
pub fn deployment(reader_core: usize, overrun: OverrunPolicy, slow_ns: u64) -> Deployment {
    Deployment {
        name: "disp".into(),
        source: "dispatch_run.rs".into(),
        cores: vec![0, 1],
        priority: 60,
        apps: vec![AppSpec {
            name: "a".into(),
            executable: None,
            supervision: Default::default(),
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
        ota: Default::default(),
        wake: Default::default(),
    }
}

pub fn window(task: usize, start_ns: u64) -> Window {
    Window {
        start_ns,
        task,
        budget_ns: MS,
        release_ns: 0,
        deadline_ns: 10 * MS,
        job_in_cycle: 0,
    }
}

pub fn plan(d: &Deployment) -> Plan {
    let tables = |tasks: &[usize]| -> Vec<CoreTable> {
        let mut cores: Vec<CoreTable> = Vec::new();
        for &t in tasks {
            let core = d.tasks[t].core;
            // Same core: the writer first, the reader 2 ms later.
            let start = if cores.iter().any(|c| c.core == core) {
                2 * MS
            } else {
                0
            };
            match cores.iter_mut().find(|c| c.core == core) {
                Some(c) => c.windows.push(window(t, start)),
                None => cores.push(CoreTable {
                    core,
                    windows: vec![window(t, start)],
                    utilization_ppm: 0,
                    spin_ns: 0,
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

pub fn unique(tag: &str) -> String {
    format!("disp{}-{tag}", std::process::id())
}

pub fn run(
    d: &Deployment,
    clock: ClockKind,
    duration_ns: u64,
    tag: &str,
    control: &RunControl,
) -> RunReport {
    run_with(d, &registry(), clock, duration_ns, tag, control)
}

/// Like [`run`], with another registry (same task names and ports).
pub fn run_with(
    d: &Deployment,
    registry: &Registry,
    clock: ClockKind,
    duration_ns: u64,
    tag: &str,
    control: &RunControl,
) -> RunReport {
    run_opts(d, registry, clock, duration_ns, tag, control, None)
}

/// Like [`run_with`], with injected platform stalls (off-CPU time inside jobs).
pub fn run_opts(
    d: &Deployment,
    registry: &Registry,
    clock: ClockKind,
    duration_ns: u64,
    tag: &str,
    control: &RunControl,
    platform_stall: Option<dispatch::PlatformStall>,
) -> RunReport {
    let opts = RunOptions {
        clock,
        duration_ns,
        namespace: Some(unique(tag)),
        platform_stall,
        ..RunOptions::default()
    };
    dispatch::run(d, &plan(d), registry, &opts, control)
        .unwrap_or_else(|e| panic!("run {tag}: {e}"))
}
