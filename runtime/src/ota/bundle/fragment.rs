//! The manifest fragment a bundle carries: the part of the manifest (an app's tasks'
//! timing and the ports they open, with their message layouts) that staging re-checks
//! against the running deployment.
//!
//! Owns the fragment's types and how one is built from a deployment ([`Fragment::from_deployment`]).
//! It must never encode or decode bytes of a bundle ([`write`](mod@super::write) and
//! [`read`](mod@super::read) do) and never decide whether an update may be staged
//! ([`check`](crate::ota::check) does).

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a bundle says about the app version it carries: the part of the manifest the
/// supervisor re-checks against the running deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fragment {
    pub app: String,
    /// Monotonic version counter; anti-rollback compares this.
    pub version: u64,
    /// Free-form version for people, e.g. `1.2.0-gap18`.
    pub version_label: String,
    pub tasks: Vec<FragmentTask>,
    pub ports: Vec<FragmentPort>,
}

impl Fragment {
    /// The fragment of `app` as `d` deploys it: its tasks' timing and every port its tasks
    /// open. A port is what the task's implementation in `catalog` (the shipped executable's
    /// own declaration) declares, moved to the topic the task instance maps it to
    /// (`[task.topics]`), with the type and layout that declaration gives it; so staging
    /// compares what the shipped code opens, on the topics it opens them, with the running
    /// peers.
    /// `layouts` gives the structure of the message types (the shipped executable's own
    /// declaration), so a refused update can name the field that differs.
    pub fn from_deployment(
        d: &crate::manifest::Deployment,
        catalog: &crate::manifest::Catalog,
        layouts: &Layouts,
        app: &str,
        version: u64,
        version_label: &str,
    ) -> Result<Fragment, FragmentError> {
        let app_id =
            d.apps
                .iter()
                .position(|a| a.name == app)
                .ok_or_else(|| FragmentError::UnknownApp {
                    app: app.to_string(),
                    known: d.apps.iter().map(|a| a.name.clone()).collect(),
                })?;
        let in_app = |t: usize| d.tasks[t].app == app_id;
        let tasks = d
            .tasks
            .iter()
            .filter(|t| t.app == app_id)
            .map(|t| FragmentTask {
                name: t.name.clone(),
                period_ns: t.period_ns,
                offset_ns: t.offset_ns,
                budget_ns: t.budget_ns,
                let_ns: t.let_ns,
                core: t.core as u64,
            })
            .collect();
        // The type task `id`'s implementation declares for its port on `topic` (after the
        // instance's mapping) in `direction`.
        let declared_type = |id: usize, topic: &str, direction| -> Result<&str, FragmentError> {
            let spec = &d.tasks[id];
            let sig = catalog.tasks.get(&spec.implementation).ok_or_else(|| {
                FragmentError::MissingImplementation {
                    task: spec.name.clone(),
                    implementation: spec.implementation.clone(),
                }
            })?;
            let list = match direction {
                PortDirection::Write => &sig.writes,
                PortDirection::Read => &sig.reads,
            };
            list.iter()
                .find(|(declared, _)| spec.topic(declared) == topic)
                .map(|(_, ty)| *ty)
                .ok_or_else(|| FragmentError::PortNotDeclared {
                    task: spec.name.clone(),
                    implementation: spec.implementation.clone(),
                    topic: topic.to_string(),
                    direction,
                })
        };
        let mut ports: Vec<FragmentPort> = Vec::new();
        for ch in &d.channels {
            let mut roles: Vec<(usize, PortDirection)> = Vec::new();
            if in_app(ch.writer) {
                roles.push((ch.writer, PortDirection::Write));
            }
            for &r in ch.readers.iter().filter(|&&r| in_app(r)) {
                roles.push((r, PortDirection::Read));
            }
            for (id, direction) in roles {
                let type_name = declared_type(id, &ch.topic, direction)?;
                // Several readers of one app with one type are one port.
                if ports.iter().any(|p| {
                    p.topic == ch.topic && p.direction == direction && p.type_name == type_name
                }) {
                    continue;
                }
                let layout =
                    catalog
                        .types
                        .get(type_name)
                        .ok_or_else(|| FragmentError::UnknownType {
                            topic: ch.topic.clone(),
                            type_name: type_name.to_string(),
                        })?;
                ports.push(FragmentPort {
                    topic: ch.topic.clone(),
                    direction,
                    type_name: type_name.to_string(),
                    layout: Layout {
                        structure: layouts.get(type_name).cloned(),
                        ..Layout::from(*layout)
                    },
                });
            }
        }
        Ok(Fragment {
            app: app.to_string(),
            version,
            version_label: version_label.to_string(),
            tasks,
            ports,
        })
    }
}

