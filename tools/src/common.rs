//! What every verb shares: loading a manifest against its apps' catalogs (read from their
//! executables: takt links no app), planning, exit codes.

use std::path::Path;

use takt::catalog::{self, DeploymentCatalogs};
use takt::manifest::{self, Catalog, Deployment};
use takt::plan::{self, Plan};

/// Exit code for bad input (manifest, unschedulable set, bad arguments): nothing was started.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code for a run that could not start or failed at run time.
pub const EXIT_RUN_FAILED: u8 = 1;

/// A failed verb: what to print and the exit code.
pub struct Failure {
    pub message: String,
    pub code: u8,
}

impl Failure {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: EXIT_BAD_INPUT,
        }
    }
    pub fn run_failed(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            code: EXIT_RUN_FAILED,
        }
    }
}

/// A deployment validated against the catalogs of its apps' executables.
pub struct Loaded {
    pub d: Deployment,
    /// Every app's catalog as obtained from its executable.
    pub catalogs: DeploymentCatalogs,
    /// Their union, which `d` was validated against.
    pub catalog: Catalog,
}

/// Loads the manifest and validates it against the union of the catalogs its `[[app]]`
/// executables declare (each obtained by the `--takt-catalog` handshake). A missing,
/// non-executable, foreign or incompatible executable is an error at that app.
pub fn load_apps(path: &Path) -> Result<Loaded, Failure> {
    let source = path.display().to_string();
    let mut got = None;
    let d = manifest::load_with(path, manifest::available_cores(), |apps| {
        let (union, all) = catalog::for_apps(&source, apps)?;
        got = Some((all, union.clone()));
        Ok(union)
    })
    .map_err(|e| Failure::bad_input(e.to_string()))?;
    let (catalogs, catalog) = got.ok_or_else(|| {
        Failure::run_failed("internal error: the manifest loaded without its apps' catalogs")
    })?;
    Ok(Loaded {
        d,
        catalogs,
        catalog,
    })
}

/// Synthesizes the plan, re-checks it with the independent verifier, and refuses it when a
/// chain misses a requirement of the manifest (`max_data_age`, `max_reaction`): such a
/// deployment is as unusable as an unschedulable one, so every verb that plans (check,
/// plan, run, ota sign) refuses it with exit code 2 before anything starts.
pub fn plan_verified(d: &Deployment) -> Result<Plan, Failure> {
    let p = plan_without_requirements(d)?;
    requirements_met(d, &p)?;
    Ok(p)
}

/// Every chain requirement of `d` that `p` misses, one sentence each, as bad input.
pub fn requirements_met(d: &Deployment, p: &Plan) -> Result<(), Failure> {
    let violations = plan::check_requirements(d, p);
    if violations.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
    Err(Failure::bad_input(format!(
        "{}: the plan does not meet {} chain requirement{}:\n{}",
        d.source,
        violations.len(),
        if violations.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )))
}

/// Synthesizes the plan and re-checks it with the independent verifier, without judging
/// chain requirements: `takt plan` shows the plan of a deployment that misses one before
/// refusing it, so the integrator sees where the time goes.
pub fn plan_without_requirements(d: &Deployment) -> Result<Plan, Failure> {
    let p = plan::synthesize(d).map_err(|e| {
        Failure::bad_input(format!(
            "{}: the task set is not schedulable:\n{e}",
            d.source
        ))
    })?;
    plan::verify(d, &p).map_err(|violations| {
        let lines: Vec<String> = violations
            .iter()
            .map(|v| format!("  {}", v.message))
            .collect();
        Failure::run_failed(format!(
            "internal error: the synthesized plan failed independent verification:\n{}",
            lines.join("\n")
        ))
    })?;
    Ok(p)
}
