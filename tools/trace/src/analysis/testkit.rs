//! Hand-made headers and records the analyses' unit tests share.
//!
//! Owns: a two-task deployment (`sensor` -> `filter`) and its clean run, exactly as the
//! dispatcher records it. Test code only; it must never be compiled into the library.

use takt::time::{LogicalNs, MonoNs};
use takt::trace::{ChainInfo, ClockKind, TaskInfo, TraceHeader, TraceRecord};

pub const MS: u64 = 1_000_000;

/// Two tasks on two cores: `sensor` (period 10 ms, LET 2 ms) publishes port 0, which
/// `filter` (period 5 ms, offset 1 ms, LET 1 ms) reads. Declared chain `s2f`.
pub fn header() -> TraceHeader {
    let mut h = TraceHeader::new("unit", ClockKind::Sim);
    h.hyperperiod_ns = 10 * MS;
    h.task_names = vec!["sensor".into(), "filter".into()];
    h.topic_names = vec!["raw".into()];
    h.mode_names = vec!["drive".into(), "parked".into()];
    h.tasks = vec![
        TaskInfo {
            core: 0,
            period_ns: 10 * MS,
            offset_ns: 0,
            budget_ns: MS,
            let_ns: 2 * MS,
        },
        TaskInfo {
            core: 1,
            period_ns: 5 * MS,
            offset_ns: MS,
            budget_ns: MS / 2,
            let_ns: MS,
        },
    ];
    h.chains = vec![ChainInfo {
        name: "s2f".into(),
        tasks: vec![0, 1],
        ports: vec![0],
        max_data_age_ns: 12 * MS,
        max_reaction_ns: 17 * MS,
    }];
    h
}

/// The records of a clean run of `sensor_jobs` sensor jobs and twice as many filter
/// jobs, exactly as the dispatcher orders them. Under LET filter job m reads the sample
/// of sensor job floor((m - 1) / 2) (none for m = 0).
pub fn clean_run(sensor_jobs: u64) -> Vec<TraceRecord> {
    let mut out = Vec::new();
    for k in 0..sensor_jobs {
        let r = 10 * MS * k;
        out.push(TraceRecord::release(
            0,
            0,
            k,
            LogicalNs(r),
            MonoNs(r),
            r,
            MS,
        ));
        out.push(TraceRecord::start(0, 0, k, LogicalNs(r), MonoNs(r)));
        out.push(TraceRecord::publish(
            0,
            0,
            k,
            LogicalNs(r),
            MonoNs(r + 300_000),
            0,
            k + 1,
            r + 2 * MS,
        ));
        out.push(TraceRecord::end(
            0,
            0,
            k,
            LogicalNs(r),
            MonoNs(r + 300_000),
            300_000,
            0,
        ));
        for m in [2 * k, 2 * k + 1] {
            let rf = 5 * MS * m + MS;
            let seq = if m == 0 { 0 } else { (m - 1) / 2 + 1 };
            out.push(TraceRecord::release(
                1,
                1,
                m,
                LogicalNs(rf),
                MonoNs(rf + 10),
                rf,
                MS / 2,
            ));
            out.push(TraceRecord::start(1, 1, m, LogicalNs(rf), MonoNs(rf + 10)));
            out.push(TraceRecord::read(
                1,
                1,
                m,
                LogicalNs(rf),
                MonoNs(rf + 110),
                0,
                seq,
            ));
            out.push(TraceRecord::end(
                1,
                1,
                m,
                LogicalNs(rf),
                MonoNs(rf + 110),
                100,
                0,
            ));
        }
    }
    out.sort_by_key(|r| r.time_ns);
    out
}

/// `header()` (hyperperiod 10 ms: one sensor job and two filter jobs per cycle) with
/// per-mode task sets: `drive` releases both, `parked` only the sensor.
pub fn moded_header() -> TraceHeader {
    let mut h = header();
    h.mode_tasks = Some(takt::trace::ModeTasks {
        default_mode: 0,
        tasks: vec![vec![0, 1], vec![0]],
    });
    h
}

pub fn releases_only(task: u32, jobs: impl IntoIterator<Item = u64>) -> Vec<TraceRecord> {
    let period = if task == 0 { 10 * MS } else { 5 * MS };
    jobs.into_iter()
        .map(|j| {
            TraceRecord::release(
                task as u8,
                task,
                j,
                LogicalNs(j * period),
                MonoNs(j * period),
                j * period,
                1,
            )
        })
        .collect()
}
