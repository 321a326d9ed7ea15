//! Typed zero-copy ports over iceoryx2 shared memory, with LET visibility.
//!
//! Owns: the [`Message`] contract (a `Pod` type with a structural [`TypeLayout`] and the
//! [`Fingerprint`] hashed from it, see [`layout`]), the [`message!`](crate::message) macro
//! apps use to declare one, the [`PortNode`] that opens topics as iceoryx2 `ipc`
//! publish-subscribe services, and the typed [`Writer`]/[`Reader`] that stamp and honour
//! Logical Execution Time. It must never know about TOML, threads or the schedule: the
//! times it works with arrive in a [`JobTime`](crate::time::JobTime).
//!
//! # LET on samples
//!
//! Every sample carries a [`LetHeader`] in iceoryx2's user header: a per-writer sequence
//! number (1, 2, 3, ...), the writer job's index, and `visible_at_ns` = the writer job's
//! logical deadline. A reader job released at `r` gets the newest sample whose
//! `visible_at_ns <= r`, never a newer one, however early the newer one physically
//! arrived. Samples that arrived early wait in a fixed-capacity pending queue inside the
//! [`Reader`]; the current sample stays borrowed from shared memory across jobs, so a
//! slower writer's data persists. Nothing extra wakes up to make data visible: visibility
//! is decided by comparing logical timestamps when the reader reads.
//!
//! # Service layout
//!
//! A topic of deployment `d` is the iceoryx2 service `takt/<d>/<topic>`. Both ends derive
//! the service configuration from the same [`Sizing`] (see [`ServiceSizing`]) and open it
//! with `open_or_create`, so writer and readers may start in any order. The service uses
//! safe overflow: a writer never blocks on a slow reader, the oldest undelivered sample is
//! replaced instead. A reader that connects late receives the last `history` samples the
//! next time the writer publishes or calls [`Writer::update_connections`].
//!
//! # Hot path
//!
//! [`Writer::publish`] and [`Reader::read`] neither allocate nor lock (beyond what
//! iceoryx2's loan/send/receive do internally). Errors build their message `String` only
//! on the failure path.

pub mod baseline;
pub mod layout;
mod reader;
mod writer;

use std::fmt;

use iceoryx2::node::{Node, NodeBuilder, NodeState};
use iceoryx2::prelude::{
    ipc, CallbackProgression, Config, LogLevel, MessagingPattern, NodeName, Path, SemanticString,
    ServiceName, SignalHandlingMode, ZeroCopySend,
};
use iceoryx2::service::builder::publish_subscribe::{
    PublishSubscribeCreateError, PublishSubscribeOpenError, PublishSubscribeOpenOrCreateError,
};
use iceoryx2::service::port_factory::publish_subscribe::PortFactory;
use iceoryx2::service::Service as _;

pub use layout::Fingerprint;
pub use layout::{DifferenceKind, Field, FieldLayout, LayoutDifference, Placed, Shape, TypeLayout};
pub use reader::{Reader, Sampled};

pub use writer::{PublishError, Writer};

/// The most writers one topic admits. One is normal; the second lets an updated app's
/// writer open the topic beside the old one for a hot swap.
pub const MAX_WRITERS_PER_TOPIC: usize = 2;

/// The most readers one topic admits. iceoryx2 sizes each writer's shared-memory pool
/// for this many readers (`readers * (buffer + max_borrowed) + history + 2` samples, all
/// zeroed and resident), so it is kept modest: large messages pay for it per writer.
pub const MAX_READERS_PER_TOPIC: usize = 8;

/// How many samples a [`Writer`] may have loaned at once. `publish` loans one and sends
/// it before returning, so one would do; two leave room for a hot-swap handover.
const MAX_LOANED_SAMPLES: usize = 2;

/// A message type: plain old data that can live in shared memory and be read by any
/// process, with the name the manifest uses for it and its structural layout.
///
/// Implement it with [`message!`](crate::message), never by hand.
pub trait Message: bytemuck::Pod + ZeroCopySend + fmt::Debug + Send + Sync + 'static {
    /// The name manifests use for this type (`type = "RadarTrack"`).
    const TYPE_NAME: &'static str;

    /// The type's structural layout (every field's name, offset and type, recursively),
    /// derived from its definition by [`message!`](crate::message).
    fn layout() -> TypeLayout;

    /// The fingerprint both ends of a channel must agree on: name, size, alignment and
    /// the hash of [`Message::layout`].
    fn fingerprint() -> Fingerprint {
        Self::layout().fingerprint(Self::TYPE_NAME)
    }
}

