//! Logical time and the clock contract.
//!
//! Owns: the representation of time (`u64` nanoseconds, names end in `_ns`; the two kinds
//! of instant as [`LogicalNs`] and [`MonoNs`] where they cross a module boundary side by
//! side), the logical time of a job ([`JobTime`]), which time base a run uses ([`ClockKind`]), and the clock
//! contract below, kept by two clocks: the real [`MonotonicClock`] (`CLOCK_MONOTONIC`,
//! absolute sleeps with `clock_nanosleep(TIMER_ABSTIME)`) and the [`SimClock`] that tests
//! and `--clock sim` advance by hand. It must never depend on anything else in takt.
//!
//! # The clock contract
//!
//! Both clocks keep it with the same inherent methods. There is no trait over them: the
//! dispatcher picks one per run and matches on it (`dispatch::walk`'s `RunClock`), so a
//! trait would be a second, unused way to say the same.
//!
//! 1. `now_ns()` is monotonic: two calls on any threads never see time go backwards.
//! 2. `sleep_until_ns(t)` returns only once `now_ns() >= t` holds (a real clock may return
//!    later than `t`, never earlier; a simulated clock returns at exactly `t`).
//! 3. Neither allocates, takes a lock, or makes any syscall besides reading the clock and
//!    the absolute sleep, so both may be called on the dispatch hot path.
//!
//! Logical time is measured from the deployment's epoch: a job released at logical
//! `release_ns` is due on the clock at `epoch_ns + release_ns`.

use std::fmt;

use crate::sync::{AtomicU64, Ordering};

/// The logical identity and times of one job, as its task and its ports see them.
///
/// `release_ns` and `deadline_ns` are logical: relative to the epoch, independent of when
/// the job physically ran. Under LET a job reads its inputs as of `release_ns` and its
/// outputs become visible at `deadline_ns`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JobTime {
    /// Logical release instant, nanoseconds since the epoch.
    pub release_ns: u64,
    /// Logical deadline = release + LET, nanoseconds since the epoch.
    pub deadline_ns: u64,
    /// The job's index in its task's sequence of releases (0, 1, 2, ...), counted across
    /// hyperperiods.
    pub index: u64,
}

/// A logical instant: nanoseconds since the deployment's epoch, the time the plan and LET
/// speak in (a job's release and deadline, a window's start). Never read from a clock.
///
/// A `u64` in a type of its own only where it crosses a module boundary next to a
/// [`MonoNs`], so the two cannot be swapped by position; `#[repr(transparent)]`, so it
/// costs nothing. Stored and encoded as the plain `u64` (trace records keep `u64` fields).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct LogicalNs(pub u64);

/// A physical instant: nanoseconds on the run's clock, `CLOCK_MONOTONIC` in real time or
/// the simulated clock under `--clock sim`. The epoch is one such instant; logical time
/// `l` is due at `epoch + l`.
///
/// Same representation and cost as [`LogicalNs`], and a different type so that one
/// cannot be passed where the other is meant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct MonoNs(pub u64);

impl LogicalNs {
    pub const fn new(ns: u64) -> Self {
        LogicalNs(ns)
    }

    /// The nanoseconds since the epoch.
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl MonoNs {
    pub const fn new(ns: u64) -> Self {
        MonoNs(ns)
    }

    /// The nanoseconds on the clock.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// When logical instant `at` is due on the clock of a run whose epoch is `self`.
    pub const fn at(self, at: LogicalNs) -> MonoNs {
        MonoNs(self.0 + at.0)
    }

    /// The duration from `earlier` to `self`, in nanoseconds; 0 if `earlier` is later.
    pub const fn saturating_since(self, earlier: MonoNs) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Which time base a run uses, and which clock a trace file's times were read from.
///
/// Encoded in the trace header as its variant index (`Real` = 0, `Sim` = 1); the order of
/// the variants is part of the trace format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, bincode::Encode, bincode::Decode)]
pub enum ClockKind {
    /// `CLOCK_MONOTONIC`, pinned SCHED_FIFO threads.
    #[default]
    Real,
    /// Virtual time on one thread, as fast as the CPU allows (`--clock sim`).
    Sim,
}

impl ClockKind {
    /// The clock spelt out for a human: `"real (CLOCK_MONOTONIC)"` or `"simulated"`.
    pub fn describe(self) -> &'static str {
        match self {
            ClockKind::Real => "real (CLOCK_MONOTONIC)",
            ClockKind::Sim => "simulated",
        }
    }
}

/// `"real"` or `"sim"`, as `--clock` spells it.
impl fmt::Display for ClockKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClockKind::Real => "real",
            ClockKind::Sim => "sim",
        })
    }
}

