//! Reading files takt does not control: manifests, catalogs, bundles, keys, traces and the
//! OTA state directory.
//!
//! Owns: opening a path so that nothing at it can block or exhaust the reader. A FIFO or a
//! device would block `open(2)` until a writer comes (forever, for a FIFO nobody writes);
//! a `/proc` file reports size 0 and then yields more; a file can grow between `stat` and
//! `read`. So every open here is non-blocking, refuses anything but a regular file (checked
//! on the opened descriptor, not on the path), and every whole-file read is bounded by the
//! caller's limit whatever the size claims. It must never follow a check on the path with
//! a use of the path.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What kind of thing a non-regular path holds, for the error message.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a regular file"
    }
}

/// Whether the last component of a path may be a symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Follow it, as `open(2)` does: for paths the integrator wrote (manifests, keys).
    Follow,
    /// Refuse it (`O_NOFOLLOW`): for paths a client of the supervisor names, which must be
    /// the regular file itself (`takt ota stage`).
    Refuse,
}

/// Opens `path` for reading without blocking (a FIFO without a writer, a device) and
/// refuses anything but a regular file, judged on the opened descriptor. The error says
/// what the path holds ("is a FIFO, not a regular file").
pub fn open_regular(path: &Path) -> io::Result<File> {
    open_regular_with(path, Links::Follow)
}

/// [`open_regular`], choosing whether a final symbolic link is followed.
pub fn open_regular_with(path: &Path, links: Links) -> io::Result<File> {
    // O_NONBLOCK only changes how a FIFO or a device opens and reads; a regular file
    // reads the same with or without it. O_NOCTTY: a terminal named here never becomes
    // the supervisor's controlling terminal.
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) if links == Links::Refuse => io::Error::new(
                io::ErrorKind::InvalidInput,
                "is a symbolic link; name the regular file itself",
            ),
            _ => e,
        })?;
    let t = file.metadata()?.file_type();
    if !t.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", kind_of(t)),
        ));
    }
    Ok(file)
}

/// Why a bounded read failed.
#[derive(Debug)]
pub enum ReadBoundedError {
    /// Opening or reading failed (including: not a regular file, a refused link).
    Io(io::Error),
    /// The file says it holds `size` bytes, more than `max_bytes`.
    TooLarge { size: u64, max_bytes: u64 },
    /// The file said `size_says` bytes (at most the bound) but more than `max_bytes` could
    /// be read from it: a `/proc` file, or one that grew while it was read.
    MoreThanItSays { size_says: u64, max_bytes: u64 },
    /// The memory to hold the file could not be had.
    OutOfMemory { bytes: u64 },
}

impl std::fmt::Display for ReadBoundedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadBoundedError::Io(e) => write!(f, "cannot read: {e}"),
            ReadBoundedError::TooLarge { size, max_bytes } => write!(
                f,
                "{size} bytes or more; at most {max_bytes} bytes are allowed"
            ),
            ReadBoundedError::MoreThanItSays {
                size_says,
                max_bytes,
            } => write!(
                f,
                "more than {max_bytes} bytes can be read from it (its size says {size_says}); at most {max_bytes} bytes are allowed"
            ),
            ReadBoundedError::OutOfMemory { bytes } => {
                write!(f, "cannot allocate {bytes} bytes to read it")
            }
        }
    }
}

impl std::error::Error for ReadBoundedError {}

impl From<io::Error> for ReadBoundedError {
    fn from(e: io::Error) -> Self {
        ReadBoundedError::Io(e)
    }
}

impl ReadBoundedError {
    /// Back to an `io::Error` (kind `InvalidData` for a file too large), for callers whose
    /// errors are I/O errors.
    pub fn into_io(self) -> io::Error {
        match self {
            ReadBoundedError::Io(e) => e,
            too_large => io::Error::new(io::ErrorKind::InvalidData, too_large.to_string()),
        }
    }
}

/// Bytes asked of one `read` call, at most.
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes asked of one `read` call, at least: one page. Some `/proc` files
/// (`/proc/self/pagemap`) refuse reads that are not a multiple of their record size.
const PAGE_BYTES: usize = 4096;

/// The whole of regular file `path`, at most `max_bytes` of it: larger is an error, found
/// from the size when it tells and from the read when it lies.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadBoundedError> {
    read_bounded_with(path, max_bytes, Links::Follow)
}

