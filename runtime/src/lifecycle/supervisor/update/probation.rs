//! The probation verdict: whether a new version on probation is committed, rolled back and
//! marked bad, or rolled back without blame.
//!
//! Owns: the pure decision from the figures the supervisor gathered ([`Evidence`]) and the
//! manifest's thresholds ([`ProbationLimits`]). It reads no clock and no shared memory, so
//! every rule below is tested with made-up figures.
//!
//! # The rules
//!
//! 1. Overruns, skips and deadline misses count against the version only when they are
//!    attributed to takt or the task (`dispatch::attribution`): the job used more CPU than
//!    its budget, or was late by takt's own doing. The platform's (a host stall, a late
//!    wake-up) are reported with the verdict, never held against it. More than
//!    `probation_max_overruns` of its own: rolled back, marked bad.
//!
//!    Except once: a window over the limit by at most [`CONFIRM_SLACK`] (one job: its
//!    overrun and the miss or skip it caused) starts again, and only an excess in that
//!    re-check window rolls back. A thread's CPU clock counts interrupt handling (this
//!    kernel has no `IRQ_TIME_ACCOUNTING`) and host time the hypervisor does not report as
//!    steal, so a lone job can look over its CPU budget through no doing of its own.
//!    Measured: a 60 s run of the demo on a shared 2-core VM had two jobs of an unchanged
//!    10 us task (`actuator`, 200 us budget) use 285 and 575 us of CPU with under 1 us
//!    off the CPU, one of them while the other core woke 640-850 us late. A version that
//!    really overruns does it again in the re-check; a host spike seldom strikes twice.
//! 2. Jobs that reported a fault (`StepContext::fault`) count against the version in the
//!    whole window, its warm-up included: a fault is the version's own report of something
//!    wrong, never the platform's timing. More than `probation_max_faults` (default 0):
//!    rolled back, marked bad. The counter is the app's; after the switch only the new
//!    version runs the app's jobs (the replaced one stands by), so what it counts from the
//!    supervisor's first look after the switch on is the new version's.
//! 3. Its p99 CPU time per job (as a fraction of the budget, over the window) is compared
//!    with the replaced version's p99 measured before the switch: more than
//!    `probation_exec_p99_max_percent` of it (with at least [`MIN_JOBS`] jobs on each side,
//!    else not judged): rolled back, marked bad.
//! 4. Its heartbeat may stand still at most `probation_heartbeat_timeout`, counted in
//!    wall time minus the time the supervisor's own loop was late (a supervisor that
//!    wakes late sees every heartbeat late). When every other app's heartbeat stood still
//!    as long, the platform stalled the whole deployment: rolled back (a stopped version
//!    cannot be kept) but not marked bad. Otherwise: rolled back, marked bad.
//! 5. Its process's CPU time per hyperperiod, as the kernel accounts it (every thread of
//!    the process, from `/proc`; see `kernel_cpu`), measured from the end of the warm-up over
//!    at least [`MIN_KERNEL_HYPERPERIODS`], may be at most its tasks' budgets per hyperperiod
//!    plus what the replaced version's process used per hyperperiod before the switch (takt's
//!    own work beside the jobs). More: rolled back, marked bad. This is the one CPU figure
//!    the candidate cannot rewrite: it catches a version that hides its overruns from its
//!    counters, or that burns CPU in a thread outside any job.
//! 6. The window ran out with none of the above and the version ran at least the jobs of
//!    its window (`probation` hyperperiods at its fewest jobs per hyperperiod in any mode
//!    that releases it): committed. A window spent in a mode that releases none of its
//!    tasks proves nothing, so the window goes on; ten windows without the jobs: rolled
//!    back, not marked bad.
//! 7. The new version's process ended on its own, standing by before the switch or on
//!    probation ([`process_ended`]): an exit code or a crash signal is the version's doing
//!    (marked bad). `SIGKILL` is not: no program sends it to itself, and the supervisor's
//!    own kills end the update before it looks, so an operator, a test or the kernel's
//!    out-of-memory killer sent it. The update ends (a version without a process cannot be
//!    kept) and the version stays installable. An out-of-memory kill is not told apart from
//!    an operator's here.
//!
//! # What probation trusts
//!
//! The overrun, miss and fault counters and the CPU-time histogram live in the app's
//! shared-memory health record, which the app's own processes write: a version that wants
//! to pass can rewrite them. The heartbeat it cannot fake forwards without running its
//! cycles' dispatch, and the supervisor measures its own lateness and the other apps'
//! heartbeats itself. So rules 1 to 3 catch an honest but slow, overrunning or faulting
//! version, not a malicious one; rule 4, the kernel's CPU time of its process (rule 5) and
//! process exit are the evidence the candidate cannot forge.

