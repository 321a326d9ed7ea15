//! Part 2, release jitter: the takt dispatcher, sleeping and spinning, against cyclictest.
//!
//! Owns: real-time runs of a single 1 ms probe task (SCHED_FIFO 80, pinned to one core),
//! once with the dispatcher sleeping to each window (`wake = "sleep"`) and once spinning the
//! last [`SPIN_MARGIN_NS`] (`wake = { spin = "100us" }`), and cyclictest runs with the same
//! priority, interval, core and count (`--mlockall`), as child processes of the same bench
//! run. The N releases of each are split into chunks that alternate (the three sides
//! rotate their order chunk by chunk), so a change in the machine's load during the bench
//! (it is shared) falls on all alike; each side's chunks are merged into one distribution.
//! The spinning side's CPU cost is the time it spun over the time it ran
//! (`spin_cpu_fraction`).
//!
//! Which lateness: takt's figure is a per-job capture inside the task, step entry
//! (`monotonic_now_ns()`) minus planned start (`epoch + ctx.release_ns()`, the epoch
//! recovered as `rig::record_step_entry_lateness` explains), because per-job values can be
//! merged across chunks while `RunReport`'s quantiles cannot. It is the lateness the task's
//! code sees: the kernel's wake-up plus the dispatcher's path to `step` (part 3 reports that
//! path alone, a few hundred nanoseconds), less the error of the epoch estimate, which
//! absorbs about one job's dispatch path (see there). cyclictest reads the clock right after
//! its sleep returns. The dispatcher's own wake-up reading is reported beside it
//! (`jitter_takt_wakeup_ns_max`, exact over chunks).
//!
//! Equal resolution for the ratios: cyclictest truncates every latency to whole µs. The
//! ratios therefore compare takt's quantiles truncated the same way, both taken at the
//! middle of their 1 µs bin (`v + 0.5` µs), which also keeps a 0 µs bin from dividing by
//! zero. The JSON keeps takt's exact nanoseconds beside cyclictest's microseconds.

use takt::dispatch::Quantiles;
use takt::manifest::Wake;

use super::cyclictest::{self, Cyclictest};
use super::report::{fmt_ns, ratio, Report, Row};
use super::rig::{self, RT_PRIORITY};
use super::Env;

pub const PART: &str = "jitter";
const BASELINE_PART: &str = "jitter (cyclictest baseline)";

pub const KEYS: &[&str] = &[
    "jitter_ratio_p50",
    "jitter_ratio_p99",
    "jitter_ratio_max",
    "jitter_takt_ns_min",
    "jitter_takt_ns_p50",
    "jitter_takt_ns_p99",
    "jitter_takt_ns_max",
    "jitter_takt_wakeup_ns_max",
    "jitter_cyclictest_us_min",
    "jitter_cyclictest_us_p50",
    "jitter_cyclictest_us_p99",
    "jitter_cyclictest_us_max",
    "jitter_releases",
    "jitter_chunks",
    "spin_lateness_ratio_p50",
    "spin_lateness_ratio_p99",
    "spin_lateness_ratio_max",
    "spin_takt_ns_p50",
    "spin_takt_ns_p99",
    "spin_takt_ns_max",
    "spin_cpu_fraction",
    "spin_margin_ns",
];

/// The spinning side's margin: about twice this VM's median wake-up latency (50 us).
pub const SPIN_MARGIN_NS: u64 = 100_000;

/// The middle of the 1 µs bin holding `ns`, in µs.
fn bin_middle_us_of_ns(ns: u64) -> f64 {
    (ns / 1000) as f64 + 0.5
}

fn bin_middle_us(us: u64) -> f64 {
    us as f64 + 0.5
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Takt,
    TaktSpinning,
    Cyclictest,
}

