//! `takt status [--json]`: asks a running supervisor for its apps, mode and uptime.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use takt::lifecycle::{self, Request, Response};
use takt::time::format_ns;

use crate::common::Failure;

/// How long a status request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

pub fn status(json: bool, control: Option<&Path>) -> Result<(), Failure> {
    let path = control.map_or_else(lifecycle::default_control_path, Path::to_path_buf);
    let s = match lifecycle::request(&path, &Request::Status, REQUEST_TIMEOUT) {
        Ok(Response::Status(s)) => s,
        Ok(Response::Refused(why)) => {
            return Err(Failure::run_failed(format!("takt status: refused: {why}")))
        }
        Ok(other) => {
            return Err(Failure::run_failed(format!(
                "takt status: unexpected answer {other:?}"
            )))
        }
        Err(e) => return Err(Failure::run_failed(format!("takt status: {e}"))),
    };
    let mut out = std::io::stdout().lock();
    if json {
        let apps: Vec<serde_json::Value> = s
            .apps
            .iter()
            .map(|a| {
                serde_json::json!({
                    "name": a.name,
                    "pid": a.pid,
                    "state": a.state.as_str(),
                    "restarts": a.restarts,
                    "heartbeat": a.heartbeat,
                    "heartbeat_age_ns": a.heartbeat_age_ns,
                    "overruns": a.overruns,
                    "missed": a.missed,
                    "overruns_platform": a.overruns_platform,
                    "missed_platform": a.missed_platform,
                    "overruns_takt": a.overruns.saturating_sub(a.overruns_platform),
                    "missed_takt": a.missed.saturating_sub(a.missed_platform),
                    "faults": a.faults,
                    "version": a.version,
                })
            })
            .collect();
        let v = serde_json::json!({
            "deployment": s.deployment,
            "phase": s.phase,
            "mode": s.mode,
            "requested_mode": s.requested_mode,
            "cycle": s.cycle,
            "uptime_ns": s.uptime_ns,
            "apps": apps,
            "updates_disabled": s.updates_disabled,
        });
        let _ = writeln!(out, "{v}");
        return Ok(());
    }
    let _ = writeln!(
        out,
        "deployment `{}`: {}, mode {}{}, cycle {}, uptime {}",
        s.deployment,
        s.phase,
        s.mode,
        s.requested_mode
            .as_ref()
            .map_or(String::new(), |m| format!(" (requested: {m})")),
        s.cycle,
        format_ns(s.uptime_ns)
    );
    let _ = writeln!(
        out,
        "{:<12} {:>8} {:<11} {:>8} {:>13} {:>8} {:>7} {:>17} {:>6}  version",
        "app",
        "pid",
        "state",
        "restarts",
        "heartbeat age",
        "overruns",
        "missed",
        "platform/takt",
        "faults"
    );
    for a in &s.apps {
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:<11} {:>8} {:>13} {:>8} {:>7} {:>17} {:>6}  {}",
            a.name,
            a.pid.map_or("-".to_string(), |p| p.to_string()),
            a.state.as_str(),
            a.restarts,
            a.heartbeat_age_ns.map_or("-".to_string(), format_ns),
            a.overruns,
            a.missed,
            {
                // Overruns and misses together, split by who caused them.
                let platform = a.overruns_platform + a.missed_platform;
                let all = a.overruns + a.missed;
                format!("{platform}/{}", all.saturating_sub(platform))
            },
            a.faults,
            if a.version.is_empty() {
                "-"
            } else {
                &a.version
            }
        );
    }
    if let Some(why) = &s.updates_disabled {
        let _ = writeln!(out, "updates disabled: {why}");
    }
    Ok(())
}
