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

/// Opens `path` for reading without blocking (a FIFO without a writer, a device) and
/// refuses anything but a regular file, judged on the opened descriptor. The error says
/// what the path holds ("is a FIFO, not a regular file").
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        // O_NONBLOCK only changes how a FIFO or a device opens and reads; a regular file
        // reads the same with or without it.
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
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
    /// Opening or reading failed (including: not a regular file).
    Io(io::Error),
    /// The file holds more than `max_bytes`; `size` is what was seen (at least `max + 1`).
    TooLarge { size: u64, max_bytes: u64 },
}

impl std::fmt::Display for ReadBoundedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadBoundedError::Io(e) => write!(f, "cannot read: {e}"),
            ReadBoundedError::TooLarge { size, max_bytes } => write!(
                f,
                "{size} bytes or more; at most {max_bytes} bytes are allowed"
            ),
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

/// The whole of regular file `path`, at most `max_bytes` of it: larger is an error, found
/// from the size when it tells and from the read when it lies.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>, ReadBoundedError> {
    let file = open_regular(path)?;
    let size = file.metadata()?.len();
    if size > max_bytes {
        return Err(ReadBoundedError::TooLarge { size, max_bytes });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(ReadBoundedError::TooLarge {
            size: bytes.len() as u64,
            max_bytes,
        });
    }
    Ok(bytes)
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
                ReadBoundedError::TooLarge {
                    size: 9,
                    max_bytes: 8
                }
            ),
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
