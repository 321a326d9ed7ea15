//! What a control request does: who may send it, and the answer (status, mode changes,
//! stop, registration and reports of app processes, updates).
//!
//! Owns: the meaning of every [`Request`]. It must never touch a connection's bytes (that
//! is `connections`) and never start or end a process itself but through `processes`.

use mio::Token;

use super::{placeholder, App, Supervisor};
use crate::lifecycle::peer;
use crate::lifecycle::wire::{Request, Response};

impl Supervisor<'_> {
    pub(super) fn app_index(&self, apps: &[App], name: &str) -> Option<usize> {
        apps.iter().position(|a| a.name == name)
    }

    /// Refuses `req` unless connection `t`'s peer may ask it: app processes speak only for
    /// themselves (checked where they register), and everything else (status, stop, modes,
    /// updates) is the owner's: the supervisor's uid or root, from a process that is
    /// neither an app process nor started by one (issue #12.6).
    pub(super) fn authorize(&self, apps: &[App], t: Token, req: &Request) -> Result<(), String> {
        let Some(peer) = self.conns.get(&t).map(|c| c.peer) else {
            return Err("the connection is gone".into());
        };
        if matches!(req, Request::AppReady { .. } | Request::AppFinished { .. }) {
            return Ok(());
        }
        let what = match req {
            Request::Status => "read the status",
            Request::SetMode { .. } => "switch modes",
            Request::Stop => "stop the run",
            _ => "touch updates",
        };
        let rule = format!(
            "only the deployment's owner (uid {}, or root), from outside the apps' process trees, may {what}",
            self.owner_uid
        );
        if peer.uid != self.owner_uid && peer.uid != 0 {
            return Err(format!(
                "peer pid {} runs as uid {}; {rule}",
                peer.pid, peer.uid
            ));
        }
        let me = std::process::id();
        match peer::app_ancestor(peer.pid, me, |p| self.is_app_process(apps, p)) {
            Ok(None) => Ok(()),
            Ok(Some(p)) => {
                let name = apps
                    .iter()
                    .find(|a| a.pid == Some(p))
                    .map(|a| a.name.clone())
                    .or_else(|| self.spare_app_name(p))
                    .unwrap_or_default();
                let who = if p == peer.pid {
                    format!("peer pid {} is a process of app `{name}`", peer.pid)
                } else {
                    format!(
                        "peer pid {} was started by app `{name}` (its process {p})",
                        peer.pid
                    )
                };
                Err(format!("{who}; {rule}"))
            }
            Err(why) => Err(format!(
                "peer pid {}: {why}, so it cannot be told from an app's process; {rule}",
                peer.pid
            )),
        }
    }

    pub(super) fn handle(&mut self, apps: &mut [App], t: Token, req: Request) {
        if let Err(why) = self.authorize(apps, t, &req) {
            log::warn!("takt run: control socket: refused: {why}");
            self.reply(t, &Response::Refused(why), true);
            return;
        }
        match req {
            Request::Status => {
                let s = self.status(apps);
                self.reply(t, &Response::Status(s), true);
            }
            Request::SetMode { name } => match self.d.mode_id(&name) {
                Some(m) if !self.stopping => {
                    self.control().request_mode(m);
                    self.requested_mode = Some(m);
                    log::info!("takt run: mode `{name}` requested over the control socket");
                    self.reply(
                        t,
                        &Response::Done(format!(
                            "mode `{name}` requested: every core switches at the next hyperperiod boundary"
                        )),
                        true,
                    );
                }
                Some(_) => self.reply(
                    t,
                    &Response::Refused("the run is stopping; modes can no longer change".into()),
                    true,
                ),
                None => {
                    let names: Vec<&str> = self.d.modes.iter().map(|m| m.name.as_str()).collect();
                    self.reply(
                        t,
                        &Response::Refused(format!(
                            "deployment `{}` has no mode `{name}`; allowed are {names:?}",
                            self.d.name
                        )),
                        true,
                    );
                }
            },
            Request::Stop => {
                self.stop(apps, "takt stop");
                self.reply(
                    t,
                    &Response::Done("stopping every app at the next hyperperiod boundary".into()),
                    true,
                );
            }
            Request::AppReady { app, pid, version } => {
                let Some(i) = self.app_index(apps, &app) else {
                    self.reply(t, &Response::Refused(format!("no app `{app}`")), true);
                    return;
                };
                let peer = self.conns.get(&t).map_or(0, |c| c.peer.pid);
                if peer != pid {
                    log::warn!(
                        "takt run: control socket: refused: peer pid {peer} claims to be process {pid} of app `{app}`"
                    );
                    self.reply(
                        t,
                        &Response::Refused(format!(
                            "peer pid {peer} claims to be process {pid} of app `{app}`; an app process speaks only for itself"
                        )),
                        true,
                    );
                    return;
                }
                if apps[i].pid != Some(pid) {
                    if self.spare_ready(apps, i, pid, &version, t) {
                        return;
                    }
                    self.reply(
                        t,
                        &Response::Refused(format!(
                            "process {pid} is not the supervised process of app `{app}`"
                        )),
                        true,
                    );
                    return;
                }
                let a = &mut apps[i];
                a.conn = Some(t);
                a.version = version;
                match self.epoch_ns {
                    None => {
                        a.waiting = true;
                        if apps.iter().all(|a| !a.hosted || a.waiting) {
                            self.publish_epoch(apps);
                        }
                    }
                    Some(epoch) => {
                        // A restarted app joins at the first boundary it can still make.
                        let start_cycle = self.first_join_cycle(epoch);
                        log::info!(
                            "takt run: app `{app}` (pid {pid}) rejoins at hyperperiod {start_cycle}"
                        );
                        let mut a = std::mem::replace(&mut apps[i], placeholder());
                        self.join(&mut a, t, epoch, start_cycle);
                        apps[i] = a;
                    }
                }
            }
            Request::OtaStage { .. }
            | Request::OtaActivate { .. }
            | Request::OtaRollback { .. }
            | Request::OtaStatus => self.handle_ota(apps, t, req),
            Request::AppFinished { app, result } => {
                if self.spare_finished(t, &result) {
                    self.reply(t, &Response::Done("results received".into()), true);
                    return;
                }
                if let Some(i) = self.app_index(apps, &app) {
                    if apps[i].conn == Some(t) {
                        if let Err(e) = &result {
                            log::error!("takt run: app `{app}` failed: {e}");
                        }
                        apps[i].result = Some(result);
                        self.reply(t, &Response::Done("results received".into()), true);
                        return;
                    }
                }
                self.reply(
                    t,
                    &Response::Refused(format!(
                        "this connection does not belong to the current process of app `{app}`"
                    )),
                    true,
                );
            }
        }
    }
}
