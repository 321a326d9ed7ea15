//! Who is to blame for a late job: the platform (the host, the hypervisor, the kernel) or
//! takt and the task.
//!
//! Owns: the pure classification of one job's overrun and deadline miss from figures the
//! dispatcher measured ([`JobFigures`]). It reads no clock and touches no shared state, so
//! it is tested exhaustively with made-up figures; the dispatcher measures, this decides.
//!
//! # What is measured, per job
//!
//! * **Wall time** of the job on `CLOCK_MONOTONIC` (start to end of `step`), as before.
//! * **Thread CPU time** of the job (`CLOCK_THREAD_CPUTIME_ID` at start and at end): the
//!   time the dispatcher thread actually ran. Wall minus CPU is the time the thread was off
//!   its CPU while its job ran: host steal, a hypervisor stall, an interrupt storm, a
//!   higher-priority thread. Costs two syscalls, about 1 us per job: the one clock read
//!   the hot path makes beside the `CLOCK_MONOTONIC` reads, the sleep and the port
//!   operations.
//! * **Release lateness**: actual start minus planned window start, split into the part
//!   the dispatcher itself caused (it was still busy with earlier jobs, or with its own
//!   bookkeeping: the previous job's end plus the CPU time spent since, which is takt's
//!   dispatch overhead) and the rest, which is the kernel waking the thread late or the
//!   thread waiting off-CPU: the platform's.
//!
//! # The rule
//!
//! * An **overrun** (wall time over budget) is the platform's when the job's own CPU time
//!   fit its budget; otherwise the task used more CPU than it declared: takt/task.
//! * A **deadline miss** (the job ended after its LET deadline) is the platform's when the
//!   job would have met its deadline without the platform's share of its delay (its
//!   off-CPU time, its wake-up lateness, and the platform share of any backlog it inherited
//!   from the job before it on the same dispatcher); otherwise it is takt's.
//! * A **skip** (the skip-next policy after an overrun) carries the overrun's class.
//!
//! So a miss that is takt's is never hidden: the platform only takes what it provably
//! delayed. A job that is both over its CPU budget and stalled is takt's.

use std::fmt;

/// Who a miss or overrun is charged to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Attribution {
    /// The job's own CPU time fit; the excess is time the thread was off its CPU or woke
    /// late.
    Platform,
    /// The task used more CPU than its budget, or takt's own dispatching made it late.
    Takt,
}

impl Attribution {
    /// The byte trace records carry: 0 means "not attributed" (files of older takt).
    pub const fn code(self) -> u16 {
        match self {
            Attribution::Platform => 1,
            Attribution::Takt => 2,
        }
    }
    /// The inverse of [`Attribution::code`]; `None` for 0 and for unknown values.
    pub const fn from_code(code: u16) -> Option<Attribution> {
        match code {
            1 => Some(Attribution::Platform),
            2 => Some(Attribution::Takt),
            _ => None,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Attribution::Platform => "platform",
            Attribution::Takt => "takt",
        }
    }
}

impl fmt::Display for Attribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the dispatcher measured of one job, all on one clock (physical ns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JobFigures {
    /// Planned start of the job's window.
    pub planned_ns: u64,
    /// When the job actually started.
    pub start_ns: u64,
    /// When `step` returned.
    pub end_ns: u64,
    /// The job's LET deadline.
    pub deadline_ns: u64,
    /// The window's budget.
    pub budget_ns: u64,
    /// CPU time the thread used during the job.
    pub cpu_ns: u64,
    /// When the previous job on this dispatcher ended (0: none this walk).
    pub previous_end_ns: u64,
    /// CPU time the thread used between the previous job's end and this job's start:
    /// takt's own dispatching (trace records, the sleep call).
    pub between_cpu_ns: u64,
    /// The platform's share of the previous job's delay ([`Verdict::platform_ns`]).
    pub inherited_platform_ns: u64,
}

/// The classification of one job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Start minus planned start.
    pub lateness_ns: u64,
    /// The part of `lateness_ns` that is the platform's.
    pub platform_late_ns: u64,
    /// Wall time minus CPU time during the job.
    pub off_cpu_ns: u64,
    /// Everything the platform delayed this job by: `platform_late_ns + off_cpu_ns`.
    pub platform_ns: u64,
    /// `Some` when the job's wall time exceeded its budget.
    pub overrun: Option<Attribution>,
    /// `Some` when the job ended after its deadline.
    pub miss: Option<Attribution>,
}