/// Why a fragment could not be taken from a deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FragmentError {
    UnknownApp {
        app: String,
        known: Vec<String>,
    },
    UnknownType {
        topic: String,
        type_name: String,
    },
    /// The catalog (the shipped executable's) does not implement a task of the app.
    MissingImplementation {
        task: String,
        implementation: String,
    },
    /// The task's implementation declares no port that the instance maps onto `topic`,
    /// though the deployment connects the task there.
    PortNotDeclared {
        task: String,
        implementation: String,
        topic: String,
        direction: PortDirection,
    },
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FragmentError::UnknownApp { app, known } => write!(
                f,
                "app `{app}` is not in the manifest; its apps are: {}",
                known.join(", ")
            ),
            FragmentError::UnknownType { topic, type_name } => write!(
                f,
                "topic `{topic}`: type `{type_name}` is not linked into this binary, so its layout is unknown"
            ),
            FragmentError::MissingImplementation {
                task,
                implementation,
            } => write!(
                f,
                "task `{task}` runs task implementation `{implementation}`, which the executable does not implement"
            ),
            FragmentError::PortNotDeclared {
                task,
                implementation,
                topic,
                direction,
            } => write!(
                f,
                "task `{task}` {} topic `{topic}` in the deployment, but its implementation `{implementation}` in the executable declares no such port (after the task's [task.topics])",
                match direction {
                    PortDirection::Write => "writes",
                    PortDirection::Read => "reads",
                }
            ),
        }
    }
}

impl std::error::Error for FragmentError {}

/// One task of the app with the timing the new version asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentTask {
    pub name: String,
    pub period_ns: u64,
    pub offset_ns: u64,
    pub budget_ns: u64,
    pub let_ns: u64,
    pub core: u64,
}

/// Whether the app writes or reads a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PortDirection {
    Write,
    Read,
}

/// One port the new version opens, with the layout of its message type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FragmentPort {
    pub topic: String,
    pub direction: PortDirection,
    pub type_name: String,
    pub layout: Layout,
}

/// An owned copy of a [`Fingerprint`](crate::manifest::Fingerprint), as stored in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    pub name: String,
    pub size: u64,
    pub align: u64,
    pub hash: u64,
    /// Field names, types and offsets (the structure `hash` is taken over).
    pub structure: Option<crate::port::layout::TypeLayout>,
}

impl From<crate::manifest::Fingerprint> for Layout {
    fn from(f: crate::manifest::Fingerprint) -> Self {
        Layout {
            name: f.name.to_string(),
            size: f.size as u64,
            align: f.align as u64,
            hash: f.hash,
            structure: None,
        }
    }
}

/// Message type name → its structural layout.
pub type Layouts = std::collections::BTreeMap<String, crate::port::layout::TypeLayout>;

impl Layout {
    /// Whether both describe the same type: name, size, alignment and structural hash (the
    /// hash covers the structure, which is carried only to explain a difference).
    pub fn same_type(&self, other: &Layout) -> bool {
        (&self.name, self.size, self.align, self.hash)
            == (&other.name, other.size, other.align, other.hash)
    }

    /// The first field that differs, when both sides carry their structure.
    pub fn difference(&self, other: &Layout) -> Option<crate::port::layout::LayoutDifference> {
        self.structure
            .as_ref()?
            .first_difference(other.structure.as_ref()?)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (size {}, align {}, layout {:016x})",
            self.name, self.size, self.align, self.hash
        )
    }
}
