//! The independent verifier: re-checks any plan, synthesized or loaded from elsewhere,
//! against its deployment.
//!
//! Owns: its own hyperperiod, its own job enumeration from the task parameters, and every
//! check of the plan: one table set per mode in order; every job of every active task
//! exactly once, on its task's core, with the task's release, deadline and budget;
//! `release <= start` and `start + budget <= min(deadline, hyperperiod)`; windows sorted and
//! never overlapping; utilization fields; same-instant precedence of declared chains;
//! channel sizing at least what the tables need; chain bounds equal to their closed-form
//! values. It must never call or share code with synthesis (`synth`, `search`, `sizing`,
//! `bounds`): a bug there must not be able to hide by being repeated here. It reports every
//! violation it finds, each naming mode, core, task and job, and never panics, whatever
//! the plan holds.

use super::{ChainBound, ChannelSizing, Plan, Violation};
use crate::manifest::{limits, Deployment, TaskId};
use crate::time::format_ns;

/// Collected violations.
struct Report {
    found: Vec<Violation>,
}

impl Report {
    fn push(&mut self, message: String) {
        self.found.push(Violation { message });
    }
}

pub(super) fn verify(d: &Deployment, p: &Plan) -> Result<(), Vec<Violation>> {
    let mut r = Report { found: Vec::new() };
    if let Some(h) = hyperperiod(d, &mut r) {
        if p.hyperperiod_ns != h {
            r.push(format!(
                "the plan's hyperperiod is {} but the LCM of the task periods is {}",
                format_ns(p.hyperperiod_ns),
                format_ns(h)
            ));
        }
        if d.hyperperiod_ns != h {
            r.push(format!(
                "the deployment's hyperperiod_ns is {} but the LCM of its task periods is {}",
                format_ns(d.hyperperiod_ns),
                format_ns(h)
            ));
        }
        let active = d
            .modes
            .iter()
            .map(|m| {
                let mut on = vec![false; d.tasks.len()];
                for &t in &m.tasks {
                    if let Some(x) = on.get_mut(t) {
                        *x = true;
                    }
                }
                on
            })
            .collect();
        let ctx = Ctx { d, h, active };
        let placed = check_modes(&ctx, p, &mut r);
        check_precedence(&ctx, &placed, &mut r);
        check_channels(&ctx, p, &placed, &mut r);
        check_chains(&ctx, p, &mut r);
    }
    if r.found.is_empty() {
        Ok(())
    } else {
        Err(r.found)
    }
}

/// What every check needs: the deployment, the verifier's own hyperperiod, and which
/// tasks each mode runs (`active[mode][task]`).
struct Ctx<'a> {
    d: &'a Deployment,
    h: u64,
    active: Vec<Vec<bool>>,
}

