//! The stage checks: may this verified bundle replace its app in this running deployment?
//!
//! Owns the pure decision taken before anything is written into a slot: anti-rollback,
//! interface compatibility, and schedulability and the chain requirements with the new
//! timing (a bundle may move its tasks' releases and LET windows, and so the chain bounds).
//! It must never do I/O or change the running deployment; it returns the deployment the
//! bundle would give.

use std::fmt;

use super::bundle::{Bundle, Layout, Layouts, PortDirection};
use crate::manifest::{limits, Catalog, Deployment};
use crate::plan;

/// What is known about the app's installed version (from its journal).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Installed {
    /// The committed version counter; a bundle must be newer.
    pub version: u64,
    /// Versions that failed probation; they are never activated again.
    pub bad_versions: Vec<u64>,
}

/// Why a verified bundle is refused. The running system is untouched in every case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StageRefusal {
    UnknownApp {
        app: String,
    },
    /// Anti-rollback: the bundle is not newer than what is installed.
    NotNewer {
        app: String,
        bundle_version: u64,
        installed_version: u64,
    },
    KnownBad {
        app: String,
        version: u64,
    },
    UnknownTopic {
        topic: String,
    },
    /// The bundle writes a topic another app writes, or reads one its app does not read.
    PortRoleMismatch {
        topic: String,
        direction: PortDirection,
    },
    FingerprintMismatch {
        topic: String,
        bundle: Box<Layout>,
        running: Box<Layout>,
    },
    UnknownTask {
        task: String,
    },
    TaskOfOtherApp {
        task: String,
        app: String,
    },
    MissingTask {
        task: String,
    },
    BadTiming {
        task: String,
        reason: String,
    },
    Unschedulable {
        reasons: Vec<String>,
    },
    /// With the bundle's timing, a chain's exact LET bound exceeds its manifest requirement.
    ChainRequirements {
        violations: Vec<plan::RequirementViolation>,
    },
}

