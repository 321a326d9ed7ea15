//! Where full trace rings lost records.
//!
//! Owns: the loss windows of a run, from its `Dropped` markers ([`LossWindow`]), and the
//! merged spans that answer "was anything lost between two instants" (`LostSpans`). It
//! must never estimate what was lost: the analyses that meet a loss report their figure as
//! unknown instead.

use takt::trace::{TraceEvent, TraceRecord};

/// A span of physical time in which records were lost (from a `Dropped` marker).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossWindow {
    pub core: u8,
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Every `Dropped` marker as a window of physical time.
pub(crate) fn loss_windows(records: &[TraceRecord]) -> Vec<LossWindow> {
    records
        .iter()
        .filter_map(|r| match r.event() {
            Ok(TraceEvent::Dropped {
                count,
                last_lost_ns,
            }) => Some(LossWindow {
                core: r.core,
                count,
                first_ns: r.time_ns,
                last_ns: last_lost_ns.max(r.time_ns),
            }),
            _ => None,
        })
        .collect()
}

/// The time ranges where some ring lost records, merged and ascending, so "was anything
/// lost between two instants" takes a binary search instead of a pass over every loss.
pub(crate) struct LostSpans(Vec<(u64, u64)>);

impl LostSpans {
    pub(crate) fn new(losses: &[LossWindow]) -> Self {
        let mut ranges: Vec<(u64, u64)> = losses
            .iter()
            .map(|w| (w.first_ns.min(w.last_ns), w.first_ns.max(w.last_ns)))
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        LostSpans(merged)
    }

    /// Whether a loss overlaps `[from, to]` (both inclusive).
    pub(crate) fn any_between(&self, from: u64, to: u64) -> bool {
        // The first merged range that does not end before `from`; ranges are disjoint and
        // ascending, so it is the only candidate.
        let i = self.0.partition_point(|r| r.1 < from);
        self.0.get(i).is_some_and(|r| r.0 <= to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lost_spans_answer_like_a_pass_over_every_loss() {
        use proptest::prelude::*;
        let window = (0u64..200, 0u64..40).prop_map(|(first, len)| LossWindow {
            core: 0,
            count: 1,
            first_ns: first,
            last_ns: first + len,
        });
        proptest!(ProptestConfig::with_cases(300), |(
            losses in prop::collection::vec(window, 0..12),
            from in 0u64..260,
            len in 0u64..60,
        )| {
            let to = from + len;
            let brute = losses.iter().any(|w| w.first_ns <= to && w.last_ns >= from);
            prop_assert_eq!(LostSpans::new(&losses).any_between(from, to), brute);
        });
    }
}
