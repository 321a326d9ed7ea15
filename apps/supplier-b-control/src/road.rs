//! The road: a lane whose curvature is a function of the distance along it.
//!
//! Owns: the road's geometry. The lane is a sequence of straights, clothoids (curvature
//! changing linearly with distance, as roads are built so a driver can turn the wheel at
//! a steady rate) and arcs; it repeats, so a run of any length has a road. The default is
//! 500 m: a straight, a left bend of 300 m radius, an S into a right bend of 250 m, and
//! back to straight, which at 25 m/s asks up to 2.5 m/s^2 of lateral acceleration, the upper
//! end of what a lane-keeping assist is specified for. It must never know about the car.

/// Segments of the default road: `(length_m, curvature_per_m at its end)`; each starts at
/// the previous one's end curvature, the first at the last one's (0).
pub const DEFAULT_SEGMENTS: [(f64, f64); 7] = [
    (60.0, 0.0),
    (50.0, 1.0 / 300.0),
    (120.0, 1.0 / 300.0),
    (60.0, -1.0 / 250.0),
    (100.0, -1.0 / 250.0),
    (50.0, 0.0),
    (60.0, 0.0),
];

/// The road, with its curvatures scaled by `curve_scale` (0: straight; 1: the default).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Road {
    segments: [(f64, f64); DEFAULT_SEGMENTS.len()],
    length_m: f64,
}

impl Road {
    pub fn new(curve_scale: f64) -> Self {
        let mut segments = DEFAULT_SEGMENTS;
        for s in &mut segments {
            s.1 *= curve_scale;
        }
        Road {
            segments,
            length_m: segments.iter().map(|s| s.0).sum(),
        }
    }

    pub fn length_m(&self) -> f64 {
        self.length_m
    }

    /// Curvature and its rate of change per metre at `distance_m` along the lane.
    pub fn at(&self, distance_m: f64) -> (f64, f64) {
        let mut s = distance_m.rem_euclid(self.length_m);
        let mut start = self.segments[self.segments.len() - 1].1;
        for &(length_m, end) in &self.segments {
            if s < length_m {
                let rate = (end - start) / length_m;
                return (start + rate * s, rate);
            }
            s -= length_m;
            start = end;
        }
        // Only reachable through rounding at the very end of the lap.
        (start, 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curvature_is_continuous_and_repeats() {
        let road = Road::new(1.0);
        assert_eq!(road.length_m(), 500.0);
        let mut last = road.at(0.0).0;
        for k in 1..=20_000 {
            let s = k as f64 * 0.05;
            let (c, rate) = road.at(s);
            // Continuous: a 5 cm step changes it by at most 5 cm of the steepest clothoid
            // (the S: from 1/300 to -1/250 in 60 m).
            let steepest = (1.0 / 300.0 + 1.0 / 250.0) / 60.0;
            assert!((c - last).abs() <= 0.05 * steepest + 1e-12, "{s}");
            assert!(rate.abs() <= steepest + 1e-15);
            last = c;
        }
        assert_eq!(road.at(150.0), (1.0 / 300.0, 0.0));
        assert_eq!(road.at(650.0), road.at(150.0));
        let (mid_clothoid, rate) = road.at(85.0);
        assert!((mid_clothoid - 0.5 / 300.0).abs() < 1e-15);
        assert!((rate - 1.0 / 300.0 / 50.0).abs() < 1e-15);
        assert_eq!(Road::new(0.0).at(150.0), (0.0, 0.0));
    }
}
