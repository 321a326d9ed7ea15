//! Per-task measurements: release lateness, execution time and CPU time as HDR histograms,
//! counted overruns, skips and deadline misses, each also counted when the platform caused
//! it (see [`super::attribution`]), and the jobs that reported a fault
//! (`StepContext::fault`) with their codes. Histograms are allocated when the run starts;
//! recording a value never allocates.

use hdrhistogram::Histogram;

/// Largest value a histogram tracks exactly: 60 s. Larger values are clamped to it.
const HIGHEST_NS: u64 = 60_000_000_000;

/// min / p50 / p99 / max of a distribution, in nanoseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quantiles {
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Quantiles {
    /// min / p50 / p99 / max of `h` (all 0 when it is empty).
    pub fn of(h: &Histogram<u64>) -> Quantiles {
        if h.is_empty() {
            return Quantiles::default();
        }
        Quantiles {
            min_ns: h.min(),
            p50_ns: h.value_at_quantile(0.5),
            p99_ns: h.value_at_quantile(0.99),
            max_ns: h.max(),
        }
    }
}

/// What one task did during a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskStats {
    pub name: String,
    pub core: usize,
    /// Jobs executed.
    pub jobs: u64,
    /// Jobs not executed because of a `skip-next` overrun policy.
    pub skipped: u64,
    /// Jobs that ran longer than their budget.
    pub overruns: u64,
    /// Jobs that ended after their LET deadline (their output was late).
    pub deadline_misses: u64,
    /// Of `skipped`, `overruns` and `deadline_misses`: those the platform caused (the
    /// rest are takt's or the task's).
    pub platform: PlatformShare,
    /// What the task's jobs reported with `StepContext::fault`.
    pub faults: FaultCounts,
    /// Actual start minus planned window start.
    pub lateness: Quantiles,
    /// Execution time of the job (wake-up to end of `step`, injected jitter included).
    pub execution: Quantiles,
    /// CPU time the job used (`CLOCK_THREAD_CPUTIME_ID`; simulated: the injected
    /// execution time).
    pub cpu: Quantiles,
    /// The longest time one job's thread was off the CPU while the job ran.
    pub off_cpu_max_ns: u64,
    /// Jobs before which the dispatcher spun on the clock (`wake = { spin = ... }`): the
    /// kernel woke it before the window's start.
    pub spun_jobs: u64,
    /// Time spent spinning before this task's jobs, in total.
    pub spin_ns: u64,
}

/// A task's fault reports over a run. A job that reports several faults counts once in
/// `jobs` and once per report in `reports`; its code is its first report's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Jobs that reported at least one fault.
    pub jobs: u64,
    /// Every report, over all jobs.
    pub reports: u64,
    /// The code of the first faulted job of the run.
    pub first_code: Option<u16>,
    /// The code of the last faulted job of the run.
    pub last_code: Option<u16>,
}

impl FaultCounts {
    /// Counts one job that reported `reports` (more than 0) faults, the first with `code`.
    /// Allocation free.
    pub fn note(&mut self, reports: u32, code: u16) {
        self.jobs += 1;
        self.reports = self.reports.saturating_add(u64::from(reports));
        if self.first_code.is_none() {
            self.first_code = Some(code);
        }
        self.last_code = Some(code);
    }
}

/// The platform-attributed part of a task's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlatformShare {
    pub skipped: u64,
    pub overruns: u64,
    pub deadline_misses: u64,
}

impl TaskStats {
    /// Skips, overruns and deadline misses that are takt's or the task's.
    pub fn takt_misses(&self) -> u64 {
        (self.skipped + self.overruns + self.deadline_misses).saturating_sub(self.platform_misses())
    }
    /// Skips, overruns and deadline misses the platform caused.
    pub fn platform_misses(&self) -> u64 {
        self.platform.skipped + self.platform.overruns + self.platform.deadline_misses
    }
}

