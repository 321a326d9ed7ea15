//! The switch: the update loop's activating phase (the standby starts, warms up, and the
//! handover is requested and decided) and its rolling-back phase (the handover back).
//!
//! Owns: nothing of its own; it advances [`Op::Activating`] and [`Op::RollingBack`]. It
//! must never switch a process itself: the dispatchers decide every handover at a
//! hyperperiod boundary; this only requests it, watches it, and journals the result.

use super::kernel_cpu::CpuReading;
use super::probation::{self, Verdict};
use super::{budget_per_hyperperiod, swap_owner, HealthSnapshot, Op, Phase};
use crate::dispatch::{HandoverError, STOP};
use crate::lifecycle::supervisor::{App, Supervisor};
use crate::lifecycle::wire::Response;
use crate::time::format_ns;

impl Supervisor<'_> {
    /// Activating: the new version starts, warms up standing by, then the handover is
    /// requested and, once decided, probation begins; a standby that ends aborts it.
    pub(super) fn activating(&mut self, apps: &mut [App], now: u64, cycle: u64) {
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let Op::Activating {
            app,
            spare,
            version,
            hot_swap,
            conn,
            deadline_ns,
            phase,
        } = &mut u.op
        else {
            return;
        };
        let (app, k, version, hot_swap, conn) = (*app, *spare, *version, *hot_swap, *conn);
        if u.spares[k].child.is_none() {
            // Probation rule 7: who is to blame for the end of the process.
            match probation::process_ended(u.spares[k].exit, "standing by") {
                Verdict::RollBack { why, bad: false } => self.abort_activation(why),
                Verdict::RollBack { why, .. } => self.fail_activation(why),
                Verdict::Watch | Verdict::Commit(_) | Verdict::Recheck(_) => {}
            }
            return;
        }
        match *phase {
            Phase::Starting => {
                if now > *deadline_ns {
                    self.fail_activation(format!(
                        "it did not report ready within {}",
                        format_ns(self.opts.startup_timeout_ns)
                    ));
                }
            }
            Phase::WarmingUp {
                until_cycle,
                old_cpu,
            } => {
                if cycle >= until_cycle {
                    let mask = if hot_swap { u64::MAX } else { u.safe_mask };
                    let owner = u.spares[k].incarnation;
                    match self.shared.block().run.request_handover(app, owner, mask) {
                        Ok(h) => {
                            *phase = Phase::Switching {
                                serial: h.serial,
                                old_cpu,
                            }
                        }
                        Err(HandoverError::Busy) => {}
                        Err(HandoverError::Stopping) => {
                            self.abort_activation("the run is stopping".into())
                        }
                    }
                }
            }
            Phase::Switching { serial, old_cpu } => {
                let done = self.shared.block().run.handover_done();
                if let Some((_, at)) = done.filter(|&(s, _)| s == serial) {
                    // The replaced process's CPU time per hyperperiod while it ran
                    // the app's jobs alone: what takt and the jobs cost it.
                    let baseline = old_cpu.and_then(|before| {
                        let now = CpuReading::take(apps[app].pid?, cycle)?;
                        before.rate_to(&now).map(|(rate, _)| rate)
                    });
                    u.kill_point("switch-decided");
                    if let Err(e) = u.transition(app, |j| j.switched()) {
                        log::error!("takt run: OTA: journal: {e}");
                    }
                    u.kill_point("probation");
                    // The app's record now describes the new process; the spare
                    // the replaced one, standing by.
                    swap_owner(&mut apps[app], &mut u.spares[k]);
                    apps[app].last_beat_ns = now;
                    let b = &self.shared.block().apps[app];
                    let until_cycle = at + u.probation_cycles;
                    u.op = Op::Probation {
                        app,
                        old: k,
                        version,
                        from_cycle: at,
                        until_cycle,
                        base: Box::new(HealthSnapshot::of(b)),
                        warm: None,
                        last_look_ns: now,
                        late_ns: 0,
                        late_since_beat_ns: 0,
                        beat: b.heartbeat(),
                        beat_seen_ns: now,
                        worst: None,
                        rechecking: None,
                        kernel_from: None,
                        kernel_allowance_ns: {
                            let budgets = budget_per_hyperperiod(self.d, app);
                            budgets.saturating_add(baseline.unwrap_or(budgets))
                        },
                    };
                    let msg = format!(
                        "app `{}` switched to version {version} at hyperperiod {at} ({}); probation until hyperperiod {until_cycle}",
                        apps[app].name,
                        if hot_swap { "hot swap" } else { "update-safe mode" }
                    );
                    log::info!("takt run: OTA: {msg}");
                    u.last_result[app] = Some(msg.clone());
                    if let Some(t) = conn {
                        self.reply(t, &Response::Done(msg), true);
                    }
                } else if now > *deadline_ns && !hot_swap {
                    self.abort_activation("no update-safe mode came within the timeout".into());
                } else if self.control().active_mode() == STOP {
                    self.abort_activation("the run is stopping".into());
                }
            }
        }
    }

    /// Rolling back: once the handover back is decided, the old version owns the app again
    /// and the failed one is dismissed.
    pub(super) fn rolling_back(&mut self, apps: &mut [App], now: u64) {
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let Op::RollingBack {
            app,
            old,
            version,
            serial,
            why,
            bad,
        } = &mut u.op
        else {
            return;
        };
        let (app, k, version, serial, bad) = (*app, *old, *version, *serial, *bad);
        if u.spares[k].child.is_none() {
            // The version to return to has no process any more (#12.4).
            let why = why.clone();
            self.roll_back_without_standby(apps, app, k, version, why, bad);
            return;
        }
        let decided = self
            .shared
            .block()
            .run
            .handover_done()
            .and_then(|(s, at)| (s == serial).then_some(at));
        let Some(at) = decided else {
            return;
        };
        let why = why.clone();
        swap_owner(&mut apps[app], &mut u.spares[k]);
        apps[app].last_beat_ns = now;
        if bad {
            let _ = u.transition(app, |j| j.roll_back());
        } else {
            let _ = u.transition(app, |j| j.roll_back_blameless());
        }
        u.kill_point("rolled-back");
        u.dismiss(&self.shared.block().run, k);
        let msg = format!(
            "app `{}` version {version} rolled back at hyperperiod {at} ({why}); {}, version {} runs",
            apps[app].name,
            if bad {
                "marked bad"
            } else {
                "not marked bad (the platform's doing, not the version's): it may be activated again"
            },
            apps[app].ota_version
        );
        log::warn!("takt run: OTA: {msg}");
        u.last_result[app] = Some(msg);
        u.op = Op::Idle;
    }
}
