//! `takt ota stage | activate | rollback | status`: the integrator's side of an update,
//! spoken to the running supervisor over its control socket (status can also read the
//! state directory directly when no supervisor runs).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use takt::lifecycle::{self, wire, OtaReport, Request, Response};
use takt::time::parse_duration_ns;

use crate::common::{self, Failure};

/// How long one answer (or one progress frame) may take.
const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

fn socket(control: Option<&Path>) -> PathBuf {
    control.map_or_else(lifecycle::default_control_path, Path::to_path_buf)
}

/// Sends `req` and reads answers until a final one, showing `Progress` frames on a bar.
/// `wait` bounds the whole exchange (activation waits for the switch).
fn exchange(
    verb: &str,
    control: Option<&Path>,
    req: &Request,
    wait: Duration,
) -> Result<String, Failure> {
    let path = socket(control);
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        Failure::run_failed(format!(
            "takt ota {verb}: cannot reach a supervisor at {}: {e} (is `takt run --ota-dir DIR` running? pass its --control path)",
            path.display()
        ))
    })?;
    let io = |e: std::io::Error| Failure::run_failed(format!("takt ota {verb}: {e}"));
    s.set_write_timeout(Some(FRAME_TIMEOUT)).map_err(io)?;
    s.set_read_timeout(Some(wait.max(FRAME_TIMEOUT)))
        .map_err(io)?;
    wire::send(&mut s, req).map_err(|e| Failure::run_failed(format!("takt ota {verb}: {e}")))?;
    let mut bar: Option<ProgressBar> = None;
    loop {
        let answer = wire::receive::<Response, _>(&mut s)
            .map_err(|e| Failure::run_failed(format!("takt ota {verb}: no answer: {e}")))?;
        match answer {
            Response::Progress {
                phase,
                done_bytes,
                total_bytes,
            } => {
                let b = bar.get_or_insert_with(|| {
                    let b = ProgressBar::new(total_bytes);
                    if let Ok(style) = ProgressStyle::with_template(
                        "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})",
                    ) {
                        b.set_style(style.progress_chars("=> "));
                    }
                    b
                });
                // The first phase (reading and verifying) knows no total yet.
                b.set_length(total_bytes);
                b.set_message(phase);
                b.set_position(done_bytes);
            }
            Response::Done(msg) => {
                if let Some(b) = bar {
                    b.finish();
                }
                return Ok(msg);
            }
            Response::Refused(why) => {
                if let Some(b) = bar {
                    b.abandon();
                }
                return Err(Failure::bad_input(format!(
                    "takt ota {verb}: refused: {why}"
                )));
            }
            other => {
                return Err(Failure::run_failed(format!(
                    "takt ota {verb}: unexpected answer {other:?}"
                )))
            }
        }
    }
}

pub fn stage(bundle: &Path, control: Option<&Path>) -> Result<(), Failure> {
    // The supervisor reads the file itself: give it an absolute path.
    let abs = std::fs::canonicalize(bundle)
        .map_err(|e| Failure::bad_input(format!("{}: cannot read: {e}", bundle.display())))?;
    let msg = exchange(
        "stage",
        control,
        &Request::OtaStage {
            bundle: abs.display().to_string(),
        },
        FRAME_TIMEOUT,
    )?;
    println!("{msg}");
    Ok(())
}

pub fn activate(
    app: &str,
    hot_swap: bool,
    timeout: &str,
    control: Option<&Path>,
) -> Result<(), Failure> {
    let timeout_ns =
        parse_duration_ns(timeout).map_err(|e| Failure::bad_input(format!("--timeout: {e}")))?;
    if timeout_ns == 0 || timeout_ns > 3_600_000_000_000 {
        return Err(Failure::bad_input(format!(
            "--timeout: `{timeout}` is out of range; allowed is more than 0 and at most 1h"
        )));
    }
    let msg = exchange(
        "activate",
        control,
        &Request::OtaActivate {
            app: app.to_string(),
            hot_swap,
            timeout_ns,
        },
        Duration::from_nanos(timeout_ns) + FRAME_TIMEOUT,
    )?;
    println!("{msg}");
    Ok(())
}