/// Declares a message type from its struct definition, written once:
///
/// ```
/// takt::message! {
///     /// One radar measurement.
///     #[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
///     pub struct RadarTrack {
///         pub time_ns: u64,
///         pub range_m: f64,
///         pub valid: u32,
///         pub _pad: u32,
///     }
/// }
/// # use takt::port::Message;
/// # assert_eq!(RadarTrack::layout().first_difference(&RadarTrack::layout()), None);
/// ```
///
/// It emits the struct with `#[repr(C)]` added (do not write it yourself) and implements:
///
/// * [`Field`] with the struct's [`TypeLayout`], built from `core::mem::offset_of!`,
///   `size_of`, `align_of` and each field type's [`Field`] layout, so the struct can also
///   be a field of another message;
/// * [`Message`] with `TYPE_NAME = "RadarTrack"`;
/// * iceoryx2's `ZeroCopySend`, with `RadarTrack@<layout hash>` as iceoryx2's type name
///   (see [`layout::service_type_name`]), so iceoryx2's own check when a port connects to
///   a running service refuses a peer with the same name but another layout.
///
/// Only plain, non-generic structs with named fields are accepted. Every field type must
/// implement [`Field`]; the struct must derive `bytemuck::Pod` (which refuses padding),
/// `bytemuck::Zeroable`, `Clone`, `Copy` and implement `Debug`. Apps built under
/// `#![deny(unsafe_code)]` may use it: the `unsafe impl` lives in this crate's macro.
///
/// Soundness of the `unsafe impl`: `Message` requires `bytemuck::Pod`, and a `Pod` type
/// holds no references, pointers, heap handles or other process-local addresses, has no
/// padding and no `Drop`, and every bit pattern is a valid value. Its bytes therefore mean
/// the same thing in every process that maps them, which is exactly what `ZeroCopySend`
/// asks for. A type that is not `Pod` fails to compile at the `Message` impl:
///
/// ```compile_fail
/// takt::message! {
///     #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
///     pub struct Padded { pub flag: u8, pub value: u64 } // 7 bytes of padding
/// }
/// ```
///
/// ```compile_fail,E0277
/// takt::message! {
///     #[derive(Clone, Copy, Debug)] // no Pod
///     pub struct NotPod { pub value: u64 }
/// }
/// ```
///
/// A field type outside the [`Field`] list fails with "cannot be a field of a takt message":
///
/// ```compile_fail,E0277
/// takt::message! {
///     #[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
///     pub struct Lengths { pub len: usize }
/// }
/// ```
#[macro_export]
macro_rules! message {
    (
        $(#[$attr:meta])*
        $vis:vis struct $name:ident {
            $(
                $(#[$field_attr:meta])*
                $field_vis:vis $field:ident : $ty:ty
            ),+ $(,)?
        }
    ) => {
        #[repr(C)]
        $(#[$attr])*
        $vis struct $name {
            $(
                $(#[$field_attr])*
                $field_vis $field: $ty,
            )+
        }

        // iceoryx2 type names hold 256 bytes; `@` and the 16-digit hash take 17.
        const _: () = ::core::assert!(
            ::core::stringify!($name).len() <= 239,
            "a message name must be at most 239 bytes long"
        );

        impl $crate::port::Field for $name {
            fn type_layout() -> $crate::port::TypeLayout {
                $crate::port::TypeLayout::structure(
                    ::core::stringify!($name),
                    ::core::mem::size_of::<$name>(),
                    ::core::mem::align_of::<$name>(),
                    ::std::vec![
                        $(
                            $crate::port::FieldLayout::new(
                                ::core::stringify!($field),
                                ::core::mem::offset_of!($name, $field),
                                <$ty as $crate::port::Field>::type_layout(),
                            ),
                        )+
                    ],
                )
            }
        }

        impl $crate::port::Message for $name {
            const TYPE_NAME: &'static str = ::core::stringify!($name);
            fn layout() -> $crate::port::TypeLayout {
                <$name as $crate::port::Field>::type_layout()
            }
        }

        // SAFETY: `$name: bytemuck::Pod` is required by the `Message` impl above (it does
        // not compile otherwise). Pod types contain no pointers or references into process
        // memory, no padding and no drop glue, and any byte pattern is a valid value, so a
        // `$name` in shared memory is equally valid in every process that maps it. The type
        // name carries the layout hash, so iceoryx2 refuses a peer whose layout differs.
        unsafe impl $crate::__private::ZeroCopySend for $name {
            unsafe fn type_name() -> &'static str {
                static NAME: ::std::sync::OnceLock<::std::string::String> =
                    ::std::sync::OnceLock::new();
                NAME.get_or_init(|| {
                    $crate::port::layout::service_type_name(
                        &<$name as $crate::port::Message>::fingerprint(),
                    )
                })
            }
        }
    };
}

/// What a port did most recently, as the dispatcher reads it after each job to trace
/// publishes and reads (sequence numbers are what end-to-end chain analysis follows).
///
/// The cell is shared between a port and the dispatcher on the same thread (`Rc`, not
/// `Arc`: ports never leave the thread that opened them). Updating it is two stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PortActivity {
    /// Operations so far (publishes for a writer, reads for a reader): lets the observer
    /// tell a new operation from the previous one.
    pub ops: u64,
    /// Writer: the sequence number just published. Reader: the sequence number of the
    /// sample the last read returned, 0 when none was visible.
    pub seq: u64,
    /// The LET visibility instant of that sample (ns since the epoch), 0 for none.
    pub visible_at_ns: u64,
}

/// A port's activity cell; see [`PortActivity`].
pub(crate) type ActivityCell = std::rc::Rc<std::cell::Cell<PortActivity>>;

/// A port's iceoryx2 end, shared with the dispatcher so it can make the port's
/// connections before the first release ([`Writer::connector`], [`Reader::connector`]).
/// iceoryx2 connects a port to the peers created after it lazily, in its next send or
/// receive: opening and mapping each peer's shared memory, measured at 15-200 us per port
/// on the demo's VM, which landed in every task's first job (the planner's and the
/// controller's first jobs overran their 200 us budgets for it).
pub(crate) type Connector = std::rc::Rc<dyn iceoryx2::port::update_connections::UpdateConnections>;

/// The LET stamp in every sample's iceoryx2 user header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ZeroCopySend)]
#[type_name("takt::LetHeader")]
#[repr(C)]
pub struct LetHeader {
    /// Per-writer sequence number, 1 for the first sample.
    pub seq: u64,
    /// Logical instant (ns since epoch) from which readers may see the sample: the
    /// writer job's deadline.
    pub visible_at_ns: u64,
    /// Index of the writer job that produced the sample.
    pub job_index: u64,
}

/// Buffer sizes of one channel, computed by the plan from the manifest.
///
/// * `buffer`: samples iceoryx2 queues per reader between two reads.
/// * `history`: the newest samples a late-joining reader receives (1 is enough for LET:
///   only the newest visible sample matters).
/// * `max_borrowed`: samples one reader may hold at once: the current one plus those that
///   arrived before they became visible. A reader whose writer can complete `k` jobs with
///   deadlines after the reader's release but before it reads needs `k + 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Sizing {
    pub buffer: usize,
    pub history: usize,
    pub max_borrowed: usize,
}

/// The iceoryx2 settings derived from a [`Sizing`]. Both ends compute it with the same
/// function, so a writer and its readers always request the same service configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceSizing {
    pub history: usize,
    /// Never below `history` (a reader must be able to hold the history it is sent) nor 1.
    pub buffer: usize,
    /// At least 2: the current sample plus one early arrival.
    pub max_borrowed: usize,
}

