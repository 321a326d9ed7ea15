//! The expiry of a bundle as people write and read it: RFC 3339 UTC instants and
//! durations (`30d`), and the system clock's "now" in seconds since 1970.
//!
//! Owns the calendar arithmetic (proleptic Gregorian, UTC only). It must never decide
//! whether a bundle has expired: [`read`](mod@super::read) compares, this only converts.

use std::fmt;

/// Seconds since 1970-01-01 UTC now (0 if the clock is before 1970).
pub fn now_unix_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An instant in seconds since 1970 as RFC 3339 UTC (`2026-12-03T09:24:29Z`).
pub fn format_unix_s(t: u64) -> String {
    let days = t / 86_400;
    let rem = t % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339 in UTC; `+00:00` also taken) to seconds since
/// 1970. Returns what is wrong in words.
pub fn parse_rfc3339_utc(text: &str) -> Result<u64, ExpiryError> {
    let t = text.trim();
    let t = t
        .strip_suffix('Z')
        .or_else(|| t.strip_suffix("+00:00"))
        .ok_or_else(|| ExpiryError::NotUtc {
            text: text.to_string(),
        })?;
    let b = t.as_bytes();
    let shape_ok = b.len() == 19
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T' || *c == b't' || *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape_ok {
        return Err(ExpiryError::NotAnInstant {
            text: text.to_string(),
        });
    }
    let num = |r: std::ops::Range<usize>| t[r].parse::<u32>().unwrap_or(u32::MAX);
    let (y, mo, d, h, mi, s) = (
        num(0..4),
        num(5..7),
        num(8..10),
        num(11..13),
        num(14..16),
        num(17..19),
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&mo)
        || d == 0
        || d > month_days[(mo as usize).saturating_sub(1).min(11)]
        || h > 23
        || mi > 59
        || s > 59
    {
        return Err(ExpiryError::NoSuchInstant {
            text: text.to_string(),
        });
    }
    let days = days_from_civil(i64::from(y), mo, d);
    Ok(days as u64 * 86_400 + u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(s))
}

/// An expiry as `takt ota sign --expires` takes it: a duration from `now_unix_s` with a
/// unit of s, m, h or d (`30d`), or a UTC time (`2027-01-31T00:00:00Z`). Refuses an
/// instant that is not in the future.
pub fn parse_expires(text: &str, now_unix_s: u64) -> Result<u64, ExpiryError> {
    let t = text.trim();
    let at = if t.contains('-') || t.contains(':') {
        parse_rfc3339_utc(t)?
    } else {
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .filter(|&i| i > 0)
            .ok_or_else(|| ExpiryError::NoUnit {
                text: text.to_string(),
            })?;
        let (digits, unit) = t.split_at(split);
        let n: u64 = digits.parse().map_err(|_| ExpiryError::NumberTooLarge {
            text: text.to_string(),
        })?;
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => {
                return Err(ExpiryError::UnknownUnit {
                    text: text.to_string(),
                    unit: unit.to_string(),
                })
            }
        };
        n.checked_mul(scale)
            .and_then(|d| now_unix_s.checked_add(d))
            .ok_or_else(|| ExpiryError::TooFar {
                text: text.to_string(),
            })?
    };
    if at <= now_unix_s {
        return Err(ExpiryError::NotInTheFuture {
            text: text.to_string(),
            at_unix_s: at,
            now_unix_s,
        });
    }
    Ok(at)
}

/// Why an expiry was refused. `text` is what was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExpiryError {
    /// An instant not in UTC (no `Z` or `+00:00`).
    NotUtc {
        text: String,
    },
    /// Not of the shape `YYYY-MM-DDTHH:MM:SSZ`.
    NotAnInstant {
        text: String,
    },
    /// The right shape, but no such date and time (or before 1970).
    NoSuchInstant {
        text: String,
    },
    /// A duration without a unit.
    NoUnit {
        text: String,
    },
    NumberTooLarge {
        text: String,
    },
    UnknownUnit {
        text: String,
        unit: String,
    },
    /// A duration past the end of `u64` seconds.
    TooFar {
        text: String,
    },
    /// An instant at or before now: the bundle would be refused everywhere.
    NotInTheFuture {
        text: String,
        at_unix_s: u64,
        now_unix_s: u64,
    },
}

impl fmt::Display for ExpiryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpiryError::NotUtc { text } => {
                write!(f, "`{text}`: give a UTC time ending in `Z`, e.g. 2027-01-31T00:00:00Z")
            }
            ExpiryError::NotAnInstant { text } => write!(f, "`{text}` is not YYYY-MM-DDTHH:MM:SSZ"),
            ExpiryError::NoSuchInstant { text } => {
                write!(f, "`{text}`: no such date and time (from 1970 on, UTC)")
            }
            ExpiryError::NoUnit { text } => write!(
                f,
                "`{text}`: give a duration with a unit (s, m, h, d; e.g. 30d) or a UTC time (2027-01-31T00:00:00Z)"
            ),
            ExpiryError::NumberTooLarge { text } => write!(f, "`{text}`: the number is too large"),
            ExpiryError::UnknownUnit { text, unit } => write!(
                f,
                "`{text}` has unit `{unit}`; allowed: s, m, h, d (e.g. 30d), or a UTC time"
            ),
            ExpiryError::TooFar { text } => write!(f, "`{text}` is too far in the future"),
            ExpiryError::NotInTheFuture {
                text,
                at_unix_s,
                now_unix_s,
            } => write!(
                f,
                "`{text}` ({}) is not in the future (now {}); a bundle that is already expired would be refused everywhere",
                format_unix_s(*at_unix_s),
                format_unix_s(*now_unix_s)
            ),
        }
    }
}

impl std::error::Error for ExpiryError {}