/// [`read_bounded`], choosing whether a final symbolic link is followed.
///
/// The claimed size is only a first guess for the allocation; reads go in page-sized or
/// larger chunks and stop one byte past the bound, and the buffer grows by fallible
/// reservations that never pass the bound, so neither a lying size nor a low memory limit
/// makes the caller abort.
pub fn read_bounded_with(
    path: &Path,
    max_bytes: u64,
    links: Links,
) -> Result<Vec<u8>, ReadBoundedError> {
    let mut file = open_regular_with(path, links)?;
    let size = file.metadata()?.len();
    if size > max_bytes {
        return Err(ReadBoundedError::TooLarge { size, max_bytes });
    }
    let cap = usize::try_from(max_bytes).unwrap_or(usize::MAX);
    let mut out: Vec<u8> = Vec::new();
    let first = usize::try_from(size).unwrap_or(0).min(cap);
    out.try_reserve_exact(first)
        .map_err(|_| ReadBoundedError::OutOfMemory { bytes: size })?;
    let mut chunk = vec![0u8; PAGE_BYTES];
    loop {
        // What is left up to the bound plus the one byte that proves the file too large.
        let ask = (cap - out.len())
            .saturating_add(1)
            .clamp(PAGE_BYTES, CHUNK_BYTES);
        if chunk.len() < ask {
            chunk
                .try_reserve_exact(ask - chunk.len())
                .map_err(|_| ReadBoundedError::OutOfMemory { bytes: ask as u64 })?;
            chunk.resize(ask, 0);
        }
        let n = match file.read(&mut chunk[..ask]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ReadBoundedError::Io(e)),
        };
        if n > cap - out.len() {
            return Err(ReadBoundedError::MoreThanItSays {
                size_says: size,
                max_bytes,
            });
        }
        if out.capacity() - out.len() < n {
            // Grow by doubling, but never past the bound (no 2x overshoot near it).
            let want = out.capacity().saturating_mul(2).max(out.len() + n).min(cap);
            out.try_reserve_exact(want - out.len())
                .map_err(|_| ReadBoundedError::OutOfMemory { bytes: want as u64 })?;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("takt-fsio-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    #[test]
    fn a_fifo_is_refused_at_once_instead_of_blocking_the_open() {
        let fifo = scratch("fifo");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED a_fifo_is_refused_at_once_instead_of_blocking_the_open: no mkfifo");
            return;
        }
        // Nobody ever writes: a blocking open would never return and the test would hang.
        let e = open_regular(&fifo).unwrap_err();
        assert!(e.to_string().contains("is a FIFO"), "{e}");
        let e = read_bounded(&fifo, 10).unwrap_err();
        assert!(e.to_string().contains("is a FIFO"), "{e}");
    }

    #[test]
    fn a_final_symbolic_link_is_refused_only_when_asked() {
        let target = scratch("link-target");
        std::fs::write(&target, b"abc").unwrap();
        let link = scratch("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert_eq!(read_bounded(&link, 10).unwrap(), b"abc");
        let e = read_bounded_with(&link, 10, Links::Refuse).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(
            read_bounded_with(&target, 10, Links::Refuse).unwrap(),
            b"abc"
        );
    }

    #[test]
    fn a_file_of_several_chunks_is_read_whole() {
        let p = scratch("chunks");
        std::fs::write(&p, vec![7u8; 3 * CHUNK_BYTES + 5]).unwrap();
        assert_eq!(
            read_bounded(&p, 4 * CHUNK_BYTES as u64).unwrap().len(),
            3 * CHUNK_BYTES + 5
        );
    }

    #[test]
    fn directories_are_refused_by_name() {
        let e = read_bounded(&std::env::temp_dir(), 10).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn a_file_whose_size_lies_is_still_bounded_by_the_read() {
        // /proc files report size 0 and yield more.
        let e = read_bounded(Path::new("/proc/self/maps"), 8).unwrap_err();
        assert!(
            matches!(
                e,
                ReadBoundedError::MoreThanItSays {
                    size_says: 0,
                    max_bytes: 8
                }
            ),
            "{e}"
        );
        // pagemap says 0 bytes, delivers 8 per page of the address space and refuses
        // reads of odd sizes: the page-sized reads reach the bound instead of an EINVAL.
        let e = read_bounded(Path::new("/proc/self/pagemap"), 1 << 20).unwrap_err();
        assert!(
            e.to_string()
                .contains("more than 1048576 bytes can be read"),
            "{e}"
        );
        assert!(!read_bounded(Path::new("/proc/self/maps"), 1 << 20)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_file_within_the_bound_is_read_whole_and_one_past_it_is_refused() {
        let p = scratch("ten");
        std::fs::write(&p, b"0123456789").unwrap();
        assert_eq!(read_bounded(&p, 10).unwrap(), b"0123456789");
        let e = read_bounded(&p, 9).unwrap_err();
        assert!(
            matches!(
                e,
                ReadBoundedError::TooLarge {
                    size: 10,
                    max_bytes: 9
                }
            ),
            "{e}"
        );
    }
}