impl ServiceSizing {
    /// Applies these settings and takt's port limits to an iceoryx2 publish-subscribe
    /// service builder: what every takt port requests, and what the raw-iceoryx2 baseline
    /// of `takt bench` requests so that it measures the same service.
    pub fn configure<T, H>(
        self,
        builder: iceoryx2::service::builder::publish_subscribe::Builder<T, H, ipc::Service>,
    ) -> iceoryx2::service::builder::publish_subscribe::Builder<T, H, ipc::Service>
    where
        T: fmt::Debug + ZeroCopySend,
        H: fmt::Debug + ZeroCopySend,
    {
        builder
            .history_size(self.history)
            .subscriber_max_buffer_size(self.buffer)
            .subscriber_max_borrowed_samples(self.max_borrowed)
            .enable_safe_overflow(true)
            .max_publishers(MAX_WRITERS_PER_TOPIC)
            .max_subscribers(MAX_READERS_PER_TOPIC)
            .max_nodes(MAX_WRITERS_PER_TOPIC + MAX_READERS_PER_TOPIC)
    }
}

impl From<Sizing> for ServiceSizing {
    fn from(s: Sizing) -> Self {
        ServiceSizing {
            history: s.history,
            buffer: s.buffer.max(s.history).max(1),
            max_borrowed: s.max_borrowed.max(2),
        }
    }
}

