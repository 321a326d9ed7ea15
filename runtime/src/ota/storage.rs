//! The storage contract every durable OTA write goes through, a real implementation on
//! `std::fs` and a simulated one that can lose power.
//!
//! Owns the promise of what survives a power cut and nothing else. It must never decide
//! what to write: the journal and the slots do.
//!
//! # The contract
//!
//! Paths are relative, `/`-separated, inside the storage's root. After a power cut:
//! * a file's content is what it held at its last [`Storage::fsync_file`] (a file never
//!   fsynced is empty);
//! * a directory's entries (creations, renames, removals) are what they were at its last
//!   [`Storage::fsync_dir`].
//!
//! So an atomic replace is: write a temporary file, fsync it, rename it over the target,
//! fsync the directory ([`replace_atomically`]).

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Durable file operations. Every mutating call may be the last before a power cut.
pub trait Storage {
    /// Creates or truncates `path` and writes `bytes` (volatile until [`Self::fsync_file`]).
    fn write(&mut self, path: &str, bytes: &[u8]) -> io::Result<()>;
    /// Makes `path`'s content durable.
    fn fsync_file(&mut self, path: &str) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` (volatile until the directory is fsynced).
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Makes the entries of directory `dir` durable (`""` is the root).
    fn fsync_dir(&mut self, dir: &str) -> io::Result<()>;
    /// Sets `path`'s permission bits (durable with the file's next [`Self::fsync_file`]).
    fn set_mode(&mut self, path: &str, mode: u32) -> io::Result<()>;
    /// Removes file `path` if it exists (volatile until the directory is fsynced).
    fn remove(&mut self, path: &str) -> io::Result<()>;
    /// Creates directory `dir` and its parents if missing.
    fn create_dir(&mut self, dir: &str) -> io::Result<()>;
    /// Reads `path`; `None` when it does not exist. Refuses files above `max_bytes`.
    fn read(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>>;
    /// Names of the files directly inside `dir`, sorted; empty when `dir` does not exist.
    fn list(&self, dir: &str) -> io::Result<Vec<String>>;
}

/// A borrowed storage is a storage, so a caller can keep the storage a journal works on
/// (tests cut power on it between attempts).
impl<S: Storage + ?Sized> Storage for &mut S {
    fn write(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        (**self).write(path, bytes)
    }
    fn fsync_file(&mut self, path: &str) -> io::Result<()> {
        (**self).fsync_file(path)
    }
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        (**self).rename(from, to)
    }
    fn fsync_dir(&mut self, dir: &str) -> io::Result<()> {
        (**self).fsync_dir(dir)
    }
    fn set_mode(&mut self, path: &str, mode: u32) -> io::Result<()> {
        (**self).set_mode(path, mode)
    }
    fn remove(&mut self, path: &str) -> io::Result<()> {
        (**self).remove(path)
    }
    fn create_dir(&mut self, dir: &str) -> io::Result<()> {
        (**self).create_dir(dir)
    }
    fn read(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        (**self).read(path, max_bytes)
    }
    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        (**self).list(dir)
    }
}

/// The directory part of `path` (`""` for a file in the root).
pub fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// Replaces `path` with `bytes` so that after a power cut it holds either the old or the
/// new content, never a mix: write `path.tmp`, fsync it, rename it, fsync the directory.
pub fn replace_atomically(s: &mut dyn Storage, path: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = format!("{path}.tmp");
    s.write(&tmp, bytes)?;
    s.fsync_file(&tmp)?;
    s.rename(&tmp, path)?;
    s.fsync_dir(parent(path))
}

/// [`Storage`] on real files below a root directory.
#[derive(Clone, Debug)]
pub struct FsStorage {
    root: PathBuf,
    /// Bytes written so far, for a progress display; `None`: not counted.
    written: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

impl FsStorage {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FsStorage {
            root: root.into(),
            written: None,
        }
    }

    /// Counts every byte written into `written` (1 MiB at a time), so another thread can
    /// show how far a large unpack is.
    pub fn with_progress(mut self, written: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.written = Some(written);
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn at(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.root.clone()
        } else {
            self.root.join(path)
        }
    }
}

impl Storage for FsStorage {
    fn write(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        let Some(written) = &self.written else {
            return std::fs::write(self.at(path), bytes);
        };
        use std::io::Write;
        let mut f = std::fs::File::create(self.at(path))?;
        for chunk in bytes.chunks(1 << 20) {
            f.write_all(chunk)?;
            written.fetch_add(chunk.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    fn fsync_file(&mut self, path: &str) -> io::Result<()> {
        std::fs::File::open(self.at(path))?.sync_all()
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.at(from), self.at(to))
    }

    fn fsync_dir(&mut self, dir: &str) -> io::Result<()> {
        std::fs::File::open(self.at(dir))?.sync_all()
    }

    fn set_mode(&mut self, path: &str, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.at(path), std::fs::Permissions::from_mode(mode))
    }

    fn remove(&mut self, path: &str) -> io::Result<()> {
        match std::fs::remove_file(self.at(path)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn create_dir(&mut self, dir: &str) -> io::Result<()> {
        std::fs::create_dir_all(self.at(dir))?;
        // The new directory's entry in its parent must survive a power cut as well.
        self.fsync_dir(parent(dir))
    }

    fn read(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        match crate::fsio::read_bounded(&self.at(path), max_bytes) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(crate::fsio::ReadBoundedError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {
                Ok(None)
            }
            Err(crate::fsio::ReadBoundedError::Io(e)) => Err(e),
            Err(crate::fsio::ReadBoundedError::TooLarge { size, max_bytes }) => {
                Err(too_large(path, size, max_bytes))
            }
            Err(other) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{path}: {other}"),
            )),
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let rd = match std::fs::read_dir(self.at(dir)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for e in rd {
            let e = e?;
            if e.file_type()?.is_file() {
                names.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        Ok(names)
    }
}

fn too_large(path: &str, len: u64, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{path} is {len} bytes; at most {max} bytes are read"),
    )
}

/// One mutating call, as counted by [`SimStorage`] to place power cuts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Write(String),
    FsyncFile(String),
    Rename(String, String),
    FsyncDir(String),
    SetMode(String, u32),
    Remove(String),
    CreateDir(String),
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Write(p) => write!(f, "write {p}"),
            Op::FsyncFile(p) => write!(f, "fsync {p}"),
            Op::Rename(a, b) => write!(f, "rename {a} -> {b}"),
            Op::FsyncDir(d) => write!(f, "fsync dir {d:?}"),
            Op::SetMode(p, m) => write!(f, "chmod {m:o} {p}"),
            Op::Remove(p) => write!(f, "remove {p}"),
            Op::CreateDir(d) => write!(f, "mkdir {d}"),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Inode {
    volatile: Vec<u8>,
    durable: Vec<u8>,
    volatile_mode: u32,
    durable_mode: u32,
}

/// A simulated disk that keeps what is durable apart from what is only in the page cache.
///
/// Directory entries map paths to inodes twice: as the running system sees them
/// (`volatile_names`) and as they are on disk (`durable_names`). [`SimStorage::power_cut`]
/// throws the volatile view away. [`SimStorage::cut_before`] arms a cut: the mutating
/// call with that index (0-based, counted since the storage was made) and every later one
/// fail without effect, as if the machine had died just before it.
#[derive(Clone, Debug, Default)]
pub struct SimStorage {
    inodes: Vec<Inode>,
    volatile_names: BTreeMap<String, usize>,
    durable_names: BTreeMap<String, usize>,
    dirs: std::collections::BTreeSet<String>,
    ops: Vec<Op>,
    cut_at: Option<usize>,
}

impl SimStorage {
    pub fn new() -> Self {
        SimStorage::default()
    }

    /// Arms a power cut before the mutating call with index `op_index`.
    pub fn cut_before(&mut self, op_index: usize) {
        self.cut_at = Some(op_index);
    }

    /// The process died (kill -9) but the machine did not: everything written stays, as
    /// the kernel's page cache survives; only the cut is disarmed.
    pub fn crash(&mut self) {
        self.cut_at = None;
    }

    /// The permission bits of `path` as the running system sees them.
    pub fn mode(&self, path: &str) -> Option<u32> {
        self.volatile_names
            .get(path)
            .map(|&i| self.inodes[i].volatile_mode)
    }

    /// The mutating calls performed so far, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Loses every write, rename and removal that was not made durable, and disarms the cut.
    pub fn power_cut(&mut self) {
        self.volatile_names = self.durable_names.clone();
        for inode in &mut self.inodes {
            inode.volatile = inode.durable.clone();
            inode.volatile_mode = inode.durable_mode;
        }
        self.cut_at = None;
    }

    fn begin(&mut self, op: Op) -> io::Result<()> {
        if self.cut_at.is_some_and(|at| self.ops.len() >= at) {
            return Err(io::Error::other(format!(
                "simulated power cut before `{op}`"
            )));
        }
        self.ops.push(op);
        Ok(())
    }

    fn inode(&self, path: &str) -> io::Result<usize> {
        self.volatile_names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{path}: no such file")))
    }

    fn require_dir(&self, dir: &str) -> io::Result<()> {
        if dir.is_empty() || self.dirs.contains(dir) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{dir}: no such directory"),
            ))
        }
    }
}

impl Storage for SimStorage {
    fn write(&mut self, path: &str, bytes: &[u8]) -> io::Result<()> {
        self.require_dir(parent(path))?;
        self.begin(Op::Write(path.to_string()))?;
        match self.volatile_names.get(path) {
            Some(&i) => self.inodes[i].volatile = bytes.to_vec(),
            None => {
                self.inodes.push(Inode {
                    volatile: bytes.to_vec(),
                    durable: Vec::new(),
                    volatile_mode: 0o644,
                    durable_mode: 0o644,
                });
                self.volatile_names
                    .insert(path.to_string(), self.inodes.len() - 1);
            }
        }
        Ok(())
    }

    fn fsync_file(&mut self, path: &str) -> io::Result<()> {
        let i = self.inode(path)?;
        self.begin(Op::FsyncFile(path.to_string()))?;
        self.inodes[i].durable = self.inodes[i].volatile.clone();
        self.inodes[i].durable_mode = self.inodes[i].volatile_mode;
        Ok(())
    }

    fn set_mode(&mut self, path: &str, mode: u32) -> io::Result<()> {
        let i = self.inode(path)?;
        self.begin(Op::SetMode(path.to_string(), mode))?;
        self.inodes[i].volatile_mode = mode;
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let i = self.inode(from)?;
        self.require_dir(parent(to))?;
        self.begin(Op::Rename(from.to_string(), to.to_string()))?;
        self.volatile_names.remove(from);
        self.volatile_names.insert(to.to_string(), i);
        Ok(())
    }

    fn fsync_dir(&mut self, dir: &str) -> io::Result<()> {
        self.require_dir(dir)?;
        self.begin(Op::FsyncDir(dir.to_string()))?;
        self.durable_names.retain(|p, _| parent(p) != dir);
        for (p, &i) in &self.volatile_names {
            if parent(p) == dir {
                self.durable_names.insert(p.clone(), i);
            }
        }
        Ok(())
    }

    fn remove(&mut self, path: &str) -> io::Result<()> {
        self.begin(Op::Remove(path.to_string()))?;
        self.volatile_names.remove(path);
        Ok(())
    }

    fn create_dir(&mut self, dir: &str) -> io::Result<()> {
        self.begin(Op::CreateDir(dir.to_string()))?;
        // Directories are modelled as durable at once: real `create_dir` is followed by a
        // parent fsync in `FsStorage`, and slot and journal directories are made once at
        // install time, long before any update.
        let mut d = dir;
        while !d.is_empty() {
            self.dirs.insert(d.to_string());
            d = parent(d);
        }
        Ok(())
    }

    fn read(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        match self.volatile_names.get(path) {
            None => Ok(None),
            Some(&i) => {
                let bytes = &self.inodes[i].volatile;
                if bytes.len() as u64 > max_bytes {
                    return Err(too_large(path, bytes.len() as u64, max_bytes));
                }
                Ok(Some(bytes.clone()))
            }
        }
    }

    fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        Ok(self
            .volatile_names
            .keys()
            .filter(|p| parent(p) == dir)
            .map(|p| p[if dir.is_empty() { 0 } else { dir.len() + 1 }..].to_string())
            .collect())
    }
}
