//! Restart decisions: pure functions of an app's [`Supervision`], how its process ended and
//! when it was restarted before. No processes, no clocks: the supervisor passes the time in.

use std::collections::VecDeque;

use crate::manifest::{Escalation, RestartPolicy, Supervision};

/// How an app process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// Exit status 0.
    Clean,
    /// A non-zero exit status, a signal, or a kill by the supervisor (missed heartbeats).
    Failure,
}

/// What the supervisor does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start the app again; it rejoins at the next hyperperiod boundary.
    Restart,
    /// Leave it ended: a clean exit its policy does not restart.
    Stopped,
    /// It failed for good: mark it failed and apply the escalation.
    Escalate(Escalation),
}

/// The restarts of one app inside its sliding window.
#[derive(Clone, Debug, Default)]
pub struct RestartHistory {
    /// Times (ns, any monotonic base) of past restarts within the window, oldest first.
    recent_ns: VecDeque<u64>,
    /// Every restart of the run.
    pub total: u32,
}

impl RestartHistory {
    /// Decides what follows an early end at `now_ns`, and records the restart if it is one.
    pub fn decide(&mut self, s: &Supervision, exit: ExitKind, now_ns: u64) -> Decision {
        let wanted = match (s.restart, exit) {
            (RestartPolicy::Never, ExitKind::Clean) => return Decision::Stopped,
            (RestartPolicy::Never, ExitKind::Failure) => false,
            (RestartPolicy::OnFailure, ExitKind::Clean) => return Decision::Stopped,
            (RestartPolicy::OnFailure, ExitKind::Failure) => true,
            (RestartPolicy::Always, _) => true,
        };
        if !wanted {
            return Decision::Escalate(s.escalate);
        }
        while self
            .recent_ns
            .front()
            .is_some_and(|&t| now_ns.saturating_sub(t) >= s.restart_window_ns)
        {
            self.recent_ns.pop_front();
        }
        if self.recent_ns.len() >= s.max_restarts as usize {
            return match exit {
                ExitKind::Clean => Decision::Stopped,
                ExitKind::Failure => Decision::Escalate(s.escalate),
            };
        }
        self.recent_ns.push_back(now_ns);
        self.total += 1;
        Decision::Restart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn sup(restart: RestartPolicy, max_restarts: u32, escalate: Escalation) -> Supervision {
        Supervision {
            restart,
            max_restarts,
            restart_window_ns: 10 * S,
            escalate,
        }
    }

    #[test]
    fn never_escalates_a_failure_and_stops_after_a_clean_exit() {
        let s = sup(RestartPolicy::Never, 3, Escalation::Mode(1));
        let mut h = RestartHistory::default();
        assert_eq!(
            h.decide(&s, ExitKind::Failure, 0),
            Decision::Escalate(Escalation::Mode(1))
        );
        assert_eq!(h.decide(&s, ExitKind::Clean, 0), Decision::Stopped);
        assert_eq!(h.total, 0);
    }

    #[test]
    fn on_failure_restarts_failures_only() {
        let s = sup(RestartPolicy::OnFailure, 3, Escalation::Stop);
        let mut h = RestartHistory::default();
        assert_eq!(h.decide(&s, ExitKind::Failure, 0), Decision::Restart);
        assert_eq!(h.decide(&s, ExitKind::Clean, S), Decision::Stopped);
        assert_eq!(h.total, 1);
    }

    #[test]
    fn always_restarts_clean_exits_too() {
        let s = sup(RestartPolicy::Always, 3, Escalation::Stop);
        let mut h = RestartHistory::default();
        assert_eq!(h.decide(&s, ExitKind::Clean, 0), Decision::Restart);
        assert_eq!(h.decide(&s, ExitKind::Failure, S), Decision::Restart);
        assert_eq!(h.total, 2);
    }

    #[test]
    fn the_limit_escalates_within_the_window_and_forgets_outside_it() {
        let s = sup(RestartPolicy::OnFailure, 2, Escalation::Mode(2));
        let mut h = RestartHistory::default();
        assert_eq!(h.decide(&s, ExitKind::Failure, 0), Decision::Restart);
        assert_eq!(h.decide(&s, ExitKind::Failure, S), Decision::Restart);
        assert_eq!(
            h.decide(&s, ExitKind::Failure, 2 * S),
            Decision::Escalate(Escalation::Mode(2))
        );
        // 10 s after the first restart it has left the window: one more is allowed.
        assert_eq!(h.decide(&s, ExitKind::Failure, 10 * S), Decision::Restart);
        assert_eq!(h.total, 3);
    }
}
