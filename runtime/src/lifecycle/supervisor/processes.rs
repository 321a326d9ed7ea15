//! Starting and reaping app processes: the command line every process gets, and the
//! collection of exit statuses after SIGCHLD.
//!
//! Owns: the children of the supervisor. It must never decide whether an ended process is
//! restarted (that is `restarts`), only notice that it ended.

use std::path::Path;
use std::process::{Child, Command};

use super::{App, Supervisor};
use crate::lifecycle::app_main::AppArgs;
use crate::process::spawn_bound_to_parent;
use crate::sync::Ordering;

/// Kills every app process still running when the supervisor returns early.
pub(super) struct Children<'a>(pub(super) &'a mut Vec<App>);

impl Drop for Children<'_> {
    fn drop(&mut self) {
        for a in self.0.iter_mut() {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Supervisor<'_> {
    /// Starts one process of app `name` (index `index`) running `exe` (`None`: the host
    /// program), bound to the supervisor's life.
    pub(super) fn start_process(
        &self,
        name: &str,
        exe: Option<&Path>,
        incarnation: u32,
        version: u64,
        standby: bool,
    ) -> Result<Child, String> {
        let mut cmd = match exe {
            Some(e) => Command::new(e),
            None => {
                let mut c = Command::new(&self.opts.host.program);
                c.args(&self.opts.host.subcommand);
                c
            }
        };
        cmd.args(
            AppArgs {
                host: self.host_plan.clone(),
                app: name.to_string(),
                incarnation,
                version,
                standby,
            }
            .to_args(),
        );
        spawn_bound_to_parent(&mut cmd).map_err(|e| {
            format!(
                "cannot start app `{name}` ({}): {e}",
                exe.unwrap_or(&self.opts.host.program).display()
            )
        })
    }

    pub(super) fn spawn(&mut self, app: &mut App, index: usize) -> Result<(), String> {
        let child = self.start_process(
            &app.name,
            app.exe.as_deref(),
            app.incarnation,
            app.ota_version,
            false,
        )?;
        app.pid = Some(child.id());
        app.child = Some(child);
        app.conn = None;
        app.waiting = false;
        app.joined = false;
        app.result = None;
        app.last_beat = 0;
        self.shared.block().apps[index].reset_heartbeat();
        Ok(())
    }

    /// Collects every app process that ended, and decides what follows.
    pub(super) fn reap(&mut self, apps: &mut [App]) {
        for i in 0..apps.len() {
            let status = match apps[i].child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(s))) => s,
                _ => continue,
            };
            apps[i].child = None;
            apps[i].pid = None;
            // SYNC POINT: Release pairs with the Acquire loads of the lockstep waits.
            self.shared.block().sim_progress[i]
                .store(crate::dispatch::lockstep::DONE, Ordering::Release);
            self.shared.block().sim_bell.ring();
            if let Some(t) = apps[i].conn.take() {
                self.conns.remove(&t);
            }
            if self.owner_ended_in_update(i, status) {
                continue;
            }
            self.ended(apps, i, status);
        }
        self.reap_spares();
    }
}