/// `CLOCK_MONOTONIC`, with absolute sleeps that are immune to drift from late wake-ups.
#[derive(Clone, Copy, Debug, Default)]
pub struct MonotonicClock;

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock
    }
}

fn timespec_from_ns(ns: u64) -> libc::timespec {
    libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    }
}

/// Reads `CLOCK_MONOTONIC` in nanoseconds.
pub fn monotonic_now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_MONOTONIC is always supported on Linux, so the call cannot fail.
    unsafe {
        libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl MonotonicClock {
    /// Current time, nanoseconds on `CLOCK_MONOTONIC` (contract point 1).
    pub fn now_ns(&self) -> u64 {
        monotonic_now_ns()
    }

    /// Blocks until `now_ns() >= deadline_ns` (contract point 2).
    pub fn sleep_until_ns(&self, deadline_ns: u64) {
        let ts = timespec_from_ns(deadline_ns);
        loop {
            // SAFETY: `ts` is a valid timespec that outlives the call; the remaining-time
            // pointer may be null for TIMER_ABSTIME sleeps.
            let rc = unsafe {
                libc::clock_nanosleep(
                    libc::CLOCK_MONOTONIC,
                    libc::TIMER_ABSTIME,
                    &ts,
                    std::ptr::null_mut(),
                )
            };
            // An absolute sleep interrupted by a signal is simply restarted with the same
            // deadline: that is why absolute sleeps are used.
            if rc != libc::EINTR {
                break;
            }
        }
    }
}

/// Virtual time: `sleep_until_ns` jumps the clock forward instead of waiting.
///
/// Shared by reference between threads; the clock only ever moves forward (a sleep to an
/// instant in the past leaves it unchanged), which keeps contract point 1.
#[derive(Debug, Default)]
pub struct SimClock {
    now_ns: AtomicU64,
}

impl SimClock {
    pub fn new(start_ns: u64) -> Self {
        SimClock {
            now_ns: AtomicU64::new(start_ns),
        }
    }

    /// Move the clock forward by `delta_ns` (tests use this to model execution time).
    pub fn advance_ns(&self, delta_ns: u64) {
        // SYNC POINT: pairs with the Acquire load in `now_ns`; Relaxed would do for a
        // single thread, AcqRel keeps cross-thread readers ordered after the advance.
        self.now_ns.fetch_add(delta_ns, Ordering::AcqRel);
    }
}

impl SimClock {
    /// Current virtual time, nanoseconds (contract point 1).
    pub fn now_ns(&self) -> u64 {
        // SYNC POINT: pairs with the AcqRel updates in `advance_ns` / `sleep_until_ns`.
        self.now_ns.load(Ordering::Acquire)
    }

    /// Jumps the clock to `deadline_ns` unless it is already later (contract point 2).
    pub fn sleep_until_ns(&self, deadline_ns: u64) {
        // fetch_max keeps the clock monotonic when several threads sleep concurrently.
        // SYNC POINT: pairs with the Acquire load in `now_ns`.
        self.now_ns.fetch_max(deadline_ns, Ordering::AcqRel);
    }
}

/// A duration text that [`parse_duration_ns`] refused, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DurationParseError {
    /// The text as given.
    pub text: String,
    pub cause: DurationParseCause,
}

/// What is wrong with a duration text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationParseCause {
    /// Only digits, no unit.
    NoUnit,
    /// No digits before the unit (a sign, a space, a word).
    NotANumber,
    /// The digits do not fit in 64 bits.
    NumberTooLarge,
    /// The unit is none of ns, us (µs), ms, s.
    UnknownUnit { unit: String },
    /// The value fits, but not once scaled to nanoseconds.
    Overflow,
}

