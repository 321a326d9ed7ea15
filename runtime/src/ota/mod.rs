//! Over-the-air updates of one app inside a running deployment.
//!
//! Owns: the signed bundle format ([`bundle`]) and its delta payloads ([`delta`]), the trust in it (expiry, per-app key
//! scope, the trusted key set and root-signed key documents that rotate and revoke keys: [`keys`]), the pure checks
//! that decide whether a verified bundle may be staged into a running deployment
//! ([`check`]), the small storage contract every durable write goes through ([`storage`]),
//! the per-app A/B slots with HMAC-authenticated stamps ([`slots`]), the power-cut-safe
//! journal of an update's state ([`journal`]), the second copy of the anti-rollback
//! counter ([`counter`]) and the exclusive lock on a state directory ([`lock`]).
//! It must never start, stop or signal processes, and never touch the schedule: the
//! supervisor drives the journal's transitions and acts on them.
//!
//! # The update state machine of one app
//!
//! ```text
//!                 (1) stage                (2) activate          (3) switched
//!   Idle ─────────────────────────▶ Staged ────────────▶ Activating ──────────▶ Probation
//!   Committed ──┘ (1)                  ▲                    │                    │   │
//!   RolledBack ─┘ (1)                  └──── (R2) revert ───┘                    │   │
//!        ▲                                                                      │   │
//!        ├──────────────────── (5) roll back (marks the version bad) ───────────┘   │
//!        ├──────────────────── (R3) interrupted probation, reverted ────────────────┤
//!        │                                                                          │
//!   Committed ◀──────────────────────── (4) commit ─────────────────────────────────┘
//!   Staged ── (R1) slot incomplete or corrupt at recovery ──▶ Idle
//!   any rest state ── (R4) running slot damaged, other slot intact ──▶ RolledBack
//!   (journal lost) ── (R5) rebuilt from the counter record and the intact slots ──▶ Committed
//! ```
//!
//! Only (4) moves the anti-rollback counter, and only forwards; it is kept in the journal
//! and in the [`counter`] record, and the larger copy wins at every start, so the loss of
//! any one file never lowers it. R4 may run an older intact slot, but never lowers the
//! counter. The slot that runs is the installed
//! slot in every state but `Probation`, where it is the probation slot. The inactive
//! slot is written only in a rest state (`Idle`, `Committed`, `RolledBack`), so the slot
//! that runs is never written.

pub mod bundle;
pub mod check;
pub mod counter;
pub mod delta;
pub mod journal;
pub mod keys;
pub mod lock;
pub mod slots;
pub mod storage;

/// Largest single entry of a bundle, and so the largest file a delta may produce or an
/// installed slot may hold: 256 MiB. Here, below both `bundle` and `delta`, which both
/// enforce it.
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;

/// Lower-case hex of `bytes`, the form keys and digests take in files and messages.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    s
}

/// Decodes exactly `N` bytes of hex (either case, surrounding whitespace ignored).
///
/// Returns what is wrong in words, for the caller to place in a located error.
pub fn from_hex<const N: usize>(text: &str) -> Result<[u8; N], String> {
    let text = text.trim();
    if text.len() != 2 * N {
        return Err(format!(
            "expected {} hex digits ({N} bytes), found {} characters",
            2 * N,
            text.len()
        ));
    }
    let mut out = [0u8; N];
    for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0]);
        let lo = hex_digit(pair[1]);
        match (hi, lo) {
            (Some(hi), Some(lo)) => out[i] = (hi << 4) | lo,
            _ => {
                return Err(format!(
                    "`{}` at character {} is not a hex digit",
                    String::from_utf8_lossy(pair),
                    2 * i + 1
                ))
            }
        }
    }
    Ok(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}