/// Why a port could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortOpenError {
    /// The code's message type is not the type on the other side: the manifest's
    /// channel type, or the type of the service already running under that topic.
    TypeMismatch {
        topic: String,
        /// The type the code opens the port with, with size and align.
        code_type: String,
        /// Who disagrees: `"the manifest declares"` or `"the running service carries"`.
        other_side: &'static str,
        /// The other side's type, with size and align where known.
        other_type: String,
        /// The first field where the code's layout differs from the other side's, when
        /// the other side's layout is known (see [`ExpectedType`]). Boxed so that the
        /// error, returned by every open, stays small.
        difference: Option<Box<LayoutDifference>>,
    },
    /// The deployment or topic name is not usable as an iceoryx2 node or service name.
    InvalidName { name: String, reason: String },
    /// The iceoryx2 node of this deployment could not be created.
    Node { deployment: String, reason: String },
    /// The topic's service could not be opened or created (e.g. its existing configuration
    /// is smaller than this port's sizing, or shared memory is unavailable).
    Service { topic: String, reason: String },
    /// The writer or reader port on an opened service could not be created (e.g. the
    /// topic already has its maximum number of writers/readers).
    Port {
        topic: String,
        role: &'static str,
        reason: String,
    },
}

impl fmt::Display for PortOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortOpenError::TypeMismatch {
                topic,
                code_type,
                other_side,
                other_type,
                difference,
            } => {
                write!(
                    f,
                    "topic `{topic}`: type mismatch: the code uses {code_type} but {other_side} {other_type}"
                )?;
                if let Some(d) = difference {
                    write!(f, "; first difference (code vs other side): {d}")?;
                }
                write!(f, "; both ends of a channel must use the same message type")
            }
            PortOpenError::InvalidName { name, reason } => {
                write!(f, "`{name}` is not a valid port name: {reason}")
            }
            PortOpenError::Node { deployment, reason } => write!(
                f,
                "deployment `{deployment}`: cannot create the shared-memory node: {reason}"
            ),
            PortOpenError::Service { topic, reason } => {
                write!(
                    f,
                    "topic `{topic}`: cannot open the shared-memory service: {reason}"
                )
            }
            PortOpenError::Port {
                topic,
                role,
                reason,
            } => write!(f, "topic `{topic}`: cannot create the {role}: {reason}"),
        }
    }
}

impl std::error::Error for PortOpenError {}

fn describe(name: &str, size: impl fmt::Display, align: impl fmt::Display, hash: u64) -> String {
    format!("`{name}` (size {size}, align {align}, layout {hash:016x})")
}

/// The message type the other side of a port (the manifest's channel type) expects: its
/// [`Fingerprint`], or its full [`TypeLayout`] when the caller has it, in which case a
/// mismatch names the first field that differs. `&Fingerprint` and `&TypeLayout` convert
/// into it, so `node.writer::<T>(topic, &fingerprint, sizing)` reads as before.
#[derive(Clone, Copy, Debug)]
pub enum ExpectedType<'a> {
    Fingerprint(&'a Fingerprint),
    Layout(&'a TypeLayout),
}

impl<'a> From<&'a Fingerprint> for ExpectedType<'a> {
    fn from(f: &'a Fingerprint) -> Self {
        ExpectedType::Fingerprint(f)
    }
}

impl<'a> From<&'a TypeLayout> for ExpectedType<'a> {
    fn from(l: &'a TypeLayout) -> Self {
        ExpectedType::Layout(l)
    }
}