impl Ctx<'_> {
    fn jobs_per_cycle(&self, t: TaskId) -> u64 {
        self.h / self.d.tasks[t].period_ns
    }
    fn release_ns(&self, t: TaskId, k: u64) -> u64 {
        let s = &self.d.tasks[t];
        s.offset_ns + s.period_ns * k
    }
    fn deadline_ns(&self, t: TaskId, k: u64) -> u64 {
        self.release_ns(t, k) + self.d.tasks[t].let_ns
    }
    fn mode_name(&self, m: usize) -> &str {
        self.d.modes.get(m).map_or("?", |s| s.name.as_str())
    }
    fn task_name(&self, t: TaskId) -> &str {
        self.d.tasks.get(t).map_or("?", |s| s.name.as_str())
    }
    fn job(&self, m: usize, core: usize, t: TaskId, k: u64) -> String {
        format!(
            "mode `{}`, core {core}, task `{}` job {k}",
            self.mode_name(m),
            self.task_name(t)
        )
    }
    fn active(&self, m: usize, t: TaskId) -> bool {
        self.active
            .get(m)
            .and_then(|on| on.get(t))
            .copied()
            .unwrap_or(false)
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The LCM of all task periods, or `None` (with the reason reported) when it cannot be
/// computed or jobs cannot be enumerated.
fn hyperperiod(d: &Deployment, r: &mut Report) -> Option<u64> {
    if d.tasks.is_empty() {
        r.push("the deployment has no task, so no plan can be checked against it".into());
        return None;
    }
    let mut h: u64 = 1;
    let mut sane = true;
    for t in &d.tasks {
        if t.period_ns == 0 {
            r.push(format!(
                "task `{}`: period 0, its jobs cannot be enumerated",
                t.name
            ));
            sane = false;
            continue;
        }
        if t.let_ns > t.period_ns || t.offset_ns >= t.period_ns {
            r.push(format!(
                "task `{}`: offset {} and LET {} must both stay within the period {}",
                t.name,
                format_ns(t.offset_ns),
                format_ns(t.let_ns),
                format_ns(t.period_ns)
            ));
            sane = false;
        }
        match (h / gcd(h, t.period_ns)).checked_mul(t.period_ns) {
            Some(l) if l <= limits::MAX_HYPERPERIOD_NS => h = l,
            _ => {
                r.push(format!(
                    "the LCM of the task periods exceeds {}, at task `{}`",
                    format_ns(limits::MAX_HYPERPERIOD_NS),
                    t.name
                ));
                return None;
            }
        }
    }
    sane.then_some(h)
}

/// Where one job was found: its window's start and end and the table's core.
#[derive(Clone, Copy)]
struct Found {
    start_ns: u64,
    end_ns: u64,
    core: usize,
}

/// The jobs found in one mode's tables, indexed `first[task] + k`; `first` is `None` for
/// tasks not active in the mode.
struct Placed {
    first: Vec<Option<usize>>,
    at: Vec<Option<Found>>,
}

impl Placed {
    fn get(&self, t: TaskId, k: u64) -> Option<Found> {
        let base = self.first.get(t).copied().flatten()?;
        self.at.get(base + k as usize).copied().flatten()
    }
}

/// Checks the mode list and every table; returns what was found per deployment mode (`None`
/// for modes that could not be checked).
fn check_modes(c: &Ctx<'_>, p: &Plan, r: &mut Report) -> Vec<Option<Placed>> {
    let d = c.d;
    if p.modes.len() != d.modes.len() {
        r.push(format!(
            "the plan has {} modes but the deployment declares {}: one per mode, in order",
            p.modes.len(),
            d.modes.len()
        ));
    }
    let mut placed: Vec<Option<Placed>> = Vec::with_capacity(d.modes.len());
    for m in 0..d.modes.len() {
        match p.modes.get(m) {
            Some(mp) => {
                if mp.mode != m {
                    r.push(format!(
                        "the plan's mode #{m} says it is mode #{} but it stands where mode `{}` (#{m}) belongs",
                        mp.mode,
                        c.mode_name(m)
                    ));
                }
                placed.push(check_mode(c, m, &mp.cores, r));
            }
            None => {
                r.push(format!(
                    "mode `{}` has no tables in the plan",
                    c.mode_name(m)
                ));
                placed.push(None);
            }
        }
    }
    placed
}

fn check_mode(
    c: &Ctx<'_>,
    m: usize,
    tables: &[super::CoreTable],
    r: &mut Report,
) -> Option<Placed> {
    let d = c.d;
    let mode = &d.modes[m];
    let mut first = vec![None; d.tasks.len()];
    let mut total: u64 = 0;
    for &t in &mode.tasks {
        if t >= d.tasks.len() {
            r.push(format!(
                "mode `{}` lists task index {t}, but there are {} tasks",
                mode.name,
                d.tasks.len()
            ));
            continue;
        }
        if first[t].is_none() {
            first[t] = Some(total as usize);
            total += c.jobs_per_cycle(t);
        }
    }
    let limit = limits::MAX_JOBS_PER_CORE as u64 * d.cores.len().max(1) as u64;
    if total > limit {
        r.push(format!(
            "mode `{}`: {total} jobs per hyperperiod exceed the table limit of {limit}; its tables were not checked",
            mode.name
        ));
        return None;
    }
    let mut at: Vec<Option<Found>> = vec![None; total as usize];

    // The table list: one per core hosting an active task, ascending.
    let mut hosts: Vec<usize> = mode
        .tasks
        .iter()
        .filter_map(|&t| d.tasks.get(t).map(|s| s.core))
        .collect();
    hosts.sort_unstable();
    hosts.dedup();
    for (i, table) in tables.iter().enumerate() {
        if i > 0 && tables[i - 1].core >= table.core {
            r.push(format!(
                "mode `{}`: the table of core {} follows the one of core {}; tables must be one per core, in ascending core order",
                mode.name, table.core, tables[i - 1].core
            ));
        }
        if !hosts.contains(&table.core) {
            r.push(format!(
                "mode `{}`: core {} has a table but hosts no task of this mode",
                mode.name, table.core
            ));
        }
    }
    for &core in &hosts {
        if !tables.iter().any(|t| t.core == core) {
            r.push(format!(
                "mode `{}`, core {core}: the core hosts tasks of this mode but has no table",
                mode.name
            ));
        }
    }

    for table in tables {
        let core = table.core;
        let mut busy_ns: u128 = 0;
        for w in &table.windows {
            busy_ns += w.budget_ns as u128;
            let Some(spec) = d.tasks.get(w.task) else {
                r.push(format!(
                    "mode `{}`, core {core}: a window at {} names task index {}, but there are {} tasks",
                    mode.name,
                    format_ns(w.start_ns),
                    w.task,
                    d.tasks.len()
                ));
                continue;
            };
            let k = w.job_in_cycle;
            let job = c.job(m, core, w.task, k);
            if !c.active(m, w.task) {
                r.push(format!(
                    "{job}: the task is not active in this mode, yet the table runs it at {}",
                    format_ns(w.start_ns)
                ));
            }
            if spec.core != core {
                r.push(format!(
                    "{job}: on the wrong core: the task is pinned to core {}",
                    spec.core
                ));
            }
            let n = c.jobs_per_cycle(w.task);
            if k >= n {
                r.push(format!(
                    "{job}: no such job: the task has {n} jobs per hyperperiod"
                ));
                continue;
            }
            let release_ns = c.release_ns(w.task, k);
            let deadline_ns = c.deadline_ns(w.task, k);
            if w.release_ns != release_ns {
                r.push(format!(
                    "{job}: release field is {} but the job is released at {}",
                    format_ns(w.release_ns),
                    format_ns(release_ns)
                ));
            }
            if w.deadline_ns != deadline_ns {
                r.push(format!(
                    "{job}: deadline field is {} but the job's LET deadline is {}",
                    format_ns(w.deadline_ns),
                    format_ns(deadline_ns)
                ));
            }
            if w.budget_ns != spec.budget_ns {
                r.push(format!(
                    "{job}: budget field is {} but the task's budget is {}",
                    format_ns(w.budget_ns),
                    format_ns(spec.budget_ns)
                ));
            }
            if w.start_ns < release_ns {
                r.push(format!(
                    "{job}: the window starts at {}, {} before the job's release {}",
                    format_ns(w.start_ns),
                    format_ns(release_ns - w.start_ns),
                    format_ns(release_ns)
                ));
            }
            let end_ns = w.start_ns.saturating_add(w.budget_ns);
            let limit_ns = deadline_ns.min(c.h);
            if end_ns > limit_ns {
                let what = if deadline_ns <= c.h {
                    format!("its deadline {}", format_ns(deadline_ns))
                } else {
                    format!(
                        "the hyperperiod end {} (windows never cross it)",
                        format_ns(c.h)
                    )
                };
                r.push(format!(
                    "{job}: the window ends at {}, {} after {what}",
                    format_ns(end_ns),
                    format_ns(end_ns - limit_ns)
                ));
            }
            if let Some(base) = first[w.task] {
                let slot = &mut at[base + k as usize];
                match slot {
                    Some(prev) => r.push(format!(
                        "{job}: appears twice (also at {} on core {})",
                        format_ns(prev.start_ns),
                        prev.core
                    )),
                    None => {
                        *slot = Some(Found {
                            start_ns: w.start_ns,
                            end_ns,
                            core,
                        })
                    }
                }
            }
        }
        check_order(c, m, table, r);
        // The spin before each window: the margin, or what the previous window (a
        // hyperperiod earlier for the first) leaves of the gap when it uses its budget.
        let margin = c.d.wake.for_core(core).margin_ns();
        let n = table.windows.len();
        let spin: u64 = (0..n)
            .map(|i| {
                let w = &table.windows[i];
                let p = &table.windows[(i + n - 1) % n];
                let p_end = if i == 0 {
                    p.start_ns + p.budget_ns
                } else {
                    p.start_ns + p.budget_ns + c.h
                };
                (w.start_ns + c.h).saturating_sub(p_end).min(margin)
            })
            .sum();
        if table.spin_ns != spin {
            r.push(format!(
                "mode `{}`, core {core}: spin_ns is {} but a spin margin of {} before its windows makes {spin}",
                mode.name, table.spin_ns, format_ns(margin)
            ));
        }
        let ppm = (busy_ns * 1_000_000 / c.h as u128) as u64;
        if table.utilization_ppm != ppm {
            r.push(format!(
                "mode `{}`, core {core}: utilization_ppm is {} but the windows' budgets make {ppm} (rounded down)",
                mode.name, table.utilization_ppm
            ));
        }
    }

    // Every job of every active task must have been found.
    for (t, base) in first.iter().enumerate() {
        let Some(base) = *base else { continue };
        for k in 0..c.jobs_per_cycle(t) {
            if at[base + k as usize].is_none() {
                r.push(format!(
                    "{}: missing: the job (release {}, deadline {}) has no window",
                    c.job(m, d.tasks[t].core, t, k),
                    format_ns(c.release_ns(t, k)),
                    format_ns(c.deadline_ns(t, k))
                ));
            }
        }
    }
    Some(Placed { first, at })
}

/// Windows sorted by start and never overlapping.
fn check_order(c: &Ctx<'_>, m: usize, table: &super::CoreTable, r: &mut Report) {
    let core = table.core;
    let label = |i: usize| {
        let w = &table.windows[i];
        format!("task `{}` job {}", c.task_name(w.task), w.job_in_cycle)
    };
    for i in 1..table.windows.len() {
        if table.windows[i].start_ns < table.windows[i - 1].start_ns {
            r.push(format!(
                "mode `{}`, core {core}: not sorted: the window of {} at {} comes after the one of {} at {}",
                c.mode_name(m),
                label(i),
                format_ns(table.windows[i].start_ns),
                label(i - 1),
                format_ns(table.windows[i - 1].start_ns)
            ));
        }
    }
    // Overlaps on a sorted copy, against the window reaching furthest so far: that finds
    // every window that starts inside an earlier one, sorted or not.
    let mut by_start: Vec<usize> = (0..table.windows.len()).collect();
    by_start.sort_by_key(|&i| table.windows[i].start_ns);
    let mut reach: Option<(usize, u64)> = None;
    for &i in &by_start {
        let w = &table.windows[i];
        let end_ns = w.start_ns.saturating_add(w.budget_ns);
        if let Some((j, reach_ns)) = reach {
            if w.start_ns < reach_ns {
                r.push(format!(
                    "{}: the window [{}, {}) overlaps the window of {} ending at {} by {}",
                    c.job(m, core, w.task, w.job_in_cycle),
                    format_ns(w.start_ns),
                    format_ns(end_ns),
                    label(j),
                    format_ns(reach_ns),
                    format_ns(reach_ns.min(end_ns) - w.start_ns)
                ));
            }
        }
        if reach.is_none_or(|(_, reach_ns)| end_ns > reach_ns) {
            reach = Some((i, end_ns));
        }
    }
}

/// Same-instant precedence along every chain that declares it.
fn check_precedence(c: &Ctx<'_>, placed: &[Option<Placed>], r: &mut Report) {
    let d = c.d;
    for chain in d.chains.iter().filter(|ch| ch.precedence) {
        for pair in chain.tasks.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (Some(ta), Some(tb)) = (d.tasks.get(a), d.tasks.get(b)) else {
                r.push(format!(
                    "chain `{}` names a task index that does not exist",
                    chain.name
                ));
                continue;
            };
            if ta.core != tb.core {
                continue;
            }
            for (m, found) in placed.iter().enumerate() {
                let Some(found) = found else { continue };
                if !c.active(m, a) || !c.active(m, b) {
                    continue;
                }
                for ka in 0..c.jobs_per_cycle(a) {
                    let release_ns = c.release_ns(a, ka);
                    if release_ns < tb.offset_ns
                        || !(release_ns - tb.offset_ns).is_multiple_of(tb.period_ns)
                    {
                        continue;
                    }
                    let kb = (release_ns - tb.offset_ns) / tb.period_ns;
                    if kb >= c.jobs_per_cycle(b) {
                        continue;
                    }
                    let (Some(wa), Some(wb)) = (found.get(a, ka), found.get(b, kb)) else {
                        continue;
                    };
                    if wa.end_ns > wb.start_ns {
                        r.push(format!(
                            "{}: precedence of chain `{}`: it must end before task `{}` job {kb} (both released at {}) starts at {}, but ends at {}",
                            c.job(m, ta.core, a, ka),
                            chain.name,
                            tb.name,
                            format_ns(release_ns),
                            format_ns(wb.start_ns),
                            format_ns(wa.end_ns)
                        ));
                    }
                }
            }
        }
    }
}

