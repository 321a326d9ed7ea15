//! Sine and cosine of the small angles a car in its lane has, from `+` and `*` only.
//!
//! Owns: the trigonometry of the vehicle model. The platform's `sin`/`cos` come from the C
//! library, whose last bits may differ between libm versions; these polynomials are
//! bit-identical wherever IEEE arithmetic is, so the simulated trajectory (and every digest
//! downstream of it) does not depend on the machine's libm. Arguments are clamped to
//! +-[`MAX_ANGLE_RAD`], far beyond any heading a car still in its lane has (0.1 rad).

/// The largest angle the polynomials are exact for (to 1e-10).
pub const MAX_ANGLE_RAD: f64 = 0.5;

/// `sin(x)` for `|x| <= MAX_ANGLE_RAD` (Taylor to x^9; error below 2e-11 there).
pub fn sin_small(x: f64) -> f64 {
    let x = x.clamp(-MAX_ANGLE_RAD, MAX_ANGLE_RAD);
    let x2 = x * x;
    x * (1.0 - x2 / 6.0 * (1.0 - x2 / 20.0 * (1.0 - x2 / 42.0 * (1.0 - x2 / 72.0))))
}

/// `cos(x)` for `|x| <= MAX_ANGLE_RAD` (Taylor to x^8; error below 3e-10 there).
pub fn cos_small(x: f64) -> f64 {
    let x = x.clamp(-MAX_ANGLE_RAD, MAX_ANGLE_RAD);
    let x2 = x * x;
    1.0 - x2 / 2.0 * (1.0 - x2 / 12.0 * (1.0 - x2 / 30.0 * (1.0 - x2 / 56.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_platform_within_the_range() {
        for k in -500..=500 {
            let x = k as f64 * 0.001;
            assert!((sin_small(x) - x.sin()).abs() < 2e-11, "{x}");
            assert!((cos_small(x) - x.cos()).abs() < 3e-10, "{x}");
        }
        assert_eq!(sin_small(2.0), sin_small(MAX_ANGLE_RAD));
    }
}