impl ExpectedType<'_> {
    fn describe(&self) -> String {
        match self {
            ExpectedType::Fingerprint(f) => describe(f.name, f.size, f.align, f.hash),
            ExpectedType::Layout(l) => describe(&l.name, l.size, l.align, l.hash()),
        }
    }

    /// `None` if `T` is the expected type, else the mismatch error. Compares fingerprints
    /// (name, size, align, layout hash), or whole layouts when the expected one is known.
    /// Runs when a port opens, never in the hot path: building a layout allocates.
    fn check<T: Message>(&self, topic: &str) -> Option<PortOpenError> {
        let code = T::fingerprint();
        let difference = match self {
            ExpectedType::Fingerprint(f) if **f == code => return None,
            ExpectedType::Fingerprint(_) => None,
            ExpectedType::Layout(l) => Some(Box::new(T::layout().first_difference(l)?)),
        };
        Some(PortOpenError::TypeMismatch {
            topic: topic.to_string(),
            code_type: describe(code.name, code.size, code.align, code.hash),
            other_side: "the manifest declares",
            other_type: self.describe(),
            difference,
        })
    }
}

/// One process's (or thread's) handle on the shared memory of a deployment: an iceoryx2
/// `ipc` node named `takt-<deployment>`. Ports opened through it live as long as they are
/// held; the node is not `Send`, so open it on the thread that uses the ports.
pub struct PortNode {
    deployment: String,
    node: Node<ipc::Service>,
    cleaned_dead_nodes: usize,
}

impl fmt::Debug for PortNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PortNode")
            .field("deployment", &self.deployment)
            .field("cleaned_dead_nodes", &self.cleaned_dead_nodes)
            .finish_non_exhaustive()
    }
}

/// How long the cleanup waits for another process that is already cleaning the same dead
/// node, per node.
const DEAD_NODE_CLEANUP_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

/// Removes the shared-memory resources of nodes whose process died (e.g. `kill -9`), so a
/// stale service of a previous run cannot break this one. Returns how many were removed.
fn cleanup_dead_nodes(config: &Config) -> usize {
    let mut dead = Vec::new();
    // A listing failure (e.g. no permission on some node) is not fatal: the run can
    // proceed, and iceoryx2 re-checks dead nodes when services are opened.
    let _ = Node::<ipc::Service>::list(config, |state| {
        if let NodeState::Dead(view) = state {
            dead.push(view);
        }
        CallbackProgression::Continue
    });
    dead.into_iter()
        .filter(|view| {
            view.clone()
                .blocking_remove_stale_resources(DEAD_NODE_CLEANUP_TIMEOUT)
                .is_ok()
        })
        .count()
}

/// Where takt's iceoryx2 keeps its static files (service and node descriptions): a
/// directory on `/dev/shm`, which is tmpfs on every Linux system.
///
/// iceoryx2's default is `/tmp/iceoryx2/`, on whatever disk holds `/tmp`, and it `fsync`s
/// every description it writes: opening the ACC demo's ports cost dozens of disk flushes
/// per app start. None of these files outlives the processes that use them, so nothing is
/// lost by keeping them in memory.
pub const ICEORYX2_ROOT: &str = "/dev/shm/takt-iceoryx2/";

/// The iceoryx2 configuration of every takt process: iceoryx2's built-in defaults with the
/// root at [`ICEORYX2_ROOT`].
///
/// Built here rather than loaded: iceoryx2's `Config::global_config()` reads the first
/// `config/iceoryx2.toml` relative to the working directory (then the user's and the
/// system's), so apps of one deployment started from different directories could disagree
/// on where their services live and never meet. A raw iceoryx2 program that wants to talk
/// to takt's ports uses this configuration (`NodeBuilder::config`).
pub fn iceoryx2_config() -> &'static Config {
    static CONFIG: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    CONFIG.get_or_init(|| {
        let mut config = Config::default();
        match Path::new(ICEORYX2_ROOT.as_bytes()) {
            Ok(root) => config.global.set_root_path(&root),
            // A constant, valid path: unreachable, and the defaults still work.
            Err(_) => debug_assert!(false, "{ICEORYX2_ROOT} is a valid iceoryx2 path"),
        }
        config
    })
}

