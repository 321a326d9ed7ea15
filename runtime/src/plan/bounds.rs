//! Exact chain bounds under LET, from the synthesized tables.
//!
//! Owns: `max_data_age_ns` and `max_reaction_ns` of every declared chain, as defined on
//! [`ChainBound`], and the worst-case instances they are measured on ([`ChainWalk`]), which
//! `requirements` splits into per-task and per-hop contributions. It must never be used by
//! `verify`, which recomputes the bounds from the task parameters in closed form.
//!
//! The tables repeat every hyperperiod, so the job sequence of a task is its jobs of one
//! cycle shifted by whole hyperperiods. A backward step (consumer job to the producer job
//! it reads) goes back less than the producer's period plus LET, so a last-task job
//! released after `S` = the sum of period + LET over the chain's tasks always has a
//! complete chain back to a first-task job. The bounds are evaluated on the jobs of the
//! first cycle starting at or after `S`: every earlier job with a complete chain repeats
//! there with the same figures, so this is exact and needs no warm-up skipping.

use super::jobs::{ModeJobs, Slot};
use super::{ChainBound, Plan};
use crate::manifest::Deployment;

/// A task's jobs of all cycles, numbered globally: job `g` is job `g % n` of cycle `g / n`.
struct Jobs<'a> {
    cycle: &'a [Slot],
    hyperperiod_ns: u64,
}

impl Jobs<'_> {
    fn n(&self) -> u64 {
        self.cycle.len() as u64
    }

    fn release_ns(&self, g: u64) -> u64 {
        (g / self.n()) * self.hyperperiod_ns + self.cycle[(g % self.n()) as usize].release_ns
    }

    fn deadline_ns(&self, g: u64) -> u64 {
        (g / self.n()) * self.hyperperiod_ns + self.cycle[(g % self.n()) as usize].deadline_ns
    }

    /// The first job `g` with `pred(g)` true, for a predicate that turns true at some job
    /// and stays true (times increase in job order) and is true for every job of the cycle
    /// after the one containing `x_ns`.
    fn first(&self, x_ns: u64, pred: impl Fn(u64) -> bool) -> u64 {
        let (mut lo, mut hi) = (0u64, (x_ns / self.hyperperiod_ns + 2) * self.n());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if pred(mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    /// The newest job whose output is visible at `x_ns` (deadline `<= x_ns`), if any.
    fn newest_visible_at(&self, x_ns: u64) -> Option<u64> {
        self.first(x_ns, |g| self.deadline_ns(g) > x_ns)
            .checked_sub(1)
    }

    /// The first job released at or after `x_ns`.
    fn first_released_from(&self, x_ns: u64) -> u64 {
        self.first(x_ns, |g| self.release_ns(g) >= x_ns)
    }
}

/// The worst-case instances behind one chain's bounds, as instants on the timeline of the
/// chain's mode (ns from the start of cycle 0). Consecutive instants mark the segments each
/// task or hop adds, so the bound is the last instant minus the first.
///
/// * `data_age`: the release of every chain task's job on the path from the origin job to
///   the last task's job, first to last, then that last job's deadline: `n + 1` instants
///   for `n` tasks.
/// * `reaction`: the release of the first-task job that just misses the input change, then
///   the deadline of the first job of every chain task, first to last, that carries it:
///   `n + 1` instants.
///
/// Both are empty when no mode runs the chain (or it has no task).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct ChainWalk {
    pub mode: Option<usize>,
    pub data_age: Vec<u64>,
    pub reaction: Vec<u64>,
}

fn span(instants: &[u64]) -> u64 {
    match (instants.first(), instants.last()) {
        (Some(first), Some(last)) => last.saturating_sub(*first),
        _ => 0,
    }
}

pub(super) fn chain_bounds(d: &Deployment, jobs: &[ModeJobs], h: u64) -> Vec<ChainBound> {
    chain_walks(d, jobs, h)
        .into_iter()
        .enumerate()
        .map(|(chain, w)| ChainBound {
            chain,
            mode: w.mode,
            max_data_age_ns: span(&w.data_age),
            max_reaction_ns: span(&w.reaction),
        })
        .collect()
}

