//! min/p50/p99/max of a set of durations.
//!
//! Owns: [`Quantiles`] and how they are computed. `min` and `max` are exact. `p50` and `p99`
//! come from an HDR histogram with three significant digits (within 0.1% of the exact value)
//! and are clamped into `[min, max]`, so a p99 never reads above the largest sample (which
//! would fake a bound violation). It must never sample, sort in place or keep the samples.

use hdrhistogram::Histogram;

/// Significant decimal digits of the HDR histograms behind p50 and p99.
const HDR_SIGFIG: u8 = 3;

/// min/p50/p99/max of a set of samples, in nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantiles {
    pub count: u64,
    pub min_ns: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// The quantiles of `samples`, or `None` when there are none. See the module docs for
/// their precision.
pub fn quantiles(samples: &[u64]) -> Option<Quantiles> {
    let min_ns = *samples.iter().min()?;
    let max_ns = *samples.iter().max()?;
    // Sized for the exact maximum, so every sample fits without resizing. HDR tracks values
    // up to 2^63 - 1; a larger one (no real duration) is clamped there, and the clamp into
    // [min, max] below undoes the effect on the reported figures. Construction only fails
    // for bounds outside that range; the nearest-rank quantiles of the sorted samples are
    // the exact fallback.
    let high = max_ns.clamp(2, u64::MAX / 2);
    let (p50_ns, p99_ns) = match Histogram::<u64>::new_with_bounds(1, high, HDR_SIGFIG) {
        Ok(mut h) => {
            for &v in samples {
                h.saturating_record(v);
            }
            (h.value_at_quantile(0.50), h.value_at_quantile(0.99))
        }
        Err(_) => {
            let mut sorted = samples.to_vec();
            sorted.sort_unstable();
            (nearest_rank(&sorted, 0.50), nearest_rank(&sorted, 0.99))
        }
    };
    Some(Quantiles {
        count: samples.len() as u64,
        min_ns,
        p50_ns: p50_ns.clamp(min_ns, max_ns),
        p99_ns: p99_ns.clamp(min_ns, max_ns),
        max_ns,
    })
}

/// `[min, p50, p99, max]` of optional quantiles, each `None` when there are no samples.
pub fn min_p50_p99_max(q: Option<Quantiles>) -> [Option<u64>; 4] {
    match q {
        Some(q) => [
            Some(q.min_ns),
            Some(q.p50_ns),
            Some(q.p99_ns),
            Some(q.max_ns),
        ],
        None => [None; 4],
    }
}

/// The nearest-rank quantile `q` of non-empty sorted samples.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::testkit::*;

    #[test]
    fn quantiles_are_exact_at_the_ends_and_clamped_inside() {
        assert_eq!(quantiles(&[]), None);
        let q = quantiles(&[12 * MS; 5]).unwrap();
        assert_eq!(
            (q.min_ns, q.p50_ns, q.p99_ns, q.max_ns),
            (12 * MS, 12 * MS, 12 * MS, 12 * MS)
        );
        assert_eq!(q.count, 5);
        let samples: Vec<u64> = (1..=1000).collect();
        let q = quantiles(&samples).unwrap();
        assert_eq!((q.min_ns, q.max_ns), (1, 1000));
        assert!((499..=501).contains(&q.p50_ns), "p50 {}", q.p50_ns);
        assert!((989..=991).contains(&q.p99_ns), "p99 {}", q.p99_ns);
        // A single outlier among 25 is the p99 (nearest rank 25 of 25), however large.
        let mut samples = vec![51_810u64; 24];
        samples.push(2_544_000);
        let q = quantiles(&samples).unwrap();
        assert_eq!((q.p99_ns, q.max_ns), (2_544_000, 2_544_000));
        assert!((51_810..=51_870).contains(&q.p50_ns), "p50 {}", q.p50_ns);
        // Extreme values neither fail nor leave [min, max].
        let q = quantiles(&[0, u64::MAX]).unwrap();
        assert_eq!((q.min_ns, q.max_ns), (0, u64::MAX));
        assert!(q.p50_ns <= q.p99_ns);
        // An awkward value whose HDR bucket reaches above it: never reported above max.
        let q = quantiles(&[7_000_001, 7_000_001, 7_000_001]).unwrap();
        assert_eq!((q.p50_ns, q.p99_ns), (7_000_001, 7_000_001));
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.5), 2);
        assert_eq!(nearest_rank(&[1, 2, 3, 4], 0.99), 4);
    }
}
