//! Simulated time across processes: every app process of a supervised `--clock sim` run
//! walks its own tables in virtual time, as fast as it can, and none runs a window before
//! every other process has finished everything that comes earlier in logical time.
//!
//! Owns: the progress word of each process and the wait. Each process publishes, before it
//! moves its simulated clock to `t`, that all of its windows starting before `t` are done
//! (`progress = t`), and then waits until every other process says the same of `t`. A job
//! released at `r` reads only samples visible at `r`, written by jobs whose LET deadline is
//! at most `r`, so whose windows started before `r`: by then their processes have
//! published progress at least `r`, so their samples were sent. Processes therefore run
//! their windows in the same logical order as the single-threaded simulation, possibly
//! several at one instant (as cores do), and the outputs are the same bit for bit.
//!
//! A process that ends sets its progress to `u64::MAX`, so nobody waits for it; the
//! supervisor does the same for a process that dies. A wait that sees no progress for
//! [`STALL_TIMEOUT`] gives up, so a hung peer cannot hang the run.
//!
//! ```text
//!   (1) advance_to(t): progress[me] = t            (all my windows before t are done)
//!   (2)                wait until progress[j] >= t for every j != me
//!   (3) finish():      progress[me] = MAX
//! ```

use std::time::{Duration, Instant};

use crate::sync::{AtomicU64, Ordering};

/// How long a process waits without any peer making progress before it gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Progress that never holds anyone back: a process that has ended or hosts nothing.
pub const DONE: u64 = u64::MAX;

/// This process's view of the shared progress words.
#[derive(Clone, Copy)]
pub struct Lockstep<'a> {
    /// One word per app of the deployment (shared memory in a supervised run).
    pub progress: &'a [AtomicU64],
    /// This process's word.
    pub me: usize,
}

impl Lockstep<'_> {
    /// Publishes that every window of this process starting before `t_ns` is done, then
    /// waits until every other process has done the same. Returns false when it gave up
    /// after [`STALL_TIMEOUT`] without any progress from the peers it waits for.
    pub fn advance_to(&self, t_ns: u64) -> bool {
        // SYNC POINT: Release pairs with the Acquire loads of the other processes' waits:
        // a peer that sees progress >= t also sees every sample this process sent before.
        self.progress[self.me].fetch_max(t_ns, Ordering::Release);
        let mut last_sum = 0u64;
        let mut since = Instant::now();
        let mut spins = 0u32;
        loop {
            let mut behind = false;
            let mut sum = 0u64;
            for (j, p) in self.progress.iter().enumerate() {
                if j == self.me {
                    continue;
                }
                let v = p.load(Ordering::Acquire);
                sum = sum.wrapping_add(v);
                behind |= v < t_ns;
            }
            if !behind {
                return true;
            }
            if sum != last_sum {
                last_sum = sum;
                since = Instant::now();
            } else if since.elapsed() > STALL_TIMEOUT {
                return false;
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// This process has ended its walk: nobody waits for it any more.
    pub fn finish(&self) {
        // SYNC POINT: Release, as in `advance_to`.
        self.progress[self.me].store(DONE, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_walkers_never_pass_each_other() {
        // Each walker records the instants it runs; a walker may run `t` only once the
        // other has published it finished everything before `t`.
        let progress = [AtomicU64::new(0), AtomicU64::new(0)];
        let log = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for me in 0..2 {
                let (progress, log) = (&progress, &log);
                s.spawn(move || {
                    let l = Lockstep { progress, me };
                    for k in 0..200u64 {
                        let t = k * 10 + me as u64 * 5;
                        assert!(l.advance_to(t));
                        let other = progress[1 - me].load(Ordering::Acquire);
                        assert!(
                            other >= t,
                            "walker {me} at {t} while the other was at {other}"
                        );
                        log.lock().unwrap().push(t);
                    }
                    l.finish();
                });
            }
        });
        assert_eq!(log.lock().unwrap().len(), 400);
    }

    #[test]
    fn a_finished_peer_holds_nobody_back() {
        let progress = [AtomicU64::new(0), AtomicU64::new(DONE)];
        let l = Lockstep {
            progress: &progress,
            me: 0,
        };
        assert!(l.advance_to(1_000_000));
    }
}
