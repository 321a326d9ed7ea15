//! The bounded search that takes over when list scheduling misses a deadline on a core.
//!
//! Owns: a depth-first branch-and-bound over the order in which one core's jobs run
//! non-preemptively, with a work limit. It knows nothing of tasks, modes or messages: it
//! gets plain arrays and returns an order with start instants. It must never be used by
//! `verify`.
//!
//! # Why an exhausted search proves that no table exists
//!
//! A search node is a set of jobs already placed back to back, each as early as its release
//! and its predecessor in the sequence allow, and the instant `t_ns` at which the core
//! becomes free. Its children are the jobs that may run next. For a fixed order, starting
//! every job as early as possible is the best one can do, so searching over orders is
//! enough. Two rules cut children without losing any feasible table:
//!
//! 1. Only *eligible* jobs are children: every same-instant precedence predecessor is
//!    already placed.
//! 2. *No unforced idle*: let `m` be the earliest instant at which any eligible job could
//!    complete if it ran next, reached by job `a`. A job whose earliest start is `>= m` is
//!    not a child (unless it is `a` itself): in any table where it runs next, `a` could run
//!    first, in the idle gap before it, and complete by `m`; nothing else moves and `a`
//!    only finishes earlier. So some table with `a` next exists whenever one exists at all.
//!
//! Two bounds prune nodes that cannot lead to a table: the unplaced job with the least
//! latest start (`due - budget`) must still be startable at `t_ns`; and, for the first
//! [`DEMAND_PREFIX`] unplaced jobs in order of due instant, `t_ns` plus their summed
//! budgets must not pass each one's due instant (they all start at or after `t_ns` and run
//! one after another). Children are tried in earliest-due-first order, so the first dive is
//! EDF that may idle for an urgent job about to be released.

/// One core's scheduling problem, as plain arrays indexed by job.
pub(super) struct Problem<'a> {
    pub release_ns: &'a [u64],
    /// The instant by which the job's window must end (deadline, hyperperiod end and
    /// precedence successors already folded in).
    pub due_ns: &'a [u64],
    pub budget_ns: &'a [u64],
    /// Compressed successor lists: the successors of job `j` are
    /// `succ[succ_start[j]..succ_start[j + 1]]`.
    pub succ_start: &'a [u32],
    pub succ: &'a [u32],
    /// Number of precedence predecessors of each job.
    pub preds: &'a [u32],
}

/// What the search found.
pub(super) enum Outcome {
    /// A feasible order: `(job, start_ns)` in start order.
    Found(Vec<(u32, u64)>),
    /// Every order was ruled out: no table exists.
    Exhausted { nodes: u64 },
    /// The work limit was reached, or children had to be dropped, before a table was found
    /// or ruled out.
    Stopped { nodes: u64 },
}

/// How many unplaced jobs the demand bound sums over at each node. It keeps the bound's cost
/// per node constant while still catching the common overload just ahead.
const DEMAND_PREFIX: usize = 32;

/// The most children a node keeps (the most urgent ones). It bounds the memory of the
/// explored path at `MAX_CHILDREN` entries per placed job; a node that had to drop children
/// makes an unsuccessful search end as [`Outcome::Stopped`], never as a proof.
pub(super) const MAX_CHILDREN: usize = 32;

const NONE: u32 = u32::MAX;

/// The state a node was expanded in, and which of its children is being explored.
struct Frame {
    t_ns: u64,
    lo: usize,
    due_at: usize,
    lst_at: usize,
    cand_begin: usize,
    cand_end: usize,
    next: usize,
    chosen: u32,
    start_ns: u64,
}

fn sorted_by<K: Ord>(n: usize, key: impl Fn(usize) -> K) -> Vec<u32> {
    // Job indices fit u32: the caller bounds a core's jobs by `limits::MAX_JOBS_PER_CORE`.
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_unstable_by_key(|&j| (key(j as usize), j));
    order
}

fn skip_done(order: &[u32], done: &[bool], mut at: usize, work: &mut u64) -> usize {
    while at < order.len() && done[order[at] as usize] {
        at += 1;
        *work += 1;
    }
    at
}

