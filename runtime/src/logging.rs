//! The stderr sink for what takt logs: the one a program installs when it has no logger of
//! its own.
//!
//! Owns: [`to_stderr`], a [`log::Log`] that writes each record's message and a newline to
//! stderr and nothing else (no level, target or time stamp: operators and the integration
//! tests read these lines as the library words them), and the `TAKT_LOG` variable that picks
//! its level ([`level_from`]). The library itself only calls the `log` macros and never
//! chooses a sink: the `takt` CLI installs this one in `main`, and every app process in
//! [`app_main`](crate::lifecycle::app_main). It must never panic (a closed stderr loses
//! the line, it does not end the process), never replace a logger the program set first,
//! and never be reached from the dispatch hot path: nothing under [`crate::dispatch`] logs.

use std::io::Write;

use log::{LevelFilter, Log, Metadata, Record};

/// The environment variable that picks the sink's level: `off`, `error`, `warn`, `info` or
/// `debug` (any ASCII case). Unset or anything else means `info`.
pub const LEVEL_ENV: &str = "TAKT_LOG";

/// The level when `TAKT_LOG` is unset or not one of its values: everything takt reports.
pub const DEFAULT_LEVEL: LevelFilter = LevelFilter::Info;

/// Installs the stderr sink as the process's logger, at the level `TAKT_LOG` names.
///
/// Idempotent: when a logger is already set (this one by an earlier call, or the program's
/// own), nothing changes, not even the level. Never panics.
pub fn to_stderr() {
    if log::set_logger(&STDERR).is_ok() {
        let value = std::env::var_os(LEVEL_ENV);
        log::set_max_level(level_from(value.as_ref().and_then(|v| v.to_str())));
    }
}

/// The level a `TAKT_LOG` value names; `None` (unset or not UTF-8) and unknown values give
/// [`DEFAULT_LEVEL`], so a typo never silences errors nor stops a run.
pub fn level_from(value: Option<&str>) -> LevelFilter {
    let Some(v) = value else {
        return DEFAULT_LEVEL;
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "off" => LevelFilter::Off,
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        _ => DEFAULT_LEVEL,
    }
}

struct Stderr;

static STDERR: Stderr = Stderr;

impl Log for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // One write per line: the supervisor and its app processes share one stderr, and a
        // line written whole is not interleaved with theirs.
        let line = format!("{}\n", record.args());
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_level_parses_and_anything_else_is_info() {
        let cases = [
            (None, LevelFilter::Info),
            (Some("off"), LevelFilter::Off),
            (Some("error"), LevelFilter::Error),
            (Some("warn"), LevelFilter::Warn),
            (Some("info"), LevelFilter::Info),
            (Some("debug"), LevelFilter::Debug),
            (Some("WARN"), LevelFilter::Warn),
            (Some(" error\n"), LevelFilter::Error),
            (Some(""), LevelFilter::Info),
            (Some("warning"), LevelFilter::Info),
            (Some("trace"), LevelFilter::Info),
            (Some("3"), LevelFilter::Info),
        ];
        for (value, want) in cases {
            assert_eq!(level_from(value), want, "{value:?}");
        }
    }

    #[test]
    fn installing_twice_is_harmless() {
        to_stderr();
        let level = log::max_level();
        to_stderr();
        assert_eq!(log::max_level(), level);
    }
}