/// Classifies one job. Pure and allocation free: the dispatcher calls it on the hot path.
pub const fn classify(f: &JobFigures) -> Verdict {
    let lateness_ns = f.start_ns.saturating_sub(f.planned_ns);
    // When the dispatcher could have slept for this window had it never left its CPU
    // since the previous job: that job's end plus takt's own work in between.
    let ready_ns = f.previous_end_ns.saturating_add(f.between_cpu_ns);
    let backlog_ns = ready_ns.saturating_sub(f.planned_ns);
    let backlog_ns = if backlog_ns < lateness_ns {
        backlog_ns
    } else {
        lateness_ns
    };
    let inherited = if f.inherited_platform_ns < backlog_ns {
        f.inherited_platform_ns
    } else {
        backlog_ns
    };
    // Lateness the dispatcher's own backlog does not explain is the platform's (a late
    // wake-up, or off-CPU time between jobs); of the backlog, the inherited platform share.
    let takt_late_ns = backlog_ns - inherited;
    let platform_late_ns = lateness_ns - takt_late_ns;
    let wall_ns = f.end_ns.saturating_sub(f.start_ns);
    let off_cpu_ns = wall_ns.saturating_sub(f.cpu_ns);
    let platform_ns = platform_late_ns.saturating_add(off_cpu_ns);
    let overrun = if wall_ns > f.budget_ns {
        Some(if f.cpu_ns <= f.budget_ns {
            Attribution::Platform
        } else {
            Attribution::Takt
        })
    } else {
        None
    };
    let miss = if f.end_ns > f.deadline_ns {
        Some(if f.end_ns.saturating_sub(platform_ns) <= f.deadline_ns {
            Attribution::Platform
        } else {
            Attribution::Takt
        })
    } else {
        None
    };
    Verdict {
        lateness_ns,
        platform_late_ns,
        off_cpu_ns,
        platform_ns,
        overrun,
        miss,
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const US: u64 = 1_000;

    /// A job planned at 1 ms with a 100 us budget and its deadline at 2 ms.
    fn job() -> JobFigures {
        JobFigures {
            planned_ns: 1_000 * US,
            start_ns: 1_000 * US + 20 * US,
            end_ns: 1_000 * US + 70 * US,
            deadline_ns: 2_000 * US,
            budget_ns: 100 * US,
            cpu_ns: 50 * US,
            previous_end_ns: 500 * US,
            between_cpu_ns: 5 * US,
            inherited_platform_ns: 0,
        }
    }

    #[test]
    fn a_job_in_time_is_neither_overrun_nor_missed() {
        let v = classify(&job());
        assert_eq!(v.overrun, None);
        assert_eq!(v.miss, None);
        assert_eq!(v.lateness_ns, 20 * US);
        assert_eq!(
            v.platform_late_ns,
            20 * US,
            "woke late with nothing in its way"
        );
        assert_eq!(v.off_cpu_ns, 0);
    }

    #[test]
    fn an_overrun_whose_cpu_time_fit_is_the_platforms() {
        // 1.5 ms of wall time, 60 us of CPU: the thread was off its CPU for the rest.
        let f = JobFigures {
            end_ns: job().start_ns + 1_500 * US,
            cpu_ns: 60 * US,
            ..job()
        };
        let v = classify(&f);
        assert_eq!(v.overrun, Some(Attribution::Platform));
        assert_eq!(v.off_cpu_ns, 1_440 * US);
        assert_eq!(v.miss, Some(Attribution::Platform), "ended at 2.52 ms");
    }

    #[test]
    fn an_overrun_that_used_more_cpu_than_its_budget_is_takts() {
        let f = JobFigures {
            end_ns: job().start_ns + 1_500 * US,
            cpu_ns: 1_490 * US,
            ..job()
        };
        let v = classify(&f);
        assert_eq!(v.overrun, Some(Attribution::Takt));
        assert_eq!(v.miss, Some(Attribution::Takt));
    }

    #[test]
    fn a_stalled_job_that_also_burns_its_budget_is_takts() {
        // Over budget on CPU alone, even though it was also off its CPU.
        let f = JobFigures {
            end_ns: job().start_ns + 1_000 * US,
            cpu_ns: 150 * US,
            ..job()
        };
        assert_eq!(classify(&f).overrun, Some(Attribution::Takt));
    }

    #[test]
    fn a_late_wake_up_is_the_platforms_miss() {
        // Woke 1.5 ms late (the dispatcher was idle since 0.5 ms), ran 50 us of CPU.
        let f = JobFigures {
            start_ns: 2_500 * US,
            end_ns: 2_550 * US,
            ..job()
        };
        let v = classify(&f);
        assert_eq!(v.overrun, None);
        assert_eq!(v.platform_late_ns, 1_500 * US);
        assert_eq!(v.miss, Some(Attribution::Platform));
    }

    #[test]
    fn a_backlog_from_a_takt_overrun_is_takts_and_from_a_stall_the_platforms() {
        // The previous job ended at 2.4 ms (after this window's deadline); this one could
        // only start then.
        let late = JobFigures {
            previous_end_ns: 2_400 * US,
            between_cpu_ns: 10 * US,
            start_ns: 2_420 * US,
            end_ns: 2_470 * US,
            ..job()
        };
        let v = classify(&late);
        assert_eq!(v.miss, Some(Attribution::Takt), "{v:?}");
        assert_eq!(
            v.platform_late_ns,
            10 * US,
            "only the wake-up after the backlog"
        );
        // The same backlog, but the previous job's delay was the platform's.
        let v = classify(&JobFigures {
            inherited_platform_ns: 1_400 * US,
            ..late
        });
        assert_eq!(v.miss, Some(Attribution::Platform), "{v:?}");
    }

    #[test]
    fn takts_own_dispatch_overhead_is_not_the_platforms() {
        // The previous job ended just before this window; takt then spent 1.2 ms of CPU of
        // its own before it could sleep: the late start is takt's.
        let f = JobFigures {
            previous_end_ns: 990 * US,
            between_cpu_ns: 1_200 * US,
            start_ns: 2_190 * US,
            end_ns: 2_240 * US,
            ..job()
        };
        assert_eq!(classify(&f).miss, Some(Attribution::Takt));
    }

    #[test]
    fn codes_round_trip_and_zero_is_unattributed() {
        for a in [Attribution::Platform, Attribution::Takt] {
            assert_eq!(Attribution::from_code(a.code()), Some(a));
        }
        assert_eq!(Attribution::from_code(0), None);
        assert_eq!(Attribution::from_code(u16::MAX), None);
    }
}
