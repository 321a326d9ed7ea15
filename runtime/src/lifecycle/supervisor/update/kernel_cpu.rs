//! CPU time of a process as the kernel accounts it: probation evidence the version under
//! test cannot rewrite.
//!
//! Owns: reading the summed CPU time of every thread of a process from
//! `/proc/PID/task/TID/schedstat` (the first field: nanoseconds on the CPU), and the
//! per-hyperperiod rate between two readings. The health counters a candidate's dispatchers
//! keep live in shared memory its own process can write; this figure comes from the
//! scheduler, so a version that hides its overruns, or burns CPU in a thread of its own
//! outside any job, still shows here.
//!
//! Threads that ended between two readings take their time with them; a process cannot
//! gain from that, as a thread that ended no longer runs.

use std::path::Path;

/// Nanoseconds on the CPU of every live thread of process `pid`; `None` when the process is
/// gone or `/proc` cannot be read.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let dir = Path::new("/proc").join(pid.to_string()).join("task");
    let mut total = 0u64;
    let mut any = false;
    for entry in std::fs::read_dir(dir).ok()? {
        let Ok(entry) = entry else { continue };
        // A thread that ended after the listing has no file any more: skipped.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        if let Some(ns) = parse_schedstat(&text) {
            total = total.saturating_add(ns);
            any = true;
        }
    }
    any.then_some(total)
}

/// The first field of a `schedstat` line: time on the CPU in nanoseconds.
fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

/// One reading: the hyperperiod it was taken in and the process's CPU time then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuReading {
    pub cycle: u64,
    pub cpu_ns: u64,
}

impl CpuReading {
    /// Reads process `pid` in hyperperiod `cycle`.
    pub fn take(pid: u32, cycle: u64) -> Option<CpuReading> {
        process_cpu_ns(pid).map(|cpu_ns| CpuReading { cycle, cpu_ns })
    }
    /// CPU time per hyperperiod from `self` to `later`, and over how many hyperperiods;
    /// `None` when no hyperperiod passed.
    pub fn rate_to(&self, later: &CpuReading) -> Option<(u64, u64)> {
        let cycles = later.cycle.checked_sub(self.cycle).filter(|&c| c > 0)?;
        Some((later.cpu_ns.saturating_sub(self.cpu_ns) / cycles, cycles))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn schedstat_lines_parse_and_garbage_does_not() {
        assert_eq!(parse_schedstat("123456 789 10\n"), Some(123_456));
        assert_eq!(parse_schedstat(""), None);
        assert_eq!(parse_schedstat("x 1 2"), None);
        assert_eq!(parse_schedstat("-5 1 2"), None);
    }

    #[test]
    fn this_process_is_read_and_its_cpu_time_grows_with_work() {
        let pid = std::process::id();
        let before = process_cpu_ns(pid).expect("this process's threads are readable");
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = process_cpu_ns(pid).expect("still readable");
        // 30 ms of wall time spinning: some of it on the CPU, however loaded the host.
        assert!(after > before, "{before} -> {after}");
    }

    #[test]
    fn a_process_that_does_not_exist_reads_as_none() {
        // Above the largest pid the kernel hands out (2^22).
        assert_eq!(process_cpu_ns(4_194_305), None);
    }

    #[test]
    fn rates_are_per_hyperperiod_and_need_one() {
        let a = CpuReading {
            cycle: 10,
            cpu_ns: 1_000,
        };
        let b = CpuReading {
            cycle: 14,
            cpu_ns: 9_000,
        };
        assert_eq!(a.rate_to(&b), Some((2_000, 4)));
        assert_eq!(a.rate_to(&a), None);
        assert_eq!(b.rate_to(&a), None);
    }
}
