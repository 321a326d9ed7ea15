//! The control socket's connections: accepting (with the client and app-process caps),
//! reading whole requests, queueing and flushing replies, and closing.
//!
//! Owns: the socket file and the framing of every connection's bytes. It must never decide
//! what a request means (that is `requests`) and never block: every read and write is
//! non-blocking, and what could not be written waits in the connection's buffer.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use mio::net::{UnixListener, UnixStream};
use mio::{Interest, Poll, Token};

use super::{App, Supervisor};
use crate::lifecycle::peer::{self, PeerCred};
use crate::lifecycle::shm::MAX_APPS;
use crate::lifecycle::wire::{self, Request, Response, WireError};
use crate::process::set_umask;
use crate::time::monotonic_now_ns;

/// Most connections of clients (`takt status|mode|stop|ota`) open at once. App processes'
/// connections are counted apart ([`MAX_APP_CONNECTIONS`]), so clients can never keep an
/// app (or a new version's standby) from registering. At the cap, the oldest client that
/// has not sent a request yet is closed for the new one (issue #12.5).
pub(super) const MAX_CLIENTS: usize = 128;
/// Most connections of app processes: every app's process and one standing by, twice over
/// for connections of processes that are ending.
pub(super) const MAX_APP_CONNECTIONS: usize = 4 * MAX_APPS;
/// How long a client may take to deliver its request after it connected; an idle or
/// half-sent one is closed after this (issue #12.5).
pub(super) const CLIENT_REQUEST_TIMEOUT_NS: u64 = 5_000_000_000;

pub(super) struct Conn {
    pub(super) stream: UnixStream,
    pub(super) inbuf: Vec<u8>,
    pub(super) outbuf: Vec<u8>,
    pub(super) close_after_flush: bool,
    /// Who connected, as the kernel says (`SO_PEERCRED`).
    pub(super) peer: PeerCred,
    /// Whether the peer was one of the run's app processes when it connected.
    pub(super) app_process: bool,
    pub(super) accepted_ns: u64,
    /// Whether a whole request arrived (an idle client has none).
    pub(super) requested: bool,
}

/// Removes the socket file when the supervisor ends (however it ends, short of `kill -9`).
pub(super) struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Binds the control socket owner-only, replacing a stale socket file of a dead supervisor.
pub(super) fn bind_control(path: &Path) -> Result<(UnixListener, SocketFile), String> {
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another supervisor is listening on {}: stop it (`takt stop --control {}`) or pass another --control path",
                path.display(),
                path.display()
            ));
        }
        std::fs::remove_file(path).map_err(|e| {
            format!(
                "cannot remove the stale control socket {}: {e}",
                path.display()
            )
        })?;
    }
    // Owner-only from the first instant: no window in which others could connect.
    let old = set_umask(0o177);
    let bound = UnixListener::bind(path);
    set_umask(old);
    let listener =
        bound.map_err(|e| format!("cannot create the control socket {}: {e}", path.display()))?;
    let guard = SocketFile(path.to_path_buf());
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot make {} owner-only: {e}", path.display()))?;
    Ok((listener, guard))
}

