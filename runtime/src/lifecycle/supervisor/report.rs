//! What the supervisor tells: the status of every app (for `takt status`) and the outcome
//! of the run, whose report combines every app's into one summary and digest.
//!
//! Owns: the shape of the status and the outcome. It must never change an app's state.

use super::{App, SuperviseOutcome, Supervisor};
use crate::dispatch::{self, RunReport, TaskStats, STOP};
use crate::lifecycle::wire::{AppState, AppStatus, StatusReport};
use crate::manifest::Escalation;
use crate::time::monotonic_now_ns;

impl Supervisor<'_> {
    pub(super) fn status(&self, apps: &[App]) -> StatusReport {
        let now = monotonic_now_ns();
        let b = self.shared.block();
        let mode_name = |m: usize| {
            if m == STOP {
                "stop".to_string()
            } else {
                self.d
                    .modes
                    .get(m)
                    .map_or_else(|| format!("#{m}"), |m| m.name.clone())
            }
        };
        let active = if self.epoch_ns.is_some() {
            self.control().active_mode()
        } else {
            self.d.default_mode
        };
        StatusReport {
            deployment: self.d.name.clone(),
            mode: mode_name(active),
            requested_mode: self.requested_mode.filter(|&m| m != active).map(mode_name),
            uptime_ns: now.saturating_sub(self.started_ns),
            cycle: self.control().cycle(),
            phase: if self.stopping {
                "stopping"
            } else if self.epoch_ns.is_none() {
                "starting"
            } else {
                "running"
            }
            .into(),
            apps: apps
                .iter()
                .enumerate()
                .map(|(i, a)| AppStatus {
                    name: a.name.clone(),
                    pid: a.pid,
                    state: a.state,
                    restarts: a.history.total,
                    heartbeat_age_ns: (a.last_beat > 0).then(|| now.saturating_sub(a.last_beat_ns)),
                    heartbeat: b.apps[i].heartbeat(),
                    overruns: b.apps[i].overruns(),
                    missed: b.apps[i].missed(),
                    overruns_platform: b.apps[i].overruns_platform(),
                    missed_platform: b.apps[i].missed_platform(),
                    faults: b.apps[i].faults(),
                    version: a.version.clone(),
                })
                .collect(),
            updates_disabled: self.updates.as_ref().and_then(|u| u.read_only()),
        }
    }

    pub(super) fn outcome(&mut self, apps: &mut [App]) -> SuperviseOutcome {
        let d = self.d;
        let mut tasks: Vec<TaskStats> = Vec::new();
        let mut reports = Vec::new();
        let mut warnings: Vec<String> = Vec::new();
        let mut traces = Vec::new();
        let mut realtime = true;
        let mut wall_ns = 0;
        let mut failure = self.failure.clone();
        for a in apps.iter() {
            match &a.result {
                Some(Ok(r)) => {
                    tasks.extend(r.tasks.iter().map(TaskStats::from));
                    reports.extend(r.task_reports());
                    for w in &r.warnings {
                        if !warnings.contains(w) {
                            warnings.push(w.clone());
                        }
                    }
                    if let Some(t) = &r.trace {
                        traces.push((a.name.clone(), t.clone()));
                    }
                    realtime &= r.realtime;
                    wall_ns = wall_ns.max(r.wall_ns);
                }
                Some(Err(e)) => {
                    realtime = false;
                    if a.state == AppState::Failed && failure.is_none() {
                        // An app that failed for good under a mode escalation does not fail
                        // the run; one whose dispatch failed at the end does.
                        if !matches!(a.supervision.escalate, Escalation::Mode(_)) {
                            failure = Some(format!("app `{}` failed: {e}", a.name));
                        }
                    }
                }
                None => {
                    // It ended mid-run without an error and without its report (a clean
                    // exit, or a report the supervisor could not read): its tasks are
                    // missing from the summary and the digest, so the run did not do
                    // what it was asked.
                    if a.state == AppState::Stopped
                        && failure.is_none()
                        && !matches!(a.supervision.escalate, Escalation::Mode(_))
                    {
                        failure = Some(format!(
                            "app `{}` ended before the end of the run without sending its report; its tasks are missing from the results",
                            a.name
                        ));
                    }
                }
            }
        }
        // Versions an update replaced ran part of the run: their jobs count too, under
        // their task names marked with the version.
        for (app, version, r) in self.spare_results() {
            tasks.extend(r.tasks.iter().map(|t| {
                let mut s = TaskStats::from(t);
                s.name = format!("{} (v{version}, replaced)", s.name);
                s
            }));
            if let Some(t) = &r.trace {
                traces.push((format!("{app} v{version}"), t.clone()));
            }
        }
        tasks.sort_by_key(|t| d.task_id(&t.name).unwrap_or(usize::MAX));
        reports.sort_by(|a, b| a.0.cmp(&b.0));
        let digest = dispatch::combine_digests(&reports);
        let mode_history = dispatch::mode_history(d, self.control());
        let cycles = if self.epoch_ns.is_some() {
            (self.control().cycle() + 1).min(self.cycles)
        } else {
            0
        };
        let status = self.status(apps);
        SuperviseOutcome {
            report: RunReport {
                clock: self.opts.clock,
                realtime,
                cycles,
                hyperperiod_ns: self.plan.hyperperiod_ns,
                wall_ns,
                tasks,
                mode_history,
                reports,
                warnings,
                digest,
                trace: None,
            },
            apps: status.apps,
            traces,
            failure,
        }
    }
}