/// The sizing the tables need for one channel, with where the maximum comes from.
struct Need {
    sizing: ChannelSizing,
    pending_at: String,
    between_at: String,
}

fn check_channels(c: &Ctx<'_>, p: &Plan, placed: &[Option<Placed>], r: &mut Report) {
    let d = c.d;
    if p.channels.len() != d.channels.len() {
        r.push(format!(
            "the plan sizes {} channels but the deployment declares {}: one per channel, in order",
            p.channels.len(),
            d.channels.len()
        ));
    }
    for (i, (ch, have)) in d.channels.iter().zip(p.channels.iter()).enumerate() {
        let Some(need) = needed_sizing(c, i, placed, r) else {
            continue;
        };
        let topic = &ch.topic;
        if have.max_borrowed < need.sizing.max_borrowed {
            r.push(format!(
                "channel `{topic}`: max_borrowed {} is below the {} needed ({})",
                have.max_borrowed, need.sizing.max_borrowed, need.pending_at
            ));
        }
        if have.buffer < need.sizing.buffer {
            r.push(format!(
                "channel `{topic}`: buffer {} is below the {} needed ({})",
                have.buffer, need.sizing.buffer, need.between_at
            ));
        }
        if have.history < need.sizing.history {
            r.push(format!(
                "channel `{topic}`: history {} is below the {} needed (a late reader must get the newest sample)",
                have.history, need.sizing.history
            ));
        }
    }
}