use crate::dispatch::{cpu_quantile_bucket, CPU_BUCKETS, CPU_BUCKETS_PER_BUDGET};
use crate::manifest::ProbationLimits;
use crate::time::format_ns;

/// Fewest jobs on each side before the p99 CPU times are compared.
pub const MIN_JOBS: u64 = 100;

/// Fewest hyperperiods the kernel's CPU figure (rule 5) spans before it is judged.
pub const MIN_KERNEL_HYPERPERIODS: u64 = 5;

/// How far over `probation_max_overruns` a first window may be and be re-checked rather
/// than rolled back: one job's overrun and the miss or skip it caused.
pub const CONFIRM_SLACK: u64 = 2;

/// What the supervisor saw of a version on probation, since its switch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    pub overruns: u64,
    pub overruns_platform: u64,
    /// Skips and deadline misses.
    pub missed: u64,
    pub missed_platform: u64,
    /// Its jobs that reported a fault, since the switch.
    pub faults: u64,
    /// Its jobs by CPU time per budget, since the switch.
    pub cpu: Vec<u64>,
    /// The replaced version's jobs by CPU time per budget, before the switch.
    pub baseline_cpu: Vec<u64>,
    /// How long its heartbeat has stood still, minus the supervisor's own lateness.
    pub beat_stale_ns: u64,
    /// The supervisor's own lateness excused so far in the window (reported).
    pub supervisor_late_ns: u64,
    /// Every other running app's heartbeat stood still at least as long (the platform
    /// stalled the deployment, not just this version). `false` when there is no other app.
    pub others_stalled: bool,
    /// Jobs it must have run before the window can end in a commit (0: no requirement):
    /// a window spent in a mode that releases none of its tasks proves nothing.
    pub required_jobs: u64,
    /// The window is long over (ten times its length) and the jobs are still missing.
    pub overdue: bool,
    /// The worst job of its own in the window, described (task, CPU time per budget).
    pub worst_own: Option<String>,
    /// This window re-checks an earlier one that went over the limit: what that one saw.
    pub rechecking: Option<String>,
    /// Its process's CPU time per hyperperiod since the warm-up, as the kernel accounts it,
    /// and over how many hyperperiods (`None`: not read).
    pub kernel_cpu: Option<(u64, u64)>,
    /// What its process may use per hyperperiod (rule 5).
    pub kernel_allowance_ns: u64,
}

/// What to do with the version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep watching.
    Watch,
    /// The window went over the overrun limit by a lone job: start it again, once, and
    /// judge the new window (what the first one saw, for the log and the next verdict).
    Recheck(String),
    /// The window ran out clean: commit, with a summary of what was excused.
    Commit(String),
    /// Roll back: why (with figures and attribution), and whether the version is to blame
    /// (marked bad, never activated again) or the platform is (it stays installable).
    RollBack { why: String, bad: bool },
}

impl Evidence {
    fn takt_overruns(&self) -> u64 {
        self.overruns.saturating_sub(self.overruns_platform)
    }
    fn takt_missed(&self) -> u64 {
        self.missed.saturating_sub(self.missed_platform)
    }
    /// The platform's share, as reported with any verdict.
    pub fn platform_text(&self) -> String {
        format!(
            "{} overrun(s) and {} missed release(s) attributed to the platform, not counted; supervisor late by {} in total, not counted",
            self.overruns_platform,
            self.missed_platform,
            format_ns(self.supervisor_late_ns)
        )
    }
}

/// The p99 bucket and job count of a CPU histogram.
fn p99(h: &[u64]) -> (Option<usize>, u64) {
    let mut a = [0u64; CPU_BUCKETS];
    for (d, s) in a.iter_mut().zip(h) {
        *d = *s;
    }
    (cpu_quantile_bucket(&a, 0.99), a.iter().sum())
}

