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
//! A process that is behind needs the CPU its waiting peers would burn: a deployment's
//! processes often outnumber the cores. So a wait spins only briefly, yields a while, then
//! sleeps on the shared [`Bell`] (a futex), which every publication of progress rings when
//! someone sleeps on it.
//!
//! ```text
//!   (1) advance_to(t): progress[me] = t            (all my windows before t are done)
//!   (2)                wait until progress[j] >= t for every j != me
//!   (3) finish():      progress[me] = MAX
//! ```

use std::time::{Duration, Instant};

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// How long a process waits without any peer making progress before it gives up.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Progress that never holds anyone back: a process that has ended or hosts nothing.
pub const DONE: u64 = u64::MAX;

/// How many times a wait polls the progress words before it yields: a few microseconds.
/// Longer spins made the ACC demo's simulated walk slower, not faster (2,000 polls: 4-6x
/// slower): with three processes on two cores the spinner holds the core the late process
/// needs.
const SPINS_BEFORE_SLEEP: u32 = 64;

/// How many times a wait then yields its core before it sleeps on the [`Bell`]. A yield
/// hands the core straight to a late peer queued on it, which is the common case and
/// cheaper than a futex round trip (ACC demo, 3 s simulated, quiet host: walk 18-24 ms
/// yielding, 28-31 ms sleeping at once, 19-25 ms with this); under load (two compilers on
/// the same cores) the scheduler honours yields weakly, and sleeping is what lets the late
/// process run (walk 27-79 ms sleeping against 20-176 ms, mostly 50-100, yielding forever).
const YIELDS_BEFORE_SLEEP: u32 = 200;

/// The longest single sleep on the [`Bell`]: a ring lost to a peer that died between its
/// publication and its ring costs at most this, and the stall timeout stays checked.
const BELL_NAP: Duration = Duration::from_millis(20);

/// Where waiting processes sleep until some process publishes progress: a futex word in
/// the shared control block, and the number of sleepers, so a publication makes a system
/// call only when somebody sleeps.
#[repr(C)]
#[derive(Default)]
pub struct Bell {
    /// Bumped by every ring; the futex word.
    rung: AtomicU32,
    /// Processes between "I am going to sleep" and "I woke".
    sleepers: AtomicU32,
}

impl Bell {
    /// A bell nobody has rung.
    pub fn new() -> Bell {
        Bell::default()
    }

    /// Wakes every sleeper (after the caller published its progress).
    pub fn ring(&self) {
        // SYNC POINT: SeqCst on the bump and on the sleeper count, paired with the
        // sleeper's SeqCst increment and load in `nap`: either this sees the sleeper, or
        // the sleeper sees the bump and does not sleep (the futex compares it).
        self.rung.fetch_add(1, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            futex_wake_all(&self.rung);
        }
    }

    /// Sleeps until the bell rings, at most `longest`, unless `ready` holds once the
    /// sleeper is registered. Returns false only when the sleep ran out unrung.
    fn nap(&self, longest: Duration, ready: impl Fn() -> bool) -> bool {
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        let seen = self.rung.load(Ordering::SeqCst);
        let rung = ready() || futex_wait(&self.rung, seen, longest);
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
        rung
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout`. Shared (not process-private):
/// the word lives in memory other processes map. Returns false only when the timeout ran
/// out (a wake-up, a moved word and a signal all say "look again").
#[cfg(not(loom))]
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic for the whole call, and `ts` a valid
    // relative timeout; FUTEX_WAIT only reads the word.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        )
    };
    r == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ETIMEDOUT)
}

#[cfg(not(loom))]
fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a live, aligned 32-bit atomic; FUTEX_WAKE touches no memory.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, i32::MAX);
    }
}

// The model checker cannot see a futex: there a nap is a yield.
#[cfg(loom)]
fn futex_wait(_: &AtomicU32, _: u32, _: Duration) -> bool {
    loom::thread::yield_now();
    true
}

#[cfg(loom)]
fn futex_wake_all(_: &AtomicU32) {}

/// This process's view of the shared progress words.
#[derive(Clone, Copy)]
pub struct Lockstep<'a> {
    /// One word per app of the deployment (shared memory in a supervised run).
    pub progress: &'a [AtomicU64],
    /// This process's word.
    pub me: usize,
    /// Where this process sleeps while a peer is behind, rung by every publication.
    pub bell: &'a Bell,
}

impl Lockstep<'_> {
    /// Publishes that every window of this process starting before `t_ns` is done, then
    /// waits until every other process has done the same. Returns false when it gave up
    /// after [`STALL_TIMEOUT`] without any progress from the peers it waits for.
    pub fn advance_to(&self, t_ns: u64) -> bool {
        // SYNC POINT: Release pairs with the Acquire loads of the other processes' waits:
        // a peer that sees progress >= t also sees every sample this process sent before.
        self.progress[self.me].fetch_max(t_ns, Ordering::Release);
        self.bell.ring();
        let mut last_sum = 0u64;
        let mut since = Instant::now();
        let mut spins = 0u32;
        loop {
            let (behind, sum) = self.peers_behind(t_ns);
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
            if spins < SPINS_BEFORE_SLEEP {
                std::hint::spin_loop();
            } else if spins < SPINS_BEFORE_SLEEP + YIELDS_BEFORE_SLEEP {
                std::thread::yield_now();
            } else {
                self.bell.nap(BELL_NAP, || !self.peers_behind(t_ns).0);
            }
        }
    }

    /// Whether some other process has not yet published progress `t_ns`, and the sum of
    /// their progress words (which moves whenever any of them makes progress).
    fn peers_behind(&self, t_ns: u64) -> (bool, u64) {
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
        (behind, sum)
    }

    /// This process has ended its walk: nobody waits for it any more.
    pub fn finish(&self) {
        // SYNC POINT: Release, as in `advance_to`.
        self.progress[self.me].store(DONE, Ordering::Release);
        self.bell.ring();
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
        let bell = Bell::new();
        let log = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for me in 0..2 {
                let (progress, log, bell) = (&progress, &log, &bell);
                s.spawn(move || {
                    let l = Lockstep { progress, me, bell };
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
    fn a_ring_wakes_a_sleeper_before_its_nap_runs_out() {
        let bell = Bell::new();
        std::thread::scope(|s| {
            let sleeper = s.spawn(|| bell.nap(Duration::from_secs(60), || false));
            // Ring once the sleeper is registered: it is asleep or about to compare the
            // futex word, and either way it must see this ring.
            let registered = Instant::now();
            while bell.sleepers.load(Ordering::SeqCst) == 0 {
                assert!(
                    registered.elapsed() < Duration::from_secs(60),
                    "never slept"
                );
                std::thread::yield_now();
            }
            bell.ring();
            assert!(
                sleeper.join().unwrap(),
                "the nap ran out: the ring was lost"
            );
        });
        // And without a ring a nap runs out and says so.
        assert!(!bell.nap(Duration::from_millis(1), || false));
        // A sleeper whose condition already holds does not sleep at all.
        assert!(bell.nap(Duration::from_secs(60), || true));
    }

    #[test]
    fn a_finished_peer_holds_nobody_back() {
        let progress = [AtomicU64::new(0), AtomicU64::new(DONE)];
        let bell = Bell::new();
        let l = Lockstep {
            progress: &progress,
            me: 0,
            bell: &bell,
        };
        assert!(l.advance_to(1_000_000));
    }
}
