//! The measured data age and reaction time of every declared chain.
//!
//! Owns: following data back through a chain by sample sequence numbers ([`Origin`]) and
//! the figures of each chain next to the plan's bounds ([`ChainFigures`]). It must never
//! assume the schedule (who read what comes from the `Read` and `Publish` records only) and
//! never guess across a missing record.
//!
//! Data age and reaction time use exactly the definitions of `takt::plan::ChainBound`, in
//! logical time, so "measured <= bound" is meaningful. A job's *origin* is found by
//! following the chain backwards: the last task's job read sample `seq` on the chain's last
//! port; the `Publish` of that `(port, seq)` by the previous chain task names the producing
//! job; its `Read` on the previous port names the next sample; and so on to a job of the
//! first task. Data age of a last-task job `J` = LET deadline of `J` - logical release of
//! its origin. Reaction time for a first-task job `j` = LET deadline of the first last-task
//! job whose origin is `j` or later - logical release of job `j - 1`.
//!
//! A chain instance whose walk meets a read of "no sample" (sequence 0, the start-up before
//! data has flowed) has no origin and is counted as `no_data`; one whose walk meets a
//! missing record (lost in a full ring, cut off by damage) is counted as `unknown` and never
//! guessed. A reaction time is only measured when every last-task job between the previous
//! known origin and the answering job is known and no records were lost in between.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use takt::trace::{ChainInfo, TraceHeader};

use super::jobs::{find_job, jobs_of, Job};
use super::losses::LostSpans;
use super::quantiles::{quantiles, Quantiles};

/// How a chain instance (one job of the chain's last task) traces back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The first task's job whose data it carries, with that job's logical release.
    Job { job: u64, release_ns: u64 },
    /// A link read "no sample" (start-up): the instance carries no first-task data yet.
    NoData,
    /// A record on the way is missing; the instance is not measured.
    Unknown,
}

/// The measured figures of one declared chain next to the plan's bounds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainFigures {
    pub name: String,
    pub tasks: Vec<u32>,
    pub ports: Vec<u16>,
    /// Why the chain could not be measured at all (malformed declaration), if so.
    pub invalid: Option<InvalidChain>,
    /// Last-task jobs that executed (each is one instance).
    pub instances: u64,
    /// Instances without an origin yet (start-up).
    pub no_data: u64,
    /// Instances left unmeasured because a record on the way back was missing.
    pub unknown: u64,
    /// First-task jobs whose reaction time was left unmeasured because a last-task job that
    /// might have answered them is unknown, or records were lost in between.
    pub reaction_unknown: u64,
    pub data_age_samples_ns: Vec<u64>,
    pub reaction_samples_ns: Vec<u64>,
    pub data_age: Option<Quantiles>,
    pub reaction: Option<Quantiles>,
    /// The plan's bounds; `None` when the header says 0 (no mode runs the whole chain).
    pub bound_data_age_ns: Option<u64>,
    pub bound_reaction_ns: Option<u64>,
    pub exceeds_data_age: bool,
    pub exceeds_reaction: bool,
}

impl ChainFigures {
    /// Whether any measured figure is above its bound.
    pub fn exceeds_bound(&self) -> bool {
        self.exceeds_data_age || self.exceeds_reaction
    }
}

/// Why a chain declared in the trace header cannot be followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidChain {
    /// The chain names no task.
    NoTask,
    /// Not one port between each pair of consecutive tasks.
    PortCount { tasks: usize, ports: usize },
    /// The header has no timing (LET) for the chain's last task.
    NoTiming { last_task: u32 },
}

impl fmt::Display for InvalidChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidChain::NoTask => f.write_str("the chain names no task"),
            InvalidChain::PortCount { tasks, ports } => write!(
                f,
                "the chain has {tasks} tasks but {ports} ports; it needs one port between each pair of consecutive tasks"
            ),
            InvalidChain::NoTiming { last_task } => write!(
                f,
                "its last task #{last_task} has no timing in the trace header"
            ),
        }
    }
}

/// Samples of one chain link: `(port, seq)` -> every `(producer job, visible_at_ns)` that
/// published it (more than one only if a restarted writer reused sequence numbers), sorted
/// by `visible_at_ns` (stable, so equal times keep record order) once the index is built.
type SampleIndex = HashMap<(u16, u64), Vec<(u64, u64)>>;

