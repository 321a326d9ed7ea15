//! Reading a bundle file a client names in `takt ota stage`, with a hard bound.
//!
//! Owns: the one read of a path that comes from outside the supervisor, and how its refusal
//! reads to that client. It must never trust the path: [`crate::fsio`] opens it without
//! following a final symbolic link and without blocking, checks its type on the opened
//! descriptor and keeps at most the bound whatever size the file claims. It runs on a worker
//! thread (see `update.rs`), never on the event loop, so even a slow disk cannot stall
//! supervision (issue #12.3).

use std::path::Path;

use crate::fsio::{self, Links, ReadBoundedError};

/// Reads all of `path` if it is a regular file of at most `limit` bytes.
pub(super) fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    fsio::read_bounded_with(path, limit, Links::Refuse).map_err(|e| match e {
        ReadBoundedError::TooLarge { size, max_bytes } => {
            format!("the file has {size} bytes; a bundle has at most {max_bytes}")
        }
        ReadBoundedError::Io(e) => format!("{e}; a bundle is read only from a regular file"),
        other => format!("{other} (a bundle)"),
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_a_directory_a_symlink_and_an_oversize_file_are_refused_for_what_they_are() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let e = read_bounded(&fifo, 100).expect_err("a FIFO");
            assert!(e.contains("is a FIFO"), "{e}");
        } else {
            eprintln!("SKIPPED the FIFO part of a_fifo_a_directory_a_symlink_and_an_oversize_file_are_refused_for_what_they_are: no mkfifo");
        }
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
        assert_eq!(read_bounded(&big, 101).expect("within").len(), 101);
    }

    #[test]
    fn a_file_whose_size_lies_is_refused_at_the_bound() {
        let e = read_bounded(Path::new("/proc/self/pagemap"), 1 << 20).expect_err("lies");
        assert!(e.contains("more than 1048576 bytes can be read"), "{e}");
    }
}
