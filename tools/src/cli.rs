//! The argument shape of the `takt` command line (clap derive). One verb per file beside it.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "takt",
    version,
    about = "Deterministic real-time middleware runtime: check, plan and run deployments",
    long_about = "takt turns a deployment manifest into a static time-triggered schedule, checks it offline, \
                  and runs it with every task pinned to its core under SCHED_FIFO, passing data through \
                  zero-copy iceoryx2 ports with Logical Execution Time semantics."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a ready app crate DIR/NAME outside any workspace: an executable with an example
    /// task pair, a manifest naming it, and a README with the commands.
    New {
        /// The app's name: crate, executable and deployment (lowercase letters, digits, `_`, `-`).
        name: String,
        /// Where the crate directory is created.
        #[arg(long, value_name = "DIR", default_value = ".")]
        dir: PathBuf,
        /// The takt runtime crate to build against (default: the source tree this binary was built from).
        #[arg(long, value_name = "PATH")]
        takt: Option<PathBuf>,
    },
    /// Validate a manifest: exit 0 when valid, exit 2 listing every error (file:line:column, field, what is allowed).
    Check {
        /// Deployment manifest (TOML).
        manifest: PathBuf,
    },
    /// Synthesize and verify the static schedule: per-core tables, utilization, hyperperiod, chain bounds.
    Plan {
        manifest: PathBuf,
        // --- takt plan --svg ---
        /// Also draw one mode's tables as a Gantt chart (SVG) into FILE.
        #[arg(long, value_name = "FILE")]
        svg: Option<PathBuf>,
        /// The mode drawn by --svg (default: the manifest's default mode).
        #[arg(long, value_name = "NAME", requires = "svg")]
        mode: Option<String>,
        // --- end takt plan --svg ---
    },
    /// Run the deployment: pinned SCHED_FIFO dispatchers (or virtual time), then a summary and `digest: <hex>`.
    Run {
        manifest: PathBuf,
        /// How long to run, e.g. 10s, 3s, 500ms (rounded up to whole hyperperiods).
        #[arg(long, default_value = "10s")]
        duration: String,
        /// real: CLOCK_MONOTONIC with SCHED_FIFO dispatchers; sim: virtual time as fast as the CPU
        /// allows, the app processes in lockstep (same outputs as real time).
        #[arg(long, value_enum, default_value_t = ClockArg::Real)]
        clock: ClockArg,
        /// Run at normal priority with a loud warning when SCHED_FIFO is not permitted.
        #[arg(long)]
        allow_non_rt: bool,
        /// Inject random execution-time jitter (busy wait, up to half of each task's budget) with this seed.
        #[arg(long, value_name = "SEED")]
        inject_jitter: Option<u64>,
        /// Accepted for scripts; the supervised run prints no live progress.
        #[arg(long, short)]
        quiet: bool,
        /// Record a trace of every job into FILE (read it with `takt trace report|export|plot`).
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        // --- takt lifecycle ---
        /// Refused with the reason: takt links no app, so every app runs in its own
        /// executable's process (programs that link all their tasks use takt::dispatch::run).
        #[arg(long, conflicts_with = "multi_process")]
        single_process: bool,
        /// Supervise one process per app (always the case; kept for scripts): shared epoch,
        /// restarts, control socket (`takt status|mode|stop`). With --trace FILE each app
        /// writes FILE.<app>.
        #[arg(long)]
        multi_process: bool,
        /// The supervisor's control socket (default: /run/takt.sock as root, else /tmp/takt-<uid>.sock).
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
        /// Take over-the-air updates (`takt ota stage|activate|rollback`), keeping every
        /// app's A/B slots and journal under DIR (default: the manifest's `[ota] state_dir`;
        /// without either, updates are off).
        #[arg(long, value_name = "DIR")]
        ota_dir: Option<PathBuf>,
        // --- end takt lifecycle ---
    },
    // --- takt lifecycle ---
    /// Show a running supervisor's apps (pid, state, restarts, heartbeat age, overruns,
    /// version), its current mode and uptime.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// The supervisor's control socket (as given to `takt run --control`).
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// Change a running deployment's mode: every core switches at the same hyperperiod boundary.
    Mode {
        #[command(subcommand)]
        command: ModeCommand,
        /// The supervisor's control socket (as given to `takt run --control`).
        #[arg(long, value_name = "PATH", global = true)]
        control: Option<PathBuf>,
    },
    /// Stop a running deployment gracefully at the next hyperperiod boundary.
    Stop {
        /// The supervisor's control socket (as given to `takt run --control`).
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    // --- end takt lifecycle ---
    // --- takt bench ---
    /// Benchmark takt against its baselines in one run: ports vs raw iceoryx2, release jitter vs
    /// cyclictest, dispatch overhead and allocations, scale, simulated-time speed, OTA bundle
    /// size (full vs delta). Prints a table (figures, ratios, targets) and writes a JSON
    /// report. Targets are reported, never asserted.
    Bench {
        /// A short run of every part (well under a minute), for CI.
        #[arg(long)]
        quick: bool,
        /// Where to write the JSON report.
        #[arg(long, value_name = "FILE", default_value = "takt-bench.json")]
        json: PathBuf,
        /// The ACC demo manifest for the simulated-time part (default: config/acc.toml in the
        /// current directory, else in the source tree this binary was built from).
        #[arg(long, value_name = "FILE")]
        acc_manifest: Option<PathBuf>,
        /// The cyclictest executable of the release-jitter baseline (default: `cyclictest` on PATH).
        #[arg(long, value_name = "FILE")]
        cyclictest: Option<PathBuf>,
    },
    // --- end takt bench ---
    // --- takt trace ---
    /// Analyse trace files of one run (`takt run --trace FILE`): report, Perfetto export, SVG plots.
    Trace {
        #[command(subcommand)]
        command: TraceCommand,
    },
    // --- end takt trace ---
    // --- takt ota ---
    /// Over-the-air updates: make signing keys, sign app bundles, inspect and verify bundles.
    Ota {
        #[command(subcommand)]
        command: OtaCommand,
    },
    // --- end takt ota ---
}