/// Searches for a feasible order, spending at most about `work_limit` units of work (one
/// unit per job looked at).
pub(super) fn search(p: &Problem<'_>, work_limit: u64) -> Outcome {
    let n = p.release_ns.len();
    let by_release = sorted_by(n, |j| (p.release_ns[j], p.due_ns[j]));
    let by_due = sorted_by(n, |j| (p.due_ns[j], p.release_ns[j]));
    let by_latest_start = sorted_by(n, |j| p.due_ns[j].saturating_sub(p.budget_ns[j]));
    let mut done = vec![false; n];
    let mut pred_left = p.preds.to_vec();
    let mut frames: Vec<Frame> = Vec::with_capacity(n + 1);
    let mut cands: Vec<u32> = Vec::with_capacity(n.max(16));
    let (mut t_ns, mut lo, mut due_at, mut lst_at) = (0u64, 0usize, 0usize, 0usize);
    let mut placed = 0usize;
    let mut nodes = 0u64;
    let mut work = 0u64;
    let mut pruned_children = false;
    let succ_of = |j: usize| &p.succ[p.succ_start[j] as usize..p.succ_start[j + 1] as usize];

    loop {
        // Expand the node of the current state.
        if placed == n {
            return Outcome::Found(frames.iter().map(|f| (f.chosen, f.start_ns)).collect());
        }
        nodes += 1;
        lo = skip_done(&by_release, &done, lo, &mut work);
        due_at = skip_done(&by_due, &done, due_at, &mut work);
        lst_at = skip_done(&by_latest_start, &done, lst_at, &mut work);
        let cand_begin = cands.len();
        let promising = {
            let latest_ok = lst_at >= n || {
                let j = by_latest_start[lst_at] as usize;
                t_ns <= p.due_ns[j].saturating_sub(p.budget_ns[j])
            };
            latest_ok && demand_ok(p, &by_due, &done, due_at, t_ns, &mut work)
        };
        if promising {
            push_children(
                p,
                &by_release,
                &done,
                &pred_left,
                lo,
                t_ns,
                &mut cands,
                &mut work,
            );
            cands[cand_begin..].sort_unstable_by_key(|&j| {
                let j = j as usize;
                (p.due_ns[j], p.release_ns[j], j)
            });
            if cands.len() - cand_begin > MAX_CHILDREN {
                cands.truncate(cand_begin + MAX_CHILDREN);
                pruned_children = true;
            }
        }
        frames.push(Frame {
            t_ns,
            lo,
            due_at,
            lst_at,
            cand_begin,
            cand_end: cands.len(),
            next: cand_begin,
            chosen: NONE,
            start_ns: 0,
        });

        // Take the next untried child, backtracking as far as needed.
        loop {
            let Some(top) = frames.len().checked_sub(1) else {
                return if pruned_children {
                    Outcome::Stopped { nodes }
                } else {
                    Outcome::Exhausted { nodes }
                };
            };
            let f = &mut frames[top];
            if f.chosen != NONE {
                let j = f.chosen as usize;
                done[j] = false;
                placed -= 1;
                for &s in succ_of(j) {
                    pred_left[s as usize] += 1;
                }
                f.chosen = NONE;
            }
            t_ns = f.t_ns;
            lo = f.lo;
            due_at = f.due_at;
            lst_at = f.lst_at;
            if work > work_limit {
                return Outcome::Stopped { nodes };
            }
            if f.next < f.cand_end {
                let j = cands[f.next] as usize;
                f.next += 1;
                let start_ns = t_ns.max(p.release_ns[j]);
                f.chosen = j as u32;
                f.start_ns = start_ns;
                done[j] = true;
                placed += 1;
                for &s in succ_of(j) {
                    pred_left[s as usize] -= 1;
                }
                t_ns = start_ns + p.budget_ns[j];
                break;
            }
            let cand_begin = f.cand_begin;
            cands.truncate(cand_begin);
            frames.pop();
        }
    }
}

/// The demand bound of the module docs.
fn demand_ok(
    p: &Problem<'_>,
    by_due: &[u32],
    done: &[bool],
    due_at: usize,
    t_ns: u64,
    work: &mut u64,
) -> bool {
    let mut end_ns = t_ns;
    let mut counted = 0;
    let mut at = due_at;
    while at < by_due.len() && counted < DEMAND_PREFIX {
        let j = by_due[at] as usize;
        *work += 1;
        if !done[j] {
            end_ns = end_ns.saturating_add(p.budget_ns[j]);
            if end_ns > p.due_ns[j] {
                return false;
            }
            counted += 1;
        }
        at += 1;
    }
    true
}

/// Appends the children of the current node (rules 1 and 2 of the module docs) to `cands`.
#[allow(clippy::too_many_arguments)]
fn push_children(
    p: &Problem<'_>,
    by_release: &[u32],
    done: &[bool],
    pred_left: &[u32],
    lo: usize,
    t_ns: u64,
    cands: &mut Vec<u32>,
    work: &mut u64,
) {
    // The earliest completion `m` among eligible jobs; no job released at or after `m`
    // can complete before it, so the scan stops there.
    let mut m_ns = u64::MAX;
    let mut best = NONE;
    let mut at = lo;
    while at < by_release.len() {
        let j = by_release[at] as usize;
        if p.release_ns[j] >= m_ns {
            break;
        }
        *work += 1;
        if !done[j] && pred_left[j] == 0 {
            let end_ns = t_ns.max(p.release_ns[j]) + p.budget_ns[j];
            if end_ns < m_ns {
                m_ns = end_ns;
                best = j as u32;
            }
        }
        at += 1;
    }
    let mut at = lo;
    while at < by_release.len() {
        let j = by_release[at] as usize;
        if p.release_ns[j] > m_ns {
            break;
        }
        *work += 1;
        if !done[j] && pred_left[j] == 0 {
            let start_ns = t_ns.max(p.release_ns[j]);
            let unforced = start_ns < m_ns || j as u32 == best;
            if unforced && start_ns + p.budget_ns[j] <= p.due_ns[j] {
                cands.push(j as u32);
            }
        }
        at += 1;
    }
}
