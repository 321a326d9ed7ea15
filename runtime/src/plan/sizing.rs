//! Channel sizing from the synthesized tables.
//!
//! Owns: the smallest `buffer`, `history` and `max_borrowed` (see `port::Sizing`) with
//! which no reader ever loses the sample LET prescribes. It must never be used by
//! `verify`, which recomputes what is needed its own way.
//!
//! # What is counted
//!
//! A writer job may publish anywhere in its window: as early as its start (it may finish
//! at once) and at the latest at its end. A reader job may read anywhere in its window. So
//! a writer sample *can reach* a read iff the writer window starts strictly before the
//! reader window ends.
//!
//! * `max_borrowed = 1 + P`, where `P` is the most writer samples that can reach a reader
//!   job's read while still invisible at its release (writer deadline after the reader's
//!   release): the reader holds those in its pending queue, beside the current sample.
//! * `buffer = max(B + 1, max_borrowed)`, where `B` is the most writer samples that can be
//!   published between two consecutive reads of one reader (writer window starts before
//!   the later read's window ends and ends after the earlier read's window starts), plus one
//!   of margin. The floor `max_borrowed` covers a reader that is inactive for a while (a mode
//!   that does not run it): its queue then overflows and iceoryx2 drops the oldest samples,
//!   which is harmless as long as the newest visible one and all invisible ones after it
//!   fit, and those are at most `max_borrowed`.
//! * `history = 1`: under LET only the newest visible sample matters to a late joiner.
//!
//! Every maximum runs over every reader of the channel and every ordered pair of modes
//! `(A, B)` of two consecutive cycles (mode switches happen only at cycle boundaries, and
//! any mode may follow any other, including itself): writer jobs of both cycles against
//! reader jobs of the second. Writer jobs of still earlier cycles cannot matter: their
//! deadlines fall before cycle `A` ends (LET <= period <= hyperperiod), so they are visible
//! at every release in cycle `B`, and their windows end before any read of cycle `A` or `B`
//! starts.
//!
//! Within one table, a task's windows start, end and fall due in job order (LET <= period
//! keeps a job's window before the next one's release), so every count is a difference of
//! two binary searches.

use super::jobs::{ModeJobs, Slot};
use super::ChannelSizing;
use crate::manifest::Deployment;

/// A writer's jobs over two consecutive cycles: `first` in cycle A, `second` in cycle B
/// (stored relative to their own cycle, so shifted by one hyperperiod here).
struct TwoCycles<'a> {
    first: &'a [Slot],
    second: &'a [Slot],
    hyperperiod_ns: u64,
}

impl TwoCycles<'_> {
    /// Number of jobs `j` with `key(j) < x` (first-cycle times as they are, second-cycle
    /// times shifted by the hyperperiod), for a key increasing in job order.
    fn count_below(&self, x: u64, key: impl Fn(&Slot) -> u64) -> usize {
        let h = self.hyperperiod_ns;
        self.first.partition_point(|s| key(s) < x) + self.second.partition_point(|s| key(s) + h < x)
    }
}

pub(super) fn channel_sizing(
    d: &Deployment,
    jobs: &[ModeJobs],
    hyperperiod_ns: u64,
) -> Vec<ChannelSizing> {
    d.channels
        .iter()
        .map(|ch| {
            let mut pending_max = 0usize;
            let mut between_max = 0usize;
            for &reader in &ch.readers {
                for a in jobs {
                    for b in jobs {
                        let writer = TwoCycles {
                            first: &a.by_task[ch.writer],
                            second: &b.by_task[ch.writer],
                            hyperperiod_ns,
                        };
                        let (pending, between) = worst_counts(
                            &writer,
                            &a.by_task[reader],
                            &b.by_task[reader],
                            hyperperiod_ns,
                        );
                        pending_max = pending_max.max(pending);
                        between_max = between_max.max(between);
                    }
                }
            }
            let max_borrowed = 1 + pending_max;
            ChannelSizing {
                buffer: (between_max + 1).max(max_borrowed),
                history: 1,
                max_borrowed,
            }
        })
        .collect()
}

/// The most pending samples at one read and the most samples between two reads, over the
/// reader jobs of cycle B (`reader_b`), with `reader_a` the reader's jobs in cycle A.
fn worst_counts(
    writer: &TwoCycles<'_>,
    reader_a: &[Slot],
    reader_b: &[Slot],
    h: u64,
) -> (usize, usize) {
    let mut pending_max = 0;
    let mut between_max = 0;
    for (i, r) in reader_b.iter().enumerate() {
        let (read_end_ns, release_ns) = (r.end_ns + h, r.release_ns + h);
        // Samples that can reach this read, minus those already visible at its release
        // (a visible sample finished before the release, so it also reaches the read).
        let reaching = writer.count_below(read_end_ns, |s| s.start_ns);
        let visible = writer.count_below(release_ns + 1, |s| s.deadline_ns);
        pending_max = pending_max.max(reaching.saturating_sub(visible));
        // The previous read: the job before in cycle B, else the last one in cycle A
        // (none if the reader does not run in A: see the module docs).
        let previous_start_ns = match i.checked_sub(1) {
            Some(p) => Some(reader_b[p].start_ns + h),
            None => reader_a.last().map(|p| p.start_ns),
        };
        if let Some(prev_ns) = previous_start_ns {
            // Published before the previous read could start: ended at or before it.
            let before = writer.count_below(prev_ns + 1, |s| s.end_ns);
            between_max = between_max.max(reaching.saturating_sub(before));
        }
    }
    (pending_max, between_max)
}
