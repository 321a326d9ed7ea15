//! The control block: one `#[repr(C)]` struct of atomics in POSIX shared memory
//! (`shm_open` + `mmap`), shared by the supervisor and every app process of one run.
//!
//! Owns: creating, mapping, validating and unlinking the block, and removing blocks left by
//! supervisors that died (`kill -9`). It must never hold a pointer or anything whose layout
//! depends on the process: every field is an atomic integer, so the same bytes mean the
//! same thing in every process that maps them.

use std::ffi::CString;
use std::fmt;

use crossbeam::utils::CachePadded;

use crate::dispatch::{AppHealth, RunControl, CACHE_LINE};
use crate::sync::{AtomicU64, Ordering};

/// The most apps one supervised deployment may declare.
pub const MAX_APPS: usize = 64;

/// "TAKTCTL" + layout version 6 (version 2: [`AppHealth`] counts platform-attributed
/// misses and a CPU-time histogram; version 3: it counts faulted jobs; version 4: the
/// simulated-time bell; version 5: the worst own overrun; version 6: the hot words of
/// [`RunControl`] and each app's [`AppHealth`] on cache lines of their own): written last by
/// the creator, checked by every opener.
const MAGIC: u64 = 0x5441_4B54_4354_4C06;

/// Prefix of every control block's name (`/dev/shm/takt-ctl-<deployment>-<pid>`).
const NAME_PREFIX: &str = "takt-ctl-";

/// What every process of a run shares.
///
/// Cache lines (see [`CACHE_LINE`]): `run` pads its own hot words (see [`RunControl`]), and
/// each app's health record has lines of its own, because each is written by a different
/// process, once per job. Left unpadded: the header words (`magic` and `size_bytes` are
/// written once at creation, `epoch_ns` once per run, `walked` once per dispatcher at the
/// end of the run), and the simulated-time words: lockstep is an all-to-all barrier in which
/// every process reads every other's progress word after each publication and every
/// publication bumps the one shared `sim_bell` word, so the lines move between the
/// processes at every step whether or not the words share them (and simulated time has no
/// deadlines to keep).
#[repr(C)]
pub struct ControlBlock {
    magic: AtomicU64,
    size_bytes: AtomicU64,
    /// `CLOCK_MONOTONIC` time of cycle 0 (0 until the supervisor publishes it).
    pub epoch_ns: AtomicU64,
    /// The end-of-run rendezvous of every app's dispatchers.
    pub walked: AtomicU64,
    /// The packed mode/stop word every dispatcher of every process decides cycles with.
    pub run: RunControl,
    /// Per app, in manifest order: heartbeat, overruns, missed releases, faulted jobs.
    /// Each on lines of its own: app `i`'s process is the only one that writes `apps[i]`.
    pub apps: [CachePadded<AppHealth>; MAX_APPS],
    /// Simulated-time progress of each app's process (see [`crate::dispatch::lockstep`]):
    /// [`DONE`](crate::dispatch::lockstep::DONE) for apps that host nothing or have ended.
    pub sim_progress: [AtomicU64; MAX_APPS],
    /// Where processes waiting for another's simulated-time progress sleep.
    pub sim_bell: crate::dispatch::lockstep::Bell,
}

// The padding above holds only if the block starts on a line boundary: the block is
// aligned to a line, and `mmap` returns page-aligned addresses (checked in `map`), pages
// being at least 4 KiB. A line-aligned `run`, line-sized app records, and the progress
// words starting past the last record's lines follow from the types; checked here so a
// layout change cannot quietly undo them.
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(align_of::<ControlBlock>() == CACHE_LINE);
    assert!(CACHE_LINE <= 4096);
    assert!(offset_of!(ControlBlock, run).is_multiple_of(CACHE_LINE));
    assert!(offset_of!(ControlBlock, apps).is_multiple_of(CACHE_LINE));
    assert!(size_of::<CachePadded<AppHealth>>().is_multiple_of(CACHE_LINE));
    assert!(offset_of!(ControlBlock, sim_progress).is_multiple_of(CACHE_LINE));
};

