//! Starting app processes that cannot outlive their supervisor.
//!
//! Owns: the one `pre_exec` hook of takt. It must never do anything in the forked child but
//! async-signal-safe system calls.

use std::io;
use std::process::{Child, Command};

use std::os::unix::process::CommandExt;

/// Spawns `cmd` so that the kernel sends the child `SIGKILL` when the spawning thread ends
/// (`PR_SET_PDEATHSIG`): a supervisor killed with `kill -9` leaves no app on a core.
///
/// Call it from a thread that lives as long as the supervisor (its main thread): the signal
/// follows the thread that forked, not the process.
pub fn spawn_bound_to_parent(cmd: &mut Command) -> io::Result<Child> {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the hook runs in the forked child before exec and calls only prctl, getppid
    // and _exit, which are async-signal-safe; it touches no lock and allocates nothing
    // (`last_os_error` builds an `Os` error without allocating).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Sends `SIGKILL` to process `pid` (the supervisor's children; fault-injection tools use
/// it on any process of a run). Errors (already gone, not permitted) are ignored.
pub fn kill_hard(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill takes plain integers and touches no memory of ours.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Sets the process umask and returns the previous one: the supervisor creates its control
/// socket under `0o177` so it is owner-only from the moment it exists.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask only swaps the process's file-mode mask.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}