// --- takt trace ---
/// `takt trace` subverbs. FILE... are the trace files of one run (one per process).
#[derive(Subcommand, Debug)]
pub enum TraceCommand {
    /// Per-task lateness, execution time, misses, overruns, skips; per-chain data age and
    /// reaction time next to the plan's bounds; mode switches; lost records. A damaged file
    /// gives a partial report and a warning; an unreadable one exits 2.
    Report {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Print JSON (schema: `## Trace report JSON` in tools/trace/src/report.rs).
        #[arg(long)]
        json: bool,
    },
    /// Write Chrome trace-event JSON for ui.perfetto.dev: a track per core, a slice per job,
    /// flow arrows along declared chains, instants for overruns, skips and mode switches.
    Export {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Where to write the JSON.
        #[arg(long, value_name = "OUT.json")]
        perfetto: PathBuf,
    },
    /// Write SVG histograms (execution time and lateness per task, data age and reaction time
    /// per chain with its bound) and a Gantt timeline of one hyperperiod into DIR.
    Plot {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Directory for the SVG files (created if missing).
        #[arg(long, value_name = "DIR")]
        svg: PathBuf,
        /// The hyperperiod cycle the Gantt chart shows (default: the first full one).
        #[arg(long, value_name = "N")]
        cycle: Option<u64>,
    },
}
// --- end takt trace ---

