//! systemd's notification protocol, without libsystemd: one datagram per state change to the
//! socket named by `NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
//!
//! Owns: `READY=1`, `WATCHDOG=1` and `STOPPING=1`. It must never fail the run: when the
//! socket is missing or refuses, the supervisor goes on without systemd.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// The notify socket of this process, if systemd gave one.
pub struct Notifier {
    addr: std::os::unix::net::SocketAddr,
    socket: UnixDatagram,
    /// Half of `WATCHDOG_USEC`, or 1 s without it.
    pub watchdog_every: Duration,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET` (and `WATCHDOG_USEC`); `None` when not started by systemd.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let text = path.to_string_lossy().into_owned();
        let addr = if let Some(name) = text.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).ok()?
        } else {
            std::os::unix::net::SocketAddr::from_pathname(&text).ok()?
        };
        let socket = UnixDatagram::unbound().ok()?;
        // A notify socket nobody reads fills up; the supervisor must never block on it.
        socket.set_nonblocking(true).ok()?;
        let watchdog_every = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&us| us > 0)
            .map_or(Duration::from_secs(1), |us| Duration::from_micros(us / 2));
        Some(Notifier {
            addr,
            socket,
            watchdog_every,
        })
    }

    /// Sends one state line, e.g. `READY=1`. Returns whether it was sent.
    pub fn send(&self, state: &str) -> bool {
        self.socket
            .send_to_addr(state.as_bytes(), &self.addr)
            .is_ok()
    }
}