/// A writer or reader job as the sizing check sees it (times from the start of the first
/// of two consecutive cycles).
#[derive(Clone, Copy)]
struct Job {
    start_ns: u64,
    end_ns: u64,
    release_ns: u64,
    deadline_ns: u64,
}

/// The jobs of task `t` found in mode `m`'s tables, in job order, shifted by `shift_ns`.
fn jobs_of(c: &Ctx<'_>, placed: &Placed, t: TaskId, shift_ns: u64, out: &mut Vec<Job>) {
    for k in 0..c.jobs_per_cycle(t) {
        if let Some(f) = placed.get(t, k) {
            out.push(Job {
                start_ns: f.start_ns.saturating_add(shift_ns),
                end_ns: f.end_ns.saturating_add(shift_ns),
                release_ns: c.release_ns(t, k) + shift_ns,
                deadline_ns: c.deadline_ns(t, k) + shift_ns,
            });
        }
    }
}

/// What channel `i` needs: the counts defined in `port::Sizing` (see the docs of the
/// `sizing` part of `plan` for what "can reach a read" means), over every reader and every
/// pair of consecutive cycles in modes `(a, b)`.
fn needed_sizing(c: &Ctx<'_>, i: usize, placed: &[Option<Placed>], r: &mut Report) -> Option<Need> {
    let d = c.d;
    let ch = &d.channels[i];
    if ch.writer >= d.tasks.len() || ch.readers.iter().any(|&t| t >= d.tasks.len()) {
        r.push(format!(
            "channel `{}` names a task index that does not exist",
            ch.topic
        ));
        return None;
    }
    let mut pending = (0usize, String::from("no sample is ever pending"));
    let mut between = (0usize, String::from("no two reads ever see a new sample"));
    let mut writer: Vec<Job> = Vec::new();
    let mut reader: Vec<Job> = Vec::new();
    for &rd in &ch.readers {
        for (a, pa) in placed.iter().enumerate() {
            let Some(pa) = pa else { continue };
            for (b, pb) in placed.iter().enumerate() {
                let Some(pb) = pb else { continue };
                writer.clear();
                reader.clear();
                if c.active(a, ch.writer) {
                    jobs_of(c, pa, ch.writer, 0, &mut writer);
                }
                if c.active(b, ch.writer) {
                    jobs_of(c, pb, ch.writer, c.h, &mut writer);
                }
                // The reader's last job of cycle A (its previous read), then cycle B's.
                let previous_in_a = if c.active(a, rd) {
                    let mut ra = Vec::new();
                    jobs_of(c, pa, rd, 0, &mut ra);
                    ra.last().copied()
                } else {
                    None
                };
                if !c.active(b, rd) {
                    continue;
                }
                jobs_of(c, pb, rd, c.h, &mut reader);
                // Walk the reader's jobs with two cursors into the writer's jobs, which only
                // move forward: the first job still invisible at the release, and the first
                // one not yet published when the previous read starts.
                let mut invisible_from = 0;
                let mut unpublished_from = 0;
                let mut previous = previous_in_a;
                for job in &reader {
                    while invisible_from < writer.len()
                        && writer[invisible_from].deadline_ns <= job.release_ns
                    {
                        invisible_from += 1;
                    }
                    let count = writer[invisible_from..]
                        .iter()
                        .take_while(|w| w.start_ns < job.end_ns)
                        .count();
                    if count > pending.0 {
                        pending = (
                            count,
                            format!(
                                "{count} samples of `{}` can arrive before reader `{}` reads in mode `{}` (after mode `{}`) yet are invisible at its release {}",
                                c.task_name(ch.writer),
                                c.task_name(rd),
                                c.mode_name(b),
                                c.mode_name(a),
                                format_ns(job.release_ns - c.h)
                            ),
                        );
                    }
                    if let Some(prev) = previous {
                        while unpublished_from < writer.len()
                            && writer[unpublished_from].end_ns <= prev.start_ns
                        {
                            unpublished_from += 1;
                        }
                        let count = writer[unpublished_from..]
                            .iter()
                            .take_while(|w| w.start_ns < job.end_ns)
                            .count();
                        if count > between.0 {
                            between = (
                                count,
                                format!(
                                    "{count} samples of `{}` can be published between two reads of `{}` in mode `{}` (after mode `{}`), plus 1 of margin",
                                    c.task_name(ch.writer),
                                    c.task_name(rd),
                                    c.mode_name(b),
                                    c.mode_name(a)
                                ),
                            );
                        }
                    }
                    previous = Some(*job);
                }
            }
        }
    }
    let max_borrowed = pending.0 + 1;
    let (buffer, between_at) = if between.0 + 1 >= max_borrowed {
        (between.0 + 1, between.1)
    } else {
        (
            max_borrowed,
            "never below max_borrowed, so a reader back from a mode that did not run it keeps the newest visible sample".into(),
        )
    };
    Some(Need {
        sizing: ChannelSizing {
            buffer,
            history: 1,
            max_borrowed,
        },
        pending_at: format!("current sample plus {}", pending.1),
        between_at,
    })
}

