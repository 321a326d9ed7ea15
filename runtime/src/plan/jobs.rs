//! The jobs of a synthesized plan, per mode and task, as sizing and bounds read them.
//!
//! Owns: [`Slot`] (one job's start, end, release and deadline as the tables fix them) and
//! [`ModeJobs`] (a mode's slots per task, in job order). It sits below `synth`, `sizing` and
//! `bounds`, which all use it, and must never be used by `verify`, which enumerates jobs its
//! own way.

use super::ModePlan;

/// One job's times as the synthesized tables fix them, the input of sizing and bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    pub start_ns: u64,
    pub end_ns: u64,
    pub release_ns: u64,
    pub deadline_ns: u64,
}

/// The jobs of one mode, per task (index = `TaskId`), in job order. A task that is not
/// active in the mode has none.
pub(super) struct ModeJobs {
    pub by_task: Vec<Vec<Slot>>,
}

impl ModeJobs {
    /// Windows naming a task index at or above `task_count` are left out (only a plan that
    /// is not the deployment's has them; `verify` reports them).
    pub(super) fn from_tables(task_count: usize, m: &ModePlan) -> ModeJobs {
        let windows = || {
            m.cores
                .iter()
                .flat_map(|c| c.windows.iter())
                .filter(|w| w.task < task_count)
        };
        let mut counts = vec![0usize; task_count];
        for w in windows() {
            counts[w.task] += 1;
        }
        let mut by_task: Vec<Vec<Slot>> = counts.iter().map(|&c| Vec::with_capacity(c)).collect();
        for w in windows() {
            by_task[w.task].push(Slot {
                start_ns: w.start_ns,
                end_ns: w.start_ns.saturating_add(w.budget_ns),
                release_ns: w.release_ns,
                deadline_ns: w.deadline_ns,
            });
        }
        for slots in &mut by_task {
            slots.sort_unstable_by_key(|s| s.release_ns);
        }
        ModeJobs { by_task }
    }
}
