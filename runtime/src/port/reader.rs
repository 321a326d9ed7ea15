//! The typed reader: receives samples zero-copy and hands a job the newest one that is
//! visible at its logical release (LET).
//!
//! State kept between jobs, all allocated when the reader is opened:
//! * `current`: the newest sample already visible, still borrowed from shared memory, so
//!   a job sees the last value even when the writer is slower than the reader;
//! * `pending`: samples that arrived before their `visible_at_ns`, ordered by it, in a
//!   queue of fixed capacity `max_borrowed - 1` (the current sample takes the last borrow).

use std::collections::VecDeque;
use std::fmt;
use std::ops::Deref;

use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::ipc;
use iceoryx2::sample::Sample;
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;

use super::{
    ActivityCell, Connector, LetHeader, Message, PortActivity, PortOpenError, ServiceSizing,
};
use crate::time::JobTime;

type LetSample<T> = Sample<ipc::Service, T, LetHeader>;

/// A sample as a job sees it: the payload in shared memory (no copy) and its LET stamp.
pub struct Sampled<'a, T> {
    /// The payload, borrowed from shared memory.
    pub value: &'a T,
    header: LetHeader,
}

impl<T> Sampled<'_, T> {
    /// The writer's sequence number of this sample (1 for its first).
    pub fn seq(&self) -> u64 {
        self.header.seq
    }
    /// Logical instant from which the sample is visible (the writer job's deadline).
    pub fn visible_at_ns(&self) -> u64 {
        self.header.visible_at_ns
    }
    /// Index of the writer job that produced it.
    pub fn job_index(&self) -> u64 {
        self.header.job_index
    }
}

impl<T> Deref for Sampled<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for Sampled<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sampled")
            .field("seq", &self.header.seq)
            .field("visible_at_ns", &self.header.visible_at_ns)
            .field("job_index", &self.header.job_index)
            .field("value", self.value)
            .finish()
    }
}

/// The reading end of a topic. See the module docs for the LET rule it implements.
pub struct Reader<T: Message> {
    topic: String,
    /// Shared with the dispatcher only to connect it before the first release.
    subscriber: std::rc::Rc<Subscriber<ipc::Service, T, LetHeader>>,
    current: Option<LetSample<T>>,
    pending: VecDeque<LetSample<T>>,
    pending_capacity: usize,
    overflowed: u64,
    receive_errors: u64,
    activity: Option<ActivityCell>,
}

impl<T: Message> fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("topic", &self.topic)
            .field("type", &T::TYPE_NAME)
            .field("last_seq", &self.last_seq())
            .field("pending", &self.pending.len())
            .field("overflowed", &self.overflowed)
            .finish()
    }
}

fn visible_at<T: Message>(s: &LetSample<T>) -> u64 {
    s.user_header().visible_at_ns
}

impl<T: Message> Reader<T> {
    pub(super) fn new(
        topic: &str,
        service: &PortFactory<ipc::Service, T, LetHeader>,
        sizing: ServiceSizing,
    ) -> Result<Self, PortOpenError> {
        let subscriber =
            service
                .subscriber_builder()
                .create()
                .map_err(|e| PortOpenError::Port {
                    topic: topic.to_string(),
                    role: "reader",
                    reason: format!("{e}"),
                })?;
        // `ServiceSizing` guarantees max_borrowed >= 2, so there is room for one pending.
        let pending_capacity = sizing.max_borrowed - 1;
        Ok(Reader {
            topic: topic.to_string(),
            subscriber: std::rc::Rc::new(subscriber),
            current: None,
            pending: VecDeque::with_capacity(pending_capacity),
            pending_capacity,
            overflowed: 0,
            receive_errors: 0,
            activity: None,
        })
    }

    /// The topic this reader reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The newest sample visible at `job.release_ns`, or `None` if no sample is visible
    /// yet. Never returns a sample whose `visible_at_ns` is later than the release, however
    /// early it arrived. Does not allocate.
    pub fn read(&mut self, job: &JobTime) -> Option<Sampled<'_, T>> {
        let release_ns = job.release_ns;
        self.promote_visible(release_ns);
        loop {
            // The borrow limit counts the current sample, the pending ones and the one
            // about to be received, so make room first, but only if something is waiting.
            if self.pending.len() >= self.pending_capacity {
                match self.subscriber.has_samples() {
                    Ok(true) => {
                        self.pending.pop_front();
                        self.overflowed += 1;
                    }
                    Ok(false) => break,
                    Err(_) => {
                        self.receive_errors += 1;
                        break;
                    }
                }
            }
            match self.subscriber.receive() {
                Ok(Some(sample)) => self.accept(sample, release_ns),
                Ok(None) => break,
                Err(_) => {
                    // The held samples stay valid; the job sees the last good state and the
                    // failure is counted for the trace.
                    self.receive_errors += 1;
                    break;
                }
            }
        }
        if let Some(cell) = &self.activity {
            let header = self
                .current
                .as_ref()
                .map(|s| *s.user_header())
                .unwrap_or_default();
            let ops = cell.get().ops + 1;
            cell.set(PortActivity {
                ops,
                seq: header.seq,
                visible_at_ns: header.visible_at_ns,
            });
        }
        self.current.as_ref().map(|s| Sampled {
            value: s.payload(),
            header: *s.user_header(),
        })
    }

    /// Makes `sample` current if it is at least as new as the current one; otherwise it is
    /// stale (an out-of-order arrival) and dropped.
    fn offer_visible(&mut self, sample: LetSample<T>) {
        let newer = self
            .current
            .as_ref()
            .is_none_or(|c| visible_at(c) <= visible_at(&sample));
        if newer {
            self.current = Some(sample);
        }
    }

    fn promote_visible(&mut self, release_ns: u64) {
        while self
            .pending
            .front()
            .is_some_and(|s| visible_at(s) <= release_ns)
        {
            if let Some(sample) = self.pending.pop_front() {
                self.offer_visible(sample);
            }
        }
    }

    /// Files a just-received sample: current if visible now, else into `pending` in order
    /// of visibility (after samples with the same instant, so arrival order breaks ties).
    /// The caller made sure `pending` has room, so the insert never reallocates.
    fn accept(&mut self, sample: LetSample<T>, release_ns: u64) {
        let at = visible_at(&sample);
        if at <= release_ns {
            self.offer_visible(sample);
        } else {
            let pos = self
                .pending
                .iter()
                .rposition(|p| visible_at(p) <= at)
                .map_or(0, |i| i + 1);
            self.pending.insert(pos, sample);
        }
    }

    /// The subscriber's connection end, for the dispatcher to connect it to every writer
    /// before the first release instead of in the first read.
    pub(crate) fn connector(&self) -> Connector {
        self.subscriber.clone()
    }

    /// Reports every read into `cell` from now on (the dispatcher traces it).
    pub(crate) fn attach_activity(&mut self, cell: ActivityCell) {
        self.activity = Some(cell);
    }

    /// Sequence number of the sample the last `read` returned (the current one), if any.
    pub fn last_seq(&self) -> Option<u64> {
        self.current.as_ref().map(|s| s.user_header().seq)
    }

    /// Samples dropped unread because the pending queue was full: more early arrivals
    /// than `max_borrowed - 1`, i.e. the channel's sizing is too small for its timing.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Failed receive calls (broken connection, borrow limit); each is also a job that saw
    /// possibly stale data.
    pub fn receive_errors(&self) -> u64 {
        self.receive_errors
    }

    /// Samples received but not yet visible.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}