fn check_chains(c: &Ctx<'_>, p: &Plan, r: &mut Report) {
    let d = c.d;
    if p.chains.len() != d.chains.len() {
        r.push(format!(
            "the plan bounds {} chains but the deployment declares {}: one per chain, in order",
            p.chains.len(),
            d.chains.len()
        ));
    }
    for (i, (spec, have)) in d.chains.iter().zip(p.chains.iter()).enumerate() {
        if spec.tasks.iter().any(|&t| t >= d.tasks.len()) {
            r.push(format!(
                "chain `{}` names a task index that does not exist",
                spec.name
            ));
            continue;
        }
        let want = closed_form_bound(c, i);
        if have.chain != i {
            r.push(format!(
                "chain `{}`: its bound says it is chain #{} but stands at #{i}",
                spec.name, have.chain
            ));
        }
        if have.mode != want.mode {
            r.push(format!(
                "chain `{}`: bounded in mode {:?} but it must be {:?} (the default mode if it runs the whole chain, else the first mode that does)",
                spec.name, have.mode, want.mode
            ));
        }
        if have.max_data_age_ns != want.max_data_age_ns {
            r.push(format!(
                "chain `{}`: max_data_age_ns is {} but LET gives {}",
                spec.name,
                format_ns(have.max_data_age_ns),
                format_ns(want.max_data_age_ns)
            ));
        }
        if have.max_reaction_ns != want.max_reaction_ns {
            r.push(format!(
                "chain `{}`: max_reaction_ns is {} but LET gives {}",
                spec.name,
                format_ns(have.max_reaction_ns),
                format_ns(want.max_reaction_ns)
            ));
        }
    }
}