// --- takt ota ---
/// `takt ota` subverbs.
#[derive(Subcommand, Debug)]
pub enum OtaCommand {
    /// Make an ed25519 signing key: the secret into KEY (mode 0600, refused if KEY exists)
    /// and the public key into KEY.pub, both as hex.
    Keygen {
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
    },
    /// Build and sign a bundle of one app version: the executable, extra files and the
    /// app's manifest fragment (tasks, budgets, ports with the linked types' layouts).
    Sign {
        /// Secret key file from `takt ota keygen`.
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The app (one of the manifest's [[app]] names).
        #[arg(long, value_name = "NAME")]
        app: String,
        /// Version counter; each update must be larger than the installed one.
        #[arg(long, value_name = "N")]
        version: u64,
        /// A version string for people (default: the counter).
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
        /// The app executable (the bundle's first entry, mode 0755).
        #[arg(long, value_name = "FILE")]
        executable: PathBuf,
        /// An extra file, as NAME=PATH (NAME is its relative path in the slot; mode 0644).
        #[arg(long = "file", value_name = "NAME=PATH")]
        files: Vec<String>,
        /// The deployment manifest with the app's new tasks and budgets.
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        #[arg(long, value_name = "BUNDLE")]
        out: PathBuf,
        /// When the bundle stops being installable: a duration from now (`30d`, `12h`,
        /// `90m`, `3600s`) or a UTC time (`2027-01-31T00:00:00Z`). Inside the signed part.
        #[arg(long, default_value = "30d", value_name = "DURATION|RFC3339")]
        expires: String,
        /// A key document from `takt ota keys sign` for the bundle to carry to vehicles.
        #[arg(long, value_name = "FILE")]
        key_doc: Option<PathBuf>,
        /// Make a delta bundle: ship the executable as a binary patch against this one (the
        /// executable of the version installed on the vehicles, stripped the same way).
        /// Staging refuses it on a vehicle whose installed executable differs.
        #[arg(long, value_name = "OLD_EXECUTABLE")]
        delta_from: Option<PathBuf>,
    },
    /// Key documents: signed by a root key (`[ota] root_keys`), they add, re-scope and
    /// revoke bundle-signing keys on vehicles without editing their manifests.
    Keys {
        #[command(subcommand)]
        command: OtaKeysCommand,
    },
    /// Verify a bundle and unpack it into its app's inactive slot, through the running
    /// supervisor (signature, anti-rollback, port fingerprints, schedulability first).
    Stage {
        bundle: PathBuf,
        /// The supervisor's control socket (default: /run/takt.sock as root).
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// Switch an app to its staged version: --hot-swap starts it beside the running one and
    /// switches at a hyperperiod boundary; --at-safe-state waits for an update-safe mode.
    Activate {
        app: String,
        #[arg(
            long,
            conflicts_with = "at_safe_state",
            required_unless_present = "at_safe_state"
        )]
        hot_swap: bool,
        #[arg(long)]
        at_safe_state: bool,
        /// How long --at-safe-state waits for an update-safe mode.
        #[arg(long, default_value = "60s", value_name = "DURATION")]
        timeout: String,
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// Return an app from its version on probation to the installed one (marks it bad).
    Rollback {
        app: String,
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
    },
    /// Every app's slots, versions, update state and last result. From the running
    /// supervisor, or with --manifest and --ota-dir from the state directory itself.
    Status {
        #[arg(long)]
        json: bool,
        #[arg(long, value_name = "PATH")]
        control: Option<PathBuf>,
        /// Read the state directory directly (no supervisor needed); needs --ota-dir or the
        /// manifest's `[ota] state_dir`.
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        ota_dir: Option<PathBuf>,
    },
    /// Show a bundle's app, version, signer, expiry, carried key document, tasks, ports and
    /// entries; with --trusted or --manifest, verify it (signature, scope, expiry, key
    /// document) and refuse it (exit 2) with the reason.
    Inspect {
        bundle: PathBuf,
        /// A trusted public key: 64 hex digits or a KEY.pub file. May be repeated.
        #[arg(long, value_name = "PUBKEY")]
        trusted: Vec<String>,
        /// Take the trusted keys, their scopes and the root keys from this manifest's [ota].
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        /// Also apply the key document installed in this state directory, and show the
        /// installed version of the bundle's app.
        #[arg(long, value_name = "DIR")]
        ota_dir: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `takt ota keys` subverbs.
#[derive(Subcommand, Debug)]
pub enum OtaKeysCommand {
    /// Sign a key document with a root key: a version larger than every earlier one, keys
    /// to add (optionally scoped to apps) and keys to revoke.
    Sign {
        /// The root key's secret file (from `takt ota keygen`).
        #[arg(long, value_name = "KEY")]
        root_key: PathBuf,
        /// The document's version; vehicles refuse any document older than theirs.
        #[arg(long, value_name = "N")]
        version: u64,
        /// A signing key to add: PUBKEY (every app) or PUBKEY=app1,app2 (PUBKEY is 64 hex
        /// digits or a KEY.pub file). May be repeated.
        #[arg(long = "add", value_name = "PUBKEY[=APPS]")]
        add: Vec<String>,
        /// A key to revoke (64 hex digits or a KEY.pub file). May be repeated.
        #[arg(long = "revoke", value_name = "PUBKEY")]
        revoke: Vec<String>,
        #[arg(long, value_name = "DOC")]
        out: PathBuf,
    },
    /// Show a key document; with --manifest, verify it against the manifest's root keys.
    Inspect {
        doc: PathBuf,
        #[arg(long, value_name = "FILE")]
        manifest: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Install a key document into a state directory without a running supervisor (it
    /// takes the directory's lock, so a running supervisor refuses it): verified against
    /// the manifest's root keys, never older than the installed one.
    Install {
        doc: PathBuf,
        #[arg(long, value_name = "FILE")]
        manifest: PathBuf,
        /// The state directory (default: the manifest's `[ota] state_dir`).
        #[arg(long, value_name = "DIR")]
        ota_dir: Option<PathBuf>,
    },
}
// --- end takt ota ---

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClockArg {
    Real,
    Sim,
}

// --- takt lifecycle ---
#[derive(Subcommand, Debug)]
pub enum ModeCommand {
    /// Request mode NAME (one of the manifest's [[mode]] names).
    Set { name: String },
}
// --- end takt lifecycle ---