impl fmt::Display for StageRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StageRefusal as R;
        match self {
            R::UnknownApp { app } => write!(f, "app `{app}` is not part of the running deployment"),
            R::NotNewer {
                app,
                bundle_version,
                installed_version,
            } => write!(
                f,
                "anti-rollback: app `{app}` version {bundle_version} is not newer than the installed version {installed_version}"
            ),
            R::KnownBad { app, version } => write!(
                f,
                "app `{app}` version {version} failed probation before and is marked bad"
            ),
            R::UnknownTopic { topic } => write!(
                f,
                "port `{topic}`: no such topic in the running deployment"
            ),
            R::PortRoleMismatch { topic, direction } => write!(
                f,
                "port `{topic}`: the bundle {} it, but in the running deployment this app does not",
                match direction {
                    PortDirection::Write => "writes",
                    PortDirection::Read => "reads",
                }
            ),
            R::FingerprintMismatch {
                topic,
                bundle,
                running,
            } => {
                write!(
                    f,
                    "port `{topic}`: layout fingerprint {bundle} differs from the running peers' {running}"
                )?;
                if let Some(d) = bundle.difference(running) {
                    write!(f, ": {d} (bundle vs running)")?;
                }
                Ok(())
            }
            R::UnknownTask { task } => {
                write!(f, "task `{task}` is not part of the running deployment")
            }
            R::TaskOfOtherApp { task, app } => {
                write!(f, "task `{task}` belongs to app `{app}`, not to the bundle's app")
            }
            R::MissingTask { task } => write!(
                f,
                "task `{task}` of the running app is missing from the bundle"
            ),
            R::BadTiming { task, reason } => write!(f, "task `{task}`: {reason}"),
            R::Unschedulable { reasons } => {
                write!(f, "the deployment with the bundle's budgets is not schedulable:")?;
                for r in reasons {
                    write!(f, "\n  {r}")?;
                }
                Ok(())
            }
            R::ChainRequirements { violations } => {
                write!(
                    f,
                    "the deployment with the bundle's timing does not meet its chain requirements:"
                )?;
                for v in violations {
                    write!(f, "\n  {v}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for StageRefusal {}

/// Checks `bundle` against the running deployment `d`, the linked `catalog` of message
/// layouts and the app's installed-version record. Returns the deployment with the
/// bundle's timing applied, already planned and verified.
pub fn check_stage(
    d: &Deployment,
    catalog: &Catalog,
    layouts: &Layouts,
    installed: &Installed,
    bundle: &Bundle,
) -> Result<Deployment, StageRefusal> {
    let fr = &bundle.fragment;
    let app = d
        .apps
        .iter()
        .position(|a| a.name == fr.app)
        .ok_or_else(|| StageRefusal::UnknownApp {
            app: fr.app.clone(),
        })?;
    if fr.version <= installed.version {
        return Err(StageRefusal::NotNewer {
            app: fr.app.clone(),
            bundle_version: fr.version,
            installed_version: installed.version,
        });
    }
    if installed.bad_versions.contains(&fr.version) {
        return Err(StageRefusal::KnownBad {
            app: fr.app.clone(),
            version: fr.version,
        });
    }
    check_ports(d, catalog, layouts, app, bundle)?;
    let updated = apply_timing(d, app, bundle)?;
    let p = plan::synthesize(&updated)
        .map_err(|e| StageRefusal::Unschedulable { reasons: e.reasons })?;
    plan::verify(&updated, &p).map_err(|violations| StageRefusal::Unschedulable {
        reasons: violations.into_iter().map(|v| v.message).collect(),
    })?;
    let violations = plan::check_requirements(&updated, &p);
    if !violations.is_empty() {
        return Err(StageRefusal::ChainRequirements { violations });
    }
    Ok(updated)
}

fn check_ports(
    d: &Deployment,
    catalog: &Catalog,
    layouts: &Layouts,
    app: usize,
    bundle: &Bundle,
) -> Result<(), StageRefusal> {
    let in_app = |t: usize| d.tasks[t].app == app;
    for port in &bundle.fragment.ports {
        let ch = d
            .channel(&port.topic)
            .ok_or_else(|| StageRefusal::UnknownTopic {
                topic: port.topic.clone(),
            })?;
        let role_ok = match port.direction {
            PortDirection::Write => in_app(ch.writer),
            PortDirection::Read => ch.readers.iter().any(|&r| in_app(r)),
        };
        if !role_ok {
            return Err(StageRefusal::PortRoleMismatch {
                topic: port.topic.clone(),
                direction: port.direction,
            });
        }
        // The running peers were validated against the linked catalog, so the catalog's
        // layout of the channel's type is the layout the peers use.
        let running = catalog
            .types
            .get(ch.type_name.as_str())
            .map(|f| Layout {
                structure: layouts.get(ch.type_name.as_str()).cloned(),
                ..Layout::from(*f)
            })
            .ok_or_else(|| StageRefusal::UnknownTopic {
                topic: port.topic.clone(),
            })?;
        if !port.layout.same_type(&running) || port.type_name != ch.type_name {
            return Err(StageRefusal::FingerprintMismatch {
                topic: port.topic.clone(),
                bundle: Box::new(port.layout.clone()),
                running: Box::new(running),
            });
        }
    }
    Ok(())
}

fn apply_timing(d: &Deployment, app: usize, bundle: &Bundle) -> Result<Deployment, StageRefusal> {
    let mut updated = d.clone();
    for t in &bundle.fragment.tasks {
        let id = d
            .task_id(&t.name)
            .ok_or_else(|| StageRefusal::UnknownTask {
                task: t.name.clone(),
            })?;
        let owner = d.tasks[id].app;
        if owner != app {
            return Err(StageRefusal::TaskOfOtherApp {
                task: t.name.clone(),
                app: d.apps[owner].name.clone(),
            });
        }
        check_timing(d, t)?;
        let spec = &mut updated.tasks[id];
        spec.period_ns = t.period_ns;
        spec.offset_ns = t.offset_ns;
        spec.budget_ns = t.budget_ns;
        spec.let_ns = t.let_ns;
        // check_timing showed the core is one of the deployment's cores.
        spec.core = t.core as usize;
    }
    for spec in d.tasks.iter().filter(|s| s.app == app) {
        if !bundle.fragment.tasks.iter().any(|t| t.name == spec.name) {
            return Err(StageRefusal::MissingTask {
                task: spec.name.clone(),
            });
        }
    }
    let mut hyperperiod_ns = 1u64;
    for spec in &updated.tasks {
        hyperperiod_ns = lcm(hyperperiod_ns, spec.period_ns)
            .filter(|&h| h <= limits::MAX_HYPERPERIOD_NS)
            .ok_or_else(|| StageRefusal::BadTiming {
                task: spec.name.clone(),
                reason: format!(
                    "its period {} ns makes the hyperperiod exceed {} ns",
                    spec.period_ns,
                    limits::MAX_HYPERPERIOD_NS
                ),
            })?;
    }
    updated.hyperperiod_ns = hyperperiod_ns;
    Ok(updated)
}

fn check_timing(d: &Deployment, t: &super::bundle::FragmentTask) -> Result<(), StageRefusal> {
    let bad = |reason: String| StageRefusal::BadTiming {
        task: t.name.clone(),
        reason,
    };
    if t.period_ns < limits::MIN_PERIOD_NS {
        return Err(bad(format!(
            "period {} ns is shorter than the minimum {} ns",
            t.period_ns,
            limits::MIN_PERIOD_NS
        )));
    }
    if t.offset_ns >= t.period_ns {
        return Err(bad(format!(
            "offset {} ns must be below the period {} ns",
            t.offset_ns, t.period_ns
        )));
    }
    if t.budget_ns == 0 || t.budget_ns > t.let_ns || t.let_ns > t.period_ns {
        return Err(bad(format!(
            "need 0 < budget <= let <= period, got budget {} ns, let {} ns, period {} ns",
            t.budget_ns, t.let_ns, t.period_ns
        )));
    }
    if !d.cores.iter().any(|&c| c as u64 == t.core) {
        return Err(bad(format!(
            "core {} is not one of the deployment's cores {:?}",
            t.core, d.cores
        )));
    }
    Ok(())
}

fn lcm(a: u64, b: u64) -> Option<u64> {
    fn gcd(mut a: u64, mut b: u64) -> u64 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    if a == 0 || b == 0 {
        return None;
    }
    (a / gcd(a, b)).checked_mul(b)
}
