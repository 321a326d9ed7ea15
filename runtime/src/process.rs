//! Child processes: starting them, waiting for them within a limit, killing them.
//!
//! Owns: the one `pre_exec` hook of takt (app processes that cannot outlive their
//! supervisor), the answer to `ETXTBSY` at `exec`, and the bounded wait. It must never do
//! anything in the forked child but async-signal-safe system calls, and never wait without
//! a limit. It sits below the catalog handshake and the lifecycle manager, which both start
//! executables, and knows nothing of either.

use std::io;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

#[cfg(feature = "platform")]
use std::os::unix::process::CommandExt;

#[cfg(feature = "platform")]
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
    spawn_unless_text_busy(cmd)
}

/// How long a spawn keeps retrying an executable that is busy ([`spawn_unless_text_busy`]).
const TEXT_BUSY_GRACE: Duration = Duration::from_secs(2);

/// Spawns `cmd`, trying again for a bounded time while `exec` fails with `ETXTBSY`.
///
/// A program that was just written (an installed OTA slot, a test's copy of an app) cannot
/// be executed while any process holds it open for writing. In a process with several
/// threads, a `fork` on another thread (another handshake, another app start) copies the
/// writer's descriptor into a child that keeps it until its own `exec` closes it, a few
/// microseconds to milliseconds later, so the `exec` of the fresh program can fail although
/// the writer closed it long ago. The condition clears by itself; anything else is returned
/// at once, and so is `ETXTBSY` after [`TEXT_BUSY_GRACE`] (a real writer that stays).
pub fn spawn_unless_text_busy(cmd: &mut Command) -> io::Result<Child> {
    let deadline = Instant::now() + TEXT_BUSY_GRACE;
    let mut pause = Duration::from_micros(200);
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

/// Runs `finish` on `child` (a `wait`, or a `wait_with_output`) on a thread of its own
/// and returns its answer the moment it has one, at most `timeout` later: a poll with
/// growing pauses added up to half a catalog handshake's time on a 3 ms answer. A child
/// still running at the deadline is killed and reaped, and the answer is `None`.
pub fn finish_within<T: Send + 'static>(
    child: Child,
    timeout: Duration,
    finish: impl FnOnce(Child) -> T + Send + 'static,
) -> Option<T> {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(finish(child));
    });
    let answer = rx.recv_timeout(timeout).ok();
    if answer.is_none() {
        // `finish` has not answered, so it has almost surely not reaped the child yet; a
        // child that ends in this instant is reaped, and the signal finds it gone.
        kill_hard(pid);
    }
    let _ = waiter.join();
    answer
}

/// Sends `SIGKILL` to process `pid` (the supervisor's children; fault-injection tools use
/// it on any process of a run). Errors (already gone, not permitted) are ignored.
pub fn kill_hard(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill takes plain integers and touches no memory of ours.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[cfg(feature = "platform")]
/// Sets the process umask and returns the previous one: the supervisor creates its control
/// socket under `0o177` so it is owner-only from the moment it exists.
pub fn set_umask(mask: u32) -> u32 {
    // SAFETY: umask only swaps the process's file-mode mask.
    unsafe { libc::umask(mask as libc::mode_t) as u32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// A copy of `/bin/true` in a fresh directory, with its writer still open.
    fn fresh_program() -> (tempfile::TempDir, std::path::PathBuf, File) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("fresh");
        let mut f = File::create(&path).expect("create");
        f.write_all(&std::fs::read("/bin/true").expect("/bin/true"))
            .expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        (dir, path, f)
    }

    #[test]
    fn a_program_whose_writer_lets_go_soon_is_started() {
        let (_dir, path, writer) = fresh_program();
        // The plain spawn is refused while the writer is open: this is the condition.
        let plain = Command::new(&path).spawn();
        assert_eq!(
            plain.err().and_then(|e| e.raw_os_error()),
            Some(libc::ETXTBSY)
        );
        let letting_go = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(writer);
        });
        let mut child = spawn_unless_text_busy(&mut Command::new(&path)).expect("started");
        assert!(child.wait().expect("wait").success());
        letting_go.join().expect("join");
    }

    #[test]
    fn a_writer_that_stays_is_reported_after_the_grace() {
        let (_dir, path, _writer) = fresh_program();
        let asked = Instant::now();
        let e = spawn_unless_text_busy(&mut Command::new(&path)).expect_err("still busy");
        assert_eq!(e.raw_os_error(), Some(libc::ETXTBSY));
        assert!(asked.elapsed() >= TEXT_BUSY_GRACE, "{:?}", asked.elapsed());
    }
}
