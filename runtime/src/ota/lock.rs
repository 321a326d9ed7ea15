//! The exclusive lock on an OTA state directory: one writer at a time.
//!
//! Owns `<state dir>/.lock`, an advisory `flock(2)` lock held for the life of the
//! supervisor (and of `takt ota` commands that write the directory offline). Two
//! supervisors on one state directory would each trust their own view of the journal and
//! the anti-rollback counter and undo each other's transitions; the second one is refused
//! with the directory and the holder's pid named. It must never wait: a held lock is an
//! error at once, so nothing hangs behind another process.
//!
//! The lock belongs to the open file description (`O_CLOEXEC`, so app processes started
//! by the supervisor never inherit it) and ends with the process, even on `kill -9`: a
//! stale lock file never locks anyone out.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The lock file's name inside the state directory (no app can have a name with a dot
/// in front, so it never clashes with an app's directory).
pub const LOCK_FILE: &str = ".lock";

/// Held while it lives; dropping it releases the lock.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

/// Why the state directory could not be locked.
#[derive(Debug)]
pub enum LockError {
    /// Another process holds it.
    Held {
        dir: PathBuf,
        holder: String,
    },
    Io {
        path: PathBuf,
        error: io::Error,
    },
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::Held { dir, holder } => write!(
                f,
                "the OTA state directory {} is in use by another takt process ({holder}); one supervisor or `takt ota` command per state directory: stop the other one or give this one its own state directory",
                dir.display()
            ),
            LockError::Io { path, error } => {
                write!(f, "{}: cannot lock the OTA state directory: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for LockError {}

impl LockError {
    /// Whether the lock failed because the directory cannot be written (a read-only
    /// file system, or permissions), rather than because someone holds it.
    pub fn is_read_only(&self) -> bool {
        matches!(self, LockError::Io { error, .. }
            if matches!(error.raw_os_error(), Some(libc::EROFS | libc::EACCES | libc::EPERM)))
    }
}

impl StateLock {
    /// Takes the exclusive lock on `dir` (which must exist) for `what` (e.g. `takt run`),
    /// or says who holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<StateLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |error| LockError::Io {
            path: path.clone(),
            error,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        // SAFETY: flock(2) on a file descriptor this function owns (it stays open while
        // `file` lives); LOCK_NB makes it return at once instead of waiting.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                // The holder wrote its pid after locking; a bounded read of a small file.
                let _ = (&mut file).take(256).read_to_string(&mut text);
                let holder = match text.lines().next().map(str::trim) {
                    Some(pid) if !pid.is_empty() => {
                        let who = text.lines().nth(1).unwrap_or("").trim();
                        format!(
                            "pid {pid}{}",
                            if who.is_empty() {
                                String::new()
                            } else {
                                format!(", {who}")
                            }
                        )
                    }
                    _ => "pid unknown: it has not written it yet".to_string(),
                };
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            return Err(io_err(error));
        }
        // Ours now: say who holds it, for the next one to be refused.
        file.set_len(0).map_err(io_err)?;
        file.rewind().map_err(io_err)?;
        file.write_all(format!("{}\n{what}\n", std::process::id()).as_bytes())
            .map_err(io_err)?;
        Ok(StateLock { _file: file, path })
    }

    /// Takes the exclusive lock on `dir` on a state directory that cannot be written:
    /// the existing lock file is opened read-only (`flock` needs no write access), so a
    /// writer reaching the same directory through another, writable mount is still
    /// refused while this lock is held, and this one is refused while a writer holds it.
    /// `Ok(None)`: the directory has no lock file, and none can be made; nothing can
    /// write through this path either.
    pub fn acquire_read_only(dir: &Path) -> Result<Option<StateLock>, LockError> {
        let path = dir.join(LOCK_FILE);
        let mut file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(LockError::Io { path, error }),
        };
        // SAFETY: flock(2) on a file descriptor this function owns (it stays open while
        // `file` lives); LOCK_NB makes it return at once instead of waiting.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut text = String::new();
                let _ = (&mut file).take(256).read_to_string(&mut text);
                let pid = text.lines().next().map(str::trim).unwrap_or("");
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    holder: if pid.is_empty() {
                        "pid unknown".to_string()
                    } else {
                        format!("pid {pid}")
                    },
                });
            }
            return Err(LockError::Io { path, error });
        }
        Ok(Some(StateLock { _file: file, path }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
