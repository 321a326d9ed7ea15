//! Bringing a bundle in: the update loop's verifying and staging phases, each waiting on
//! its worker thread and reporting progress to the client that asked.
//!
//! Owns: nothing of its own; it advances [`Op::Verifying`] and [`Op::Staging`] of the
//! update in flight. It must never block the event loop on the worker (it only looks
//! whether the thread finished) and never touch a running version.

use crate::sync::Ordering;

use super::{Op, PROGRESS_EVERY_NS};
use crate::lifecycle::supervisor::{App, Supervisor};
use crate::lifecycle::wire::Response;

impl Supervisor<'_> {
    /// Verifying: reports progress while the worker reads and checks the bundle, then stages
    /// what it verified or refuses with why.
    pub(super) fn verifying(&mut self, apps: &mut [App], now: u64) {
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let Op::Verifying {
            conn,
            path,
            next_progress_ns,
            worker,
        } = &mut u.op
        else {
            return;
        };
        let conn = *conn;
        if !worker.as_ref().is_some_and(|w| w.is_finished()) {
            if now >= *next_progress_ns {
                *next_progress_ns = now + PROGRESS_EVERY_NS;
                self.reply(
                    conn,
                    &Response::Progress {
                        phase: "reading and verifying".into(),
                        done_bytes: 0,
                        total_bytes: 0,
                    },
                    false,
                );
            }
            return;
        }
        let path = std::mem::take(path);
        let Some(w) = worker.take() else { return };
        u.op = Op::Idle;
        let verified = w
            .join()
            .unwrap_or_else(|_| Err("the read thread panicked".into()));
        if let Err(why) = verified.and_then(|b| self.stage(apps, conn, b)) {
            self.refuse(conn, format!("{path}: {why}; nothing was changed"));
        }
    }

    /// Staging: reports progress while the worker unpacks and syncs, then takes the journal
    /// back and answers with the result.
    pub(super) fn staging(&mut self, now: u64) {
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let Op::Staging {
            app,
            conn,
            version,
            total_bytes,
            next_progress_ns,
            worker,
        } = &mut u.op
        else {
            return;
        };
        let (app, conn, version, total) = (*app, *conn, *version, *total_bytes);
        let done = worker.as_ref().is_some_and(|w| w.is_finished());
        if !done {
            if now >= *next_progress_ns {
                *next_progress_ns = now + PROGRESS_EVERY_NS;
                let written = u.written[app].load(Ordering::Relaxed).min(total);
                self.reply(
                    conn,
                    &Response::Progress {
                        phase: "unpacking and syncing".into(),
                        done_bytes: written,
                        total_bytes: total,
                    },
                    false,
                );
            }
            return;
        }
        let Some(w) = worker.take() else { return };
        u.op = Op::Idle;
        let name = self.d.apps[app].name.clone();
        match w.join() {
            Ok((journal, r)) => {
                u.records[app] = Some(journal.record().clone());
                u.journals[app] = Some(journal);
                match r {
                    Ok(slot) => {
                        u.kill_point("staged");
                        let msg = format!(
                            "app `{name}` version {version} staged into slot {slot} ({total} bytes, synced)"
                        );
                        log::info!("takt run: OTA: {msg}");
                        u.last_result[app] = Some(msg.clone());
                        self.reply(
                            conn,
                            &Response::Progress {
                                phase: "done".into(),
                                done_bytes: total,
                                total_bytes: total,
                            },
                            false,
                        );
                        self.reply(conn, &Response::Done(msg), true);
                    }
                    Err(e) => {
                        let msg = format!("app `{name}` version {version}: stage failed: {e}");
                        u.last_result[app] = Some(msg.clone());
                        self.refuse(conn, msg);
                    }
                }
            }
            Err(_) => {
                let msg = format!(
                    "app `{name}`: the unpack thread panicked; the journal of the app is reopened at the next start"
                );
                u.last_result[app] = Some(msg.clone());
                self.refuse(conn, msg);
            }
        }
    }
}
