//! Who is at the other end of a control connection: the kernel's word, never the peer's.
//!
//! Owns: reading a Unix socket peer's credentials (`SO_PEERCRED`: pid and uid as the kernel
//! recorded them at `connect`) and walking a process's ancestry in `/proc`, so the
//! supervisor can tell its owner from an app process or anything an app started (issue
//! #12.6). It must never trust what a peer claims about itself, and never walk without a
//! bound.

use std::io;
use std::os::unix::io::AsRawFd;

/// The kernel's record of a connected peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: u32,
    pub uid: u32,
}

/// Most parent links followed from a peer towards init.
pub const MAX_ANCESTRY: usize = 64;

/// `SO_PEERCRED` of a connected Unix stream socket.
pub fn credentials(sock: &impl AsRawFd) -> io::Result<PeerCred> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a live, writable `ucred` and `len` holds its exact size, which is
    // what SO_PEERCRED writes; the descriptor is borrowed from an open socket.
    let rc = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let pid = u32::try_from(cred.pid).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the kernel gave no peer pid ({})", cred.pid),
        )
    })?;
    if pid == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the peer's pid is not visible in this pid namespace",
        ));
    }
    Ok(PeerCred { pid, uid: cred.uid })
}

/// The parent of process `pid` (field 4 of `/proc/<pid>/stat`).
fn parent_of(pid: u32) -> Result<u32, AncestryError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| {
        AncestryError::Unreadable {
            pid,
            reason: e.to_string(),
        }
    })?;
    // The command name (field 2) may hold spaces and parentheses: parse after the last ')'.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .ok_or(AncestryError::NoCommand { pid })?;
    rest.split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .ok_or(AncestryError::NoParent { pid })
}

/// Why the ancestry of a peer could not be followed ([`app_ancestor`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AncestryError {
    /// `/proc/<pid>/stat` could not be read (the OS's words).
    Unreadable {
        pid: u32,
        reason: String,
    },
    NoCommand {
        pid: u32,
    },
    NoParent {
        pid: u32,
    },
    /// More than [`MAX_ANCESTRY`] links up from `pid`.
    TooDeep {
        pid: u32,
    },
}

impl std::fmt::Display for AncestryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AncestryError::Unreadable { pid, reason } => {
                write!(f, "cannot read /proc/{pid}/stat: {reason}")
            }
            AncestryError::NoCommand { pid } => write!(f, "/proc/{pid}/stat has no command field"),
            AncestryError::NoParent { pid } => write!(f, "/proc/{pid}/stat has no parent pid"),
            AncestryError::TooDeep { pid } => write!(
                f,
                "the ancestry of pid {pid} is deeper than {MAX_ANCESTRY} processes"
            ),
        }
    }
}

impl std::error::Error for AncestryError {}

/// The first of `pid` and its ancestors (at most [`MAX_ANCESTRY`] links up, stopping at
/// `stop_at` or init) that `is_app` accepts; `None` when the line reaches `stop_at` or init
/// without one. `Err` when the ancestry cannot be read or is deeper than the bound: the
/// caller treats that as "not the owner".
pub fn app_ancestor(
    pid: u32,
    stop_at: u32,
    is_app: impl Fn(u32) -> bool,
) -> Result<Option<u32>, AncestryError> {
    let mut p = pid;
    for _ in 0..MAX_ANCESTRY {
        if is_app(p) {
            return Ok(Some(p));
        }
        if p <= 1 || p == stop_at {
            return Ok(None);
        }
        p = parent_of(p)?;
    }
    Err(AncestryError::TooDeep { pid })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_socket_pair_reports_this_process_and_its_uid() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().expect("a socket pair");
        let c = credentials(&a).expect("SO_PEERCRED");
        assert_eq!(c.pid, std::process::id());
        // SAFETY: geteuid has no preconditions.
        assert_eq!(c.uid, unsafe { libc::geteuid() });
    }

    #[test]
    fn the_ancestry_finds_an_ancestor_and_stops_at_init() {
        let me = std::process::id();
        let parent = parent_of(me).expect("our parent");
        assert_eq!(app_ancestor(me, 0, |p| p == parent), Ok(Some(parent)));
        assert_eq!(app_ancestor(me, 0, |_| false), Ok(None));
        assert_eq!(app_ancestor(me, me, |p| p == parent), Ok(None));
    }
}
