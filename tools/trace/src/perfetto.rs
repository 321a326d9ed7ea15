//! The run as Chrome trace-event JSON, which ui.perfetto.dev (and chrome://tracing) opens;
//! `takt trace export FILE... --perfetto OUT.json` writes it.
//!
//! Owns: the mapping of jobs onto trace events ([`write_events`]). It must never change a
//! figure (what the slices and their args show is what [`crate::analysis`] rebuilt from the
//! records) and never open a file itself: it writes into any `io::Write` it is given.
//!
//! # Mapping
//!
//! * One process (pid 1) per deployment, named after it; one thread (track) per core,
//!   `tid = core + 1`, named `core N` by metadata events and sorted by core.
//! * One complete slice (`"ph":"X"`) per executed job, named `task#job`, from its `Start` to
//!   its `End`, with args: logical release, planned window, LET deadline, release lateness,
//!   execution time, budget. On the simulated clock a job takes no simulated time unless
//!   jitter was injected; such a slice is drawn with the job's measured (physical)
//!   execution time instead, so it stays visible and can anchor flow arrows (the args say
//!   so with `"duration": "physical execution"`).
//! * Flow arrows (`"ph":"s"` on the publishing job's slice, `"ph":"f"` with
//!   `"bp":"e"` on each reading job's slice, one id per publish-read pair) for every sample
//!   on a port of a declared chain: the path data takes through the chain.
//! * Instant events (`"ph":"i"`) for overruns, skips and lost records on the core's track,
//!   and for mode switches on the process (`"s":"p"`).
//! * Timestamps are microseconds (floats, nanosecond resolution) relative to the epoch.
//!
//! Events are written one by one (give it a buffered writer), so an hour of trace never
//! needs its whole JSON in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Write;

use serde_json::{json, Value};
use takt::trace::ClockKind;

use crate::analysis::{self, Analysis, Job};
use crate::load::Loaded;

/// (producer task, port, seq) -> `(visible_at_ns, publishing job)`, sorted by time.
type Publishers<'a> = HashMap<(u32, u16, u64), Vec<(u64, &'a Job)>>;

const PID: u64 = 1;

/// Microseconds since the epoch, for `ts` and `dur`.
fn us(ns_since_epoch: u64) -> f64 {
    ns_since_epoch as f64 / 1_000.0
}

/// Where a job's slice sits, ns since the epoch: `(start, duration, physical)` where
/// `physical` says the duration is the measured execution time (see the module docs).
fn slice_of(job: &Job, epoch_ns: u64, clock: ClockKind) -> Option<(u64, u64, bool)> {
    let (start, end) = (job.start_ns?, job.end_ns?);
    let start_rel = start.saturating_sub(epoch_ns);
    let dur = end.saturating_sub(start);
    if dur == 0 && clock == ClockKind::Sim {
        // At least 1 ns, so the slice encloses the flow anchors at its middle.
        return Some((start_rel, job.execution_ns.unwrap_or(0).max(1), true));
    }
    Some((start_rel, dur.max(1), false))
}

/// The timestamp (ns since the epoch) strictly inside a slice where its flows attach.
fn anchor_ns(slice: (u64, u64, bool)) -> u64 {
    slice.0 + slice.1 / 2
}

