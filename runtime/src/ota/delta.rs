//! Delta payloads: a new version's executable as a binary patch against the executable the
//! vehicle has installed, for the common case of a small change.
//!
//! Owns making a patch ([`Delta::make`]) and applying one ([`Delta::apply`]) with every
//! bound checked before a byte is produced. It must never trust a patch, even a signed one:
//! a signature says who made it, not that the patcher survives it. So applying checks that
//! the base is the one the patch was made for (its SHA-256), that the patch is well formed
//! and writes exactly the signed result length, produces at most that many bytes, and
//! checks the result's SHA-256 before anyone sees it. It never does I/O: the caller reads
//! the installed executable and installs the result.
//!
//! # Why bsdiff, and why `qbsdiff`
//!
//! Measured on the demo's planning app, stripped as a bundle carries it (v0 to v2, 5.0 MB
//! each): a `qbsdiff` (bsdiff 4) patch is 754 bytes, `bidiff` compressed with zstd 1.0 KB,
//! zstd's `--patch-from` (the base as a reference prefix) 13 KB. bsdiff's "add" step
//! encodes code that moved by a constant offset as a run of small differences that
//! compress to almost nothing, which is what a rebuilt executable mostly is. `qbsdiff` is
//! maintained (1.4.4 moved to bzip2 0.6, whose default backend is the pure-Rust
//! `libbz2-rs-sys`), writes and reads the standard bsdiff 4 format (so patches can be
//! checked with the classic `bspatch`), and is `#![forbid(unsafe_code)]`.
//!
//! # What a hostile patch could do to bspatch, and what stops it here
//!
//! bsdiff 4 is a 32-byte header (magic, the compressed sizes of the control and the
//! difference streams, the result size) and three bzip2 streams: controls (add, copy and
//! seek, 24 bytes each), differences and extra bytes. The patcher trusts all of it: the
//! header sizes are added without an overflow check (a slice split past the end panics),
//! and a few hundred bytes of bzip2 can expand into billions of controls that write
//! nothing, which is a hang rather than an allocation. So [`check_patch`] reads the header
//! with checked arithmetic, requires its result size to equal the signed one, and decodes
//! the control stream once with a hard bound (at most one control per result byte, plus
//! one), requiring non-negative add and copy lengths that sum to exactly the signed result
//! length. Only then does `qbsdiff` apply it, into a writer that refuses the first byte past
//! the result length. The work is then linear in the result length and the patch size, and
//! the memory is the base, the result and a fixed buffer.

use std::fmt;
use std::io::{self, Read, Write};

use sha2::{Digest, Sha256};

use super::to_hex;
use super::MAX_ENTRY_BYTES;

/// The bsdiff 4 header: magic, control stream size, difference stream size, result size.
const HEADER_BYTES: usize = 32;
const MAGIC: &[u8; 8] = b"BSDIFF40";
/// One control: add length, copy length, seek offset.
const CONTROL_BYTES: u64 = 24;

/// A binary patch and what it applies to, as a delta bundle's signed header states it.
#[derive(Clone, PartialEq, Eq)]
pub struct Delta {
    /// SHA-256 of the executable the patch applies to (the installed, stripped one).
    pub base_sha256: [u8; 32],
    /// SHA-256 of the executable the patch produces.
    pub result_sha256: [u8; 32],
    /// Length of the executable the patch produces; at most [`MAX_ENTRY_BYTES`].
    pub result_len: u64,
    /// The bsdiff 4 patch.
    pub patch: Vec<u8>,
}

impl fmt::Debug for Delta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delta")
            .field("base_sha256", &to_hex(&self.base_sha256))
            .field("result_sha256", &to_hex(&self.result_sha256))
            .field("result_len", &self.result_len)
            .field("patch_len", &self.patch.len())
            .finish()
    }
}

