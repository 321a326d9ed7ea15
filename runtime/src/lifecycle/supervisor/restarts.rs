//! The restart policy applied: an ended app process is restarted, or escalated (the app
//! stops, or the run stops), as its manifest's supervision says.
//!
//! Owns: the decision taken for each ended process. The policy itself (counting restarts
//! in a window) lives in `lifecycle::policy`; this must never wait for a restart inline.

use std::process::ExitStatus;

use super::{placeholder, App, Supervisor};
use crate::lifecycle::policy::{Decision, ExitKind};
use crate::lifecycle::wire::AppState;
use crate::manifest::Escalation;
use crate::time::monotonic_now_ns;

impl Supervisor<'_> {
    pub(super) fn ended(&mut self, apps: &mut [App], i: usize, status: ExitStatus) {
        let now = monotonic_now_ns();
        let over = self.stopping || self.end_ns().is_some_and(|e| now >= e);
        let reported_ok = matches!(apps[i].result, Some(Ok(_)));
        let exit = if status.success() {
            ExitKind::Clean
        } else {
            ExitKind::Failure
        };
        let name = apps[i].name.clone();
        if over || reported_ok {
            apps[i].state = if exit == ExitKind::Clean && reported_ok {
                AppState::Stopped
            } else {
                AppState::Failed
            };
            if apps[i].state == AppState::Failed {
                log::error!("takt run: app `{name}` ended at the end of the run: {status}");
                if apps[i].result.is_none() {
                    apps[i].result = Some(Err(format!("the process ended: {status}")));
                }
            }
            return;
        }
        log::error!("takt run: app `{name}` ended mid-run: {status}");
        let sup = apps[i].supervision;
        match apps[i].history.decide(&sup, exit, now) {
            Decision::Restart => {
                apps[i].state = AppState::Restarting;
                apps[i].incarnation = apps[i].next_incarnation;
                apps[i].next_incarnation += 1;
                log::warn!(
                    "takt run: restarting app `{name}` (restart {} of the run)",
                    apps[i].history.total
                );
                let mut a = std::mem::replace(&mut apps[i], placeholder());
                let r = self.spawn(&mut a, i);
                apps[i] = a;
                if let Err(e) = r {
                    apps[i].state = AppState::Failed;
                    self.escalate(apps, i, sup.escalate, &e);
                }
            }
            Decision::Stopped => apps[i].state = AppState::Stopped,
            Decision::Escalate(e) => {
                apps[i].state = AppState::Failed;
                let why = format!("the process ended: {status}");
                self.escalate(apps, i, e, &why);
            }
        }
        // An app that is gone for good no longer holds up the epoch.
        if self.epoch_ns.is_none()
            && !self.stopping
            && apps.iter().any(|a| a.waiting)
            && apps
                .iter()
                .all(|a| !a.hosted || a.waiting || a.child.is_none())
        {
            self.publish_epoch(apps);
        }
    }

    pub(super) fn escalate(&mut self, apps: &mut [App], i: usize, e: Escalation, why: &str) {
        let name = apps[i].name.clone();
        apps[i].result = Some(Err(why.to_string()));
        match e {
            Escalation::Stop => {
                self.failure.get_or_insert(format!(
                    "app `{name}` failed ({why}) and its escalation is `stop`"
                ));
                self.stop(apps, &format!("app `{name}` failed"));
            }
            Escalation::Mode(m) => {
                let mode = self.d.modes.get(m).map_or("?", |m| m.name.as_str());
                log::error!("takt run: app `{name}` failed ({why}); escalating to mode `{mode}`");
                self.control().request_mode(m);
                self.requested_mode = Some(m);
            }
        }
    }
}
