//! Chain requirements: the plan's exact LET bounds against the manifest's `max_data_age` and
//! `max_reaction`.
//!
//! Owns: deciding whether a plan meets its deployment's chain requirements and, for every
//! requirement it misses, saying by how much and where the time goes. A deployment that
//! cannot meet a requirement is as unusable as one that cannot be scheduled, so the CLI
//! refuses it before anything starts; the explanation names the task or hop to change.
//!
//! The bound judged is the one `Plan::chains` reports (and `verify` re-checks). It is the
//! worst over every mode that runs the chain: a task's releases and LET deadlines are
//! `k * period + offset` and that plus its LET in every mode that runs it, and the bounds
//! depend on nothing else, so every such mode has the same bound. A chain no mode runs has
//! no instance and meets every requirement.
//!
//! Contributions split the worst-case instance `bounds` measured (a [`super::bounds`]
//! walk) at the instants where data passes from one task to the next, so they always add
//! up to the bound:
//!
//! * data age, from the release of the origin job to the deadline of the last task's job:
//!   one [`Part::Hop`] per producer (its LET plus the wait for the consumer's next release),
//!   then the last task's LET as [`Part::Task`];
//! * reaction, from the release of the first-task job that just misses the input change to
//!   the deadline of the last task's job that carries it: the first task as [`Part::Task`]
//!   (the wait for its next release plus its LET), then one [`Part::Hop`] per consumer (the
//!   wait for its release after the producer's deadline plus its LET).

use std::fmt;

use super::bounds::{self, ChainWalk};
use super::{ChainBound, Plan};
use crate::manifest::Deployment;
use crate::time::format_ns;

/// Which bound a requirement limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Requirement {
    /// `max_data_age`, against [`ChainBound::max_data_age_ns`].
    DataAge,
    /// `max_reaction`, against [`ChainBound::max_reaction_ns`].
    Reaction,
}

impl Requirement {
    /// The manifest key that states it.
    pub fn key(self) -> &'static str {
        match self {
            Requirement::DataAge => "max_data_age",
            Requirement::Reaction => "max_reaction",
        }
    }

    /// What the bound measures, for sentences: "data age", "reaction time".
    pub fn what(self) -> &'static str {
        match self {
            Requirement::DataAge => "data age",
            Requirement::Reaction => "reaction time",
        }
    }

    /// The chain's exact bound this requirement limits.
    pub fn bound_ns(self, b: &ChainBound) -> u64 {
        match self {
            Requirement::DataAge => b.max_data_age_ns,
            Requirement::Reaction => b.max_reaction_ns,
        }
    }

    /// The requirement the manifest states for chain `chain`, if any.
    pub fn required_ns(self, d: &Deployment, chain: usize) -> Option<u64> {
        let spec = d.chains.get(chain)?;
        match self {
            Requirement::DataAge => spec.max_data_age_ns,
            Requirement::Reaction => spec.max_reaction_ns,
        }
    }
}

/// Both requirements, in the order they are reported.
pub const REQUIREMENTS: [Requirement; 2] = [Requirement::DataAge, Requirement::Reaction];

/// By how much `bound_ns` exceeds `required_ns`; `None` when the requirement is met (a
/// bound equal to its requirement meets it).
pub fn excess_ns(bound_ns: u64, required_ns: u64) -> Option<u64> {
    (bound_ns > required_ns).then(|| bound_ns - required_ns)
}

/// A piece of a chain's worst-case instance, named by task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// A task's own share: the last task's LET (data age), or the first task's wait for
    /// its next release plus its LET (reaction).
    Task(String),
    /// The passage from `from` to the next chain task `to`: `from`'s LET plus the wait for
    /// `to`'s next release (data age), or that wait plus `to`'s LET (reaction).
    Hop { from: String, to: String },
}

/// How much one part adds to a bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contribution {
    pub part: Part,
    pub ns: u64,
}

/// A chain requirement the plan does not meet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequirementViolation {
    /// Index into `Deployment::chains`.
    pub chain: usize,
    pub chain_name: String,
    pub requirement: Requirement,
    /// The exact LET bound (`Plan::chains`).
    pub bound_ns: u64,
    /// What the manifest requires.
    pub required_ns: u64,
    /// `bound_ns - required_ns`, more than 0.
    pub excess_ns: u64,
    /// Every part of the worst-case instance, in chain order; they add up to `bound_ns`.
    /// Empty only for a plan whose tables do not hold the chain's jobs (one `verify`
    /// refuses).
    pub contributions: Vec<Contribution>,
    /// The part that adds most (the first of equals, in chain order).
    pub largest: Option<Contribution>,
}