pub fn rollback(app: &str, control: Option<&Path>) -> Result<(), Failure> {
    let msg = exchange(
        "rollback",
        control,
        &Request::OtaRollback {
            app: app.to_string(),
        },
        FRAME_TIMEOUT,
    )?;
    println!("{msg}");
    Ok(())
}

pub fn status(
    json: bool,
    control: Option<&Path>,
    manifest: Option<&Path>,
    ota_dir: Option<&Path>,
) -> Result<(), Failure> {
    let report = match manifest {
        Some(m) => {
            let d = common::load_apps(m)?.d;
            let dir = ota_dir
                .map(Path::to_path_buf)
                .or_else(|| d.ota.state_dir.clone())
                .ok_or_else(|| {
                    Failure::bad_input(format!(
                        "takt ota status: {} has no [ota] state_dir; pass --ota-dir DIR",
                        m.display()
                    ))
                })?;
            lifecycle::offline_report(&d, &dir)
                .map_err(|e| Failure::run_failed(format!("takt ota status: {e}")))?
        }
        None => {
            if ota_dir.is_some() {
                return Err(Failure::bad_input(
                    "takt ota status: --ota-dir reads a state directory without a supervisor and needs --manifest",
                ));
            }
            match lifecycle::request(&socket(control), &Request::OtaStatus, FRAME_TIMEOUT) {
                Ok(Response::Ota(r)) => r,
                Ok(Response::Refused(why)) => {
                    return Err(Failure::run_failed(format!(
                        "takt ota status: refused: {why}"
                    )))
                }
                Ok(other) => {
                    return Err(Failure::run_failed(format!(
                        "takt ota status: unexpected answer {other:?}"
                    )))
                }
                Err(e) => return Err(Failure::run_failed(format!("takt ota status: {e}"))),
            }
        }
    };
    print_report(&report, json);
    Ok(())
}

fn print_report(r: &OtaReport, json: bool) {
    let mut out = std::io::stdout().lock();
    if json {
        let text =
            serde_json::to_string_pretty(r).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        let _ = writeln!(out, "{text}");
        return;
    }
    let _ = writeln!(
        out,
        "deployment {}  state {}{}",
        r.deployment,
        r.state_dir,
        r.cycle
            .map_or_else(String::new, |c| format!("  hyperperiod {c}"))
    );
    if let Some(why) = &r.updates_disabled {
        let _ = writeln!(out, "updates disabled: {why}");
    }
    for a in &r.apps {
        let _ = writeln!(
            out,
            "app {}: {}{}  running v{} (slot {})  installed v{} (slot {})  bad {:?}",
            a.app,
            a.state,
            a.update_version
                .map_or_else(String::new, |v| format!(" v{v}")),
            a.running_version,
            a.running_slot,
            a.installed_version,
            a.installed_slot,
            a.bad_versions
        );
        for s in &a.slots {
            let _ = writeln!(
                out,
                "  slot {}: {}",
                s.slot,
                s.version
                    .map_or_else(|| s.detail.clone(), |v| format!("v{v} ({})", s.detail))
            );
        }
        if let Some(p) = &a.probation {
            let _ = writeln!(
                out,
                "  probation: hyperperiods {}..{}, {} overruns, {} missed releases so far ({} and {} of them the platform's, not counted against it; supervisor late by {} in total, not counted); {} faulted job(s)",
                p.from_cycle,
                p.until_cycle,
                p.overruns,
                p.missed,
                p.overruns_platform,
                p.missed_platform,
                takt::time::format_ns(p.supervisor_late_ns),
                p.faults
            );
        }
        if let Some(l) = &a.last_result {
            let _ = writeln!(out, "  last: {l}");
        }
    }
}
