//! Part 6, tracing overhead: what a traced event costs the dispatcher, and the release
//! lateness of a real-time run with tracing on against the same run with tracing off.
//!
//! Owns two measurements:
//! * `trace_event_ns_mean` (and p50/p99 over batches): the cost of one
//!   `RingProducer::push` of a 48-byte record, measured on a ring that a drainer thread
//!   empties concurrently, as the dispatcher's rings are. Records the consumer could not
//!   keep up with are dropped and counted (`trace_event_dropped`); a drop costs about the
//!   same as a push, so the figure holds either way.
//! * `trace_lateness_*`: the 1 ms probe (SCHED_FIFO 80, pinned; see `rig::run_probe`) run
//!   alternately with a trace file being written and without, in chunks, so both see the
//!   same machine drift; the dispatcher's own lateness histograms are compared (p50, p99,
//!   max, ratio on/off). Each traced job pushes four records (release, start, end, and no
//!   port records: the probe has no ports).

use std::time::{Duration, Instant};

use takt::dispatch::{ClockKind, Quantiles, TraceOptions};
use takt::trace::{self, TraceRecord};

use super::report::{fmt_ns, Report, Row};
use super::rig::{self, RT_PRIORITY};
use super::Env;
use takt::time::{LogicalNs, MonoNs};

pub const PART: &str = "tracing";

pub const KEYS: &[&str] = &[
    "trace_event_ns_mean",
    "trace_event_ns_p50",
    "trace_event_ns_p99",
    "trace_event_dropped",
    "trace_lateness_on_ns_p50",
    "trace_lateness_on_ns_p99",
    "trace_lateness_on_ns_max",
    "trace_lateness_off_ns_p50",
    "trace_lateness_off_ns_p99",
    "trace_lateness_off_ns_max",
    "trace_lateness_ratio_p99",
    "trace_lateness_ratio_max",
];

/// Records pushed per timed batch.
const BATCH: u64 = 1024;