impl fmt::Display for RequirementViolation {
    /// One sentence: the chain, the bound, the requirement, the excess, the largest part.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "chain {}: exact LET {} bound {} exceeds {} {} by {}",
            self.chain_name,
            self.requirement.what(),
            format_ns(self.bound_ns),
            self.requirement.key(),
            format_ns(self.required_ns),
            format_ns(self.excess_ns)
        )?;
        let Some(c) = &self.largest else {
            return Ok(());
        };
        let ns = format_ns(c.ns);
        match (&c.part, self.requirement) {
            (Part::Hop { from, to }, Requirement::DataAge) => write!(
                f,
                "; the largest contribution is the hop {from} -> {to} ({ns}: {from}'s LET plus the wait for {to}'s next release)"
            ),
            (Part::Hop { from, to }, Requirement::Reaction) => write!(
                f,
                "; the largest contribution is the hop {from} -> {to} ({ns}: the wait for {to}'s next release after {from}'s deadline plus {to}'s LET)"
            ),
            (Part::Task(t), Requirement::DataAge) => write!(
                f,
                "; the largest contribution is the task {t} ({ns}: its LET)"
            ),
            (Part::Task(t), Requirement::Reaction) => write!(
                f,
                "; the largest contribution is the task {t} ({ns}: an input change waits for its next release, then its LET)"
            ),
        }
    }
}

impl std::error::Error for RequirementViolation {}

/// Every chain requirement of `d` that plan `p` does not meet, in chain order, data age
/// before reaction. Empty when all are met. Meant for a plan that passed `verify`; on any
/// other it never panics, but its figures are the plan's, whatever they are.
pub fn check_requirements(d: &Deployment, p: &Plan) -> Vec<RequirementViolation> {
    let mut found = Vec::new();
    // The walks are only needed to explain a violation; most plans have none.
    let mut walks: Option<Vec<ChainWalk>> = None;
    for (i, spec) in d.chains.iter().enumerate() {
        let Some(b) = p.chains.get(i).filter(|b| b.mode.is_some()) else {
            continue;
        };
        for r in REQUIREMENTS {
            let Some(required_ns) = r.required_ns(d, i) else {
                continue;
            };
            let bound_ns = r.bound_ns(b);
            let Some(excess_ns) = excess_ns(bound_ns, required_ns) else {
                continue;
            };
            let walks = walks.get_or_insert_with(|| bounds::chain_walks_of_plan(d, p));
            let contributions = walks
                .get(i)
                .map(|w| split(d, &spec.tasks, w, r))
                .unwrap_or_default();
            let largest = contributions
                .iter()
                .fold(None::<&Contribution>, |best, c| match best {
                    Some(b) if b.ns >= c.ns => Some(b),
                    _ => Some(c),
                })
                .cloned();
            found.push(RequirementViolation {
                chain: i,
                chain_name: spec.name.clone(),
                requirement: r,
                bound_ns,
                required_ns,
                excess_ns,
                contributions,
                largest,
            });
        }
    }
    found
}

/// The contributions of chain `chain`'s parts to the bound `r` limits, in chain order
/// (see the module docs); they add up to the bound in `p.chains`. Empty when no mode runs
/// the chain.
pub fn contributions(d: &Deployment, p: &Plan, chain: usize, r: Requirement) -> Vec<Contribution> {
    let walks = bounds::chain_walks_of_plan(d, p);
    let (Some(spec), Some(w)) = (d.chains.get(chain), walks.get(chain)) else {
        return Vec::new();
    };
    split(d, &spec.tasks, w, r)
}

/// Cuts the walk's instants into parts named after `tasks` (see [`ChainWalk`]).
fn split(d: &Deployment, tasks: &[usize], w: &ChainWalk, r: Requirement) -> Vec<Contribution> {
    let instants = match r {
        Requirement::DataAge => &w.data_age,
        Requirement::Reaction => &w.reaction,
    };
    if instants.len() != tasks.len() + 1 {
        return Vec::new();
    }
    let name = |k: usize| match tasks.get(k) {
        Some(&t) => d
            .tasks
            .get(t)
            .map_or_else(|| format!("#{t}"), |s| s.name.clone()),
        None => format!("#{k}"),
    };
    let hop = |from: usize| Part::Hop {
        from: name(from),
        to: name(from + 1),
    };
    let n = tasks.len();
    instants
        .windows(2)
        .enumerate()
        .map(|(k, pair)| {
            let part = match r {
                // Segment k < n - 1 runs from task k's release to task k + 1's; the last
                // is the last task's LET.
                Requirement::DataAge if k + 1 < n => hop(k),
                Requirement::DataAge => Part::Task(name(k)),
                // Segment 0 ends at the first task's deadline; segment k >= 1 ends at
                // task k's.
                Requirement::Reaction if k == 0 => Part::Task(name(0)),
                Requirement::Reaction => hop(k - 1),
            };
            Contribution {
                part,
                ns: pair[1].saturating_sub(pair[0]),
            }
        })
        .collect()
}