/// Rule 7: the new version's process ended with `status` (`None`: no status was had)
/// `while_doing` ("standing by", "on probation"). Always a roll-back (or, before the
/// switch, a withdrawn activation); `bad` says whether the version is to blame.
pub fn process_ended(status: Option<std::process::ExitStatus>, while_doing: &str) -> Verdict {
    use std::os::unix::process::ExitStatusExt;
    let st = status.map_or_else(|| "ended".to_string(), |s| s.to_string());
    if status.and_then(|s| s.signal()) == Some(libc::SIGKILL) {
        Verdict::RollBack {
            why: format!(
                "its process was killed from outside while {while_doing} ({st}); not held against the version"
            ),
            bad: false,
        }
    } else {
        Verdict::RollBack {
            why: format!("its process ended while {while_doing}: {st}"),
            bad: true,
        }
    }
}

/// Judges a version on probation; `window_over` once its last probation cycle has started.
pub fn judge(
    e: &Evidence,
    limits: &ProbationLimits,
    heartbeat_timeout_ns: u64,
    window_over: bool,
) -> Verdict {
    let own = e.takt_overruns() + e.takt_missed();
    if own > limits.max_overruns {
        let figures = format!(
            "{} overrun(s) and {} missed release(s) of its own (the job used more CPU than its budget or takt made it late{}), more than probation_max_overruns = {}",
            e.takt_overruns(),
            e.takt_missed(),
            e.worst_own
                .as_deref()
                .map_or(String::new(), |w| format!("; worst: {w}")),
            limits.max_overruns,
        );
        return match &e.rechecking {
            None if own <= limits.max_overruns.saturating_add(CONFIRM_SLACK) => {
                Verdict::Recheck(figures)
            }
            None => Verdict::RollBack {
                why: format!("{figures}; {}", e.platform_text()),
                bad: true,
            },
            Some(first) => Verdict::RollBack {
                why: format!(
                    "{figures} in the window that re-checked the first one ({first}); {}",
                    e.platform_text()
                ),
                bad: true,
            },
        };
    }
    if e.faults > limits.max_faults {
        return Verdict::RollBack {
            why: format!(
                "{} job(s) of the new version reported a fault (StepContext::fault) in its window, more than probation_max_faults = {}; a fault is the version's own report, so it is to blame; {}",
                e.faults,
                limits.max_faults,
                e.platform_text()
            ),
            bad: true,
        };
    }
    let (cand, cand_jobs) = p99(&e.cpu);
    let (base, base_jobs) = p99(&e.baseline_cpu);
    if let (Some(c), Some(b)) = (cand, base) {
        // Bucket upper edges, so a version whose jobs all fall in the lowest bucket
        // compares as equal, not as infinitely slower.
        let percent = ((c as u64 + 1) * 100) / (b as u64 + 1);
        if cand_jobs >= MIN_JOBS && base_jobs >= MIN_JOBS && percent > limits.exec_p99_max_percent {
            return Verdict::RollBack {
                why: format!(
                    "its p99 CPU time per job is {}/{} of the budget, {percent}% of the replaced version's {}/{} (limit probation_exec_p99_max_percent = {}%; {cand_jobs} jobs against {base_jobs}); {}",
                    c + 1,
                    CPU_BUCKETS_PER_BUDGET,
                    b + 1,
                    CPU_BUCKETS_PER_BUDGET,
                    limits.exec_p99_max_percent,
                    e.platform_text()
                ),
                bad: true,
            };
        }
    }
    if let Some((rate, hyperperiods)) = e.kernel_cpu {
        if hyperperiods >= MIN_KERNEL_HYPERPERIODS && rate > e.kernel_allowance_ns {
            return Verdict::RollBack {
                why: format!(
                    "the kernel accounts its process {} of CPU time per hyperperiod over {hyperperiods} hyperperiods, more than the {} its tasks' budgets and the replaced version's own work allow (a figure from the scheduler, not from counters the version writes); {}",
                    format_ns(rate),
                    format_ns(e.kernel_allowance_ns),
                    e.platform_text()
                ),
                bad: true,
            };
        }
    }
    if e.beat_stale_ns > heartbeat_timeout_ns {
        let figures = format!(
            "its heartbeat stood still for {} beyond the supervisor's own lateness (timeout {})",
            format_ns(e.beat_stale_ns),
            format_ns(heartbeat_timeout_ns)
        );
        return if e.others_stalled {
            Verdict::RollBack {
                why: format!(
                    "{figures}, and so did every other app's: the platform stalled the deployment, so the version is not marked bad; {}",
                    e.platform_text()
                ),
                bad: false,
            }
        } else {
            Verdict::RollBack {
                why: format!(
                    "{figures} while the other apps kept beating; {}",
                    e.platform_text()
                ),
                bad: true,
            }
        };
    }
    if window_over {
        let jobs: u64 = e.cpu.iter().sum();
        if jobs < e.required_jobs {
            if !e.overdue {
                return Verdict::Watch;
            }
            return Verdict::RollBack {
                why: format!(
                    "its probation saw {jobs} of the {} jobs it must run to be judged (its tasks were hardly released: a mode without them?); not marked bad: activate it again in a mode that runs it",
                    e.required_jobs
                ),
                bad: false,
            };
        }
        return Verdict::Commit(format!(
            "{}{} overrun(s) and {} missed release(s) of its own (limit {}); {} faulted job(s) (limit {}); p99 CPU time per job {} (replaced version {}); {}; {}",
            e.rechecking.as_deref().map_or(String::new(), |first| format!(
                "a re-check window did not repeat the first window's excess ({first}), so that was the platform's; "
            )),
            e.takt_overruns(),
            e.takt_missed(),
            limits.max_overruns,
            e.faults,
            limits.max_faults,
            cand.map_or("-".to_string(), |c| format!("{}/{CPU_BUCKETS_PER_BUDGET} of the budget", c + 1)),
            base.map_or("-".to_string(), |b| format!("{}/{CPU_BUCKETS_PER_BUDGET}", b + 1)),
            e.kernel_cpu.map_or(
                "its process's CPU time not read from the kernel".to_string(),
                |(rate, n)| format!(
                    "its process used {} of CPU time per hyperperiod by the kernel's count over {n} hyperperiods (allowed {})",
                    format_ns(rate),
                    format_ns(e.kernel_allowance_ns)
                )
            ),
            e.platform_text()
        ));
    }
    Verdict::Watch
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const TIMEOUT: u64 = 200_000_000;

    fn hist(bucket: usize, jobs: u64) -> Vec<u64> {
        let mut h = vec![0; CPU_BUCKETS];
        h[bucket] = jobs;
        h
    }

    fn clean() -> Evidence {
        Evidence {
            cpu: hist(3, 500),
            baseline_cpu: hist(3, 2_000),
            ..Evidence::default()
        }
    }

    /// `e` rolls back under the default limits, marked bad, with every one of `figures` in
    /// the reason; with `max_overruns` raised to `allowed` it is only watched.
    fn rolls_back_marked_bad_unless_allowed(e: &Evidence, figures: &[&str], allowed: u64) {
        match judge(e, &ProbationLimits::default(), TIMEOUT, false) {
            Verdict::RollBack { why, bad } => {
                assert!(bad);
                for f in figures {
                    assert!(why.contains(f), "{why}");
                }
            }
            v => panic!("rolled back, got {v:?}"),
        }
        let lenient = ProbationLimits {
            max_overruns: allowed,
            ..ProbationLimits::default()
        };
        assert_eq!(judge(e, &lenient, TIMEOUT, false), Verdict::Watch);
    }

    #[test]
    fn platform_overruns_and_misses_do_not_count_and_are_reported() {
        let e = Evidence {
            overruns: 3,
            overruns_platform: 3,
            missed: 2,
            missed_platform: 2,
            ..clean()
        };
        let limits = ProbationLimits::default();
        assert_eq!(judge(&e, &limits, TIMEOUT, false), Verdict::Watch);
        match judge(&e, &limits, TIMEOUT, true) {
            Verdict::Commit(text) => assert!(
                text.contains("3 overrun(s) and 2 missed release(s) attributed to the platform"),
                "{text}"
            ),
            v => panic!("committed, got {v:?}"),
        }
    }

    #[test]
    fn an_overrun_of_its_own_rolls_back_and_marks_bad_with_figures() {
        let e = Evidence {
            overruns: 5,
            overruns_platform: 1,
            worst_own: Some("task `planner`: 3.1x its budget of CPU".into()),
            ..clean()
        };
        rolls_back_marked_bad_unless_allowed(
            &e,
            &[
                "4 overrun(s) and 0 missed release(s) of its own",
                "worst: task `planner`: 3.1x its budget of CPU",
                "1 overrun(s) and 0 missed release(s) attributed to the platform",
            ],
            4,
        );
    }

    #[test]
    fn a_lone_job_over_the_limit_is_rechecked_once_then_blamed() {
        let limits = ProbationLimits::default();
        // One job over its budget and the skip it caused: at most CONFIRM_SLACK over.
        let lone = Evidence {
            overruns: 2,
            overruns_platform: 1,
            missed: 1,
            ..clean()
        };
        let first = match judge(&lone, &limits, TIMEOUT, false) {
            Verdict::Recheck(first) => first,
            v => panic!("re-checked, got {v:?}"),
        };
        assert!(
            first.contains("1 overrun(s) and 1 missed release(s) of its own"),
            "{first}"
        );
        // The re-check window repeats it: rolled back, marked bad, naming both windows.
        let again = Evidence {
            overruns: 1,
            rechecking: Some(first.clone()),
            ..clean()
        };
        match judge(&again, &limits, TIMEOUT, false) {
            Verdict::RollBack { why, bad } => {
                assert!(bad);
                assert!(
                    why.contains("in the window that re-checked the first one")
                        && why.contains(&first),
                    "{why}"
                );
            }
            v => panic!("rolled back, got {v:?}"),
        }
        // The re-check window is clean: committed, saying why the first excess is excused.
        let clean_recheck = Evidence {
            rechecking: Some(first),
            ..clean()
        };
        match judge(&clean_recheck, &limits, TIMEOUT, true) {
            Verdict::Commit(text) => assert!(
                text.contains("a re-check window did not repeat the first window's excess"),
                "{text}"
            ),
            v => panic!("committed, got {v:?}"),
        }
        // More than one job's worth over the limit is not re-checked.
        let many = Evidence {
            overruns: 3,
            ..clean()
        };
        assert!(matches!(
            judge(&many, &limits, TIMEOUT, false),
            Verdict::RollBack { bad: true, .. }
        ));
    }

    #[test]
    fn an_overrun_of_its_own_just_over_the_limit_after_a_recheck_rolls_back() {
        let e = Evidence {
            overruns: 2,
            overruns_platform: 1,
            rechecking: Some("earlier".into()),
            ..clean()
        };
        rolls_back_marked_bad_unless_allowed(
            &e,
            &[
                "1 overrun(s) and 0 missed release(s) of its own",
                "1 overrun(s) and 0 missed release(s) attributed to the platform",
            ],
            1,
        );
    }

    #[test]
    fn the_kernels_cpu_figure_rolls_back_a_process_over_its_allowance_once_it_spans_enough() {
        let limits = ProbationLimits::default();
        let over = Evidence {
            kernel_cpu: Some((3_000_000, MIN_KERNEL_HYPERPERIODS)),
            kernel_allowance_ns: 1_200_000,
            ..clean()
        };
        match judge(&over, &limits, TIMEOUT, false) {
            Verdict::RollBack { why, bad } => {
                assert!(bad);
                assert!(
                    why.contains("the kernel accounts its process 3ms of CPU time per hyperperiod over 5 hyperperiods, more than the 1.2ms"),
                    "{why}"
                );
            }
            v => panic!("rolled back, got {v:?}"),
        }
        // Too few hyperperiods: not judged yet.
        let early = Evidence {
            kernel_cpu: Some((3_000_000, MIN_KERNEL_HYPERPERIODS - 1)),
            ..over.clone()
        };
        assert_eq!(judge(&early, &limits, TIMEOUT, false), Verdict::Watch);
        // Within the allowance, or not read: committed at the window's end.
        let within = Evidence {
            kernel_cpu: Some((1_200_000, 50)),
            ..over.clone()
        };
        assert!(matches!(
            judge(&within, &limits, TIMEOUT, true),
            Verdict::Commit(_)
        ));
        let unread = Evidence {
            kernel_cpu: None,
            ..over
        };
        assert!(matches!(
            judge(&unread, &limits, TIMEOUT, true),
            Verdict::Commit(_)
        ));
    }

    #[test]
    fn a_fault_report_above_the_limit_rolls_back_and_blames_the_version() {
        let e = Evidence {
            faults: 1,
            ..clean()
        };
        match judge(&e, &ProbationLimits::default(), TIMEOUT, false) {
            Verdict::RollBack { why, bad } => {
                assert!(bad, "a fault is the version's own");
                assert!(
                    why.contains("1 job(s) of the new version reported a fault")
                        && why.contains("probation_max_faults = 0"),
                    "{why}"
                );
            }
            v => panic!("rolled back, got {v:?}"),
        }
        // Within the limit: watched, then committed with the count in the summary.
        let lenient = ProbationLimits {
            max_faults: 1,
            ..ProbationLimits::default()
        };
        assert_eq!(judge(&e, &lenient, TIMEOUT, false), Verdict::Watch);
        match judge(&e, &lenient, TIMEOUT, true) {
            Verdict::Commit(text) => assert!(text.contains("1 faulted job(s) (limit 1)"), "{text}"),
            v => panic!("committed, got {v:?}"),
        }
        // Faults are never the platform's: a platform stall does not excuse them.
        let stalled = Evidence {
            faults: 2,
            overruns: 2,
            overruns_platform: 2,
            ..clean()
        };
        assert!(matches!(
            judge(&stalled, &lenient, TIMEOUT, false),
            Verdict::RollBack { bad: true, .. }
        ));
    }

    #[test]
    fn a_p99_cpu_time_far_above_the_replaced_versions_rolls_back() {
        // 13/32 of the budget against 4/32: 325%.
        let slow = Evidence {
            cpu: hist(12, 500),
            ..clean()
        };
        assert!(matches!(
            judge(&slow, &ProbationLimits::default(), TIMEOUT, false),
            Verdict::RollBack { bad: true, .. }
        ));
        // Too few jobs to judge: not judged.
        let few = Evidence {
            cpu: hist(12, 10),
            ..clean()
        };
        assert_eq!(
            judge(&few, &ProbationLimits::default(), TIMEOUT, false),
            Verdict::Watch
        );
        // Within the limit.
        let close = Evidence {
            cpu: hist(6, 500),
            ..clean()
        };
        assert_eq!(
            judge(&close, &ProbationLimits::default(), TIMEOUT, false),
            Verdict::Watch
        );
    }

    #[test]
    fn a_window_without_its_jobs_never_commits() {
        // Before, a window spent in a mode without the version's tasks committed it on
        // no evidence at all (found by the soak: an overrunning version committed in `parked`).
        let limits = ProbationLimits::default();
        let mut e = Evidence {
            cpu: hist(3, 149),
            required_jobs: 150,
            ..clean()
        };
        assert_eq!(judge(&e, &limits, TIMEOUT, true), Verdict::Watch);
        e.overdue = true;
        match judge(&e, &limits, TIMEOUT, true) {
            Verdict::RollBack { why, bad } => {
                assert!(!bad);
                assert!(why.contains("149 of the 150 jobs"), "{why}");
            }
            v => panic!("rolled back without blame, got {v:?}"),
        }
        e.cpu = hist(3, 150);
        assert!(matches!(
            judge(&e, &limits, TIMEOUT, true),
            Verdict::Commit(_)
        ));
    }

    #[test]
    fn a_heartbeat_stalled_with_every_other_app_is_the_platforms() {
        let e = Evidence {
            beat_stale_ns: TIMEOUT + 1,
            others_stalled: true,
            ..clean()
        };
        assert!(matches!(
            judge(&e, &ProbationLimits::default(), TIMEOUT, false),
            Verdict::RollBack { bad: false, .. }
        ));
        let alone = Evidence {
            others_stalled: false,
            ..e
        };
        assert!(matches!(
            judge(&alone, &ProbationLimits::default(), TIMEOUT, false),
            Verdict::RollBack { bad: true, .. }
        ));
        let within = Evidence {
            beat_stale_ns: TIMEOUT,
            ..alone
        };
        assert_eq!(
            judge(&within, &ProbationLimits::default(), TIMEOUT, false),
            Verdict::Watch
        );
    }
}
