//! A small seeded pseudo-random generator for tasks that model noise, and for the
//! dispatcher's injected jitter and stalls.
//!
//! Owns: SplitMix64 and two distributions (uniform, approximately normal). It keeps its whole state in
//! one `u64` inside the task that uses it: no global state, no thread-local state, no
//! allocation. It must never read entropy from the system: the same seed gives the same
//! sequence in every run, which the determinism contract relies on.

/// SplitMix64 (Steele, Lea and Flood): one `u64` of state, good enough statistical quality
/// for sensor noise, and trivially reproducible.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

/// `sqrt(3)`: rescales a sum of four unit uniforms (variance 1/3) to unit variance.
const SQRT_3: f64 = 1.732_050_807_568_877_2;

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Approximately standard normal: the Irwin-Hall sum of four uniforms, centred and
    /// scaled to unit variance. It uses only `+` and `*`, so unlike Box-Muller it needs no
    /// `ln`/`cos` from the platform's libm and is bit-identical everywhere; it is bounded
    /// to ±3.46, which suits a sensor noise model.
    pub fn next_gaussian(&mut self) -> f64 {
        let sum = self.next_unit() + self.next_unit() + self.next_unit() + self.next_unit();
        (sum - 2.0) * SQRT_3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let mut c = SplitMix64::new(8);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn gaussian_has_about_zero_mean_and_unit_variance() {
        let mut r = SplitMix64::new(42);
        let n = 100_000;
        let (mut sum, mut sum_sq) = (0.0, 0.0);
        for _ in 0..n {
            let g = r.next_gaussian();
            assert!(g.abs() <= 2.0 * SQRT_3 + 1e-12);
            sum += g;
            sum_sq += g * g;
        }
        let mean = sum / n as f64;
        let var = sum_sq / n as f64 - mean * mean;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.03, "variance {var}");
    }

    #[test]
    fn unit_is_in_range() {
        let mut r = SplitMix64::new(1);
        for _ in 0..10_000 {
            let u = r.next_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
