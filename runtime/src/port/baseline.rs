//! The raw iceoryx2 path takt's ports are measured against (`takt bench`).
//!
//! Owns: sending a sample on a plain iceoryx2 publisher (no takt header) the way a careful
//! hand-written iceoryx2 program would for large payloads: loan, write a few bytes in place,
//! send, with no zeroing and no copy. Only benchmarks use it; it lives here because writing
//! into a loaned, uninitialized slot is `unsafe`, and takt keeps every `unsafe` in the runtime.

use iceoryx2::port::publisher::Publisher;
use iceoryx2::prelude::ipc;

use super::Message;

/// Loans a sample on `publisher`, writes `stamp` (little-endian) into its first and last 8
/// bytes in place, and sends it.
///
/// `T` must be at least 8 bytes; smaller types are refused.
pub fn send_stamped<T: Message>(
    publisher: &Publisher<ipc::Service, T, ()>,
    stamp: u64,
) -> Result<(), SendStampedError> {
    let size = std::mem::size_of::<T>();
    if size < 8 {
        return Err(SendStampedError::TooSmall {
            type_name: T::TYPE_NAME,
            size,
        });
    }
    let mut sample = publisher.loan_uninit().map_err(SendStampedError::Loan)?;
    let slot = sample.payload_mut().as_mut_ptr().cast::<u8>();
    let bytes = stamp.to_le_bytes();
    // SAFETY: `slot` points to the loaned payload slot, valid for writes of `size` bytes
    // (checked >= 8 above) and exclusively ours while we hold the loan; the two 8-byte
    // writes stay inside it (offsets 0 and size - 8).
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), slot, 8);
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), slot.add(size - 8), 8);
    }
    // SAFETY: every byte of the slot is initialized: the shared-memory segment is a
    // zero-filled tmpfs mapping that iceoryx2 also zeroes at creation, and later content was
    // written by whole earlier samples; `T: Pod`, so any bytes are a valid `T`. This is the
    // argument `Writer::publish_overwrite` rests on.
    let sample = unsafe { sample.assume_init() };
    sample.send().map(|_| ()).map_err(SendStampedError::Send)
}

/// Why [`send_stamped`] sent nothing.
#[derive(Debug)]
pub enum SendStampedError {
    /// The message type is smaller than the 8-byte stamp.
    TooSmall {
        type_name: &'static str,
        size: usize,
    },
    Loan(iceoryx2::port::LoanError),
    Send(iceoryx2::port::SendError),
}

impl std::fmt::Display for SendStampedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendStampedError::TooSmall { type_name, size } => {
                write!(f, "`{type_name}` is {size} bytes; the stamp needs 8")
            }
            SendStampedError::Loan(e) => write!(f, "raw: loan: {e}"),
            SendStampedError::Send(e) => write!(f, "raw: send: {e}"),
        }
    }
}

impl std::error::Error for SendStampedError {}
