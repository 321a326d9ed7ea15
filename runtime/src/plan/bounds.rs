//! Exact chain bounds under LET, from the synthesized tables.
//!
//! Owns: `max_data_age_ns` and `max_reaction_ns` of every declared chain, as defined on
//! [`ChainBound`]. It must never be used by `verify`, which recomputes them from the task
//! parameters in closed form.
//!
//! The tables repeat every hyperperiod, so the job sequence of a task is its jobs of one
//! cycle shifted by whole hyperperiods. A backward step (consumer job to the producer job
//! it reads) goes back less than the producer's period plus LET, so a last-task job
//! released after `S` = the sum of period + LET over the chain's tasks always has a
//! complete chain back to a first-task job. The bounds are evaluated on the jobs of the
//! first cycle starting at or after `S`: every earlier job with a complete chain repeats
//! there with the same figures, so this is exact and needs no warm-up skipping.

use super::synth::{ModeJobs, Slot};
use super::ChainBound;
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

pub(super) fn chain_bounds(d: &Deployment, jobs: &[ModeJobs], h: u64) -> Vec<ChainBound> {
    d.chains
        .iter()
        .enumerate()
        .map(|(chain, spec)| {
            let runs_chain = |m: usize| {
                !jobs[m].by_task.is_empty()
                    && spec.tasks.iter().all(|&t| !jobs[m].by_task[t].is_empty())
            };
            let mode = if spec.tasks.is_empty() {
                None
            } else if d.default_mode < jobs.len() && runs_chain(d.default_mode) {
                Some(d.default_mode)
            } else {
                (0..jobs.len()).find(|&m| runs_chain(m))
            };
            let Some(m) = mode else {
                return ChainBound {
                    chain,
                    mode: None,
                    max_data_age_ns: 0,
                    max_reaction_ns: 0,
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
            let span_ns: u64 = spec
                .tasks
                .iter()
                .map(|&t| d.tasks[t].period_ns + d.tasks[t].let_ns)
                .sum();
            let cycle = span_ns.div_ceil(h).max(1);
            ChainBound {
                chain,
                mode: Some(m),
                max_data_age_ns: max_data_age(&seq, cycle),
                max_reaction_ns: max_reaction(&seq, cycle),
            }
        })
        .collect()
}

/// Walks back from every last-task job of `cycle` to its origin.
fn max_data_age(seq: &[Jobs<'_>], cycle: u64) -> u64 {
    let Some((last, producers)) = seq.split_last() else {
        return 0;
    };
    let mut worst = 0;
    for g in cycle * last.n()..(cycle + 1) * last.n() {
        let mut release_ns = last.release_ns(g);
        let mut complete = true;
        for producer in producers.iter().rev() {
            match producer.newest_visible_at(release_ns) {
                Some(p) => release_ns = producer.release_ns(p),
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            worst = worst.max(last.deadline_ns(g) - release_ns);
        }
    }
    worst
}

/// Walks forward from every first-task job `j` of `cycle` to the first last-task job whose
/// origin is `j` or later: the first consumer job released at or after the producer job's
/// deadline reads it or something newer, and no earlier consumer job does.
fn max_reaction(seq: &[Jobs<'_>], cycle: u64) -> u64 {
    let Some((first, consumers)) = seq.split_first() else {
        return 0;
    };
    let mut worst = 0;
    for j in cycle * first.n()..(cycle + 1) * first.n() {
        let mut deadline_ns = first.deadline_ns(j);
        for consumer in consumers {
            deadline_ns = consumer.deadline_ns(consumer.first_released_from(deadline_ns));
        }
        // `cycle >= 1`, so job `j - 1` exists.
        worst = worst.max(deadline_ns - first.release_ns(j - 1));
    }
    worst
}
