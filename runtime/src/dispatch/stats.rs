//! Per-task measurements: release lateness and execution time as HDR histograms, counted
//! overruns, skips and deadline misses. Histograms are allocated when the run starts;
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
    fn of(h: &Histogram<u64>) -> Quantiles {
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
    /// Actual start minus planned window start.
    pub lateness: Quantiles,
    /// Execution time of the job (wake-up to end of `step`, injected jitter included).
    pub execution: Quantiles,
}

/// The recorder a dispatcher keeps per task. Not shared between threads.
pub(crate) struct TaskRecorder {
    pub jobs: u64,
    pub skipped: u64,
    pub overruns: u64,
    pub deadline_misses: u64,
    lateness: Histogram<u64>,
    execution: Histogram<u64>,
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
            lateness: h(),
            execution: h(),
        }
    }

    /// Records one job. Allocation free.
    pub fn record(&mut self, lateness_ns: u64, execution_ns: u64) {
        self.jobs += 1;
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
            lateness: Quantiles::of(&self.lateness),
            execution: Quantiles::of(&self.execution),
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
            r.record(v * 1000, v * 10);
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
}