impl fmt::Display for DurationParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = &self.text;
        match &self.cause {
            DurationParseCause::NoUnit => write!(
                f,
                "`{text}` has no unit; write e.g. \"10ms\", \"250us\", \"1s\" or \"500ns\""
            ),
            DurationParseCause::NotANumber => write!(
                f,
                "`{text}` is not a duration; write a non-negative integer with a unit: ns, us, ms or s (e.g. \"10ms\")"
            ),
            DurationParseCause::NumberTooLarge => write!(f, "`{text}`: the number is too large"),
            DurationParseCause::UnknownUnit { unit } => write!(
                f,
                "`{text}` has unit `{unit}`; allowed units are ns, us, ms and s"
            ),
            DurationParseCause::Overflow => write!(f, "`{text}` overflows 64-bit nanoseconds"),
        }
    }
}

impl std::error::Error for DurationParseError {}

/// Parses a duration written like `"10ms"`, `"250us"`, `"1s"`, `"500ns"`.
///
/// Returns the value in nanoseconds, or what is wrong with the text (its `Display` says what
/// is allowed).
pub fn parse_duration_ns(text: &str) -> Result<u64, DurationParseError> {
    let refuse = |cause| DurationParseError {
        text: text.to_string(),
        cause,
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| refuse(DurationParseCause::NoUnit))?;
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(refuse(DurationParseCause::NotANumber));
    }
    let value: u64 = digits
        .parse()
        .map_err(|_| refuse(DurationParseCause::NumberTooLarge))?;
    let scale = match unit {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        _ => {
            return Err(refuse(DurationParseCause::UnknownUnit {
                unit: unit.to_string(),
            }))
        }
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| refuse(DurationParseCause::Overflow))
}

/// Formats nanoseconds for humans in the largest unit that keeps the value at least 1, with
/// at most three decimals: `10ms`, `250us`, `1.5ms`, `2.501s`, `812ns`.
pub fn format_ns(ns: u64) -> String {
    let (value, unit) = if ns >= 1_000_000_000 {
        (ns as f64 / 1e9, "s")
    } else if ns >= 1_000_000 {
        (ns as f64 / 1e6, "ms")
    } else if ns >= 1_000 {
        (ns as f64 / 1e3, "us")
    } else {
        return format!("{ns}ns");
    };
    let text = format!("{value:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration_ns("10ms"), Ok(10_000_000));
        assert_eq!(parse_duration_ns("250us"), Ok(250_000));
        assert_eq!(parse_duration_ns("2s"), Ok(2_000_000_000));
        assert_eq!(parse_duration_ns("7ns"), Ok(7));
        assert!(parse_duration_ns("10").is_err());
        assert!(parse_duration_ns("-10ms").is_err());
        assert!(parse_duration_ns("10 parsecs").is_err());
        assert!(parse_duration_ns("99999999999999999999s").is_err());
    }

    #[test]
    fn durations_format_with_at_most_three_decimals() {
        assert_eq!(format_ns(10_000_000), "10ms");
        assert_eq!(format_ns(1_500_000), "1.5ms");
        assert_eq!(format_ns(250_000), "250us");
        assert_eq!(format_ns(2_501_413_577), "2.501s");
        assert_eq!(format_ns(58_111), "58.111us");
        assert_eq!(format_ns(812), "812ns");
        assert_eq!(format_ns(0), "0ns");
        assert_eq!(format_ns(3_000_000_000), "3s");
    }

    #[test]
    fn sim_clock_jumps_and_never_goes_back() {
        let c = SimClock::new(100);
        c.sleep_until_ns(1_000);
        assert_eq!(c.now_ns(), 1_000);
        c.sleep_until_ns(500);
        assert_eq!(c.now_ns(), 1_000);
        c.advance_ns(5);
        assert_eq!(c.now_ns(), 1_005);
    }

    #[test]
    fn monotonic_sleep_reaches_its_deadline() {
        let c = MonotonicClock::new();
        let target = c.now_ns() + 2_000_000;
        c.sleep_until_ns(target);
        assert!(c.now_ns() >= target);
    }
}