pub fn run(env: &Env, r: &mut Report) {
    if let Some(why) = &env.not_realtime {
        env.skip(
            r,
            PART,
            format!("SCHED_FIFO {RT_PRIORITY} is not permitted here: {why}"),
        );
        return;
    }
    let (releases, chunks): (u64, u64) = if env.quick { (2_000, 4) } else { (20_000, 10) };
    let per_chunk = releases / chunks;
    let core = env.measure_core();
    r.set_count("jitter_releases", per_chunk * chunks);
    r.set_count("jitter_chunks", chunks);

    let mut takt = rig::histogram();
    let mut spin = rig::histogram();
    let mut takt_wakeup_max_ns = 0u64;
    let mut takt_error: Option<String> = None;
    let mut spin_error: Option<String> = None;
    let (mut spun_ns, mut spin_run_ns) = (0u64, 0u64);
    let mut baseline: Option<Cyclictest> = None;
    let mut baseline_error: Option<String> = env.cyclictest.as_ref().err().cloned();
    r.set_count("spin_margin_ns", SPIN_MARGIN_NS);
    let sides = [Side::Takt, Side::TaktSpinning, Side::Cyclictest];
    for chunk in 0..chunks {
        let order = [0, 1, 2].map(|k| sides[(k + chunk as usize) % 3]);
        for side in order {
            match (side, &env.cyclictest) {
                (Side::Takt | Side::TaktSpinning, _) => {
                    let spinning = side == Side::TaktSpinning;
                    let error = if spinning {
                        &mut spin_error
                    } else {
                        &mut takt_error
                    };
                    if error.is_some() {
                        continue;
                    }
                    let (wake, label) = if spinning {
                        (
                            Wake::Spin {
                                margin_ns: SPIN_MARGIN_NS,
                            },
                            "takt dispatcher spinning the last 100 us",
                        )
                    } else {
                        (Wake::Sleep, "takt dispatcher sleeping")
                    };
                    let run = rig::run_probe_waking(
                        format!(
                            "{}-jitter-{chunk}-{}",
                            env.namespace,
                            if spinning { "spin" } else { "sleep" }
                        ),
                        core,
                        wake,
                        per_chunk,
                        per_chunk,
                        |c| {
                            env.step(format!(
                                "chunk {}/{chunks}: {label}, {}/{per_chunk} releases at 1 ms on core {core}",
                                chunk + 1,
                                c.jobs_done()
                            ))
                        },
                    );
                    match run {
                        Ok(run) => {
                            let t = run.report.tasks.first();
                            if spinning {
                                spun_ns += t.map_or(0, |t| t.spin_ns);
                                spin_run_ns += run.report.wall_ns;
                            } else if let Some(t) = t {
                                takt_wakeup_max_ns = takt_wakeup_max_ns.max(t.lateness.max_ns);
                            }
                            let h = if spinning { &mut spin } else { &mut takt };
                            if !rig::record_step_entry_lateness(h, &run) {
                                *error = Some("the probe captured no step entries".into());
                            }
                        }
                        Err(e) => *error = Some(e),
                    }
                }
                (Side::Cyclictest, Ok(program)) if baseline_error.is_none() => {
                    env.step(format!(
                        "chunk {}/{chunks}: cyclictest, {per_chunk} wake-ups at 1 ms on core {core}",
                        chunk + 1
                    ));
                    match cyclictest::run(program, core, RT_PRIORITY, 1000, per_chunk) {
                        Ok(c) => match &mut baseline {
                            Some(b) => b.merge(&c),
                            None => baseline = Some(c),
                        },
                        Err(e) => baseline_error = Some(e),
                    }
                }
                _ => {}
            }
        }
    }
    let spin = match spin_error {
        Some(e) => {
            env.fail(r, PART, format!("takt dispatcher spinning: {e}"));
            None
        }
        None => Some(Quantiles::of(&spin)),
    };
    if let Some(q) = spin {
        r.set("spin_takt_ns_p50", q.p50_ns as f64);
        r.set("spin_takt_ns_p99", q.p99_ns as f64);
        r.set("spin_takt_ns_max", q.max_ns as f64);
        if spin_run_ns > 0 {
            r.set("spin_cpu_fraction", spun_ns as f64 / spin_run_ns as f64);
        }
    }
    let takt = match takt_error {
        Some(e) => {
            env.fail(r, PART, format!("takt dispatcher: {e}"));
            None
        }
        None => Some(Quantiles::of(&takt)),
    };
    if let Some(q) = takt {
        r.set("jitter_takt_ns_min", q.min_ns as f64);
        r.set("jitter_takt_ns_p50", q.p50_ns as f64);
        r.set("jitter_takt_ns_p99", q.p99_ns as f64);
        r.set("jitter_takt_ns_max", q.max_ns as f64);
        r.set("jitter_takt_wakeup_ns_max", takt_wakeup_max_ns as f64);
    }
    let baseline = match baseline_error {
        Some(e) => {
            // The baseline could not run; that is not a failure of takt.
            env.skip(r, BASELINE_PART, e);
            None
        }
        None => baseline,
    };
    if let Some(c) = &baseline {
        r.set("jitter_cyclictest_us_min", c.min_us as f64);
        r.set("jitter_cyclictest_us_p50", c.quantile_us(0.5) as f64);
        r.set("jitter_cyclictest_us_p99", c.quantile_us(0.99) as f64);
        r.set("jitter_cyclictest_us_max", c.max_us as f64);
    }
    let sides = [
        (
            "",
            ["jitter_ratio_p50", "jitter_ratio_p99", "jitter_ratio_max"],
            takt,
            [
                None,
                Some((1.10, "<= 1.10x cyclictest")),
                Some((1.5, "<= 1.50x cyclictest")),
            ],
        ),
        (
            ", spinning the last 100 us",
            [
                "spin_lateness_ratio_p50",
                "spin_lateness_ratio_p99",
                "spin_lateness_ratio_max",
            ],
            spin,
            [None, Some((0.5, "<= 0.50x cyclictest")), None],
        ),
    ];
    for (how, keys, q, targets) in sides {
        let quantiles = [
            (
                "p50",
                q.map(|q| q.p50_ns),
                baseline.as_ref().map(|c| c.quantile_us(0.5)),
            ),
            (
                "p99",
                q.map(|q| q.p99_ns),
                baseline.as_ref().map(|c| c.quantile_us(0.99)),
            ),
            (
                "max",
                q.map(|q| q.max_ns),
                baseline.as_ref().map(|c| c.max_us),
            ),
        ];
        for (((name, takt_ns, base_us), key), target) in
            quantiles.into_iter().zip(keys).zip(targets)
        {
            let rt = ratio(takt_ns.map(bin_middle_us_of_ns), base_us.map(bin_middle_us));
            if let Some(v) = rt {
                r.set(key, v);
            }
            let mut row = Row::new(
                PART,
                format!(
                    "release lateness {name}{how} ({} x 1 ms in {chunks} rotating chunks, core {core})",
                    per_chunk * chunks
                ),
            )
            .takt(takt_ns.map_or_else(|| "-".into(), |ns| fmt_ns(ns as f64)))
            .baseline(base_us.map_or_else(|| "-".into(), |us| format!("{us} us cyclictest")))
            .ratio(rt);
            if let Some((limit, text)) = target {
                row = row.at_most(rt, limit, text);
            }
            r.row(row);
        }
    }
    if spin_run_ns > 0 {
        r.row(
            Row::new(PART, "CPU spent spinning (spinning side)").takt(format!(
                "{:.1}%",
                spun_ns as f64 * 100.0 / spin_run_ns as f64
            )),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_compare_equal_one_microsecond_bins() {
        // 20.9 us and cyclictest's 20 us bin are the same bin: ratio 1.
        assert_eq!(bin_middle_us_of_ns(20_900) / bin_middle_us(20), 1.0);
        assert_eq!(bin_middle_us_of_ns(999), 0.5);
        assert!(bin_middle_us_of_ns(22_000) / bin_middle_us(20) > 1.09);
    }
}
