//! The cyclictest baseline: running `cyclictest` (Debian rt-tests) as a child process and
//! reading its histogram and summary.
//!
//! Owns: the command line (the same priority, interval, core and count as the takt run,
//! `--mlockall`) and the parser of `-q -h` output. It must never wait on the child without a
//! timeout: output is drained on reader threads (a 10,000-line histogram does not fit a
//! pipe) and a child that overruns its time is killed.
//!
//! The histogram has 1 µs bins: cyclictest truncates each latency to whole microseconds,
//! so bin `v` holds latencies in `[v, v + 1)` µs.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Largest latency the histogram tracks, in µs; larger ones count as overflows.
pub const HISTOGRAM_US: u64 = 10_000;

/// What one cyclictest run measured (one thread).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cyclictest {
    /// `(bin in µs, count)` for every bin cyclictest printed, ascending.
    pub bins: Vec<(u64, u64)>,
    pub overflows: u64,
    pub min_us: u64,
    pub avg_us: u64,
    pub max_us: u64,
}

impl Cyclictest {
    /// Samples measured: in the bins plus overflows.
    pub fn total(&self) -> u64 {
        self.bins.iter().map(|(_, c)| c).sum::<u64>() + self.overflows
    }

    /// The bin (µs) holding quantile `q` (the smallest bin with at least `ceil(q * total)`
    /// samples at or below it); a quantile among the overflows is the maximum.
    pub fn quantile_us(&self, q: f64) -> u64 {
        let total = self.total();
        let want = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for &(bin, count) in &self.bins {
            seen += count;
            if seen >= want {
                return bin;
            }
        }
        self.max_us
    }
}

impl Cyclictest {
    /// Folds another run into this one, as if both had been one run.
    pub fn merge(&mut self, other: &Cyclictest) {
        let (a, b) = (self.total(), other.total());
        let mut bins: std::collections::BTreeMap<u64, u64> = self.bins.iter().copied().collect();
        for &(bin, count) in &other.bins {
            *bins.entry(bin).or_insert(0) += count;
        }
        self.bins = bins.into_iter().collect();
        self.overflows += other.overflows;
        self.min_us = self.min_us.min(other.min_us);
        self.max_us = self.max_us.max(other.max_us);
        if let Some(avg_us) = (self.avg_us * a + other.avg_us * b + (a + b) / 2).checked_div(a + b)
        {
            self.avg_us = avg_us;
        }
    }
}

/// Parses the stdout of `cyclictest -q -h <us>` for one thread.
pub fn parse(text: &str) -> Result<Cyclictest, String> {
    let mut bins = Vec::new();
    let summary = |key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix("# ")?.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
    };
    let min_us = summary("Min Latencies:");
    let avg_us = summary("Avg Latencies:");
    let max_us = summary("Max Latencies:");
    let overflows = summary("Histogram Overflows:");
    for (i, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(bin), Some(count)) = (fields.next(), fields.next()) else {
            return Err(format!(
                "cyclictest output line {}: expected `<bin us> <count>`, found `{line}`",
                i + 1
            ));
        };
        let parsed = (bin.parse::<u64>(), count.parse::<u64>());
        let (Ok(bin), Ok(count)) = parsed else {
            return Err(format!(
                "cyclictest output line {}: expected two numbers, found `{line}`",
                i + 1
            ));
        };
        if count > 0 {
            bins.push((bin, count));
        }
    }
    let (Some(min_us), Some(avg_us), Some(max_us)) = (min_us, avg_us, max_us) else {
        return Err(
            "cyclictest output has no `# Min/Avg/Max Latencies` summary (was it run with -q -h?)"
                .to_string(),
        );
    };
    bins.sort_unstable();
    let c = Cyclictest {
        bins,
        overflows: overflows.unwrap_or(0),
        min_us,
        avg_us,
        max_us,
    };
    if c.total() == 0 {
        return Err("cyclictest measured nothing (an empty histogram)".to_string());
    }
    Ok(c)
}

