//! Raw manifest + catalog + machine → validated [`Deployment`].
//!
//! Owns: every rule that relates one value to another, to the catalog of linked task
//! implementations and message types, or to the machine: unique names, references
//! between sections, timing (`0 < budget <= let <= period`, `offset < period`), cores,
//! one writer per topic, port signatures, chains, modes, and the size limits that keep
//! plans finite. A `[[task]]` is an instance of a task implementation (`impl`, else its own
//! name); its ports are the implementation's declared ports moved onto the topics its
//! `[task.topics]` maps them to, and every port rule (channels, writers, types) is checked
//! on those mapped topics, while everything else refers to the instance by its name.
//!
//! It must never read files, clocks or TOML: it sees only the raw model `parse` produced
//! and the catalog, both plain data. It never stops at the first
//! error; a value that failed a rule is left out of the rules that depend on it, so one
//! mistake is reported once, not again by every rule downstream.

use std::collections::{BTreeMap, BTreeSet};

use super::model::{
    limits, AppSpec, Catalog, ChainSpec, ChannelSpec, Deployment, Escalation, FaultPolicy,
    ModeSpec, OtaSpec, OverrunPolicy, ParamDecl, ParamKind, ParamValue, Probation, ProbationLimits,
    ScalarKind, Supervision, TaskId, TaskSignature, TaskSpec, WakeSpec,
};
use super::parse::{
    closest, At, Optional, RawApp, RawChain, RawChannel, RawEscalation, RawFault, RawKey,
    RawManifest, RawMode, RawOverrun, RawScopedKey, RawTask, Section,
};
use super::source::{Diagnostics, MAX_REPORTED_ERRORS};
use crate::port::MAX_READERS_PER_TOPIC;
use crate::time::format_ns;

/// Most names one message lists when it says which ones exist.
const MAX_LISTED_NAMES: usize = 12;

/// Checks `raw` and builds the deployment; `None` when anything is wrong (the reasons are
/// in `cx`). `cores` is the number of logical CPUs of this machine.
pub(super) fn validate(
    cx: &mut Diagnostics<'_>,
    raw: &RawManifest,
    source: &str,
    catalog: &Catalog,
    cores: usize,
) -> Option<Deployment> {
    let mut check = Check {
        cx,
        raw,
        catalog,
        machine_cores: cores,
        instances: Vec::new(),
    };
    check.sections_present();
    let deployment_cores = check.deployment_cores();
    let apps = Names::collect(
        check.cx,
        "app",
        raw.apps
            .iter()
            .map(|a| (a.name.as_ref(), &a.section, "name")),
        duplicate_name,
    );
    let modes = Names::collect(
        check.cx,
        "mode",
        raw.modes
            .iter()
            .map(|m| (m.name.as_ref(), &m.section, "name")),
        duplicate_name,
    );
    check.section_counts();
    let tasks = Names::collect(
        check.cx,
        "task",
        raw.tasks
            .iter()
            .map(|t| (t.name.as_ref(), &t.section, "name")),
        duplicate_name,
    );
    let topics = Names::collect(
        check.cx,
        "channel",
        raw.channels
            .iter()
            .map(|c| (c.topic.as_ref(), &c.section, "topic")),
        duplicate_topic,
    );
    let names = AllNames {
        apps,
        modes,
        tasks,
        topics,
    };

    check.instances = raw.tasks.iter().map(|t| check.instance(t)).collect();
    let checked: Vec<CheckedTask> = raw
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| check.task(i, t, &names, deployment_cores.as_ref()))
        .collect();
    let channels: Vec<Option<ChannelSpec>> = raw
        .channels
        .iter()
        .map(|c| check.channel(c, &names))
        .collect();
    check.task_ports(&names);
    // Nothing refers to chains by name; collecting them only reports duplicates.
    Names::collect(
        check.cx,
        "chain",
        raw.chains
            .iter()
            .map(|c| (c.name.as_ref(), &c.section, "name")),
        duplicate_name,
    );
    let links = Links::of(raw);
    let chains: Vec<Option<ChainSpec>> = raw
        .chains
        .iter()
        .map(|c| check.chain(c, &names, &links))
        .collect();
    let mode_specs: Vec<Option<ModeSpec>> =
        raw.modes.iter().map(|m| check.mode(m, &names)).collect();
    let supervision: Vec<Option<Supervision>> = raw
        .apps
        .iter()
        .map(|a| check.supervision(a, &names))
        .collect();
    let default_mode = check.default_mode();
    let update_safe_modes = check.update_safe_modes(&names);
    let ota = check.ota(source);
    let wake = check.wake(deployment_cores.as_ref());
    let hyperperiod_ns = check.hyperperiod(&checked);
    if let Some(h) = hyperperiod_ns {
        check.jobs_per_core(h, &checked, &names);
    }

    if check.cx.has_errors() {
        return None;
    }
    let deployment = raw.deployment.as_ref()?;
    Some(Deployment {
        name: deployment.name.as_ref()?.value.clone(),
        source: source.to_string(),
        cores: deployment_cores?.into_iter().collect::<Option<Vec<_>>>()?,
        priority: deployment.priority.as_ref()?.value,
        apps: raw
            .apps
            .iter()
            .zip(&supervision)
            .map(|(a, s)| {
                Some(AppSpec {
                    name: a.name.as_ref()?.value.clone(),
                    executable: a.executable.as_ref()?.value.clone(),
                    supervision: (*s)?,
                })
            })
            .collect::<Option<Vec<_>>>()?,
        tasks: checked
            .into_iter()
            .map(|c| c.spec)
            .collect::<Option<Vec<_>>>()?,
        channels: channels.into_iter().collect::<Option<Vec<_>>>()?,
        chains: chains.into_iter().collect::<Option<Vec<_>>>()?,
        modes: mode_specs.into_iter().collect::<Option<Vec<_>>>()?,
        default_mode: default_mode?,
        update_safe_modes: update_safe_modes?,
        hyperperiod_ns: hyperperiod_ns?,
        ota: ota?,
        wake: wake?,
    })
}

/// The state of one validation pass.
struct Check<'c, 'a, 'r> {
    cx: &'c mut Diagnostics<'a>,
    raw: &'r RawManifest,
    catalog: &'r Catalog,
    machine_cores: usize,
    /// Per `[[task]]` (file order): the implementation it runs and its ports on this
    /// instance's topics; `None` when the implementation is unknown or the mapping is bad
    /// (reported where it is written).
    instances: Vec<Option<Instance<'r>>>,
}

/// One task instance: its implementation and the ports it opens, after `[task.topics]`.
struct Instance<'r> {
    implementation: &'r str,
    signature: &'r TaskSignature,
    reads: Vec<InstancePort<'r>>,
    writes: Vec<InstancePort<'r>>,
}

/// A port of an instance: the topic the implementation declares and the one it uses.
struct InstancePort<'r> {
    declared: &'r str,
    topic: &'r str,
    type_name: &'static str,
}

