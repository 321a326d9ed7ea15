//! The typed writer: loans a sample in shared memory, lets the job fill it in place and
//! sends it stamped with the job's LET deadline.

use std::fmt;

use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::update_connections::UpdateConnections;
use iceoryx2::prelude::ipc;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use super::{ActivityCell, Connector, LetHeader, Message, PortActivity, PortOpenError};
use crate::time::JobTime;

/// Why a sample could not be published. The message is built only on this failure path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishError {
    /// No sample could be loaned from the writer's shared-memory pool.
    Loan(String),
    /// The sample could not be delivered.
    Send(String),
    /// Newly joined readers could not be connected.
    Connect(String),
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::Loan(e) => write!(f, "cannot loan a sample: {e}"),
            PublishError::Send(e) => write!(f, "cannot send the sample: {e}"),
            PublishError::Connect(e) => write!(f, "cannot connect new readers: {e}"),
        }
    }
}

impl std::error::Error for PublishError {}

/// The writing end of a topic. Each published sample becomes visible to readers at the
/// publishing job's logical deadline.
pub struct Writer<T: Message> {
    topic: String,
    /// Shared with the dispatcher only to connect it before the first release.
    publisher: std::rc::Rc<Publisher<ipc::Service, T, LetHeader>>,
    published: u64,
    activity: Option<ActivityCell>,
}

impl<T: Message> fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("topic", &self.topic)
            .field("type", &T::TYPE_NAME)
            .field("published", &self.published)
            .finish()
    }
}

impl<T: Message> Writer<T> {
    pub(super) fn new(
        topic: &str,
        service: &PortFactory<ipc::Service, T, LetHeader>,
        max_loaned_samples: usize,
    ) -> Result<Self, PortOpenError> {
        let publisher = service
            .publisher_builder()
            .max_loaned_samples(max_loaned_samples)
            .create()
            .map_err(|e| PortOpenError::Port {
                topic: topic.to_string(),
                role: "writer",
                reason: format!("{e}"),
            })?;
        Ok(Writer {
            topic: topic.to_string(),
            publisher: std::rc::Rc::new(publisher),
            published: 0,
            activity: None,
        })
    }

    /// The topic this writer publishes on.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Publishes one sample, visible at `job.deadline_ns`: loans it in shared memory,
    /// zeroes it in place, lets `fill` write the fields and sends it. The payload is never
    /// built on the stack, so it may be megabytes. Returns its sequence number: one more than
    /// the last, and at least `job.index + 1`.
    pub fn publish(
        &mut self,
        job: &JobTime,
        fill: impl FnOnce(&mut T),
    ) -> Result<u64, PublishError> {
        self.publish_impl(job, true, fill)
    }

    /// Like [`Writer::publish`] but without zeroing: the slot still holds the bytes of
    /// whatever sample used it before (or zeroes, if none did). Fields `fill` does not
    /// write keep that old data. Meant for large payloads `fill` overwrites completely
    /// (e.g. a 4 MiB camera frame), where zeroing would double the memory traffic.
    pub fn publish_overwrite(
        &mut self,
        job: &JobTime,
        fill: impl FnOnce(&mut T),
    ) -> Result<u64, PublishError> {
        self.publish_impl(job, false, fill)
    }

    fn publish_impl(
        &mut self,
        job: &JobTime,
        zero: bool,
        fill: impl FnOnce(&mut T),
    ) -> Result<u64, PublishError> {
        let mut uninit = self
            .publisher
            .loan_uninit()
            .map_err(|e| PublishError::Loan(format!("topic `{}`: {e}", self.topic)))?;
        if zero {
            let slot = uninit.payload_mut().as_mut_ptr();
            // SAFETY: `slot` points to the loaned payload slot of this sample, which is
            // valid for writes of one `T` and aligned for `T` (iceoryx2 lays out chunks for
            // the service's payload type), and nothing else references it while we hold
            // the loan.
            unsafe { std::ptr::write_bytes(slot, 0, 1) };
        }
        // SAFETY: the payload bytes are initialized: either just zeroed above, or (for
        // `publish_overwrite`) shared memory that is always initialized: the segment is
        // a fresh tmpfs mapping the kernel zero-fills and iceoryx2 zeroes again at
        // creation, and any later content was written by an earlier sample as a whole
        // `T`. `T: Pod`, so every byte pattern, all-zero included, is a valid `T`.
        let mut sample = unsafe { uninit.assume_init() };
        fill(sample.payload_mut());
        // The job's own number when it is ahead of this writer's count: a process that
        // takes over a topic mid-run (OTA hot swap, restart) continues the sequence its
        // predecessor published, so readers and chain analysis see neither a gap nor a
        // repeated number. One publish per job gives `index + 1`, 1 for the first.
        let seq = (self.published + 1).max(job.index + 1);
        *sample.user_header_mut() = LetHeader {
            seq,
            visible_at_ns: job.deadline_ns,
            job_index: job.index,
        };
        sample
            .send()
            .map_err(|e| PublishError::Send(format!("topic `{}`: {e}", self.topic)))?;
        self.published = seq;
        if let Some(cell) = &self.activity {
            cell.set(PortActivity {
                ops: seq,
                seq,
                visible_at_ns: job.deadline_ns,
            });
        }
        Ok(seq)
    }

    /// The publisher's connection end, for the dispatcher to connect it to every reader
    /// before the first release instead of in the first publish.
    pub(crate) fn connector(&self) -> Connector {
        self.publisher.clone()
    }

    /// Reports every publish into `cell` from now on (the dispatcher traces it).
    pub(crate) fn attach_activity(&mut self, cell: ActivityCell) {
        self.activity = Some(cell);
    }

    /// The last sequence number published (0 before the first).
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Connects readers that joined since the last publish and hands them the history.
    /// Publishing does this too; call it when a late reader must see the latest sample
    /// before this writer's next job.
    pub fn update_connections(&self) -> Result<(), PublishError> {
        self.publisher
            .update_connections()
            .map_err(|e| PublishError::Connect(format!("topic `{}`: {e:?}", self.topic)))
    }
}