/// The recorder a dispatcher keeps per task. Not shared between threads.
pub(crate) struct TaskRecorder {
    pub jobs: u64,
    pub skipped: u64,
    pub overruns: u64,
    pub deadline_misses: u64,
    pub skipped_platform: u64,
    pub overruns_platform: u64,
    pub deadline_misses_platform: u64,
    pub faults: FaultCounts,
    off_cpu_max_ns: u64,
    pub spun_jobs: u64,
    pub spin_ns: u64,
    lateness: Histogram<u64>,
    execution: Histogram<u64>,
    cpu: Histogram<u64>,
}

impl TaskRecorder {
    pub fn new() -> TaskRecorder {
        // Two significant digits (1% resolution) over 1 ns .. 60 s: a fixed bucket array of
        // about 30 KiB, so `record` below never allocates and a thousand tasks cost 60 MiB of
        // locked memory, not the 440 MiB three digits would (the trace has exact values).
        // Bounds are constants, so creation cannot fail.
        let h = || {
            Histogram::<u64>::new_with_bounds(1, HIGHEST_NS, 2)
                .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
        };
        TaskRecorder {
            jobs: 0,
            skipped: 0,
            overruns: 0,
            deadline_misses: 0,
            skipped_platform: 0,
            overruns_platform: 0,
            deadline_misses_platform: 0,
            faults: FaultCounts::default(),
            off_cpu_max_ns: 0,
            spun_jobs: 0,
            spin_ns: 0,
            lateness: h(),
            execution: h(),
            cpu: h(),
        }
    }

    /// Records one job. Allocation free.
    pub fn record(&mut self, lateness_ns: u64, execution_ns: u64, cpu_ns: u64, off_cpu_ns: u64) {
        self.jobs += 1;
        self.off_cpu_max_ns = self.off_cpu_max_ns.max(off_cpu_ns);
        self.cpu.saturating_record(cpu_ns.min(HIGHEST_NS));
        self.lateness.saturating_record(lateness_ns.min(HIGHEST_NS));
        self.execution
            .saturating_record(execution_ns.min(HIGHEST_NS));
    }

    pub fn finish(&self, name: &str, core: usize) -> TaskStats {
        TaskStats {
            name: name.to_string(),
            core,
            jobs: self.jobs,
            skipped: self.skipped,
            overruns: self.overruns,
            deadline_misses: self.deadline_misses,
            platform: PlatformShare {
                skipped: self.skipped_platform,
                overruns: self.overruns_platform,
                deadline_misses: self.deadline_misses_platform,
            },
            faults: self.faults,
            lateness: Quantiles::of(&self.lateness),
            execution: Quantiles::of(&self.execution),
            cpu: Quantiles::of(&self.cpu),
            off_cpu_max_ns: self.off_cpu_max_ns,
            spun_jobs: self.spun_jobs,
            spin_ns: self.spin_ns,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_the_recorded_values() {
        let mut r = TaskRecorder::new();
        for v in 1..=100u64 {
            r.record(v * 1000, v * 10, v, 0);
        }
        let s = r.finish("t", 1);
        assert_eq!(s.jobs, 100);
        // Two significant digits: every quantile within 1% of the exact value.
        let near = |got: u64, exact: u64| got.abs_diff(exact) * 100 <= exact;
        assert!(near(s.lateness.min_ns, 1000), "{:?}", s.lateness);
        assert!(near(s.lateness.p50_ns, 50_000), "{:?}", s.lateness);
        assert!(near(s.lateness.p99_ns, 99_000), "{:?}", s.lateness);
        assert!(near(s.execution.max_ns, 1000), "{:?}", s.execution);
        assert_eq!(
            TaskRecorder::new().finish("e", 0).execution,
            Quantiles::default()
        );
    }

    #[test]
    fn faults_count_jobs_and_reports_and_keep_the_first_and_last_codes() {
        let mut r = TaskRecorder::new();
        assert_eq!(r.finish("t", 0).faults, FaultCounts::default());
        r.faults.note(1, 7);
        r.faults.note(3, 2);
        r.faults.note(1, 9);
        assert_eq!(
            r.finish("t", 0).faults,
            FaultCounts {
                jobs: 3,
                reports: 5,
                first_code: Some(7),
                last_code: Some(9),
            }
        );
    }
}