/// Why a delta could not be made or applied. Hashes are lower-case hex.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeltaError {
    /// The executable at hand is not the one the patch was made for.
    BaseMismatch { expected: String, found: String },
    /// The signed result length is beyond what a bundle entry may hold.
    ResultTooLarge { len: u64 },
    /// The patch is not a well-formed bsdiff 4 patch for the signed result.
    BadPatch { reason: String },
    /// The patch applied but produced other bytes than the signed result.
    ResultMismatch { expected: String, found: String },
    /// The patch could not be computed.
    Make { reason: String },
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaError::BaseMismatch { expected, found } => write!(
                f,
                "the delta applies to the executable with SHA-256 {expected}, but the executable at hand has SHA-256 {found}"
            ),
            DeltaError::ResultTooLarge { len } => write!(
                f,
                "the delta's result is {len} bytes; at most {MAX_ENTRY_BYTES} are allowed"
            ),
            DeltaError::BadPatch { reason } => {
                write!(f, "the delta's patch is not a valid bsdiff 4 patch: {reason}")
            }
            DeltaError::ResultMismatch { expected, found } => write!(
                f,
                "the patched executable has SHA-256 {found}, the bundle promises {expected}; nothing is installed"
            ),
            DeltaError::Make { reason } => write!(f, "cannot compute the delta: {reason}"),
        }
    }
}

impl std::error::Error for DeltaError {}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Delta {
    /// The patch from `base` to `result`, with both hashes.
    pub fn make(base: &[u8], result: &[u8]) -> Result<Delta, DeltaError> {
        if result.len() as u64 > MAX_ENTRY_BYTES {
            return Err(DeltaError::ResultTooLarge {
                len: result.len() as u64,
            });
        }
        let mut patch = Vec::new();
        qbsdiff::Bsdiff::new(base, result)
            .compare(io::Cursor::new(&mut patch))
            .map_err(|e| DeltaError::Make {
                reason: e.to_string(),
            })?;
        let delta = Delta {
            base_sha256: sha256(base),
            result_sha256: sha256(result),
            result_len: result.len() as u64,
            patch,
        };
        // What the vehicle will do, done once here: a patch this side cannot apply is
        // never signed.
        let back = delta.apply(base).map_err(|e| DeltaError::Make {
            reason: format!("the patch does not reproduce the executable: {e}"),
        })?;
        if back != result {
            return Err(DeltaError::Make {
                reason: "the patch does not reproduce the executable".to_string(),
            });
        }
        Ok(delta)
    }

    /// Applies the patch to `base`: refuses a base with another hash, a malformed patch
    /// or one that does not write exactly the signed result, and a result with another
    /// hash. Allocates at most `result_len` bytes for the result.
    pub fn apply(&self, base: &[u8]) -> Result<Vec<u8>, DeltaError> {
        let found = sha256(base);
        if found != self.base_sha256 {
            return Err(DeltaError::BaseMismatch {
                expected: to_hex(&self.base_sha256),
                found: to_hex(&found),
            });
        }
        if self.result_len > MAX_ENTRY_BYTES {
            return Err(DeltaError::ResultTooLarge {
                len: self.result_len,
            });
        }
        check_patch(&self.patch, self.result_len)?;
        // `result_len <= MAX_ENTRY_BYTES` fits in usize on every supported target.
        let limit = self.result_len as usize;
        let mut out = BoundedWriter {
            bytes: Vec::with_capacity(limit),
            limit,
        };
        let bad = |e: io::Error| DeltaError::BadPatch {
            reason: e.to_string(),
        };
        let written = qbsdiff::Bspatch::new(&self.patch)
            .map_err(bad)?
            .apply(base, &mut out)
            .map_err(bad)?;
        if written != self.result_len || out.bytes.len() != limit {
            return Err(DeltaError::BadPatch {
                reason: format!(
                    "it wrote {} bytes, the bundle states {}",
                    out.bytes.len(),
                    self.result_len
                ),
            });
        }
        let got = sha256(&out.bytes);
        if got != self.result_sha256 {
            return Err(DeltaError::ResultMismatch {
                expected: to_hex(&self.result_sha256),
                found: to_hex(&got),
            });
        }
        Ok(out.bytes)
    }
}

/// A `Write` into memory that refuses the first byte past `limit`, so no patch can make
/// the result grow beyond what the signed header states.
struct BoundedWriter {
    bytes: Vec<u8>,
    limit: usize,
}

impl Write for BoundedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() > self.limit - self.bytes.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "it writes more than the {} bytes the bundle states",
                    self.limit
                ),
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// bsdiff's sign-magnitude integer (the top bit of the last byte is the sign).
fn offtin(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    let x = u64::from_le_bytes(a);
    let magnitude = (x & !(1 << 63)) as i64;
    if x >> 63 == 0 {
        magnitude
    } else {
        -magnitude
    }
}

