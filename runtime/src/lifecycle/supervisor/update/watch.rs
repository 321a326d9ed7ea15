//! Watching a new version: the update loop's probation phase, one look per turn, and the
//! commit that ends a clean window.
//!
//! Owns: nothing of its own; it advances [`Op::Probation`], gathering the evidence that
//! [`probation::judge`] decides on. It must never judge here (the rules live in
//! `probation`) and never commit before the journal says so.

use super::kernel_cpu::CpuReading;
use super::probation;
use super::{fewest_jobs_per_hyperperiod, HealthSnapshot, Op, LOOK_SLACK_NS};
use crate::lifecycle::supervisor::{App, Supervisor, TICK};
use crate::ota::journal::UpdateState;

impl Supervisor<'_> {
    /// Probation: one look at the new version (its warm-up first, then the window), judged
    /// by [`probation::judge`]; a clean window commits.
    pub(super) fn probation(&mut self, apps: &mut [App], now: u64, cycle: u64) {
        let Some(u) = self.updates.as_mut() else {
            return;
        };
        let Op::Probation {
            app,
            old,
            version,
            from_cycle,
            until_cycle,
            base,
            warm,
            last_look_ns,
            late_ns,
            late_since_beat_ns,
            beat,
            beat_seen_ns,
            worst,
            rechecking,
            kernel_from,
            kernel_allowance_ns,
            ..
        } = &mut u.op
        else {
            return;
        };
        let (app, old, version) = (*app, *old, *version);
        let block = self.shared.block();
        // The supervisor's own lateness: a look later than its loop's longest sleep
        // means it was not running (host stall, preemption). Every heartbeat looks
        // late by as much, so that time is not held against the version. Measured
        // here, before the heartbeat is read, so the order of the loop's timers
        // cannot make a heartbeat look older than it is.
        let tick_ns = TICK.as_nanos() as u64;
        let late = now
            .saturating_sub(*last_look_ns)
            .saturating_sub(tick_ns + LOOK_SLACK_NS);
        *last_look_ns = now;
        *late_ns += late;
        *late_since_beat_ns += late;
        let hb = block.apps[app].heartbeat();
        if hb != *beat {
            *beat = hb;
            *beat_seen_ns = now;
            *late_since_beat_ns = 0;
        }
        let beat_stale_ns = now
            .saturating_sub(*beat_seen_ns)
            .saturating_sub(*late_since_beat_ns);
        // Evidence the version cannot write: did every other app's heartbeat stand
        // still as long (behind the cycle wall time says it should have started)?
        let h = self.plan.hyperperiod_ns.max(1);
        let others_stalled = self.epoch_ns.is_some_and(|epoch| {
            let due = now.saturating_sub(epoch) / h + 1;
            let mut others = apps
                .iter()
                .enumerate()
                .filter(|(j, a)| *j != app && a.hosted && a.child.is_some())
                .peekable();
            others.peek().is_some()
                && others.all(|(j, _)| {
                    due.saturating_sub(block.apps[j].heartbeat())
                        .saturating_mul(h)
                        >= beat_stale_ns
                })
        });
        let current = HealthSnapshot::of(&block.apps[app]);
        let Some(warm) = warm else {
            if cycle > *from_cycle {
                let warmup = base.since(&current);
                log::info!(
                    "takt run: OTA: app `{}` version {version}: warm-up until hyperperiod {cycle}: {} overrun(s) and {} missed release(s) ({} and {} the platform's), reported, not judged; {} faulted job(s), judged with the window",
                    apps[app].name,
                    warmup.overruns,
                    warmup.missed,
                    warmup.overruns_platform,
                    warmup.missed_platform,
                    warmup.faults
                );
                *warm = Some(Box::new(current));
                // The window's worst job is one after the warm-up.
                block.apps[app].take_worst_own_overrun();
                *kernel_from = apps[app].pid.and_then(|p| CpuReading::take(p, cycle));
            }
            return;
        };
        if let Some(w) = block.apps[app].take_worst_own_overrun() {
            if worst.is_none_or(|x| w.cpu_permille > x.cpu_permille) {
                *worst = Some(w);
            }
        }
        let seen = warm.since(&current);
        let evidence = probation::Evidence {
            // Faults are the version's own report, not a cold start's timing: the
            // whole window counts, warm-up included.
            faults: base.since(&current).faults,
            overruns: seen.overruns,
            overruns_platform: seen.overruns_platform,
            missed: seen.missed,
            missed_platform: seen.missed_platform,
            cpu: seen.cpu.to_vec(),
            baseline_cpu: base.cpu.to_vec(),
            beat_stale_ns,
            supervisor_late_ns: *late_ns,
            others_stalled,
            required_jobs: u
                .probation_cycles
                .saturating_mul(fewest_jobs_per_hyperperiod(self.d, app)),
            overdue: cycle >= until_cycle.saturating_add(u.probation_cycles.saturating_mul(9)),
            worst_own: worst.map(|w| {
                format!(
                    "a job of task `{}` used {}.{:02}x its budget of CPU time",
                    self.d.tasks.get(w.task).map_or("?", |t| t.name.as_str()),
                    w.cpu_permille / 1000,
                    w.cpu_permille % 1000 / 10
                )
            }),
            rechecking: rechecking.clone(),
            kernel_cpu: kernel_from
                .and_then(|from| from.rate_to(&CpuReading::take(apps[app].pid?, cycle)?)),
            kernel_allowance_ns: *kernel_allowance_ns,
        };
        let verdict = probation::judge(
            &evidence,
            &u.limits,
            u.heartbeat_timeout_ns,
            cycle >= *until_cycle,
        );
        let summary = match verdict {
            probation::Verdict::Watch => return,
            probation::Verdict::Recheck(first) => {
                *until_cycle = cycle + u.probation_cycles;
                log::warn!(
                    "takt run: OTA: app `{}` version {version}: {first}; a lone job can look over its CPU budget through the platform (a thread's CPU clock counts interrupts and host time not reported as steal), so the window starts again: probation until hyperperiod {}, and an excess there rolls back",
                    apps[app].name, *until_cycle
                );
                **warm = current;
                *worst = None;
                *rechecking = Some(first);
                return;
            }
            probation::Verdict::RollBack { why, bad } => {
                self.start_rollback(why, bad);
                return;
            }
            probation::Verdict::Commit(summary) => summary,
        };
        {
            let name = apps[app].name.clone();
            if let Err(e) = u.transition(app, |j| j.commit()) {
                log::error!("takt run: OTA: journal: {e}");
                let committed = u.records[app]
                    .as_ref()
                    .is_some_and(|r| matches!(r.state, UpdateState::Committed { .. }));
                if !committed {
                    return;
                }
            }
            u.kill_point("committed");
            u.dismiss(&self.shared.block().run, old);
            let s = &u.spares[old];
            let msg = format!(
                "app `{name}` version {version} committed after a clean probation ({summary}); version {} dismissed",
                s.version
            );
            log::info!("takt run: OTA: {msg}");
            u.last_result[app] = Some(msg);
            u.op = Op::Idle;
        }
    }
}