impl PortNode {
    /// Opens the deployment's node, after removing resources left by dead nodes.
    pub fn new(deployment: &str) -> Result<PortNode, PortOpenError> {
        // iceoryx2 warns on stderr that it runs with its built-in defaults (no config
        // file), which takt relies on; only its errors are worth an integrator's attention.
        // `IOX2_LOG_LEVEL` still overrides this.
        static QUIET_LOGS: std::sync::Once = std::sync::Once::new();
        QUIET_LOGS.call_once(|| iceoryx2::prelude::set_log_level_from_env_or(LogLevel::Error));
        let node_name_text = format!("takt-{deployment}");
        let node_name = NodeName::new(&node_name_text).map_err(|e| PortOpenError::InvalidName {
            name: node_name_text.clone(),
            reason: format!("{e:?} (at most 128 characters)"),
        })?;
        let config = iceoryx2_config();
        let cleaned_dead_nodes = cleanup_dead_nodes(config);
        let node = NodeBuilder::new()
            .name(&node_name)
            .config(config)
            // Signals belong to takt's lifecycle manager, not to iceoryx2.
            .signal_handling_mode(SignalHandlingMode::Disabled)
            .create::<ipc::Service>()
            .map_err(|e| PortOpenError::Node {
                deployment: deployment.to_string(),
                reason: format!("{e}"),
            })?;
        Ok(PortNode {
            deployment: deployment.to_string(),
            node,
            cleaned_dead_nodes,
        })
    }

    /// How many dead nodes' stale resources [`PortNode::new`] removed.
    pub fn cleaned_dead_nodes(&self) -> usize {
        self.cleaned_dead_nodes
    }

    /// The deployment this node belongs to.
    pub fn deployment(&self) -> &str {
        &self.deployment
    }

    /// The iceoryx2 service name of `topic` in this deployment.
    pub fn service_name(&self, topic: &str) -> String {
        format!("takt/{}/{topic}", self.deployment)
    }

