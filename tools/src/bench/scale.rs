//! Part 4, scale: how plan synthesis + verification and per-job dispatch cost grow from 10
//! to 100 to 1,000 tasks.
//!
//! Owns: generated task sets (harmonic periods 1, 2, 10, 20 and 100 ms in turn, 2 µs budgets,
//! no channels) and their timing. Planning uses two cores (tasks alternate between them);
//! dispatch cost uses one core, so one dispatcher walks every job.
//!
//! Per-job dispatch cost is measured in simulated time: `RunReport.wall_ns` (physical time
//! from the first to the end of the table walk) divided by the jobs run, with tasks whose
//! `step` does nothing. The simulated clock turns every sleep into an atomic update, so the
//! figure is the dispatcher's own work per job (sleep bookkeeping, wake-up path, the call,
//! measurement, overrun checks, return to the table walk) without the kernel's timer
//! latency, which would otherwise dominate and hide how the dispatcher scales.
//!
//! Every planner call runs on its own thread with a time limit; one that does not finish is
//! abandoned (that is why this part runs last).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use takt::dispatch::{ClockKind, RunOptions};
use takt::manifest::Deployment;
use takt::plan::{self, Plan};

use super::report::{fmt_ns, fmt_ratio, ratio, Report, Row};
use super::rig::{self, MS_NS};
use super::Env;

pub const PART: &str = "scale";

pub const KEYS: &[&str] = &[
    "plan_ms_10_tasks",
    "plan_ms_100_tasks",
    "plan_ms_1000_tasks",
    "plan_synth_ms_10_tasks",
    "plan_synth_ms_100_tasks",
    "plan_synth_ms_1000_tasks",
    "plan_verify_ms_10_tasks",
    "plan_verify_ms_100_tasks",
    "plan_verify_ms_1000_tasks",
    "dispatch_cost_ns_per_job_10_tasks",
    "dispatch_cost_ns_per_job_100_tasks",
    "dispatch_cost_ns_per_job_1000_tasks",
    "dispatch_cost_ratio_1000_over_10",
];

const TASK_COUNTS: [usize; 3] = [10, 100, 1000];
/// Harmonic: each divides the next.
const PERIODS_MS: [u64; 5] = [1, 2, 10, 20, 100];
/// Small enough that 1,000 tasks fit on one core (utilization about 0.66).
const BUDGET_NS: u64 = 2_000;

/// `n` tasks, task `i` with period `PERIODS_MS[i % 5]` on core `cores[i % cores.len()]`.
fn task_set(n: usize, cores: &[usize]) -> Result<Deployment, String> {
    let tasks = (0..n)
        .map(|i| {
            rig::task_spec(
                &format!("t{i}"),
                PERIODS_MS[i % PERIODS_MS.len()] * MS_NS,
                BUDGET_NS,
                cores[i % cores.len()],
                Default::default(),
            )
        })
        .collect();
    rig::deployment(&format!("bench-scale-{n}"), cores.to_vec(), tasks)
}

/// How long one synthesis + verification took.
#[derive(Clone, Copy, Debug)]
struct PlanTiming {
    synth_ms: f64,
    verify_ms: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Synthesizes and verifies `d`'s plan on a thread of its own, waiting at most `limit`.
fn plan_bounded(d: &Deployment, limit: Duration) -> Result<(Plan, PlanTiming), String> {
    let (tx, rx) = mpsc::channel();
    let d = d.clone();
    std::thread::Builder::new()
        .name("takt-bench-plan".into())
        .spawn(move || {
            let t0 = Instant::now();
            let result = plan::synthesize(&d)
                .map_err(|e| format!("the planner found the task set not schedulable:\n{e}"))
                .and_then(|p| {
                    let synth = t0.elapsed();
                    let t1 = Instant::now();
                    plan::verify(&d, &p).map_err(|violations| {
                        let first: Vec<String> = violations
                            .iter()
                            .take(3)
                            .map(|v| v.message.clone())
                            .collect();
                        format!(
                            "the verifier rejected the synthesized plan ({} violations): {}",
                            violations.len(),
                            first.join("; ")
                        )
                    })?;
                    let timing = PlanTiming {
                        synth_ms: ms(synth),
                        verify_ms: ms(t1.elapsed()),
                    };
                    Ok((p, timing))
                });
            let _ = tx.send(result);
        })
        .map_err(|e| format!("cannot start the planner thread: {e}"))?;
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "synthesis + verification did not finish within {limit:?}; the planner thread was abandoned"
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err("the planner panicked (see the message above)".to_string())
        }
    }
}

/// Median synthesis and verification time over `reps` runs, stopping early once a single
/// run takes longer than a second (its figure is clear enough).
fn plan_timing(n: usize, reps: usize, limit: Duration) -> Result<PlanTiming, String> {
    let d = task_set(n, &[0, 1])?;
    let mut synth = Vec::new();
    let mut verify = Vec::new();
    for _ in 0..reps {
        let (_, t) = plan_bounded(&d, limit)?;
        synth.push(t.synth_ms);
        verify.push(t.verify_ms);
        if t.synth_ms + t.verify_ms > 1000.0 {
            break;
        }
    }
    match (rig::median(&mut synth), rig::median(&mut verify)) {
        (Some(synth_ms), Some(verify_ms)) => Ok(PlanTiming {
            synth_ms,
            verify_ms,
        }),
        _ => Err("no planner run completed".to_string()),
    }
}