/// Why the control block could not be created or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmError {
    pub name: String,
    pub reason: String,
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shared control block `/dev/shm/{}`: {}",
            self.name, self.reason
        )
    }
}

impl std::error::Error for ShmError {}

/// A mapped control block. The creator (the supervisor) unlinks the name when dropped.
pub struct SharedControl {
    name: String,
    ptr: *mut ControlBlock,
    owner: bool,
}

// SAFETY: the mapping is only accessed through `&ControlBlock`, whose fields are all
// atomics; the pointer stays valid until `drop` unmaps it.
unsafe impl Send for SharedControl {}
// SAFETY: as above: shared access goes through atomics only.
unsafe impl Sync for SharedControl {}

const SIZE: usize = std::mem::size_of::<ControlBlock>();

fn c_name(name: &str) -> Result<CString, ShmError> {
    if name.is_empty() || name.len() > 200 || name.contains('/') {
        return Err(ShmError {
            name: name.into(),
            reason: "the name must be 1 to 200 characters without `/`".into(),
        });
    }
    CString::new(format!("/{name}")).map_err(|_| ShmError {
        name: name.into(),
        reason: "the name contains a NUL byte".into(),
    })
}

fn os_error(name: &str, what: &str) -> ShmError {
    ShmError {
        name: name.into(),
        reason: format!("{what}: {}", std::io::Error::last_os_error()),
    }
}

impl SharedControl {
    /// The block name for deployment `deployment` supervised by process `pid`.
    pub fn name_for(deployment: &str, pid: u32) -> String {
        format!("{NAME_PREFIX}{deployment}-{pid}")
    }

    /// Creates (exclusively, mode 0600) and initialises a block whose run starts in
    /// `default_mode`.
    pub fn create(name: &str, default_mode: usize) -> Result<SharedControl, ShmError> {
        let cname = c_name(name)?;
        // SAFETY: `cname` is a valid NUL-terminated string; the flags create a new object.
        let fd = unsafe {
            libc::shm_open(
                cname.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR,
                0o600,
            )
        };
        if fd < 0 {
            return Err(os_error(name, "shm_open(O_CREAT|O_EXCL) failed"));
        }
        // SAFETY: `fd` is the descriptor just opened.
        if unsafe { libc::ftruncate(fd, SIZE as libc::off_t) } != 0 {
            let e = os_error(name, "ftruncate failed");
            // SAFETY: closing and unlinking what this function created.
            unsafe {
                libc::close(fd);
                libc::shm_unlink(cname.as_ptr());
            }
            return Err(e);
        }
        let ptr = match map(fd, name) {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: unlinking what this function created.
                unsafe { libc::shm_unlink(cname.as_ptr()) };
                return Err(e);
            }
        };
        let block = ControlBlock {
            magic: AtomicU64::new(0),
            size_bytes: AtomicU64::new(SIZE as u64),
            epoch_ns: AtomicU64::new(0),
            walked: AtomicU64::new(0),
            run: RunControl::new(default_mode),
            apps: std::array::from_fn(|_| CachePadded::new(AppHealth::new())),
            sim_progress: std::array::from_fn(|_| AtomicU64::new(crate::dispatch::lockstep::DONE)),
            sim_bell: crate::dispatch::lockstep::Bell::new(),
        };
        // SAFETY: `ptr` maps SIZE writable bytes, page-aligned (so aligned for the block),
        // and no other process uses it before `magic` is set below.
        unsafe { ptr.write(block) };
        let shared = SharedControl {
            name: name.into(),
            ptr,
            owner: true,
        };
        // SYNC POINT: Release pairs with the Acquire load in `open`: an opener that sees the
        // magic sees the initialised block.
        shared.block().magic.store(MAGIC, Ordering::Release);
        Ok(shared)
    }

    /// Maps an existing block created by [`SharedControl::create`].
    pub fn open(name: &str) -> Result<SharedControl, ShmError> {
        let cname = c_name(name)?;
        // SAFETY: `cname` is a valid NUL-terminated string.
        let fd = unsafe { libc::shm_open(cname.as_ptr(), libc::O_RDWR, 0) };
        if fd < 0 {
            return Err(os_error(
                name,
                "shm_open failed (is the supervisor running?)",
            ));
        }
        // SAFETY: `stat` is plain old data; all-zero is a valid value to be overwritten.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open and `st` is a properly sized out-parameter.
        if unsafe { libc::fstat(fd, &mut st) } != 0 || (st.st_size as usize) < SIZE {
            // SAFETY: closing the descriptor opened above.
            unsafe { libc::close(fd) };
            return Err(ShmError {
                name: name.into(),
                reason: format!(
                    "the object has {} bytes, a control block {SIZE}: it was made by another takt version",
                    st.st_size
                ),
            });
        }
        let ptr = map(fd, name)?;
        let shared = SharedControl {
            name: name.into(),
            ptr,
            owner: false,
        };
        let b = shared.block();
        if b.magic.load(Ordering::Acquire) != MAGIC
            || b.size_bytes.load(Ordering::Relaxed) != SIZE as u64
        {
            return Err(ShmError {
                name: name.into(),
                reason: "not an initialised control block of this takt version".into(),
            });
        }
        Ok(shared)
    }

    pub fn block(&self) -> &ControlBlock {
        // SAFETY: `ptr` points to an initialised block (written in `create` before anyone
        // could open it) that stays mapped for `self`'s lifetime.
        unsafe { &*self.ptr }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Removes control blocks of supervisors that no longer exist (killed with `kill -9`,
    /// so their `Drop` never ran). Returns how many were removed.
    pub fn remove_stale() -> usize {
        let Ok(dir) = std::fs::read_dir("/dev/shm") else {
            return 0;
        };
        let mut removed = 0;
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
                continue;
            };
            let Some(pid) = rest.rsplit('-').next().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            // SAFETY: signal 0 only checks whether the process exists.
            let alive = unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
            if !alive && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }
}