impl InstancePort<'_> {
    /// `` `topic` (Type) ``, and the declared topic when the instance maps it elsewhere.
    fn describe(&self) -> String {
        if self.declared == self.topic {
            format!("`{}` ({})", self.topic, self.type_name)
        } else {
            format!(
                "`{}` ({}, its port `{}`)",
                self.topic, self.type_name, self.declared
            )
        }
    }
}

impl Instance<'_> {
    /// How messages name the code of task `task`: `task `x`'s implementation` for a task
    /// named after its implementation, `task `x` (implementation `radar`)` otherwise.
    fn who(&self, task: &str) -> String {
        if self.implementation == task {
            format!("task `{task}`'s implementation")
        } else {
            format!("task `{task}` (implementation `{}`)", self.implementation)
        }
    }
}

/// A hint for two writers on one topic: how the second one gets a topic of its own, when it
/// still uses its implementation's declared topic.
fn own_topic_hint(task: &str, port: &InstancePort<'_>) -> String {
    if port.declared == port.topic {
        format!(
            "; to run both, give task `{task}` a topic of its own under its [task.topics], e.g. {} = \"{task}_{}\"",
            port.declared, port.declared
        )
    } else {
        String::new()
    }
}

/// The declared names of every kind that other sections refer to.
struct AllNames<'r> {
    apps: Names<'r>,
    modes: Names<'r>,
    tasks: Names<'r>,
    topics: Names<'r>,
}

/// A task after its own checks: the spec when everything about it is valid, and the
/// values later rules (hyperperiod, jobs per core) need even when something else is not.
struct CheckedTask {
    spec: Option<TaskSpec>,
    period_ns: Option<At<u64>>,
    core: Option<usize>,
    path: String,
}

impl<'r> Check<'_, '_, 'r> {
    /// A manifest without tasks, apps or modes cannot run; say so once per missing kind
    /// instead of letting every reference to them fail.
    fn sections_present(&mut self) {
        let raw = self.raw;
        if raw.apps.is_empty() {
            self.cx.error(
                0,
                "app",
                "no [[app]] declared; every task belongs to an app, e.g. [[app]] name = \"main\"",
            );
        }
        if raw.tasks.is_empty() {
            self.cx.error(
                0,
                "task",
                "no [[task]] declared; a deployment needs at least one periodic task",
            );
        }
        if raw.modes.is_empty() {
            self.cx.error(
                0,
                "mode",
                "no [[mode]] declared; declare at least one, e.g. [[mode]] name = \"run\", default = true, tasks = [...]",
            );
        }
    }

    /// Tasks, modes and apps are each bounded: a section past its limit is an error at the
    /// first entry beyond it, never a value clamped later where it is packed.
    fn section_counts(&mut self) {
        let raw = self.raw;
        let sections = raw.tasks.iter().map(|t| &t.section);
        self.count_limit("tasks", sections.collect(), limits::MAX_TASKS);
        let sections = raw.modes.iter().map(|m| &m.section);
        self.count_limit("modes", sections.collect(), limits::MAX_MODES);
        let sections = raw.apps.iter().map(|a| &a.section);
        self.count_limit("apps", sections.collect(), limits::MAX_APPS);
    }

    fn count_limit(&mut self, what: &str, sections: Vec<&Section>, limit: usize) {
        if let Some(first_extra) = sections.get(limit) {
            self.cx.error(
                first_extra.at,
                first_extra.path.clone(),
                format!(
                    "the manifest declares {} {what}, {} more than the limit of {limit} {what}",
                    sections.len(),
                    sections.len() - limit,
                ),
            );
        }
    }

    /// `deployment.cores`: each a core of this machine, none twice, at least one. The
    /// result lists the cores in manifest order (`None` for an invalid entry), or is
    /// `None` when the list itself is unusable; task cores are then only checked against
    /// the machine.
    fn deployment_cores(&mut self) -> Option<Vec<Option<usize>>> {
        let deployment = self.raw.deployment.as_ref()?;
        let list = deployment.cores.as_ref()?;
        if list.value.is_empty() {
            self.cx.error(
                list.at,
                "deployment.cores",
                "the list of cores is empty; name the cores the deployment may use, e.g. cores = [0, 1]",
            );
        }
        let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
        let mut out = Vec::with_capacity(list.value.len());
        for core in &list.value {
            if let Some(first_at) = seen.get(&core.value) {
                let line = self.cx.line(*first_at);
                self.cx.error(
                    core.at,
                    "deployment.cores",
                    format!("core {} is listed twice (first on line {line})", core.value),
                );
                out.push(None);
                continue;
            }
            seen.insert(core.value, core.at);
            out.push(self.machine_core(core, "deployment.cores"));
        }
        Some(out)
    }

    /// `wake` and `[deployment.wake_by_core]`: every overridden core is one of `cores`,
    /// and none is named twice.
    fn wake(&mut self, cores: Option<&Vec<Option<usize>>>) -> Option<WakeSpec> {
        let deployment = self.raw.deployment.as_ref()?;
        let default = deployment.wake.as_ref()?.value;
        let listed: Vec<u64> = cores
            .map(|c| c.iter().flatten().map(|&c| c as u64).collect())
            .unwrap_or_default();
        let mut by_core = BTreeMap::new();
        let mut ok = true;
        for (core, w) in &deployment.wake_by_core {
            let field = format!("deployment.wake_by_core.{}", core.value);
            if cores.is_some() && !listed.contains(&core.value) {
                self.cx.error(
                    core.at,
                    &field,
                    format!(
                        "core {} is not one of the deployment's cores {listed:?}; wake_by_core names cores from `cores`",
                        core.value
                    ),
                );
                ok = false;
                continue;
            }
            if by_core.insert(core.value as usize, w.value).is_some() {
                self.cx.error(
                    core.at,
                    &field,
                    format!("core {} is named twice", core.value),
                );
                ok = false;
            }
        }
        ok.then_some(WakeSpec { default, by_core })
    }

    /// A core number this machine has, as an index.
    fn machine_core(&mut self, core: &At<u64>, field: &str) -> Option<usize> {
        if core.value > limits::MAX_CORE as u64 {
            self.cx.error(
                core.at,
                field,
                format!(
                    "core {} is above {}, the highest core takt's traces and health records can name",
                    core.value,
                    limits::MAX_CORE
                ),
            );
            return None;
        }
        match usize::try_from(core.value) {
            Ok(c) if c < self.machine_cores => Some(c),
            _ => {
                let have = match self.machine_cores {
                    0 => "no cores".to_string(),
                    1 => "1 core: core 0".to_string(),
                    n => format!("{n} cores: 0..={}", n - 1),
                };
                self.cx.error(
                    core.at,
                    field,
                    format!(
                        "core {} does not exist on this machine, which has {have}",
                        core.value
                    ),
                );
                None
            }
        }
    }