    /// Opens the writer of `topic`. `expected` is the manifest's channel type (a
    /// `&Fingerprint` or a `&TypeLayout`); `T` must match it.
    pub fn writer<'e, T: Message>(
        &self,
        topic: &str,
        expected: impl Into<ExpectedType<'e>>,
        sizing: Sizing,
    ) -> Result<Writer<T>, PortOpenError> {
        let service = self.open_service::<T>(topic, expected.into(), sizing)?;
        Writer::new(topic, &service, MAX_LOANED_SAMPLES)
    }

    /// Opens a reader of `topic`. `expected` is the manifest's channel type (a
    /// `&Fingerprint` or a `&TypeLayout`); `T` must match it.
    pub fn reader<'e, T: Message>(
        &self,
        topic: &str,
        expected: impl Into<ExpectedType<'e>>,
        sizing: Sizing,
    ) -> Result<Reader<T>, PortOpenError> {
        let service = self.open_service::<T>(topic, expected.into(), sizing)?;
        Reader::new(topic, &service, ServiceSizing::from(sizing))
    }

    fn open_service<T: Message>(
        &self,
        topic: &str,
        expected: ExpectedType<'_>,
        sizing: Sizing,
    ) -> Result<PortFactory<ipc::Service, T, LetHeader>, PortOpenError> {
        if let Some(mismatch) = expected.check::<T>(topic) {
            return Err(mismatch);
        }
        let name_text = self.service_name(topic);
        let name = ServiceName::new(&name_text).map_err(|e| PortOpenError::InvalidName {
            name: name_text.clone(),
            reason: format!("{e:?} (at most 255 characters, must not start with `iox2_`)"),
        })?;
        let s = ServiceSizing::from(sizing);
        let builder = || {
            s.configure(
                self.node
                    .service_builder(&name)
                    .publish_subscribe::<T>()
                    .user_header::<LetHeader>(),
            )
        };
        if let Some(created) = self.create_unless_present(&name, || builder().create()) {
            return Ok(created);
        }
        match builder().open_or_create() {
            Ok(service) => Ok(service),
            Err(PublishSubscribeOpenOrCreateError::PublishSubscribeOpenError(
                PublishSubscribeOpenError::IncompatibleTypes,
            )) => {
                let code = T::fingerprint();
                Err(PortOpenError::TypeMismatch {
                    topic: topic.to_string(),
                    code_type: describe(code.name, code.size, code.align, code.hash),
                    other_side: "the running service carries",
                    other_type: self.existing_payload_type(&name),
                    difference: None,
                })
            }
            Err(e) => Err(PortOpenError::Service {
                topic: topic.to_string(),
                reason: format!("{e} (service `{name_text}`, requested {s:?})"),
            }),
        }
    }

    /// Creates service `name` with `create` if nobody has, and returns `None` once it exists
    /// complete (or after iceoryx2's creation timeout), for `open_or_create` to open it.
    ///
    /// The apps of a deployment open their topics at the same time, so one often finds a
    /// topic that another is still creating. iceoryx2's `open_or_create` then sleeps a fixed
    /// 25 ms tick before it looks again (its `IO_TICK_TIME`), and a 3-app start paid that
    /// once or twice: more than the whole simulated ACC run. A creation takes well under a
    /// millisecond, so this looks again after 50 us, doubling up to 2 ms. Errors other than
    /// "someone else is creating it" are left to `open_or_create`, which reports them.
    fn create_unless_present<S>(
        &self,
        name: &ServiceName,
        mut create: impl FnMut() -> Result<S, PublishSubscribeCreateError>,
    ) -> Option<S> {
        let config = self.node.config();
        let deadline = std::time::Instant::now() + config.global.creation_timeout;
        let mut pause = std::time::Duration::from_micros(50);
        loop {
            match ipc::Service::details(name, config, MessagingPattern::PublishSubscribe) {
                // Complete: its dynamic part exists, so opening does not wait.
                Ok(Some(d)) if d.dynamic_details.is_some() => return None,
                Ok(None) => match create() {
                    Ok(created) => return Some(created),
                    Err(
                        PublishSubscribeCreateError::AlreadyExists
                        | PublishSubscribeCreateError::IsBeingCreatedByAnotherInstance,
                    ) => {}
                    Err(_) => return None,
                },
                // Being created by another process (or left half-made by a dead one).
                Ok(Some(_)) | Err(_) => {}
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_millis(2));
        }
    }

    /// Describes the payload type of the existing service `name`, read from its static
    /// configuration, for a type-mismatch message.
    fn existing_payload_type(&self, name: &ServiceName) -> String {
        match ipc::Service::details(name, self.node.config(), MessagingPattern::PublishSubscribe) {
            Ok(Some(details)) => {
                let types = details
                    .static_details
                    .publish_subscribe()
                    .message_type_details();
                let (payload, size, align) = (
                    types.payload.type_name().to_string(),
                    types.payload.size(),
                    types.payload.alignment(),
                );
                // A takt message's service type name is `<name>@<layout hash>`.
                let payload = match layout::parse_service_type_name(&payload) {
                    Some((name, hash)) => describe(name, size, align, hash),
                    None => format!("`{payload}` (size {size}, align {align})"),
                };
                format!(
                    "{payload} with user header `{}`",
                    types.user_header.type_name()
                )
            }
            Ok(None) => "a different type (the service vanished while reading it)".to_string(),
            Err(e) => format!("a different type (its details could not be read: {e:?})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_sizing_keeps_iceoryx2_constraints() {
        let s = ServiceSizing::from(Sizing {
            buffer: 0,
            history: 3,
            max_borrowed: 0,
        });
        assert_eq!((s.history, s.buffer, s.max_borrowed), (3, 3, 2));
        let s = ServiceSizing::from(Sizing {
            buffer: 5,
            history: 1,
            max_borrowed: 4,
        });
        assert_eq!((s.history, s.buffer, s.max_borrowed), (1, 5, 4));
    }

    #[test]
    fn errors_display_on_one_line_with_the_topic() {
        let errors = [
            PortOpenError::TypeMismatch {
                topic: "radar".into(),
                code_type: "`A` (size 8, align 8)".into(),
                other_side: "the manifest declares",
                other_type: "`B` (size 4, align 4)".into(),
                difference: Some(Box::new(LayoutDifference {
                    path: "x".into(),
                    kind: DifferenceKind::MissingOnOtherSide {
                        ours: Placed {
                            type_name: "f64".into(),
                            offset: 0,
                        },
                    },
                })),
            },
            PortOpenError::Service {
                topic: "radar".into(),
                reason: "PublishSubscribeOpenOrCreateError::X".into(),
            },
            PortOpenError::Port {
                topic: "radar".into(),
                role: "reader",
                reason: "full".into(),
            },
        ];
        for e in errors {
            let text = e.to_string();
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(text.contains("`radar`"), "{text}");
        }
    }
}
