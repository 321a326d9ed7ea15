//! What a real-time dispatcher thread needs from the operating system: pinning to one
//! core (core_affinity), SCHED_FIFO at a given priority (thread-priority), and locked
//! memory (`mlockall`), plus a probe that says whether SCHED_FIFO is permitted at all.

use std::fmt;

use thread_priority::unix::{
    set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
    ThreadSchedulePolicy,
};
use thread_priority::{ThreadPriority, ThreadPriorityValue};

/// The calling thread could not be pinned to `core`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinError {
    pub core: usize,
}

impl fmt::Display for PinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot pin a thread to core {} (sched_setaffinity refused; is the core online and in this process's cpuset?)",
            self.core
        )
    }
}

impl std::error::Error for PinError {}

/// SCHED_FIFO could not be had, on the calling thread or on the probe's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FifoError {
    /// The priority is outside 1..=99; `reason` is thread-priority's word for it.
    OutOfRange { priority: u8, reason: String },
    /// The kernel refused the policy (no root, no CAP_SYS_NICE, RLIMIT_RTPRIO too low).
    NotPermitted { priority: u8, reason: String },
    /// The probe thread could not be started.
    ProbeSpawn { reason: String },
    /// The probe thread panicked.
    ProbePanicked,
}

impl fmt::Display for FifoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FifoError::OutOfRange { priority, reason } => write!(
                f,
                "SCHED_FIFO priority {priority} is out of range 1..=99: {reason}"
            ),
            FifoError::NotPermitted { priority, reason } => write!(
                f,
                "SCHED_FIFO at priority {priority} is not permitted: {reason} (run as root or grant CAP_SYS_NICE / an RLIMIT_RTPRIO of at least {priority})"
            ),
            FifoError::ProbeSpawn { reason } => {
                write!(f, "cannot start the SCHED_FIFO probe thread: {reason}")
            }
            FifoError::ProbePanicked => f.write_str("the SCHED_FIFO probe thread panicked"),
        }
    }
}

impl std::error::Error for FifoError {}

/// `mlockall` failed; the run goes on, with this as a warning.
#[derive(Debug)]
pub struct LockMemoryError {
    pub source: std::io::Error,
}

impl fmt::Display for LockMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mlockall failed: {} (page faults may delay releases)",
            self.source
        )
    }
}

impl std::error::Error for LockMemoryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Pins the calling thread to `core`, naming the core in the error. The dispatchers use
/// it, and so do the bench's own real-time threads.
pub fn pin_current(core: usize) -> Result<(), PinError> {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        Ok(())
    } else {
        Err(PinError { core })
    }
}

/// Puts the calling thread under SCHED_FIFO at `priority` (1..=99).
pub fn set_fifo_current(priority: u8) -> Result<(), FifoError> {
    let value = ThreadPriorityValue::try_from(priority).map_err(|e| FifoError::OutOfRange {
        priority,
        reason: e.to_string(),
    })?;
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .map_err(|e| FifoError::NotPermitted {
        priority,
        reason: format!("{e:?}"),
    })
}

/// Whether this process may run threads under SCHED_FIFO at `priority`: tries it on a
/// short-lived thread, so the caller's own scheduling is untouched.
pub fn probe_realtime(priority: u8) -> Result<(), FifoError> {
    std::thread::Builder::new()
        .name("takt-rt-probe".into())
        .spawn(move || set_fifo_current(priority))
        .map_err(|e| FifoError::ProbeSpawn {
            reason: e.to_string(),
        })?
        .join()
        .unwrap_or(Err(FifoError::ProbePanicked))
}

/// Locks all current and future pages of the process in memory, so a page fault can never
/// stall a dispatcher. Returns why not, if it failed (the run goes on, with a warning).
pub fn lock_memory() -> Result<(), LockMemoryError> {
    // SAFETY: mlockall takes only flags and touches no memory of ours.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(LockMemoryError {
            source: std::io::Error::last_os_error(),
        })
    }
}

/// Undoes [`lock_memory`] at the end of a run, so a process that runs several deployments
/// (tests) does not keep everything it allocates later locked.
pub fn unlock_memory() {
    // SAFETY: munlockall takes no arguments and touches no memory of ours.
    unsafe {
        libc::munlockall();
    }
}

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), in ns: the time it actually
/// ran, which excludes every moment it was off the CPU (preempted, or its vCPU stolen by
/// the host). Measured on the development VM: about 470 ns per call, a real syscall (the
/// vDSO does not serve this clock), against about 23 ns for `CLOCK_MONOTONIC`.
/// Allocation and lock free; 0 if the clock cannot be read (never on Linux).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec on our stack; the clock id is a constant
    // Linux supports for the calling thread.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}