impl Supervisor<'_> {
    /// Makes room for one more client: `false` when every client slot holds a client that
    /// sent its request (and waits for the answer); otherwise the oldest idle one is closed.
    pub(super) fn client_slot(&mut self) -> bool {
        let clients = self.conns.values().filter(|c| !c.app_process).count();
        if clients < MAX_CLIENTS {
            return true;
        }
        let oldest_idle = self
            .conns
            .iter()
            .filter(|(_, c)| !c.app_process && !c.requested)
            .min_by_key(|(_, c)| c.accepted_ns)
            .map(|(t, _)| *t);
        match oldest_idle {
            Some(t) => {
                if let Some(c) = self.conns.remove(&t) {
                    log::warn!(
                        "takt run: control socket: {MAX_CLIENTS} clients are connected; closed the oldest idle one (pid {})",
                        c.peer.pid
                    );
                }
                true
            }
            None => false,
        }
    }

    pub(super) fn accept(&mut self, apps: &[App], poll: &Poll, listener: &mut UnixListener) {
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let peer = match peer::credentials(&stream) {
                        Ok(p) => p,
                        Err(e) => {
                            log::warn!("takt run: control socket: refused a connection whose peer is unknown ({e})");
                            continue; // dropped: closes the connection
                        }
                    };
                    if peer.uid != self.owner_uid && peer.uid != 0 {
                        log::warn!(
                            "takt run: control socket: refused pid {} of uid {}: only uid {} (the supervisor's) or root may connect",
                            peer.pid, peer.uid, self.owner_uid
                        );
                        continue;
                    }
                    let app_process = self.is_app_process(apps, peer.pid);
                    if app_process {
                        let n = self.conns.values().filter(|c| c.app_process).count();
                        if n >= MAX_APP_CONNECTIONS {
                            log::warn!("takt run: control socket: app process {} refused: {n} app connections are open", peer.pid);
                            continue;
                        }
                    } else if !self.client_slot() {
                        log::warn!(
                            "takt run: control socket: refused pid {}: {MAX_CLIENTS} clients wait for answers",
                            peer.pid
                        );
                        continue;
                    }
                    let t = Token(self.next_token);
                    self.next_token += 1;
                    if poll
                        .registry()
                        .register(&mut stream, t, Interest::READABLE | Interest::WRITABLE)
                        .is_ok()
                    {
                        self.conns.insert(
                            t,
                            Conn {
                                stream,
                                inbuf: Vec::new(),
                                outbuf: Vec::new(),
                                close_after_flush: false,
                                peer,
                                app_process,
                                accepted_ns: monotonic_now_ns(),
                                requested: false,
                            },
                        );
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    log::error!("takt run: accepting a control connection failed: {e}");
                    return;
                }
            }
        }
    }

    /// Reads what a connection sent, answers every whole frame, flushes answers.
    pub(super) fn service(&mut self, apps: &mut [App], t: Token) {
        let mut closed = false;
        let mut frames: Vec<Result<Request, WireError>> = Vec::new();
        if let Some(c) = self.conns.get_mut(&t) {
            let mut buf = [0u8; 4096];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
                // Never buffer more than one frame's worth from a peer.
                if c.inbuf.len() > wire::MAX_MESSAGE_BYTES + 4 {
                    break;
                }
            }
            while c.inbuf.len() >= 4 && !c.close_after_flush {
                let prefix = [c.inbuf[0], c.inbuf[1], c.inbuf[2], c.inbuf[3]];
                match wire::check_length(prefix) {
                    Err(e) => {
                        c.requested = true;
                        frames.push(Err(e));
                        c.inbuf.clear();
                        break;
                    }
                    Ok(n) if c.inbuf.len() >= 4 + n => {
                        c.requested = true;
                        frames.push(wire::decode::<Request>(&c.inbuf[4..4 + n]));
                        c.inbuf.drain(..4 + n);
                    }
                    Ok(_) => break,
                }
            }
        }
        for f in frames {
            match f {
                Ok(req) => self.handle(apps, t, req),
                Err(e) => {
                    log::warn!("takt run: control socket: {e}");
                    self.reply(t, &Response::Refused(e.to_string()), true);
                }
            }
        }
        self.flush(t);
        if closed {
            self.drop_conn(apps, t);
        }
    }

    pub(super) fn drop_conn(&mut self, apps: &mut [App], t: Token) {
        self.conns.remove(&t);
        for a in apps.iter_mut() {
            if a.conn == Some(t) {
                a.conn = None;
                a.waiting = false;
            }
        }
    }

    pub(super) fn reply(&mut self, t: Token, r: &Response, close: bool) {
        let frame = match wire::encode(r) {
            Ok(f) => f,
            Err(e) => match wire::encode(&Response::Refused(format!("cannot answer: {e}"))) {
                Ok(f) => f,
                Err(_) => return,
            },
        };
        if let Some(c) = self.conns.get_mut(&t) {
            c.outbuf.extend_from_slice(&frame);
            c.close_after_flush |= close;
        }
        self.flush(t);
    }

    pub(super) fn flush(&mut self, t: Token) {
        let mut done = false;
        if let Some(c) = self.conns.get_mut(&t) {
            while !c.outbuf.is_empty() {
                match c.stream.write(&c.outbuf) {
                    Ok(0) => {
                        done = true;
                        break;
                    }
                    Ok(n) => {
                        c.outbuf.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => {
                        done = true;
                        break;
                    }
                }
            }
            done |= c.outbuf.is_empty() && c.close_after_flush;
        }
        if done {
            self.conns.remove(&t);
        }
    }
}