/// Writes the whole JSON document of `loaded` and its analysis `a` into `w`; returns the
/// number of events.
pub fn write_events(loaded: &Loaded, a: &Analysis, w: &mut impl Write) -> std::io::Result<u64> {
    let h = &loaded.header;
    let mut n = 0u64;
    let mut emit = |w: &mut dyn Write, v: Value| -> std::io::Result<()> {
        if n > 0 {
            w.write_all(b",\n")?;
        }
        serde_json::to_writer(&mut *w, &v)?;
        n += 1;
        Ok(())
    };
    w.write_all(b"{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n")?;

    emit(
        w,
        json!({"ph": "M", "pid": PID, "name": "process_name",
               "args": {"name": format!("takt {}", loaded.deployment_name())}}),
    )?;
    let cores: BTreeSet<u8> = a.jobs.iter().map(|j| j.core).collect();
    for &core in &cores {
        let tid = u64::from(core) + 1;
        emit(
            w,
            json!({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name",
                   "args": {"name": format!("core {core}")}}),
        )?;
        emit(
            w,
            json!({"ph": "M", "pid": PID, "tid": tid, "name": "thread_sort_index",
                   "args": {"sort_index": core}}),
        )?;
    }

    let epoch = a.epoch_ns;
    for job in &a.jobs {
        let tid = u64::from(job.core) + 1;
        let name = format!("{}#{}", analysis::task_name(h, job.task), job.job);
        if let Some(slice) = slice_of(job, epoch, a.clock) {
            let let_ns = h.tasks.get(job.task as usize).map(|t| t.let_ns);
            let lateness = match (job.released_at_ns, job.window_start_ns) {
                (Some(at), Some(window)) => Some(at.saturating_sub(epoch.saturating_add(window))),
                _ => None,
            };
            let mut args = json!({
                "release_ns": job.release_ns,
                "window_start_ns": job.window_start_ns,
                "budget_ns": job.budget_ns,
                "deadline_ns": let_ns.map(|l| job.release_ns.saturating_add(l)),
                "lateness_ns": lateness,
                "execution_ns": job.execution_ns,
            });
            if slice.2 {
                args["duration"] = json!("physical execution");
            }
            emit(
                w,
                json!({"ph": "X", "pid": PID, "tid": tid, "cat": "job", "name": name,
                       "ts": us(slice.0), "dur": us(slice.1), "args": args}),
            )?;
        }
        if let Some((execution_ns, budget_ns, code)) = job.overrun {
            let at = job.end_ns.unwrap_or(epoch).saturating_sub(epoch);
            emit(
                w,
                json!({"ph": "i", "s": "t", "pid": PID, "tid": tid, "cat": "overrun",
                       "name": format!("overrun {name}"), "ts": us(at),
                       "args": {"execution_ns": execution_ns, "budget_ns": budget_ns,
                                "off_cpu_ns": job.off_cpu_ns.unwrap_or(0),
                                "attribution": attribution_name(code)}}),
            )?;
        }
        if let Some((late_ns, platform_ns, code)) = job.miss {
            let at = job.end_ns.unwrap_or(epoch).saturating_sub(epoch);
            emit(
                w,
                json!({"ph": "i", "s": "t", "pid": PID, "tid": tid, "cat": "miss",
                       "name": format!("deadline miss {name}"), "ts": us(at),
                       "args": {"late_ns": late_ns, "platform_ns": platform_ns,
                                "attribution": attribution_name(code)}}),
            )?;
        }
        if job.skipped {
            let at = job.released_at_ns.unwrap_or(epoch).saturating_sub(epoch);
            emit(
                w,
                json!({"ph": "i", "s": "t", "pid": PID, "tid": tid, "cat": "skip",
                       "name": format!("skip {name}"), "ts": us(at),
                       "args": {"release_ns": job.release_ns}}),
            )?;
        }
    }

    for s in &a.mode_switches {
        emit(
            w,
            json!({"ph": "i", "s": "p", "pid": PID, "tid": 0, "cat": "mode",
                   "name": format!("mode {} -> {}", s.from_name, s.to_name),
                   "ts": us(s.time_ns.saturating_sub(epoch)),
                   "args": {"cycle": s.cycle, "at_ns": s.at_ns}}),
        )?;
    }

    for l in &a.losses {
        emit(
            w,
            json!({"ph": "i", "s": "t", "pid": PID, "tid": u64::from(l.core) + 1,
                   "cat": "dropped", "name": format!("{} records lost", l.count),
                   "ts": us(l.first_ns.saturating_sub(epoch)),
                   "args": {"count": l.count, "last_lost_ns": l.last_ns}}),
        )?;
    }

    // Flows along every declared chain's ports: (consumer task, port) -> producer tasks.
    let mut links: BTreeMap<(u32, u16), BTreeSet<u32>> = BTreeMap::new();
    let mut producing: HashSet<(u32, u16)> = HashSet::new();
    for c in &h.chains {
        if c.ports.len() + 1 != c.tasks.len() {
            continue;
        }
        for (i, &port) in c.ports.iter().enumerate() {
            links
                .entry((c.tasks[i + 1], port))
                .or_default()
                .insert(c.tasks[i]);
            producing.insert((c.tasks[i], port));
        }
    }
    // (producer task, port, seq) -> (visible_at_ns, publishing job), sorted by time (a
    // restart may reuse a seq), so the sample visible at a read is a binary search away.
    let mut publishers: Publishers<'_> = HashMap::new();
    for job in &a.jobs {
        for p in &job.publishes {
            if p.seq != 0 && producing.contains(&(job.task, p.port)) {
                publishers
                    .entry((job.task, p.port, p.seq))
                    .or_default()
                    .push((p.visible_at_ns, job));
            }
        }
    }
    for list in publishers.values_mut() {
        list.sort_by_key(|&(visible, _)| visible);
    }
    let mut flow_id = 0u64;
    for consumer in &a.jobs {
        let Some(to) = slice_of(consumer, epoch, a.clock) else {
            continue;
        };
        // Each port once, with the sample of its last read (as `Job::read_seq`).
        let mut read: BTreeMap<u16, u64> = BTreeMap::new();
        for &(port, seq) in &consumer.reads {
            read.insert(port, seq);
        }
        for (&port, &seq) in &read {
            if seq == 0 {
                continue;
            }
            let Some(producer_tasks) = links.get(&(consumer.task, port)) else {
                continue;
            };
            for &producer_task in producer_tasks {
                let Some(candidates) = publishers.get(&(producer_task, port, seq)) else {
                    continue;
                };
                // The sample visible at the read, as `analysis` picks it.
                let visible = candidates.partition_point(|(at, _)| *at <= consumer.release_ns);
                let producer = visible.checked_sub(1).map(|i| candidates[i].1);
                let Some(from) = producer.and_then(|p| slice_of(p, epoch, a.clock).map(|s| (p, s)))
                else {
                    continue;
                };
                flow_id += 1;
                let topic = analysis::topic_name(h, port);
                emit(
                    w,
                    json!({"ph": "s", "id": flow_id, "pid": PID, "tid": u64::from(from.0.core) + 1,
                       "cat": "sample", "name": topic, "ts": us(anchor_ns(from.1)),
                       "args": {"seq": seq}}),
                )?;
                emit(
                    w,
                    json!({"ph": "f", "bp": "e", "id": flow_id, "pid": PID,
                       "tid": u64::from(consumer.core) + 1, "cat": "sample", "name": topic,
                       "ts": us(anchor_ns(to)), "args": {"seq": seq}}),
                )?;
            }
        }
    }

    w.write_all(b"\n]}\n")?;
    Ok(n)
}

/// The name of a record's attribution code: `platform`, `takt`, or `unattributed`.
fn attribution_name(code: u16) -> &'static str {
    takt::dispatch::Attribution::from_code(code).map_or("unattributed", |a| a.name())
}