/// Checks what bspatch would trust in `patch` (see the module docs): the header's sizes,
/// and a control stream, decoded once with a hard bound, whose add and copy lengths are
/// non-negative and sum to exactly `result_len`.
pub fn check_patch(patch: &[u8], result_len: u64) -> Result<(), DeltaError> {
    let bad = |reason: String| DeltaError::BadPatch { reason };
    if patch.len() < HEADER_BYTES {
        return Err(bad(format!(
            "{} bytes, shorter than the {HEADER_BYTES}-byte header",
            patch.len()
        )));
    }
    if &patch[..8] != MAGIC {
        return Err(bad("no `BSDIFF40` magic".to_string()));
    }
    let control_len = offtin(&patch[8..16]);
    let diff_len = offtin(&patch[16..24]);
    let stated = offtin(&patch[24..32]);
    let streams = u64::try_from(control_len)
        .ok()
        .zip(u64::try_from(diff_len).ok())
        .and_then(|(c, d)| c.checked_add(d))
        .filter(|&n| n <= (patch.len() - HEADER_BYTES) as u64);
    let Some(_) = streams else {
        return Err(bad(format!(
            "its header states streams of {control_len} and {diff_len} bytes, the patch has {} after the header",
            patch.len() - HEADER_BYTES
        )));
    };
    if u64::try_from(stated).ok() != Some(result_len) {
        return Err(bad(format!(
            "its header states a result of {stated} bytes, the signed header {result_len}"
        )));
    }
    // In bounds: checked just above.
    let controls = &patch[HEADER_BYTES..HEADER_BYTES + control_len as usize];
    let max_controls = result_len.saturating_add(1);
    let max_bytes = max_controls.saturating_mul(CONTROL_BYTES);
    let mut decoded = Vec::new();
    bzip2::read::BzDecoder::new(controls)
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut decoded)
        .map_err(|e| bad(format!("its control stream does not decompress: {e}")))?;
    if decoded.len() as u64 > max_bytes {
        return Err(bad(format!(
            "its control stream holds more than {max_controls} controls for a result of {result_len} bytes"
        )));
    }
    if !(decoded.len() as u64).is_multiple_of(CONTROL_BYTES) {
        return Err(bad(format!(
            "its control stream is {} bytes, not a whole number of {CONTROL_BYTES}-byte controls",
            decoded.len()
        )));
    }
    let mut total: u64 = 0;
    for (i, c) in decoded.chunks_exact(CONTROL_BYTES as usize).enumerate() {
        let (add, copy) = (offtin(&c[0..8]), offtin(&c[8..16]));
        let lengths = u64::try_from(add).ok().zip(u64::try_from(copy).ok());
        total = lengths
            .and_then(|(a, c)| total.checked_add(a)?.checked_add(c))
            .filter(|&t| t <= result_len)
            .ok_or_else(|| {
                bad(format!(
                    "control {i} (add {add}, copy {copy}) writes past the {result_len} bytes the bundle states"
                ))
            })?;
    }
    if total != result_len {
        return Err(bad(format!(
            "its controls write {total} bytes, the bundle states {result_len}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<u8>, Vec<u8>) {
        let base: Vec<u8> = (0..20_000u32).flat_map(|i| (i * 7).to_le_bytes()).collect();
        let mut result = base.clone();
        result[1000..1010].copy_from_slice(b"0123456789");
        result.extend_from_slice(b"a new tail");
        (base, result)
    }

    #[test]
    fn a_made_delta_applies_to_its_base_only() {
        let (base, result) = sample();
        let d = Delta::make(&base, &result).expect("makes");
        assert!(d.patch.len() < result.len() / 10, "{d:?}");
        assert_eq!(d.apply(&base).expect("applies"), result);
        let mut other = base.clone();
        other[0] ^= 1;
        let e = d.apply(&other).expect_err("another base");
        assert!(
            matches!(e, DeltaError::BaseMismatch { ref found, .. } if *found == to_hex(&sha256(&other))),
            "{e}"
        );
    }

    #[test]
    fn a_wrong_result_length_or_hash_is_refused() {
        let (base, result) = sample();
        let d = Delta::make(&base, &result).expect("makes");
        let shorter = Delta {
            result_len: d.result_len - 1,
            ..d.clone()
        };
        let e = shorter.apply(&base).expect_err("length");
        assert!(e.to_string().contains("header states a result"), "{e}");
        let other_hash = Delta {
            result_sha256: [7; 32],
            ..d.clone()
        };
        let e = other_hash.apply(&base).expect_err("hash");
        assert!(matches!(e, DeltaError::ResultMismatch { .. }), "{e}");
    }
}