    /// The implementation task `t` runs (`impl`, else its name) and its ports after
    /// `[task.topics]`. Reports an unknown implementation, a mapping key that is not a declared
    /// port of it, and two ports of one direction landing on one topic.
    fn instance(&mut self, t: &'r RawTask) -> Option<Instance<'r>> {
        let catalog = self.catalog;
        let (implementation, given) = match &t.implementation {
            Optional::Given(i) => (i, true),
            Optional::Invalid => return None,
            Optional::Absent => (t.name.as_ref()?, false),
        };
        let Some((key, signature)) = catalog.tasks.get_key_value(&implementation.value) else {
            let registered = catalog.tasks.keys().map(String::as_str);
            let hint = did_you_mean(self.cx, &implementation.value, registered.clone());
            if given {
                let list = implementations_listing(catalog);
                self.cx.error(
                    implementation.at,
                    t.section.field("impl"),
                    format!(
                        "no task implementation `{}` is registered{hint}; {list}",
                        implementation.value
                    ),
                );
            } else {
                let list = listing(
                    "registered task implementations",
                    registered,
                    catalog.tasks.len(),
                );
                self.cx.error(
                    implementation.at,
                    t.section.field("name"),
                    format!(
                        "no task implementation is registered under the name `{}`{hint}; {list} (a task named otherwise runs one of them with impl = \"...\")",
                        implementation.value
                    ),
                );
            }
            return None;
        };
        let implementation = key.as_str();
        let mut ok = true;
        let declared_ports = || {
            signature
                .reads
                .iter()
                .map(|(topic, ty)| format!("`{topic}` (reads {ty})"))
                .chain(
                    signature
                        .writes
                        .iter()
                        .map(|(topic, ty)| format!("`{topic}` (writes {ty})")),
                )
                .collect::<Vec<_>>()
        };
        let mut mapped: BTreeMap<&str, &At<String>> = BTreeMap::new();
        for m in &t.topics {
            let field = t.section.field(&format!("topics.{}", m.declared.value));
            let declared = signature
                .reads
                .iter()
                .chain(&signature.writes)
                .any(|(topic, _)| *topic == m.declared.value);
            if !declared {
                let names = signature
                    .reads
                    .iter()
                    .chain(&signature.writes)
                    .map(|(topic, _)| topic.as_str());
                let hint = did_you_mean(self.cx, &m.declared.value, names);
                let ports = declared_ports();
                let list = if ports.is_empty() {
                    "it declares no ports".to_string()
                } else {
                    format!("its declared ports: {}", ports.join(", "))
                };
                self.cx.error(
                    m.declared.at,
                    field,
                    format!(
                        "task implementation `{implementation}` declares no port on topic `{}`{hint}; the keys of [task.topics] are the implementation's declared port topics; {list}",
                        m.declared.value
                    ),
                );
                ok = false;
                continue;
            }
            mapped.insert(&m.declared.value, &m.topic);
        }
        let ports = |list: &'r [(String, &'static str)]| -> Vec<InstancePort<'r>> {
            list.iter()
                .map(|(declared, ty)| InstancePort {
                    declared,
                    topic: mapped.get(declared.as_str()).map_or(declared, |m| &m.value),
                    type_name: ty,
                })
                .collect()
        };
        let reads = ports(&signature.reads);
        let writes = ports(&signature.writes);
        for (list, verb) in [(&reads, "reads"), (&writes, "writes")] {
            let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
            for p in list.iter() {
                match seen.get(p.topic) {
                    Some(first) if *first != p.declared => {
                        // Point at the mapping that made the collision.
                        let culprit = [p.declared, *first]
                            .into_iter()
                            .find_map(|port| Some((port, mapped.get(port)?)));
                        let (at, field) = match culprit {
                            Some((port, m)) => (m.at, t.section.field(&format!("topics.{port}"))),
                            None => (t.section.at, t.section.field("topics")),
                        };
                        self.cx.error(
                            at,
                            field,
                            format!(
                                "ports `{first}` and `{}` of task implementation `{implementation}` both land on topic `{}` after mapping; an instance {verb} each topic through one port, so map them to different topics",
                                p.declared, p.topic
                            ),
                        );
                        ok = false;
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(p.topic, p.declared);
                    }
                }
            }
        }
        ok.then_some(Instance {
            implementation,
            signature,
            reads,
            writes,
        })
    }

    /// The instance of the task named `name` (the first task of that name).
    fn instance_named(&self, names: &AllNames<'_>, name: &str) -> Option<&Instance<'r>> {
        self.instances.get(names.tasks.first(name)?)?.as_ref()
    }

    /// `[task.params]` against the parameters the implementation declares (when it declares
    /// any): no unknown name, the declared type, inside the declared range, and every
    /// parameter without a default given.
    fn task_params(&mut self, index: usize, t: &RawTask) {
        let Some(Some(instance)) = self.instances.get(index) else {
            return; // unknown implementations are reported at `impl` or `name`
        };
        let (implementation, sig) = (instance.implementation, instance.signature);
        if sig.params.is_empty() {
            return;
        }
        let declared = &sig.params;
        for (key, value) in &t.params {
            let field = t.section.field(&format!("params.{key}"));
            let Some(decl) = declared.iter().find(|d| d.name == *key) else {
                let names = declared.iter().map(|d| d.name.as_str());
                let hint = did_you_mean(self.cx, key, names.clone());
                let list = listing("declared parameters", names, declared.len());
                self.cx.error(
                    value.at,
                    field,
                    format!(
                        "task implementation `{implementation}` declares no parameter `{key}`{hint}; {list}"
                    ),
                );
                continue;
            };
            if let Err(why) = param_fits(decl, &value.value) {
                self.cx.error(value.at, field, why);
            }
        }
        for d in declared {
            if d.default.is_none() && !t.params.contains_key(&d.name) {
                self.cx.error(
                    t.section.at,
                    t.section.field("params"),
                    format!(
                        "parameter `{}` ({}) is required by task implementation `{implementation}` and has no default; add it under [task.params]",
                        d.name,
                        d.kind.name(),
                    ),
                );
            }
        }
    }

    /// With catalogs read from executables, a task must belong to an app whose executable
    /// implements it: that is the process that will host it.
    fn task_owner(&mut self, index: usize, t: &RawTask) {
        let (Some(name), Some(app)) = (&t.name, &t.app) else {
            return;
        };
        let Some(Some(instance)) = self.instances.get(index) else {
            return; // unknown implementations are reported at `impl` or `name`
        };
        let implementation = instance.implementation;
        let Some(owners) = self.catalog.owners.get(implementation) else {
            return; // a registry linked into one process hosts every task it has
        };
        let what = if implementation == name.value {
            format!("task `{}`", name.value)
        } else {
            format!(
                "task implementation `{implementation}` (of task `{}`)",
                name.value
            )
        };
        if !owners.contains(&app.value) {
            self.cx.error(
                app.at,
                t.section.field("app"),
                format!(
                    "app `{}` does not implement {what} (its executable does not declare it); it is implemented by {}",
                    app.value,
                    owners
                        .iter()
                        .map(|o| format!("app `{o}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
        }
    }

    fn task(
        &mut self,
        index: usize,
        t: &RawTask,
        names: &AllNames<'_>,
        deployment_cores: Option<&Vec<Option<usize>>>,
    ) -> CheckedTask {
        let section = &t.section;
        let app = t
            .app
            .as_ref()
            .and_then(|a| names.apps.resolve(self.cx, a, &section.field("app")));
        self.task_owner(index, t);
        self.task_params(index, t);
        let instance = self.instances.get(index).and_then(Option::as_ref);
        let implementation = instance.map(|i| i.implementation.to_string());
        let topics: BTreeMap<String, String> = t
            .topics
            .iter()
            .map(|m| (m.declared.value.clone(), m.topic.value.clone()))
            .collect();

        let period_ns = t.period_ns.as_ref().and_then(|p| {
            if p.value == 0 {
                self.cx.error(
                    p.at,
                    section.field("period"),
                    format!(
                        "the period must be greater than 0; the shortest allowed is {}",
                        format_ns(limits::MIN_PERIOD_NS)
                    ),
                );
                None
            } else if p.value < limits::MIN_PERIOD_NS {
                self.cx.error(
                    p.at,
                    section.field("period"),
                    format!(
                        "period {} is below the shortest allowed period {}",
                        format_ns(p.value),
                        format_ns(limits::MIN_PERIOD_NS)
                    ),
                );
                None
            } else {
                Some(p.clone())
            }
        });
        let period = period_ns.as_ref().map(|p| p.value);

        let offset = t.offset_ns.as_ref().and_then(|o| match period {
            Some(p) if o.value >= p => {
                self.cx.error(
                    o.at,
                    section.field("offset"),
                    format!(
                        "offset {} must be less than the period {}",
                        format_ns(o.value),
                        format_ns(p)
                    ),
                );
                None
            }
            _ => Some(o.value),
        });

        let budget = t.budget_ns.as_ref().and_then(|b| {
            if b.value == 0 {
                self.cx.error(
                    b.at,
                    section.field("budget"),
                    "the budget must be greater than 0: it is the time the plan reserves for every job",
                );
                None
            } else {
                Some(b.value)
            }
        });

        // The LET window defaults to the period; then it sits where the table starts.
        let let_window = match &t.let_ns {
            Optional::Absent => period.map(|p| (p, section.at, true)),
            Optional::Invalid => None,
            Optional::Given(l) => Some((l.value, l.at, false)),
        };
        let let_ns = let_window.and_then(|(l, at, defaulted)| {
            if defaulted {
                return Some(l);
            }
            if l == 0 {
                self.cx.error(
                    at,
                    section.field("let"),
                    "the LET window must be greater than 0; allowed: budget <= let <= period",
                );
                return None;
            }
            match period {
                Some(p) if l > p => {
                    self.cx.error(
                        at,
                        section.field("let"),
                        format!(
                            "the LET window {} exceeds the period {}; allowed: budget <= let <= period",
                            format_ns(l),
                            format_ns(p)
                        ),
                    );
                    None
                }
                _ => Some(l),
            }
        });
        let budget = match (budget, let_ns, &t.budget_ns) {
            (Some(b), Some(l), Some(at)) if b > l => {
                let which = if matches!(t.let_ns, Optional::Absent) {
                    "the LET window (which defaults to the period)"
                } else {
                    "the LET window"
                };
                self.cx.error(
                    at.at,
                    section.field("budget"),
                    format!(
                        "budget {} exceeds {which} {}; allowed: 0 < budget <= let <= period",
                        format_ns(b),
                        format_ns(l)
                    ),
                );
                None
            }
            (b, _, _) => b,
        };

        let core = t.core.as_ref().and_then(|c| {
            let field = section.field("core");
            let index = self.machine_core(c, &field)?;
            match deployment_cores {
                Some(list) if !list.contains(&Some(index)) => {
                    let valid: Vec<String> =
                        list.iter().flatten().map(|c| c.to_string()).collect();
                    self.cx.error(
                        c.at,
                        field,
                        format!(
                            "core {index} is not in deployment.cores [{}]; a task runs on one of the deployment's cores",
                            valid.join(", ")
                        ),
                    );
                    None
                }
                _ => Some(index),
            }
        });

        let overrun = t.overrun.as_ref().and_then(|o| match &o.value {
            RawOverrun::Report => Some(OverrunPolicy::Report),
            RawOverrun::SkipNext => Some(OverrunPolicy::SkipNext),
            RawOverrun::Escalate(mode) => names
                .modes
                .resolve(
                    self.cx,
                    &At {
                        value: mode.clone(),
                        at: o.at,
                    },
                    &section.field("overrun"),
                )
                .map(OverrunPolicy::Escalate),
        });
        let on_fault = t.on_fault.as_ref().and_then(|o| match &o.value {
            RawFault::Report => Some(FaultPolicy::Report),
            RawFault::Escalate(mode) => names
                .modes
                .resolve(
                    self.cx,
                    &At {
                        value: mode.clone(),
                        at: o.at,
                    },
                    &section.field("on_fault"),
                )
                .map(FaultPolicy::Escalate),
        });

        let line = self.cx.line(section.at);
        let spec = (|| {
            Some(TaskSpec {
                name: t.name.as_ref()?.value.clone(),
                implementation: implementation?,
                topics,
                app: app?,
                period_ns: period?,
                offset_ns: offset?,
                budget_ns: budget?,
                let_ns: let_ns?,
                core: core?,
                overrun: overrun?,
                on_fault: on_fault?,
                params: t
                    .params
                    .iter()
                    .map(|(k, v)| (k.clone(), v.value.clone()))
                    .collect(),
                line,
            })
        })();
        CheckedTask {
            spec,
            period_ns,
            core,
            path: section.path.clone(),
        }
    }

    fn channel(&mut self, c: &RawChannel, names: &AllNames<'_>) -> Option<ChannelSpec> {
        let section = &c.section;
        let catalog = self.catalog;
        if let Some(ty) = &c.type_name {
            if !catalog.types.contains_key(ty.value.as_str()) {
                let registered = catalog.types.keys().copied();
                let hint = did_you_mean(self.cx, &ty.value, registered.clone());
                let list = listing("registered message types", registered, catalog.types.len());
                self.cx.error(
                    ty.at,
                    section.field("type"),
                    format!("unknown message type `{}`{hint}; {list}", ty.value),
                );
            }
        }
        let writer = c.writer.as_ref().and_then(|w| {
            names
                .tasks
                .resolve(self.cx, w, &section.field("writer"))
                .map(|id| (w, id))
        });
        if let (Some(topic), Some(ty), Some((w, _))) = (&c.topic, &c.type_name, writer) {
            let field = section.field("writer");
            self.signature_port(names, w, &topic.value, &ty.value, true, &field);
        }

        let mut readers = Vec::new();
        let mut all_resolved = true;
        if let Some(list) = &c.readers {
            if list.value.len() > MAX_READERS_PER_TOPIC {
                self.cx.error(
                    list.at,
                    section.field("readers"),
                    format!(
                        "{} readers, {} more than the {MAX_READERS_PER_TOPIC} a topic supports",
                        list.value.len(),
                        list.value.len() - MAX_READERS_PER_TOPIC
                    ),
                );
                all_resolved = false;
            }
            let field = section.field("readers");
            let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
            for r in &list.value {
                if let Some(first_at) = seen.get(r.value.as_str()) {
                    let line = self.cx.line(*first_at);
                    self.cx.error(
                        r.at,
                        field.clone(),
                        format!(
                            "task `{}` is listed twice among the readers (first on line {line})",
                            r.value
                        ),
                    );
                    all_resolved = false;
                    continue;
                }
                seen.insert(&r.value, r.at);
                match names.tasks.resolve(self.cx, r, &field) {
                    Some(id) => {
                        readers.push(id);
                        if let (Some(topic), Some(ty)) = (&c.topic, &c.type_name) {
                            self.signature_port(names, r, &topic.value, &ty.value, false, &field);
                        }
                    }
                    None => all_resolved = false,
                }
            }
        } else {
            all_resolved = false;
        }

        if !all_resolved {
            return None;
        }
        Some(ChannelSpec {
            topic: c.topic.as_ref()?.value.clone(),
            type_name: c.type_name.as_ref()?.value.clone(),
            writer: writer?.1,
            readers,
        })
    }

    /// Checks that the implementation of `task` has a port on `topic` (after the instance's
    /// `[task.topics]`) in the channel's role, with the channel's type.
    fn signature_port(
        &mut self,
        names: &AllNames<'_>,
        task: &At<String>,
        topic: &str,
        channel_type: &str,
        is_writer: bool,
        field: &str,
    ) {
        // An unknown implementation or a bad mapping is reported once, where it is written.
        let Some(instance) = self.instance_named(names, &task.value) else {
            return;
        };
        let (ports, verb) = if is_writer {
            (&instance.writes, "write")
        } else {
            (&instance.reads, "read")
        };
        let who = instance.who(&task.value);
        let message = match ports.iter().find(|p| p.topic == topic) {
            None => {
                let declared: Vec<String> = ports.iter().map(InstancePort::describe).collect();
                let declared = if declared.is_empty() {
                    format!("it {verb}s no topic")
                } else {
                    format!("it {verb}s {}", declared.join(", "))
                };
                format!("{who} does not {verb} topic `{topic}`; {declared}")
            }
            Some(p) if p.type_name != channel_type => {
                let port = if p.declared == p.topic {
                    String::new()
                } else {
                    format!(" (its port `{}`)", p.declared)
                };
                format!(
                    "the type does not match: {who} {verb}s topic `{topic}`{port} as `{}`, but the channel carries `{channel_type}`",
                    p.type_name
                )
            }
            Some(_) => return,
        };
        self.cx.error(task.at, field, message);
    }

    /// Every port a task instance opens (its implementation's, after `[task.topics]`) must be
    /// connected by a channel with this task in that role, or the task fails when it opens
    /// the port at start.
    fn task_ports(&mut self, names: &AllNames<'_>) {
        let raw = self.raw;
        // Topics written by an instance but declared by no channel: the first task seen
        // writing each, to name both when a second one does.
        let mut implied_writers: BTreeMap<&str, &At<String>> = BTreeMap::new();
        let mut errors: Vec<(usize, String, String)> = Vec::new();
        for (i, t) in raw.tasks.iter().enumerate() {
            let Some(name) = &t.name else { continue };
            // A duplicate is reported as such; its ports are the first one's.
            if names.tasks.first(&name.value) != Some(i) {
                continue;
            }
            let Some(Some(instance)) = self.instances.get(i) else {
                continue;
            };
            let who = instance.who(&name.value);
            let field = t.section.field("name");
            let mut error = |message: String| errors.push((name.at, field.clone(), message));
            for port in &instance.writes {
                let (topic, ty) = (port.topic, port.type_name);
                let declared_as = if port.declared == topic {
                    String::new()
                } else {
                    format!(" (its port `{}`)", port.declared)
                };
                match names.topics.first(topic).and_then(|c| raw.channels.get(c)) {
                    None => {
                        if let Some(other) = implied_writers.get(topic) {
                            let line = self.cx.line(other.at);
                            let hint = own_topic_hint(&name.value, port);
                            error(format!(
                                "two writers on topic `{topic}`: task `{}` (line {line}) and {who}{declared_as} both write it; a topic has exactly one writer{hint}",
                                other.value
                            ));
                        } else {
                            implied_writers.insert(topic, name);
                            error(format!(
                                "{who} writes topic `{topic}` ({ty}){declared_as}, but no [[channel]] connects it, so the task would fail at start; add a [[channel]] with topic = \"{topic}\", type = \"{ty}\", writer = \"{}\"",
                                name.value
                            ));
                        }
                    }
                    Some(channel) => {
                        if let Some(w) = &channel.writer {
                            if w.value != name.value {
                                let line = self.cx.line(channel.section.at);
                                let hint = own_topic_hint(&name.value, port);
                                error(format!(
                                    "two writers on topic `{topic}`: the channel on line {line} names `{}` as its writer, but {who} writes it too{declared_as}; a topic has exactly one writer{hint}",
                                    w.value
                                ));
                            }
                        }
                    }
                }
            }
            for port in &instance.reads {
                let (topic, ty) = (port.topic, port.type_name);
                let declared_as = if port.declared == topic {
                    String::new()
                } else {
                    format!(" (its port `{}`)", port.declared)
                };
                match names.topics.first(topic).and_then(|c| raw.channels.get(c)) {
                    None => error(format!(
                        "{who} reads topic `{topic}` ({ty}){declared_as}, but no [[channel]] connects it, so the task would fail at start"
                    )),
                    Some(channel) => {
                        let listed = channel
                            .readers
                            .as_ref()
                            .is_some_and(|r| r.value.iter().any(|r| r.value == name.value));
                        // A readers list with a type error is reported already.
                        if !listed && channel.readers.is_some() {
                            let line = self.cx.line(channel.section.at);
                            error(format!(
                                "{who} reads topic `{topic}`{declared_as}, but the channel on line {line} does not list it among its readers, so the task would fail at start"
                            ));
                        }
                    }
                }
            }
        }
        for (at, field, message) in errors {
            self.cx.error(at, field, message);
        }
    }

    fn chain(
        &mut self,
        c: &RawChain,
        names: &AllNames<'_>,
        links: &Links<'_>,
    ) -> Option<ChainSpec> {
        let section = &c.section;
        let field = section.field("tasks");
        let list = c.tasks.as_ref()?;
        if list.value.len() < 2 {
            self.cx.error(
                list.at,
                field.clone(),
                format!(
                    "a chain needs at least two tasks, each linked to the next by a channel; found {}",
                    list.value.len()
                ),
            );
        }
        let ids: Vec<Option<TaskId>> = list
            .value
            .iter()
            .map(|t| names.tasks.resolve(self.cx, t, &field))
            .collect();
        let mut topics = Vec::new();
        for (pair, id_pair) in list.value.windows(2).zip(ids.windows(2)) {
            let [producer, consumer] = pair else { continue };
            if id_pair.iter().any(Option::is_none) {
                continue;
            }
            let producer_name = producer.value.as_str();
            match links.by_pair.get(&(producer_name, consumer.value.as_str())) {
                Some(topic) => topics.push(topic.to_string()),
                None => {
                    let writes = match links.written_by.get(producer_name) {
                        None => format!("`{producer_name}` writes no channel"),
                        Some(written) => {
                            let shown: Vec<String> = written
                                .iter()
                                .take(MAX_LISTED_NAMES)
                                .map(|t| format!("`{t}`"))
                                .collect();
                            format!("`{producer_name}` writes {}", shown.join(", "))
                        }
                    };
                    self.cx.error(
                        consumer.at,
                        field.clone(),
                        format!(
                            "`{}` -> `{}` is not linked by a channel: no [[channel]] has writer = \"{}\" and lists \"{}\" among its readers ({writes})",
                            producer.value, consumer.value, producer.value, consumer.value
                        ),
                    );
                }
            }
        }
        if list.value.len() < 2 || topics.len() + 1 != list.value.len() {
            return None;
        }
        Some(ChainSpec {
            name: c.name.as_ref()?.value.clone(),
            tasks: ids.into_iter().collect::<Option<Vec<_>>>()?,
            topics,
            precedence: c.precedence.as_ref()?.value,
            max_data_age_ns: requirement(&c.max_data_age_ns)?,
            max_reaction_ns: requirement(&c.max_reaction_ns)?,
        })
    }

    fn mode(&mut self, m: &RawMode, names: &AllNames<'_>) -> Option<ModeSpec> {
        let field = m.section.field("tasks");
        let list = m.tasks.as_ref()?;
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut ids = Vec::with_capacity(list.value.len());
        for t in &list.value {
            if let Some(first_at) = seen.get(t.value.as_str()) {
                let line = self.cx.line(*first_at);
                self.cx.error(
                    t.at,
                    field.clone(),
                    format!(
                        "task `{}` is listed twice in this mode (first on line {line})",
                        t.value
                    ),
                );
                ids.push(None);
                continue;
            }
            seen.insert(&t.value, t.at);
            ids.push(names.tasks.resolve(self.cx, t, &field));
        }
        Some(ModeSpec {
            name: m.name.as_ref()?.value.clone(),
            tasks: ids.into_iter().collect::<Option<Vec<_>>>()?,
        })
    }

    /// An app's restart policy and escalation, with the escalation's mode resolved.
    fn supervision(&mut self, a: &RawApp, names: &AllNames<'_>) -> Option<Supervision> {
        let escalate = a.escalate.as_ref().and_then(|e| match &e.value {
            RawEscalation::Stop => Some(Escalation::Stop),
            RawEscalation::Mode(mode) => names
                .modes
                .resolve(
                    self.cx,
                    &At {
                        value: mode.clone(),
                        at: e.at,
                    },
                    &a.section.field("escalate"),
                )
                .map(Escalation::Mode),
        });
        Some(Supervision {
            restart: a.restart.as_ref()?.value,
            max_restarts: a.max_restarts.as_ref()?.value,
            restart_window_ns: a.restart_window_ns.as_ref()?.value,
            escalate: escalate?,
        })
    }

    /// Exactly one mode is active at start.
    fn default_mode(&mut self) -> Option<usize> {
        let modes = &self.raw.modes;
        let first = modes.first()?;
        let defaults: Vec<(usize, &RawMode)> = modes
            .iter()
            .enumerate()
            .filter(|(_, m)| m.default.as_ref().is_some_and(|d| d.value))
            .collect();
        // A `default` with a type error is reported already; do not claim it is missing.
        let unreadable = modes.iter().any(|m| m.default.is_none());
        match defaults.as_slice() {
            [] if !unreadable => {
                self.cx.error(
                    first.section.at,
                    first.section.field("default"),
                    "no mode is marked default = true; exactly one mode must be, the one active at start",
                );
                None
            }
            [] => None,
            [(index, _)] => Some(*index),
            [(_, first_default), rest @ ..] => {
                let line = self.cx.line(first_default.section.at);
                let first_name = section_name(first_default.name.as_ref());
                for (_, m) in rest {
                    let at = m.default.as_ref().map_or(m.section.at, |d| d.at);
                    self.cx.error(
                        at,
                        m.section.field("default"),
                        format!(
                            "several modes are marked default = true: mode {first_name} (line {line}) already is; exactly one mode may be the default"
                        ),
                    );
                }
                None
            }
        }
    }

    fn update_safe_modes(&mut self, names: &AllNames<'_>) -> Option<Vec<usize>> {
        let list = self.raw.deployment.as_ref()?.update_safe_modes.as_ref()?;
        let field = "deployment.update_safe_modes";
        let mut out = Vec::with_capacity(list.value.len());
        let mut ok = true;
        for m in &list.value {
            match names.modes.resolve(self.cx, m, field) {
                Some(id) if out.contains(&id) => {
                    self.cx
                        .error(m.at, field, format!("mode `{}` is listed twice", m.value));
                    ok = false;
                }
                Some(id) => out.push(id),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    /// `[ota]`: no trusted key twice, one probation form, and the state directory
    /// resolved against the manifest's directory. All defaults when the table is absent.
    fn ota(&mut self, source: &str) -> Option<OtaSpec> {
        let Some(raw) = &self.raw.ota else {
            return Some(OtaSpec::default());
        };
        let field = "ota.trusted_keys";
        let keys = raw.trusted_keys.as_ref().map(|list| {
            let mut seen: BTreeMap<[u8; 32], (usize, usize)> = BTreeMap::new();
            let mut out = Vec::with_capacity(list.value.len());
            for key in &list.value {
                let RawKey { index, bytes } = &key.value;
                if let Some((first_index, first_at)) = seen.get(bytes) {
                    let line = self.cx.line(*first_at);
                    self.cx.error(
                        key.at,
                        format!("{field}[{index}]"),
                        format!(
                            "this key is listed twice: it is also {field}[{first_index}] (line {line}); list each trusted key once"
                        ),
                    );
                    continue;
                }
                seen.insert(*bytes, (*index, key.at));
                out.push(*bytes);
            }
            out
        });
        // Both forms given is reported by `parse`; either form invalid is too.
        let probation = match (&raw.probation_ns, &raw.probation_hyperperiods) {
            (Optional::Absent, Optional::Absent) => Some(Probation::default()),
            (Optional::Given(d), Optional::Absent) => Some(Probation::Duration { ns: d.value }),
            (Optional::Absent, Optional::Given(n)) => Some(Probation::Hyperperiods(n.value)),
            _ => None,
        };
        let state_dir = match &raw.state_dir {
            Optional::Absent => Some(None),
            Optional::Invalid => None,
            Optional::Given(dir) => {
                // Lexical only: the manifest is never resolved against the file system
                // (the directory need not exist yet; the CLI creates it).
                let dir = std::path::Path::new(&dir.value);
                let base = std::path::Path::new(source).parent();
                Some(Some(match base {
                    Some(base) if dir.is_relative() => base.join(dir),
                    _ => dir.to_path_buf(),
                }))
            }
        };
        let keys = keys?;
        // `[[ota.key]]`: no key twice (here or in trusted_keys), every app named exists.
        let scoped = raw.scoped_keys.as_ref().map(|list| {
            let mut ok = true;
            let mut out = Vec::with_capacity(list.len());
            for k in list {
                let RawScopedKey { index, bytes, apps } = &k.value;
                let field = format!("ota.key[{index}]");
                if keys.contains(bytes) || out.iter().any(|(b, _)| b == bytes) {
                    self.cx.error(
                        k.at,
                        format!("{field}.public"),
                        "this key is listed twice (also in ota.trusted_keys or another [[ota.key]]); list each signing key once, with its scope".to_string(),
                    );
                    ok = false;
                    continue;
                }
                let mut names = None;
                if let Some(apps) = apps {
                    let mut v = Vec::with_capacity(apps.len());
                    for (i, a) in apps.iter().enumerate() {
                        if !self.raw.apps.iter().any(|x| {
                            x.name.as_ref().is_some_and(|n| n.value == a.value)
                        }) {
                            let known: Vec<&str> = self
                                .raw
                                .apps
                                .iter()
                                .filter_map(|x| x.name.as_ref().map(|n| n.value.as_str()))
                                .collect();
                            self.cx.error(
                                a.at,
                                format!("{field}.apps[{i}]"),
                                format!(
                                    "no app `{}` in this manifest; the apps are: {}",
                                    a.value,
                                    known.join(", ")
                                ),
                            );
                            ok = false;
                        }
                        v.push(a.value.clone());
                    }
                    names = Some(v);
                }
                out.push((*bytes, names));
            }
            ok.then_some(out)
        });
        let roots = raw.root_keys.as_ref().map(|list| {
            let mut out: Vec<[u8; 32]> = Vec::new();
            for key in &list.value {
                let RawKey { index, bytes } = &key.value;
                if keys.contains(bytes) || out.contains(bytes) {
                    self.cx.error(
                        key.at,
                        format!("ota.root_keys[{index}]"),
                        "this key is listed twice or is also a signing key; a root key signs key documents only, keep it apart from the keys that sign bundles".to_string(),
                    );
                    continue;
                }
                out.push(*bytes);
            }
            out
        });
        let given = |o: &Optional<u64>| match o {
            Optional::Absent => Some(None),
            Optional::Given(v) => Some(Some(v.value)),
            Optional::Invalid => None,
        };
        let defaults = ProbationLimits::default();
        let limits = ProbationLimits {
            max_overruns: given(&raw.probation_max_overruns)?.unwrap_or(defaults.max_overruns),
            max_faults: given(&raw.probation_max_faults)?.unwrap_or(defaults.max_faults),
            exec_p99_max_percent: given(&raw.probation_exec_p99_max_percent)?
                .unwrap_or(defaults.exec_p99_max_percent),
            heartbeat_timeout_ns: given(&raw.probation_heartbeat_timeout_ns)?,
        };
        Some(OtaSpec {
            trusted_keys: keys,
            probation: probation?,
            state_dir: state_dir?,
            scoped_keys: scoped.flatten()?,
            root_keys: roots?,
            limits,
        })
    }

    /// LCM of all valid periods, computed with overflow checks and bounded by the limit;
    /// the first period that pushes it over is reported.
    fn hyperperiod(&mut self, tasks: &[CheckedTask]) -> Option<u64> {
        let mut lcm: u64 = 1;
        let mut any = false;
        for t in tasks {
            let Some(period) = &t.period_ns else { continue };
            any = true;
            let next = lcm
                .checked_div(gcd(lcm, period.value))
                .and_then(|l| l.checked_mul(period.value));
            match next {
                Some(n) if n <= limits::MAX_HYPERPERIOD_NS => lcm = n,
                _ => {
                    let reached = match next {
                        Some(n) => format!("would become {}", format_ns(n)),
                        None => "would overflow 64-bit nanoseconds".to_string(),
                    };
                    self.cx.error(
                        period.at,
                        format!("{}.period", t.path),
                        format!(
                            "with period {} the hyperperiod (LCM of all task periods) {reached}, above the limit of {}; choose periods with more common factors (e.g. 5ms, 10ms, 20ms)",
                            format_ns(period.value),
                            format_ns(limits::MAX_HYPERPERIOD_NS)
                        ),
                    );
                    return None;
                }
            }
        }
        any.then_some(lcm)
    }

    /// Every mode's table on one core holds at most `MAX_JOBS_PER_CORE` jobs per
    /// hyperperiod.
    fn jobs_per_core(&mut self, hyperperiod_ns: u64, tasks: &[CheckedTask], names: &AllNames<'_>) {
        for m in &self.raw.modes {
            let Some(list) = &m.tasks else { continue };
            let mut jobs: BTreeMap<usize, u64> = BTreeMap::new();
            let mut counted = BTreeSet::new();
            for name in &list.value {
                let Some(id) = names.tasks.first(&name.value) else {
                    continue;
                };
                if !counted.insert(id) {
                    continue;
                }
                let Some(t) = tasks.get(id) else { continue };
                if let (Some(period), Some(core)) = (&t.period_ns, t.core) {
                    // period >= MIN_PERIOD_NS > 0 and hyperperiod <= 10 s: no overflow.
                    *jobs.entry(core).or_insert(0) += hyperperiod_ns / period.value;
                }
            }
            for (core, count) in jobs {
                let limit = limits::MAX_JOBS_PER_CORE as u64;
                if count > limit {
                    self.cx.error(
                        list.at,
                        m.section.field("tasks"),
                        format!(
                            "in this mode core {core} would hold {count} jobs per hyperperiod ({}), {} more than the limit of {limit}; lengthen periods or spread the tasks over more cores",
                            format_ns(hyperperiod_ns),
                            count - limit
                        ),
                    );
                }
            }
        }
    }
}

/// Which tasks the channels link, indexed once so checking chains stays linear.
struct Links<'r> {
    /// `(writer, reader)` → topic of the first channel (in file order) linking them.
    by_pair: BTreeMap<(&'r str, &'r str), &'r str>,
    /// Writer → the topics it writes, in file order.
    written_by: BTreeMap<&'r str, Vec<&'r str>>,
}

impl<'r> Links<'r> {
    fn of(raw: &'r RawManifest) -> Self {
        let mut by_pair = BTreeMap::new();
        let mut written_by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for ch in &raw.channels {
            let (Some(writer), Some(topic)) = (&ch.writer, &ch.topic) else {
                continue;
            };
            written_by
                .entry(writer.value.as_str())
                .or_default()
                .push(topic.value.as_str());
            for reader in ch.readers.iter().flat_map(|r| &r.value) {
                by_pair
                    .entry((writer.value.as_str(), reader.value.as_str()))
                    .or_insert(topic.value.as_str());
            }
        }
        Links {
            by_pair,
            written_by,
        }
    }
}

/// Declared names of one kind: name → index and position of the first section with it.
struct Names<'r> {
    kind: &'static str,
    first: BTreeMap<&'r str, (usize, usize)>,
}

/// How a duplicate is reported: `(kind, name, line of the first)` → message.
type DuplicateMessage = fn(&str, &str, usize) -> String;

/// An optional chain requirement as the model holds it: `Some(None)` when absent, `None`
/// when invalid (already reported by `parse`).
fn requirement(r: &Optional<u64>) -> Option<Option<u64>> {
    match r {
        Optional::Absent => Some(None),
        Optional::Invalid => None,
        Optional::Given(v) => Some(Some(v.value)),
    }
}

fn duplicate_name(kind: &str, name: &str, first_line: usize) -> String {
    format!(
        "duplicate {kind} name `{name}`; the first {kind} with this name is on line {first_line}"
    )
}

fn duplicate_topic(_kind: &str, topic: &str, first_line: usize) -> String {
    format!(
        "two writers on topic `{topic}`: the channel on line {first_line} already declares it; a topic has exactly one writer (list more tasks under `readers` instead)"
    )
}

impl<'r> Names<'r> {
    /// Indexes the names in file order, reporting every repeat. Items are
    /// `(name, section, the key that holds the name)`.
    fn collect(
        cx: &mut Diagnostics<'_>,
        kind: &'static str,
        items: impl Iterator<Item = (Option<&'r At<String>>, &'r Section, &'static str)>,
        duplicate: DuplicateMessage,
    ) -> Self {
        let mut first: BTreeMap<&'r str, (usize, usize)> = BTreeMap::new();
        for (i, (name, section, key)) in items.enumerate() {
            let Some(name) = name else { continue };
            match first.get(name.value.as_str()) {
                Some((_, first_at)) => {
                    let line = cx.line(*first_at);
                    cx.error(
                        name.at,
                        section.field(key),
                        duplicate(kind, &name.value, line),
                    );
                }
                None => {
                    first.insert(&name.value, (i, name.at));
                }
            }
        }
        Names { kind, first }
    }

    fn first(&self, name: &str) -> Option<usize> {
        self.first.get(name).map(|(i, _)| *i)
    }

    /// The index of the section `name` refers to, or an error naming the known ones.
    fn resolve(&self, cx: &mut Diagnostics<'_>, name: &At<String>, field: &str) -> Option<usize> {
        if let Some(i) = self.first(&name.value) {
            return Some(i);
        }
        let known = self.first.keys().copied();
        let hint = did_you_mean(cx, &name.value, known.clone());
        let list = listing(&format!("declared {}s", self.kind), known, self.first.len());
        let list = if self.first.is_empty() {
            format!("no [[{}]] is declared", self.kind)
        } else {
            list
        };
        cx.error(
            name.at,
            field,
            format!("unknown {} `{}`{hint}; {list}", self.kind, name.value),
        );
        None
    }
}

/// A " (did you mean `x`?)" hint, or nothing. Suggestions cost an edit distance per
/// candidate, so past the errors that will be shown a broken file gets none: checking a
/// manifest stays fast whatever it contains.
fn did_you_mean<'c>(
    cx: &Diagnostics<'_>,
    word: &str,
    candidates: impl Iterator<Item = &'c str>,
) -> String {
    if cx.error_count() >= MAX_REPORTED_ERRORS {
        return String::new();
    }
    closest(word, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// `"what: a, b, c"` for the `total` names, shortened past [`MAX_LISTED_NAMES`].
fn listing<'n>(what: &str, names: impl Iterator<Item = &'n str>, total: usize) -> String {
    if total == 0 {
        return format!("there are no {what}");
    }
    let shown: Vec<String> = names
        .take(MAX_LISTED_NAMES)
        .map(|n| format!("`{n}`"))
        .collect();
    let more = total.saturating_sub(MAX_LISTED_NAMES);
    if more > 0 {
        format!("{what}: {} and {more} more", shown.join(", "))
    } else {
        format!("{what}: {}", shown.join(", "))
    }
}

/// What the catalog implements, for an unknown `impl`: each implementation with the apps
/// whose executables declare it, when the catalog comes from executables.
fn implementations_listing(catalog: &Catalog) -> String {
    if catalog.tasks.is_empty() {
        return "there are no registered task implementations".to_string();
    }
    let shown: Vec<String> = catalog
        .tasks
        .keys()
        .take(MAX_LISTED_NAMES)
        .map(|name| match catalog.owners.get(name) {
            Some(apps) if !apps.is_empty() => {
                let apps: Vec<String> = apps.iter().map(|a| format!("`{a}`")).collect();
                format!("`{name}` (app {})", apps.join(", "))
            }
            _ => format!("`{name}`"),
        })
        .collect();
    let more = catalog.tasks.len().saturating_sub(MAX_LISTED_NAMES);
    let what = if catalog.owners.is_empty() {
        "registered task implementations"
    } else {
        "the apps' executables implement"
    };
    if more > 0 {
        format!("{what}: {} and {more} more", shown.join(", "))
    } else {
        format!("{what}: {}", shown.join(", "))
    }
}

fn section_name(name: Option<&At<String>>) -> String {
    name.map_or_else(|| "(unnamed)".to_string(), |n| format!("`{}`", n.value))
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Whether `value` has the declared type and lies in the declared range; the reason if not.
fn param_fits(decl: &ParamDecl, value: &ParamValue) -> Result<(), String> {
    let number = |v: &ParamValue| -> Option<f64> {
        match v {
            ParamValue::Int(i) => Some(*i as f64),
            ParamValue::Float(f) => f.parse().ok(),
            _ => None,
        }
    };
    let scalar_ok = |k: ScalarKind, v: &ParamValue| {
        matches!(
            (k, v),
            (ScalarKind::Bool, ParamValue::Bool(_))
                | (ScalarKind::Int, ParamValue::Int(_))
                | (ScalarKind::Float, ParamValue::Int(_) | ParamValue::Float(_))
                | (ScalarKind::Str, ParamValue::Str(_))
        )
    };
    let kind_ok = match (decl.kind, value) {
        (ParamKind::Bool, v) => scalar_ok(ScalarKind::Bool, v),
        (ParamKind::Int, v) => scalar_ok(ScalarKind::Int, v),
        (ParamKind::Float, v) => scalar_ok(ScalarKind::Float, v),
        (ParamKind::Str, v) => scalar_ok(ScalarKind::Str, v),
        (ParamKind::Array(k), ParamValue::Array(items)) => items.iter().all(|i| scalar_ok(k, i)),
        (ParamKind::Array(_), _) => false,
    };
    if !kind_ok {
        let found = match value {
            ParamValue::Array(items) => match items.first() {
                Some(first) => format!("an array of {}s", first.kind_name()),
                None => "an empty array".to_string(),
            },
            v => kind_with_article(v.kind_name()),
        };
        return Err(format!(
            "parameter `{}` is declared as {}, found {found}",
            decl.name,
            kind_with_article(&decl.kind.name())
        ));
    }
    let values: Vec<&ParamValue> = match value {
        ParamValue::Array(items) => items.iter().collect(),
        v => vec![v],
    };
    for v in values {
        let Some(x) = number(v) else { continue };
        let below = decl.min.is_some_and(|min| x < min);
        let above = decl.max.is_some_and(|max| x > max);
        if below || above {
            let bound = |b: Option<f64>| b.map_or_else(String::new, |b| b.to_string());
            return Err(format!(
                "parameter `{}` = {x} is outside the allowed range {}..={}",
                decl.name,
                bound(decl.min),
                bound(decl.max)
            ));
        }
    }
    Ok(())
}

fn kind_with_article(kind: &str) -> String {
    if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {kind}")
    } else {
        format!("a {kind}")
    }
}