/// Median per-job dispatch cost (ns) of `n` tasks on one core in simulated time.
fn dispatch_cost_ns(
    env: &Env,
    n: usize,
    target_jobs: u64,
    reps: usize,
    limit: Duration,
) -> Result<f64, String> {
    let d = task_set(n, &[0])?;
    let (plan, _) = plan_bounded(&d, limit)?;
    let jobs_per_cycle: u64 = plan
        .modes
        .first()
        .map_or(0, |m| m.cores.iter().map(|c| c.windows.len() as u64).sum());
    if jobs_per_cycle == 0 {
        return Err(format!("the plan of {n} tasks has no windows"));
    }
    let cycles = target_jobs.div_ceil(jobs_per_cycle);
    let registry = rig::registry(&d, rig::build_idle);
    let mut costs = Vec::with_capacity(reps);
    for rep in 0..reps {
        let opts = RunOptions {
            clock: ClockKind::Sim,
            duration_ns: cycles * d.hyperperiod_ns,
            namespace: Some(format!("{}-scale-{n}-{rep}", env.namespace)),
            ..RunOptions::default()
        };
        let report = rig::run_bounded(
            d.clone(),
            plan.clone(),
            registry.clone(),
            opts,
            limit,
            |_| {},
        )?;
        let jobs: u64 = report.tasks.iter().map(|t| t.jobs).sum();
        if jobs != cycles * jobs_per_cycle {
            return Err(format!(
                "{n} tasks: expected {} jobs, the dispatcher ran {jobs}",
                cycles * jobs_per_cycle
            ));
        }
        costs.push(report.wall_ns as f64 / jobs as f64);
    }
    rig::median(&mut costs).ok_or_else(|| "no dispatch run completed".to_string())
}

pub fn run(env: &Env, r: &mut Report) {
    let limit = if env.quick {
        Duration::from_secs(20)
    } else {
        Duration::from_secs(60)
    };
    let target_jobs: u64 = if env.quick { 200_000 } else { 2_000_000 };
    let cost_reps = if env.quick { 3 } else { 5 };

    for n in TASK_COUNTS {
        let reps = match (env.quick, n) {
            (true, 1000) => 1,
            (true, _) => 3,
            (false, _) => 5,
        };
        env.step(format!(
            "plan synthesis + verification, {n} tasks on 2 cores"
        ));
        match plan_timing(n, reps, limit) {
            Ok(t) => {
                let total = t.synth_ms + t.verify_ms;
                r.set(&format!("plan_ms_{n}_tasks"), total);
                r.set(&format!("plan_synth_ms_{n}_tasks"), t.synth_ms);
                r.set(&format!("plan_verify_ms_{n}_tasks"), t.verify_ms);
                let mut row = Row::new(
                    PART,
                    format!(
                        "plan + verify, {n} tasks on 2 cores (synth {:.1} ms, verify {:.1} ms)",
                        t.synth_ms, t.verify_ms
                    ),
                )
                .takt(fmt_ns(total * 1e6));
                if n == 1000 {
                    row = row.at_most(Some(total), 1000.0, "< 1 s");
                }
                r.row(row);
            }
            Err(e) => env.fail(r, PART, format!("planning {n} tasks: {e}")),
        }
    }

    let mut costs = Vec::new();
    for n in TASK_COUNTS {
        env.step(format!(
            "dispatch cost, {n} tasks on one core, simulated time"
        ));
        match dispatch_cost_ns(env, n, target_jobs, cost_reps, limit) {
            Ok(ns) => {
                r.set(&format!("dispatch_cost_ns_per_job_{n}_tasks"), ns);
                r.row(
                    Row::new(
                        PART,
                        format!("dispatch cost per job, {n} tasks on 1 core (sim)"),
                    )
                    .takt(fmt_ns(ns)),
                );
                costs.push((n, Some(ns)));
            }
            Err(e) => {
                env.fail(r, PART, format!("dispatch cost with {n} tasks: {e}"));
                costs.push((n, None));
            }
        }
    }
    let cost = |n: usize| costs.iter().find(|(m, _)| *m == n).and_then(|(_, c)| *c);
    let growth = ratio(cost(1000), cost(10));
    if let Some(v) = growth {
        r.set("dispatch_cost_ratio_1000_over_10", v);
    }
    r.row(
        Row::new(PART, "dispatch cost per job, 1000 over 10 tasks")
            .takt(growth.map_or_else(|| "-".to_string(), fmt_ratio))
            .ratio(growth)
            .at_most(growth, 1.2, "<= 1.20x"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_sets_are_harmonic_and_fit_one_core() {
        let d = task_set(1000, &[0]).expect("valid");
        assert_eq!(d.hyperperiod_ns, 100 * MS_NS);
        let utilization: f64 = d
            .tasks
            .iter()
            .map(|t| t.budget_ns as f64 / t.period_ns as f64)
            .sum();
        assert!(utilization < 0.7, "{utilization}");
        let two = task_set(10, &[0, 1]).expect("valid");
        assert_eq!(two.tasks.iter().filter(|t| t.core == 1).count(), 5);
        assert_eq!(two.tasks[3].period_ns, 20 * MS_NS);
    }
}