/// The outcome of a child process: exit status text, stdout, stderr.
struct Finished {
    success: bool,
    status: String,
    stdout: String,
    stderr: String,
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` at most `limit`, killing it past that; output is read concurrently.
fn finish(mut child: Child, limit: Duration, what: &str) -> Result<Finished, String> {
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{what} did not finish within {limit:?} and was killed"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("cannot wait for {what}: {e}")),
        }
    };
    let text = |h: Option<std::thread::JoinHandle<String>>| {
        h.and_then(|h| h.join().ok()).unwrap_or_default()
    };
    Ok(Finished {
        success: status.success(),
        status: status.to_string(),
        stdout: text(out),
        stderr: text(err),
    })
}

/// Runs cyclictest with `loops` wake-ups every `interval_us` on `core` at SCHED_FIFO
/// `priority`, memory locked, and parses its histogram.
///
/// `--default-system` keeps cyclictest from lowering `/dev/cpu_dma_latency` to 0 for its
/// run: the takt dispatcher does not do that either, and on a guest with the haltpoll idle
/// driver it changes wake-up latency a lot, so only this way both face the same machine.
pub fn run(
    program: &Path,
    core: usize,
    priority: u8,
    interval_us: u64,
    loops: u64,
) -> Result<Cyclictest, String> {
    let args = [
        "--mlockall".to_string(),
        format!("--priority={priority}"),
        format!("--interval={interval_us}"),
        format!("--affinity={core}"),
        "--threads=1".to_string(),
        format!("--loops={loops}"),
        "--quiet".to_string(),
        format!("--histogram={HISTOGRAM_US}"),
        "--default-system".to_string(),
    ];
    let child = Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let limit = Duration::from_micros(interval_us * loops) + Duration::from_secs(30);
    let f = finish(child, limit, "cyclictest")?;
    if !f.success {
        return Err(format!(
            "`{} {}` failed ({}): {}",
            program.display(),
            args.join(" "),
            f.status,
            f.stderr.trim()
        ));
    }
    parse(&f.stdout)
}

/// cyclictest's version line (`cyclictest V 2.40`), if it can tell within 5 s.
pub fn version(program: &Path) -> Option<String> {
    let child = Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let f = finish(child, Duration::from_secs(5), "cyclictest --help").ok()?;
    f.stdout
        .lines()
        .chain(f.stderr.lines())
        .find(|l| l.starts_with("cyclictest V"))
        .map(|l| l.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# /dev/cpu_dma_latency set to 0us
# Histogram
000000 000000
000013 000002
000014 000006
000015 000090
000040 000001
000041 000000
# Total: 000000099
# Min Latencies: 00013
# Avg Latencies: 00015
# Max Latencies: 00250
# Histogram Overflows: 00001
# Histogram Overflow at cycle number:
# Thread 0:  00042
";

    #[test]
    fn parses_histogram_and_summary() {
        let c = parse(SAMPLE).expect("parses");
        assert_eq!(c.bins, vec![(13, 2), (14, 6), (15, 90), (40, 1)]);
        assert_eq!(
            (c.min_us, c.avg_us, c.max_us, c.overflows),
            (13, 15, 250, 1)
        );
        assert_eq!(c.total(), 100);
        assert_eq!(c.quantile_us(0.0), 13);
        assert_eq!(c.quantile_us(0.02), 13);
        assert_eq!(c.quantile_us(0.03), 14);
        assert_eq!(c.quantile_us(0.5), 15);
        assert_eq!(c.quantile_us(0.99), 40);
        assert_eq!(
            c.quantile_us(1.0),
            250,
            "the last sample is an overflow: the max"
        );
    }

    #[test]
    fn merged_runs_add_up() {
        let mut a = parse(SAMPLE).expect("parses");
        let b = Cyclictest {
            bins: vec![(12, 10), (15, 10)],
            overflows: 0,
            min_us: 12,
            avg_us: 14,
            max_us: 15,
        };
        a.merge(&b);
        assert_eq!(a.bins, vec![(12, 10), (13, 2), (14, 6), (15, 100), (40, 1)]);
        assert_eq!(
            (a.total(), a.overflows, a.min_us, a.max_us),
            (120, 1, 12, 250)
        );
        assert_eq!(a.avg_us, 15, "(15 * 100 + 14 * 20) / 120 rounds to 15");
    }

    #[test]
    fn refuses_output_without_summary_or_with_garbage() {
        assert!(parse("000013 000002\n").unwrap_err().contains("summary"));
        let garbage = SAMPLE.replace("000014 000006", "fourteen six");
        assert!(parse(&garbage).unwrap_err().contains("line 5"));
        let empty = "# Min Latencies: 00000\n# Avg Latencies: 00000\n# Max Latencies: 00000\n";
        assert!(parse(empty).unwrap_err().contains("nothing"));
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_panic() {
        let e = run(Path::new("/nonexistent/cyclictest"), 0, 80, 1000, 10).unwrap_err();
        assert!(e.contains("cannot start"), "{e}");
        assert_eq!(version(Path::new("/nonexistent/cyclictest")), None);
    }
}