/// The worst-case instances of every declared chain in the plan's tables: the same walks
/// [`chain_bounds`] measures, so the segments they mark add up to its figures. A window or
/// chain that names a task `d` does not have is left out (`verify` reports it), so a plan
/// that does not belong to `d` cannot make this index out of bounds.
pub(super) fn chain_walks_of_plan(d: &Deployment, p: &Plan) -> Vec<ChainWalk> {
    let jobs: Vec<ModeJobs> = p
        .modes
        .iter()
        .map(|m| ModeJobs::from_tables(d.tasks.len(), m))
        .collect();
    chain_walks(d, &jobs, p.hyperperiod_ns)
}

fn chain_walks(d: &Deployment, jobs: &[ModeJobs], h: u64) -> Vec<ChainWalk> {
    d.chains
        .iter()
        .map(|spec| {
            let runs_chain = |m: usize| {
                !jobs[m].by_task.is_empty()
                    && spec
                        .tasks
                        .iter()
                        .all(|&t| jobs[m].by_task.get(t).is_some_and(|j| !j.is_empty()))
            };
            let mode = if spec.tasks.is_empty() || h == 0 {
                None
            } else if d.default_mode < jobs.len() && runs_chain(d.default_mode) {
                Some(d.default_mode)
            } else {
                (0..jobs.len()).find(|&m| runs_chain(m))
            };
            let Some(m) = mode else {
                return ChainWalk {
                    mode: None,
                    data_age: Vec::new(),
                    reaction: Vec::new(),
                };
            };
            let seq: Vec<Jobs<'_>> = spec
                .tasks
                .iter()
                .map(|&t| Jobs {
                    cycle: &jobs[m].by_task[t],
                    hyperperiod_ns: h,
                })
                .collect();
            // `runs_chain(m)` showed every chain task is a task of the mode's tables.
            let span_ns: u64 = spec
                .tasks
                .iter()
                .filter_map(|&t| d.tasks.get(t))
                .map(|t| t.period_ns.saturating_add(t.let_ns))
                .fold(0, u64::saturating_add);
            let cycle = span_ns.div_ceil(h).max(1);
            ChainWalk {
                mode: Some(m),
                data_age: max_data_age(&seq, cycle),
                reaction: max_reaction(&seq, cycle),
            }
        })
        .collect()
}

/// Walks back from every last-task job of `cycle` to its origin; returns the instants of
/// the first instance with the largest data age (see [`ChainWalk::data_age`]).
fn max_data_age(seq: &[Jobs<'_>], cycle: u64) -> Vec<u64> {
    let Some((last, producers)) = seq.split_last() else {
        return Vec::new();
    };
    let mut worst: Vec<u64> = Vec::new();
    let mut instants = Vec::with_capacity(seq.len() + 1);
    for g in cycle * last.n()..(cycle + 1) * last.n() {
        // Built back to front, then turned around.
        instants.clear();
        instants.push(last.deadline_ns(g));
        instants.push(last.release_ns(g));
        let mut release_ns = last.release_ns(g);
        let mut complete = true;
        for producer in producers.iter().rev() {
            match producer.newest_visible_at(release_ns) {
                Some(p) => {
                    release_ns = producer.release_ns(p);
                    instants.push(release_ns);
                }
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            instants.reverse();
            if worst.is_empty() || span(&instants) > span(&worst) {
                worst.clone_from(&instants);
            }
        }
    }
    worst
}

/// Walks forward from every first-task job `j` of `cycle` to the first last-task job whose
/// origin is `j` or later: the first consumer job released at or after the producer job's
/// deadline reads it or something newer, and no earlier consumer job does. Returns the
/// instants of the first instance with the largest reaction time (see
/// [`ChainWalk::reaction`]).
fn max_reaction(seq: &[Jobs<'_>], cycle: u64) -> Vec<u64> {
    let Some((first, consumers)) = seq.split_first() else {
        return Vec::new();
    };
    let mut worst: Vec<u64> = Vec::new();
    let mut instants = Vec::with_capacity(seq.len() + 1);
    for j in cycle * first.n()..(cycle + 1) * first.n() {
        instants.clear();
        // `cycle >= 1`, so job `j - 1` exists.
        instants.push(first.release_ns(j - 1));
        let mut deadline_ns = first.deadline_ns(j);
        instants.push(deadline_ns);
        for consumer in consumers {
            deadline_ns = consumer.deadline_ns(consumer.first_released_from(deadline_ns));
            instants.push(deadline_ns);
        }
        if worst.is_empty() || span(&instants) > span(&worst) {
            worst.clone_from(&instants);
        }
    }
    worst
}