/// Pushes `batches * BATCH` records into a ring drained by another thread; returns the
/// per-event cost of each batch in ns and the records dropped.
fn push_cost(batches: u64) -> Result<(Vec<f64>, u64), String> {
    let (producer, mut consumer) =
        trace::channel(1 << 16, 0).map_err(|e| format!("trace ring: {e}"))?;
    let done = std::sync::atomic::AtomicBool::new(false);
    let (per_batch, dropped) = std::thread::scope(|s| {
        let drainer = s.spawn(|| {
            let mut sink = Vec::with_capacity(1 << 16);
            // Bounded: the producer sets `done` after a fixed number of pushes.
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                sink.clear();
                consumer.drain_into(&mut sink);
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let mut per_batch = Vec::with_capacity(batches as usize);
        for b in 0..batches {
            let t0 = Instant::now();
            for i in 0..BATCH {
                let job = b * BATCH + i;
                // black_box: the record must really be built and pushed every time.
                producer.push(std::hint::black_box(TraceRecord::start(
                    0,
                    1,
                    job,
                    LogicalNs(job),
                    MonoNs(job),
                )));
            }
            per_batch.push(t0.elapsed().as_nanos() as f64 / BATCH as f64);
        }
        let dropped = producer.dropped_total();
        done.store(true, std::sync::atomic::Ordering::Release);
        let _ = drainer.join();
        (per_batch, dropped)
    });
    Ok((per_batch, dropped))
}

fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied()
}

pub fn run(env: &Env, r: &mut Report) {
    let batches: u64 = if env.quick { 1_000 } else { 10_000 };
    env.step(format!(
        "{} pushes into a drained trace ring",
        batches * BATCH
    ));
    match push_cost(batches) {
        Ok((mut per_batch, dropped)) => {
            let mean = per_batch.iter().sum::<f64>() / per_batch.len().max(1) as f64;
            per_batch.sort_by(f64::total_cmp);
            r.set("trace_event_ns_mean", mean);
            if let Some(v) = percentile(&per_batch, 0.5) {
                r.set("trace_event_ns_p50", v);
            }
            if let Some(v) = percentile(&per_batch, 0.99) {
                r.set("trace_event_ns_p99", v);
            }
            r.set_count("trace_event_dropped", dropped);
            r.row(Row::new(PART, "cost per traced event (mean)").takt(fmt_ns(mean)));
        }
        Err(e) => env.fail(r, PART, e),
    }

    if let Some(why) = &env.not_realtime {
        env.skip(
            r,
            "tracing (real time)",
            format!("SCHED_FIFO {RT_PRIORITY} is not permitted here: {why}"),
        );
        return;
    }
    let chunks: u64 = if env.quick { 2 } else { 4 };
    let jobs_per_chunk: u64 = if env.quick { 1_000 } else { 5_000 };
    let core = env.measure_core();
    let path = std::env::temp_dir().join(format!("{}-bench.takt", env.namespace));
    let mut on: Vec<Quantiles> = Vec::new();
    let mut off: Vec<Quantiles> = Vec::new();
    for chunk in 0..chunks {
        for traced in [true, false] {
            env.step(format!(
                "chunk {}/{chunks}: {jobs_per_chunk} jobs at 1 ms, tracing {}",
                chunk + 1,
                if traced { "on" } else { "off" }
            ));
            let trace = traced.then(|| TraceOptions::new(&path, [0; 32]));
            let namespace = format!("{}-trace-{chunk}-{traced}", env.namespace);
            match rig::run_probe_traced(
                namespace,
                core,
                ClockKind::Real,
                jobs_per_chunk,
                0,
                trace,
                |_| {},
            ) {
                Ok(run) => {
                    if let Some(t) = run.report.tasks.first() {
                        if traced { &mut on } else { &mut off }.push(t.lateness);
                    }
                }
                Err(e) => {
                    env.fail(r, PART, format!("probe run (tracing {traced}): {e}"));
                    let _ = std::fs::remove_file(&path);
                    return;
                }
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    // Chunks of equal length: the median of the chunks' p50/p99 and the largest max.
    let pick = |qs: &[Quantiles], f: fn(&Quantiles) -> u64| -> Option<f64> {
        let mut v: Vec<f64> = qs.iter().map(|q| f(q) as f64).collect();
        rig::median(&mut v)
    };
    let worst = |qs: &[Quantiles]| qs.iter().map(|q| q.max_ns).max().map(|v| v as f64);
    let on_p50 = pick(&on, |q| q.p50_ns);
    let on_p99 = pick(&on, |q| q.p99_ns);
    let off_p50 = pick(&off, |q| q.p50_ns);
    let off_p99 = pick(&off, |q| q.p99_ns);
    let (on_max, off_max) = (worst(&on), worst(&off));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    for (key, v) in [
        ("trace_lateness_on_ns_p50", on_p50),
        ("trace_lateness_on_ns_p99", on_p99),
        ("trace_lateness_on_ns_max", on_max),
        ("trace_lateness_off_ns_p50", off_p50),
        ("trace_lateness_off_ns_p99", off_p99),
        ("trace_lateness_off_ns_max", off_max),
        ("trace_lateness_ratio_p99", ratio(on_p99, off_p99)),
        ("trace_lateness_ratio_max", ratio(on_max, off_max)),
    ] {
        if let Some(v) = v {
            r.set(key, v);
        }
    }
    let ns = |v: Option<f64>| v.map_or_else(|| "-".to_string(), fmt_ns);
    for (name, a, b) in [
        ("release lateness p50, tracing on vs off", on_p50, off_p50),
        ("release lateness p99, tracing on vs off", on_p99, off_p99),
        ("release lateness max, tracing on vs off", on_max, off_max),
    ] {
        r.row(
            Row::new(PART, name)
                .takt(ns(a))
                .baseline(ns(b))
                .ratio(ratio(a, b)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushing_costs_something_and_counts_drops() {
        let (per_batch, _dropped) = push_cost(10).expect("ring");
        assert_eq!(per_batch.len(), 10);
        assert!(per_batch.iter().all(|&ns| ns > 0.0));
    }

    #[test]
    fn percentiles_of_sorted_values() {
        let v: Vec<f64> = (0..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(50.0));
        assert_eq!(percentile(&v, 0.99), Some(99.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