/// Finds the producer of sample `(port, seq)` among `producer_task`'s jobs: the one whose
/// sample was visible at `read_at_ns`, the latest such if a restart reused sequence numbers
/// (of equal times, the last recorded). A binary search, so a file that repeats one sample
/// many times costs a logarithm per read, not a pass.
fn producer_of(index: &SampleIndex, port: u16, seq: u64, read_at_ns: u64) -> Option<u64> {
    let candidates = index.get(&(port, seq))?;
    let visible = candidates.partition_point(|(_, at)| *at <= read_at_ns);
    visible.checked_sub(1).map(|i| candidates[i].0)
}

/// Measures one declared chain over `jobs` (sorted by `(task, job)`).
pub(crate) fn chain_figures(
    header: &TraceHeader,
    chain: &ChainInfo,
    jobs: &[Job],
    lost: &LostSpans,
) -> ChainFigures {
    let bound = |ns: u64| (ns > 0).then_some(ns);
    let mut f = ChainFigures {
        name: chain.name.clone(),
        tasks: chain.tasks.clone(),
        ports: chain.ports.clone(),
        invalid: None,
        instances: 0,
        no_data: 0,
        unknown: 0,
        reaction_unknown: 0,
        data_age_samples_ns: Vec::new(),
        reaction_samples_ns: Vec::new(),
        data_age: None,
        reaction: None,
        bound_data_age_ns: bound(chain.max_data_age_ns),
        bound_reaction_ns: bound(chain.max_reaction_ns),
        exceeds_data_age: false,
        exceeds_reaction: false,
    };
    let (Some(&first_task), Some(&last_task)) = (chain.tasks.first(), chain.tasks.last()) else {
        f.invalid = Some(InvalidChain::NoTask);
        return f;
    };
    if chain.ports.len() + 1 != chain.tasks.len() {
        f.invalid = Some(InvalidChain::PortCount {
            tasks: chain.tasks.len(),
            ports: chain.ports.len(),
        });
        return f;
    }
    let Some(last_let_ns) = header.tasks.get(last_task as usize).map(|t| t.let_ns) else {
        f.invalid = Some(InvalidChain::NoTiming { last_task });
        return f;
    };

    // The samples each chain link's producer published.
    let mut index: Vec<SampleIndex> = Vec::new();
    for (i, &port) in chain.ports.iter().enumerate() {
        let producer = chain.tasks[i];
        let mut map = SampleIndex::new();
        for j in jobs_of(jobs, producer) {
            for p in j.publishes.iter().filter(|p| p.port == port && p.seq != 0) {
                map.entry((port, p.seq))
                    .or_default()
                    .push((j.job, p.visible_at_ns));
            }
        }
        for published in map.values_mut() {
            published.sort_by_key(|&(_, visible)| visible);
        }
        index.push(map);
    }

    // Walk back from every executed last-task job.
    let origin_of = |consumer: &Job| -> Origin {
        let mut job = consumer;
        for link in (0..chain.ports.len()).rev() {
            let port = chain.ports[link];
            let Some(seq) = job.read_seq(port) else {
                return Origin::Unknown;
            };
            if seq == 0 {
                return Origin::NoData;
            }
            let producer_task = chain.tasks[link];
            let Some(p) = producer_of(&index[link], port, seq, job.release_ns) else {
                return Origin::Unknown;
            };
            let Some(pj) = find_job(jobs, producer_task, p) else {
                return Origin::Unknown;
            };
            job = pj;
        }
        Origin::Job {
            job: job.job,
            release_ns: job.release_ns,
        }
    };

    // Last-task jobs in job order with their origin. Skipped jobs produce nothing and are
    // no instance; jobs cut off before their End are the end of the record, not a result.
    let instances: Vec<(&Job, Origin)> = jobs_of(jobs, last_task)
        .iter()
        .filter(|j| !j.skipped && j.executed())
        .map(|j| {
            // A one-task chain is its own origin.
            let origin = if chain.ports.is_empty() {
                Origin::Job {
                    job: j.job,
                    release_ns: j.release_ns,
                }
            } else {
                origin_of(j)
            };
            (j, origin)
        })
        .collect();
    let deadline_of = |j: &Job| j.release_ns.saturating_add(last_let_ns);

    for (j, origin) in &instances {
        f.instances += 1;
        match origin {
            Origin::Job { release_ns, .. } => f
                .data_age_samples_ns
                .push(deadline_of(j).saturating_sub(*release_ns)),
            Origin::NoData => f.no_data += 1,
            Origin::Unknown => f.unknown += 1,
        }
    }

    // Reaction: each instance with an origin newer than every earlier one answers all
    // first-task jobs in (newest earlier origin, its origin].
    let first_releases: BTreeMap<u64, u64> = jobs_of(jobs, first_task)
        .iter()
        .map(|j| (j.job, j.release_ns))
        .collect();
    let mut covered: Option<u64> = None;
    let mut uncertain = false;
    let mut previous_at_ns: Option<u64> = None;
    for (j, origin) in &instances {
        let at_ns = j.first_time_ns();
        match *origin {
            Origin::Unknown => uncertain = true,
            Origin::NoData => previous_at_ns = at_ns.or(previous_at_ns),
            Origin::Job { job: o, .. } => {
                if covered.is_some_and(|c| o <= c) {
                    previous_at_ns = at_ns.or(previous_at_ns);
                    continue;
                }
                let lost = lost.any_between(previous_at_ns.unwrap_or(0), at_ns.unwrap_or(u64::MAX));
                let lo = covered.map_or(0, |c| c + 1);
                for (&first_job, _) in first_releases.range(lo..=o) {
                    let Some(prev) = first_job.checked_sub(1) else {
                        continue;
                    };
                    let Some(&prev_release) = first_releases.get(&prev) else {
                        continue;
                    };
                    if uncertain || lost {
                        f.reaction_unknown += 1;
                    } else {
                        f.reaction_samples_ns
                            .push(deadline_of(j).saturating_sub(prev_release));
                    }
                }
                covered = Some(o);
                uncertain = false;
                previous_at_ns = at_ns.or(previous_at_ns);
            }
        }
    }

    f.data_age = quantiles(&f.data_age_samples_ns);
    f.reaction = quantiles(&f.reaction_samples_ns);
    f.exceeds_data_age =
        matches!((f.data_age, f.bound_data_age_ns), (Some(q), Some(b)) if q.max_ns > b);
    f.exceeds_reaction =
        matches!((f.reaction, f.bound_reaction_ns), (Some(q), Some(b)) if q.max_ns > b);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::analyze;
    use crate::analysis::testkit::*;
    use takt::time::{LogicalNs, MonoNs};
    use takt::trace::TraceRecord;

    #[test]
    fn chains_are_followed_by_sequence_number() {
        let a = analyze(&header(), &clean_run(5));
        let c = &a.chains[0];
        assert_eq!(c.invalid, None);
        // 10 filter jobs: m = 0 has no data; odd m: age (5m + 2) - 10 (m-1)/2 = 7 ms; even m
        // >= 2: 12 ms.
        assert_eq!((c.instances, c.no_data, c.unknown), (10, 1, 0));
        let mut expected: Vec<u64> = (1..10u64)
            .map(|m| 5 * MS * m + 2 * MS - 10 * MS * ((m - 1) / 2))
            .collect();
        expected.sort_unstable();
        let mut got = c.data_age_samples_ns.clone();
        got.sort_unstable();
        assert_eq!(got, expected);
        let age = c.data_age.unwrap();
        assert_eq!((age.min_ns, age.max_ns), (7 * MS, 12 * MS));
        // Reaction for sensor job j >= 1: filter job 2j + 1 is the first with origin j; its
        // deadline 10j + 7 ms minus the release of j - 1 = 17 ms. Jobs 1..=4 are answered
        // (job 4 by filter job 9), job 0 has no predecessor.
        assert_eq!(c.reaction_samples_ns, vec![17 * MS; 4]);
        assert!(!c.exceeds_bound());
    }

    #[test]
    fn a_measurement_above_the_bound_is_flagged() {
        let mut h = header();
        h.chains[0].max_data_age_ns = 11 * MS;
        let c = &analyze(&h, &clean_run(3)).chains[0];
        assert!(c.exceeds_data_age && !c.exceeds_reaction && c.exceeds_bound());
        h.chains[0].max_data_age_ns = 0;
        let c = &analyze(&h, &clean_run(3)).chains[0];
        assert_eq!(c.bound_data_age_ns, None);
        assert!(!c.exceeds_data_age);
    }

    #[test]
    fn a_missing_publish_makes_instances_unknown_not_wrong() {
        // Sensor job 2's Publish (seq 3) was lost: filter jobs 5 and 6 read it.
        let records: Vec<TraceRecord> = clean_run(5)
            .into_iter()
            .filter(|r| {
                !(r.task == 0
                    && r.job == 2
                    && r.kind().ok() == Some(takt::trace::EventKind::Publish))
            })
            .collect();
        let c = &analyze(&header(), &records).chains[0];
        assert_eq!(
            (
                c.instances,
                c.no_data,
                c.unknown,
                c.data_age_samples_ns.len()
            ),
            (10, 1, 2, 7)
        );
        // Sensor jobs 2 and 3 might be answered by filter job 5 or 6, whose origins are
        // unknown, so their reaction is not measured; jobs 1 and 4 still are.
        assert_eq!(c.reaction_samples_ns, vec![17 * MS; 2]);
        assert_eq!(c.reaction_unknown, 2);
    }

    #[test]
    fn records_lost_in_a_ring_leave_reaction_unmeasured_across_the_loss() {
        // Filter job 5's records are gone entirely and a drop marker covers them.
        let mut records: Vec<TraceRecord> = clean_run(5)
            .into_iter()
            .filter(|r| !(r.task == 1 && r.job == 5))
            .collect();
        // Without the marker nothing shows the gap: sensor job 2 seems answered by filter
        // job 6 (deadline 32 ms - release of job 1 at 10 ms = 22 ms), above the real 17 ms.
        let blind = &analyze(&header(), &records).chains[0];
        assert_eq!(blind.reaction.unwrap().max_ns, 22 * MS);
        records.push(TraceRecord::dropped(
            1,
            40,
            4,
            MonoNs(26 * MS),
            26 * MS + 200,
        ));
        let a = analyze(&header(), &records);
        let c = &a.chains[0];
        // With it, sensor job 2's reaction is not measured rather than measured too long.
        assert_eq!(c.reaction_samples_ns, vec![17 * MS; 3]);
        assert_eq!((c.unknown, c.reaction_unknown), (0, 1));
        assert_eq!(a.losses.len(), 1);
    }

    #[test]
    fn a_sequence_reused_after_a_restart_picks_the_sample_visible_at_the_read() {
        let mut records = clean_run(3);
        // A restarted sensor publishes seq 1 again (job 40, visible at 402 ms); filter
        // job 1 at 6 ms must still trace back to sensor job 0.
        records.push(TraceRecord::release(
            0,
            0,
            40,
            LogicalNs(400 * MS),
            MonoNs(400 * MS),
            400 * MS,
            MS,
        ));
        records.push(TraceRecord::start(
            0,
            0,
            40,
            LogicalNs(400 * MS),
            MonoNs(400 * MS),
        ));
        records.push(TraceRecord::publish(
            0,
            0,
            40,
            LogicalNs(400 * MS),
            MonoNs(400 * MS),
            0,
            1,
            402 * MS,
        ));
        records.push(TraceRecord::end(
            0,
            0,
            40,
            LogicalNs(400 * MS),
            MonoNs(400 * MS),
            1,
            0,
        ));
        let a = analyze(&header(), &records);
        assert_eq!(a.chains[0].data_age.unwrap().max_ns, 12 * MS);
        assert_eq!(a.chains[0].data_age.unwrap().min_ns, 7 * MS);
    }

    #[test]
    fn malformed_chains_are_reported_not_followed() {
        let mut h = header();
        h.chains[0].ports.clear();
        let c = &analyze(&h, &clean_run(2)).chains[0];
        assert_eq!(
            c.invalid,
            Some(InvalidChain::PortCount { tasks: 2, ports: 0 })
        );
        assert!(c
            .invalid
            .unwrap()
            .to_string()
            .contains("2 tasks but 0 ports"));
        h.chains[0].tasks = vec![];
        assert!(analyze(&h, &clean_run(2)).chains[0].invalid.is_some());
        h.chains[0].tasks = vec![0, 9];
        h.chains[0].ports = vec![0];
        assert!(analyze(&h, &clean_run(2)).chains[0]
            .invalid
            .unwrap()
            .to_string()
            .contains("#9"));
    }
}