/// The chain bounds in closed form from the task parameters: job `k` of a task is released
/// at `offset + k * period` and visible from `offset + k * period + let`, for all `k >= 0`.
fn closed_form_bound(c: &Ctx<'_>, i: usize) -> ChainBound {
    let d = c.d;
    let spec = &d.chains[i];
    let all_active = |m: usize| spec.tasks.iter().all(|&t| c.active(m, t));
    let mode = if spec.tasks.is_empty() {
        None
    } else if all_active(d.default_mode) {
        Some(d.default_mode)
    } else {
        (0..d.modes.len()).find(|&m| all_active(m))
    };
    let (Some(_), Some(&head), Some(&tail)) = (mode, spec.tasks.first(), spec.tasks.last()) else {
        return ChainBound {
            chain: i,
            mode: None,
            max_data_age_ns: 0,
            max_reaction_ns: 0,
        };
    };
    let task = |t: TaskId| &d.tasks[t];
    // Newest job of `t` visible at `x` (deadline <= x): its release.
    let newest_release = |t: TaskId, x: u64| {
        let s = task(t);
        (x >= s.offset_ns + s.let_ns)
            .then(|| (x - s.offset_ns - s.let_ns) / s.period_ns * s.period_ns + s.offset_ns)
    };
    // First job of `t` released at or after `x`: its deadline.
    let first_deadline = |t: TaskId, x: u64| {
        let s = task(t);
        let k = x.saturating_sub(s.offset_ns).div_ceil(s.period_ns);
        k * s.period_ns + s.offset_ns + s.let_ns
    };
    // Any cycle late enough that every backward walk stays at times >= 0 shows the steady
    // state; one more than strictly necessary, for good measure.
    let reach_ns: u64 = spec
        .tasks
        .iter()
        .map(|&t| task(t).period_ns + task(t).let_ns)
        .sum();
    let cycle = reach_ns / c.h + 2;

    let mut age_ns = 0;
    let tl = task(tail);
    for k in cycle * c.jobs_per_cycle(tail)..(cycle + 1) * c.jobs_per_cycle(tail) {
        let release_ns = tl.offset_ns + k * tl.period_ns;
        let origin = spec.tasks[..spec.tasks.len() - 1]
            .iter()
            .rev()
            .try_fold(release_ns, |x, &t| newest_release(t, x));
        if let Some(origin_ns) = origin {
            age_ns = age_ns.max(release_ns + tl.let_ns - origin_ns);
        }
    }
    let mut reaction_ns = 0;
    let hd = task(head);
    for k in cycle * c.jobs_per_cycle(head)..(cycle + 1) * c.jobs_per_cycle(head) {
        let visible_ns = spec.tasks[1..]
            .iter()
            .fold(hd.offset_ns + k * hd.period_ns + hd.let_ns, |x, &t| {
                first_deadline(t, x)
            });
        reaction_ns = reaction_ns.max(visible_ns - (hd.offset_ns + (k - 1) * hd.period_ns));
    }
    ChainBound {
        chain: i,
        mode,
        max_data_age_ns: age_ns,
        max_reaction_ns: reaction_ns,
    }
}
