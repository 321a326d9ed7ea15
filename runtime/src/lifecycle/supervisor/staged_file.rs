//! Reading a bundle file a client names in `takt ota stage`, with a hard bound.
//!
//! Owns: the one read of a path that comes from outside the supervisor. It must never trust
//! the path: the file is opened without following a final symbolic link and without
//! blocking (a FIFO with no writer would otherwise block the open), its type is checked on
//! the opened descriptor (no window between a check and the read), and at most `limit`
//! bytes are kept (and one page more read, to see that there is more) whatever size the file
//! claims (a `/proc` file says 0 and can
//! deliver gigabytes). It runs on a worker thread (see `update.rs`), never on the event
//! loop, so even a slow disk cannot stall supervision (issue #12.3).

use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Bytes read per `read` call, at most.
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes read per `read` call, at least (one page).
const PROBE_BYTES: usize = 4096;

/// Reads all of `path` if it is a regular file of at most `limit` bytes.
pub(super) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => {
                "is a symbolic link; a bundle is named by the path of the regular file itself"
                    .to_string()
            }
            _ => format!("cannot open: {e}"),
        })?;
    // fstat on the descriptor just opened: the file checked is the file read.
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read its metadata: {e}"))?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_fifo() {
            "a FIFO"
        } else if t.is_dir() {
            "a directory"
        } else if t.is_char_device() {
            "a character device"
        } else if t.is_block_device() {
            "a block device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(format!(
            "is {kind}; only a regular file is read as a bundle"
        ));
    }
    if meta.len() > limit {
        return Err(format!(
            "the file has {} bytes; a bundle has at most {limit}",
            meta.len()
        ));
    }
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut out: Vec<u8> = Vec::new();
    // The claimed size is only a first guess (bounded by the limit either way).
    out.try_reserve_exact(usize::try_from(meta.len()).unwrap_or(0).min(cap))
        .map_err(|e| format!("cannot allocate {} bytes to read it: {e}", meta.len()))?;
    let mut chunk = vec![0u8; CHUNK_BYTES];
    loop {
        // What is left up to the limit, plus one byte that proves the file too large. The
        // read asks for at least PROBE_BYTES: some `/proc` files refuse reads that are not
        // a multiple of their record size. What lies past the limit is never kept.
        let ask = (cap - out.len())
            .saturating_add(1)
            .clamp(PROBE_BYTES, CHUNK_BYTES);
        let n = match file.read(&mut chunk[..ask]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        if n > cap - out.len() {
            return Err(format!(
                "more than {limit} bytes can be read from it (its size says {}); a bundle has at most {limit}",
                meta.len()
            ));
        }
        if out.capacity() - out.len() < n {
            // Grow by doubling, but never past the limit (no 2x overshoot near it).
            let want = out.capacity().saturating_mul(2).max(out.len() + n).min(cap);
            out.try_reserve_exact(want - out.len())
                .map_err(|e| format!("cannot allocate {want} bytes to read it: {e}"))?;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    Ok(out)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_limit_is_read_whole() {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("b");
        std::fs::write(&p, vec![7u8; 3 * CHUNK_BYTES + 5]).expect("write");
        let bytes = read_bounded(&p, 4 * CHUNK_BYTES as u64).expect("read");
        assert_eq!(bytes.len(), 3 * CHUNK_BYTES + 5);
    }

    #[test]
    fn a_fifo_a_directory_a_symlink_and_an_oversize_file_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("no NUL");
        // SAFETY: mkfifo reads a NUL-terminated path that lives across the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_bounded(&fifo, 100).expect_err("a FIFO");
        assert!(e.contains("FIFO"), "{e}");
        let e = read_bounded(dir.path(), 100).expect_err("a directory");
        assert!(e.contains("directory"), "{e}");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![0u8; 101]).expect("write");
        let e = read_bounded(&big, 100).expect_err("oversize");
        assert!(e.contains("at most 100"), "{e}");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&big, &link).expect("symlink");
        let e = read_bounded(&link, 1000).expect_err("a symlink");
        assert!(e.contains("symbolic link"), "{e}");
    }

    #[test]
    fn a_file_whose_size_lies_is_read_only_one_byte_past_the_limit() {
        // /proc/self/pagemap says 0 bytes and delivers 8 bytes per page of the address space.
        let e = read_bounded(Path::new("/proc/self/pagemap"), 1 << 20).expect_err("lies");
        assert!(e.contains("more than 1048576 bytes"), "{e}");
    }
}