fn map(fd: libc::c_int, name: &str) -> Result<*mut ControlBlock, ShmError> {
    // SAFETY: maps SIZE bytes of the open object `fd` shared; checked for MAP_FAILED below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    let e = os_error(name, "mmap failed");
    // SAFETY: the mapping (if any) keeps the object alive; the descriptor is not needed.
    unsafe { libc::close(fd) };
    if p == libc::MAP_FAILED {
        return Err(e);
    }
    // Page-aligned by mmap's contract; the block's line alignment (and so its padding)
    // depends on it, so a mapping that is not aligned is refused rather than used.
    if !(p as usize).is_multiple_of(std::mem::align_of::<ControlBlock>()) {
        // SAFETY: unmapping the SIZE bytes mapped above, which nothing else uses.
        unsafe { libc::munmap(p, SIZE) };
        return Err(ShmError {
            name: name.into(),
            reason: format!("mmap returned {p:p}, not aligned to {CACHE_LINE} bytes"),
        });
    }
    Ok(p.cast::<ControlBlock>())
}

impl Drop for SharedControl {
    fn drop(&mut self) {
        // SAFETY: `ptr` was mapped with SIZE bytes in `create`/`open` and is not used after.
        unsafe { libc::munmap(self.ptr.cast(), SIZE) };
        if self.owner {
            if let Ok(c) = c_name(&self.name) {
                // SAFETY: `c` is a valid NUL-terminated name.
                unsafe { libc::shm_unlink(c.as_ptr()) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_is_shared_between_two_mappings_and_unlinked_by_its_creator() {
        let name = format!("takt-ctl-unittest-{}", std::process::id());
        let a = SharedControl::create(&name, 1).expect("create");
        let b = SharedControl::open(&name).expect("open");
        a.block().run.request_mode(2);
        assert_eq!(b.block().run.mode_for_cycle(0), 2);
        b.block().epoch_ns.store(42, Ordering::Relaxed);
        assert_eq!(a.block().epoch_ns.load(Ordering::Relaxed), 42);
        assert!(
            SharedControl::create(&name, 0).is_err(),
            "creation is exclusive"
        );
        drop(b);
        drop(a);
        assert!(
            SharedControl::open(&name).is_err(),
            "the creator unlinked it"
        );
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(SharedControl::open("a/b").is_err());
        assert!(SharedControl::open("").is_err());
    }
}
