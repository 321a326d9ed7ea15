//! Durable OTA state and bundle trust on the real `takt` binary (issue #12.7, #12.12): the
//! anti-rollback counter survives a deleted journal, a second supervisor on one state
//! directory is refused, a replaced executable with a recomputed stamp or a slot missing a
//! file is detected at start, where the other intact slot runs instead with a report; and
//! the supervisor refuses expired, out-of-scope and revoked bundles at staging.
//!
//! Every #12.7 test here failed on the code before the fix (commit 5fef124): the counter
//! was 0 after the journal was deleted, the second supervisor ran, the re-stamped
//! replacement executable ran, and the deployment with one damaged slot did not start.
//!
//! Owns its temporary directories (key, bundles, manifest copy, state directory, control
//! sockets) and the runs it starts; a guard kills a run a failing test leaves behind.
//! The state directory is prepared with the runtime's own journal API (what an earlier
//! update would have left), then damaged the way an attacker or a bad disk would.
//!
//! Real-time runs need root and SCHED_FIFO; without them every test says SKIPPED by name.
//! Run as `flock /tmp/takt-rt.lock cargo test --release -p takt-cli --test ota_durable`.
#![deny(unsafe_code)]

#[macro_use]
mod common;
use common::OtaFixture as Fixture;
use common::{cli, ok, release_exe, s, takt, text, wait_running, Running, CLI_TIMEOUT};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use takt::ota::bundle::Entry;
use takt::ota::journal::Journal;
use takt::ota::storage::FsStorage;

impl Fixture {
    /// What an earlier update left: `planning` version 1 (the demo's own executable) in
    /// slot a, version 2 (`acc-planning-v2`) committed in slot b.
    fn committed_v2(&self) {
        let entry = |exe: &Path| Entry {
            name: exe
                .file_name()
                .expect("a file")
                .to_string_lossy()
                .into_owned(),
            mode: 0o755,
            bytes: std::fs::read(exe).expect("the executable"),
        };
        std::fs::create_dir_all(self.state()).expect("state dir");
        let j = Journal::install(
            FsStorage::new(self.state()),
            "planning",
            1,
            &[entry(&release_exe("acc-planning"))],
        )
        .expect("install v1");
        drop(j);
        let (mut j, _) = Journal::open(FsStorage::new(self.state()), "planning").expect("open");
        j.stage(2, &[entry(&release_exe("acc-planning-v2"))])
            .expect("stage v2");
        j.activate().expect("activate");
        j.switched().expect("switched");
        j.commit().expect("commit v2");
    }

    fn sign(&self, version: u64, out: &str) -> PathBuf {
        let out = self.path(out);
        ok(&[
            "ota",
            "sign",
            "--key",
            s(&self.key),
            "--app",
            "planning",
            "--version",
            &version.to_string(),
            "--executable",
            s(&release_exe("acc-planning-v2")),
            "--manifest",
            s(&self.manifest),
            "--out",
            s(&out),
        ]);
        out
    }

    fn start(&self, ctl: &Path, duration: &str) -> Running {
        Running::spawn(takt().args([
            "run",
            s(&self.manifest),
            "--multi-process",
            "--duration",
            duration,
            "--quiet",
            "--ota-dir",
            s(&self.state()),
            "--control",
            s(ctl),
        ]))
    }
}

fn planning<'a>(v: &'a Value, key: &str) -> &'a Value {
    v["apps"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x[key] == "planning"))
        .unwrap_or_else(|| panic!("no app planning in {v}"))
}

fn ota_status(ctl: &Path) -> Value {
    let out = ok(&["ota", "status", "--json", "--control", s(ctl)]);
    serde_json::from_str(&out).expect("JSON")
}

#[test]
fn a_deleted_journal_keeps_the_anti_rollback_counter() {
    needs_realtime!("a_deleted_journal_keeps_the_anti_rollback_counter");
    let fx = Fixture::new("durable-journal");
    fx.committed_v2();
    let older = fx.sign(1, "planning-1.takt");
    let same = fx.sign(2, "planning-2.takt");
    std::fs::remove_file(fx.state().join("planning/journal")).expect("delete the journal");

    let ctl = fx.path("ctl.sock");
    let run = fx.start(&ctl, "4s");
    wait_running(&ctl);
    let v = ota_status(&ctl);
    let a = planning(&v, "app");
    assert_eq!(a["installed_version"], 2, "the counter survived: {v}");
    assert_eq!(a["running_version"], 2, "{v}");
    assert!(
        a["last_result"].as_str().unwrap_or("").contains("rebuilt"),
        "the repair is reported in `takt ota status`: {v}"
    );
    // The older and the same signed version: refused by anti-rollback, nothing changed.
    for bundle in [&older, &same] {
        let out = cli(
            &["ota", "stage", s(bundle), "--control", s(&ctl)],
            CLI_TIMEOUT,
        );
        let err = text(&out.stderr);
        assert!(
            !out.status.success(),
            "{} was staged: {err}",
            bundle.display()
        );
        assert!(
            err.contains("anti-rollback") && err.contains("installed version 2"),
            "{err}"
        );
    }
    let out = run.wait(Duration::from_secs(30), "the first run");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("rebuilt"), "the repair is on stderr: {err}");
}

/// An attacker who can write the disk but not read the slot key: replaces slot b's
/// executable and writes a stamp for it with an unkeyed hash where the MAC goes.
fn restamp_without_key(state: &Path, exe_name: &str, replacement: &[u8]) {
    use sha2::{Digest, Sha256};
    let dir = state.join("planning/slot-b");
    std::fs::write(dir.join(exe_name), replacement).expect("replace the executable");
    let stamp = takt::ota::slots::SlotStamp {
        version: 2,
        files: vec![(
            exe_name.to_string(),
            0o755,
            Sha256::digest(replacement).into(),
        )],
    };
    let mut bytes =
        bincode::serde::encode_to_vec(&stamp, bincode::config::standard()).expect("encodes");
    let unkeyed: [u8; 32] = Sha256::digest(&bytes).into();
    bytes.extend_from_slice(&unkeyed);
    std::fs::write(dir.join(".stamp"), bytes).expect("re-stamp");
}

#[test]
fn a_restamped_replacement_executable_is_detected_and_the_other_slot_runs() {
    needs_realtime!("a_restamped_replacement_executable_is_detected_and_the_other_slot_runs");
    let fx = Fixture::new("durable-stamp");
    fx.committed_v2();
    let v3 = std::fs::read(release_exe("acc-planning-v3")).expect("v3");
    restamp_without_key(&fx.state(), "acc-planning-v2", &v3);

    let ctl = fx.path("ctl.sock");
    let run = fx.start(&ctl, "3s");
    let st = wait_running(&ctl);
    let pid = planning(&st, "name")["pid"].as_u64().expect("pid");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("planning's executable");
    let want =
        std::fs::canonicalize(fx.state().join("planning/slot-a/acc-planning")).expect("slot a");
    assert_eq!(
        exe.to_string_lossy().trim_end_matches(" (deleted)"),
        want.to_string_lossy(),
        "planning runs the intact slot a, not the replaced executable"
    );
    let v = ota_status(&ctl);
    let a = planning(&v, "app");
    assert_eq!(a["running_version"], 1, "{v}");
    let report = a["last_result"].as_str().unwrap_or("");
    assert!(
        report.contains("not authentic") && report.contains("fell back to version 1 in slot a"),
        "`takt ota status` reports the fallback: {v}"
    );
    let out = run.wait(Duration::from_secs(30), "the run");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("fell back to version 1 in slot a"), "{err}");
}

fn keygen(fx: &Fixture, name: &str) -> (PathBuf, String) {
    let key = fx.path(name);
    ok(&["ota", "keygen", "--out", s(&key)]);
    let public = std::fs::read_to_string(fx.path(&format!("{name}.pub"))).expect("pub");
    (key, public.trim().to_string())
}

fn stage(ctl: &Path, bundle: &Path) -> Output {
    cli(
        &["ota", "stage", s(bundle), "--control", s(ctl)],
        CLI_TIMEOUT,
    )
}

#[test]
fn the_supervisor_refuses_expired_out_of_scope_and_revoked_bundles_and_keeps_a_carried_key_document(
) {
    needs_realtime!("the_supervisor_refuses_expired_out_of_scope_and_revoked_bundles_and_keeps_a_carried_key_document");
    let fx = Fixture::new("trust");
    let fleet_pub = std::fs::read_to_string(fx.path("dev.key.pub")).expect("pub");
    let fleet_pub = fleet_pub.trim().to_string();
    let (root, root_pub) = keygen(&fx, "root.key");
    let (sensing_only, sensing_pub) = keygen(&fx, "sensing.key");
    let (rotated, _) = keygen(&fx, "rotated.key");
    let source = std::fs::read_to_string(&fx.manifest).expect("manifest");
    let edited = source
        .replacen(
            "\n[ota]\n",
            &format!("\n[ota]\nroot_keys = [\"{root_pub}\"]\n"),
            1,
        )
        .replacen(
            "\n[[app]]\n",
            &format!(
                "\n[[ota.key]]\npublic = \"{sensing_pub}\"\napps = [\"sensing\"]\n\n[[app]]\n"
            ),
            1,
        );
    std::fs::write(&fx.manifest, edited).expect("write");
    let sign = |key: &Path, version: u64, out: &str, extra: &[&str]| {
        let out = fx.path(out);
        let v = version.to_string();
        let exe = release_exe("acc-planning-v2");
        let mut args = vec![
            "ota",
            "sign",
            "--key",
            s(key),
            "--app",
            "planning",
            "--version",
            &v,
            "--executable",
            s(&exe),
            "--manifest",
            s(&fx.manifest),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        ok(&args);
        out
    };
    let out_of_scope = sign(&sensing_only, 2, "scoped.takt", &[]);
    let doc = fx.path("keys-1.doc");
    let add = format!("{}=planning", fx.path("rotated.key.pub").display());
    ok(&[
        "ota",
        "keys",
        "sign",
        "--root-key",
        s(&root),
        "--version",
        "1",
        "--add",
        &add,
        "--revoke",
        &fleet_pub,
        "--out",
        s(&doc),
    ]);
    let rotated_v2 = sign(&rotated, 2, "rotated-2.takt", &["--key-doc", s(&doc)]);
    let revoked_v3 = sign(&fx.key, 3, "fleet-3.takt", &[]);
    // Expired: signed through the library (the CLI refuses to sign one).
    let seed = takt::ota::from_hex::<32>(std::fs::read_to_string(&fx.key).expect("key").trim())
        .expect("seed");
    let now = takt::ota::bundle::now_unix_s();
    let expired_bytes = takt::ota::bundle::sign_with(
        &takt::ota::bundle::Fragment {
            app: "planning".into(),
            version: 5,
            version_label: "5".into(),
            tasks: Vec::new(),
            ports: Vec::new(),
        },
        &[Entry {
            name: "acc-planning".into(),
            mode: 0o755,
            bytes: b"old".to_vec(),
        }],
        &takt::ota::bundle::signing_key(&seed),
        &takt::ota::bundle::SignOptions {
            expires_unix_s: Some(now - 60),
            key_document: None,
            delta: None,
        },
    )
    .expect("signs");
    let expired = fx.path("expired.takt");
    std::fs::write(&expired, expired_bytes).expect("write");

    let ctl = fx.path("ctl.sock");
    let run = fx.start(&ctl, "8s");
    wait_running(&ctl);
    let out = stage(&ctl, &out_of_scope);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("key {sensing_pub} may not sign app `planning`")),
        "{err}"
    );
    let out = stage(&ctl, &expired);
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("expired at"), "{err}");
    assert!(
        !fx.state().join(".trust/keys.1").exists(),
        "nothing installed yet"
    );
    // The rotated key's bundle carries the document: staged, and the document is kept.
    let out = stage(&ctl, &rotated_v2);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc_bytes = std::fs::read(&doc).expect("doc");
    for copy in [".trust/keys.1", ".trust/keys.2"] {
        assert_eq!(
            std::fs::read(fx.state().join(copy)).expect("installed copy"),
            doc_bytes,
            "{copy}"
        );
    }
    // The fleet key is revoked now: its newer bundle is refused by name.
    let out = stage(&ctl, &revoked_v3);
    let err = text(&out.stderr);
    assert!(
        !out.status.success()
            && err.contains(&format!(
                "key {fleet_pub} was revoked by key document version 1"
            )),
        "{err}"
    );
    let out = run.wait(Duration::from_secs(30), "the run");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("key document version 1 installed"), "{err}");
}

#[test]
fn a_second_supervisor_on_the_same_state_dir_is_refused_naming_dir_and_pid() {
    needs_realtime!("a_second_supervisor_on_the_same_state_dir_is_refused_naming_dir_and_pid");
    let fx = Fixture::new("durable-lock");
    fx.committed_v2();
    let ctl = fx.path("ctl.sock");
    let run = fx.start(&ctl, "6s");
    let pid = run.id();
    wait_running(&ctl);
    let ctl2 = fx.path("ctl2.sock");
    let second = fx.start(&ctl2, "2s");
    let second = second.wait(Duration::from_secs(30), "the second run");
    let err = text(&second.stderr);
    assert!(!second.status.success(), "the second supervisor ran: {err}");
    assert!(
        err.contains(s(&fx.state())) && err.contains(&format!("pid {pid}")),
        "the refusal names the state directory and the holder's pid {pid}: {err}"
    );
    let out = run.wait(Duration::from_secs(30), "the first run");
    assert!(
        out.status.success(),
        "{}: {}",
        out.status,
        text(&out.stderr)
    );
}

#[test]
fn a_slot_missing_its_executable_falls_back_and_the_deployment_starts_with_a_report() {
    needs_realtime!(
        "a_slot_missing_its_executable_falls_back_and_the_deployment_starts_with_a_report"
    );
    let fx = Fixture::new("durable-missing");
    fx.committed_v2();
    std::fs::remove_file(fx.state().join("planning/slot-b/acc-planning-v2")).expect("delete");
    let ctl = fx.path("ctl.sock");
    let run = fx.start(&ctl, "3s");
    let st = wait_running(&ctl);
    let pid = planning(&st, "name")["pid"].as_u64().expect("pid");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("planning's executable");
    let want =
        std::fs::canonicalize(fx.state().join("planning/slot-a/acc-planning")).expect("slot a");
    assert_eq!(
        exe.to_string_lossy().trim_end_matches(" (deleted)"),
        want.to_string_lossy(),
        "planning runs the intact slot a"
    );
    let v = ota_status(&ctl);
    let report = planning(&v, "app")["last_result"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        report.contains("listed in the stamp but missing")
            && report.contains("fell back to version 1 in slot a"),
        "`takt ota status` reports the fallback: {v}"
    );
    let out = run.wait(Duration::from_secs(30), "the run");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(err.contains("fell back to version 1 in slot a"), "{err}");
}

/// A state directory made read-only for the life of the guard: a read-only bind mount of
/// it onto itself as root, else `chmod -R a-w` (which binds only a non-root user). The
/// mount is undone (or the bits restored) when dropped, so the tempdir can be removed.
enum ReadOnly {
    Bind(PathBuf),
    Chmod(PathBuf),
}

impl ReadOnly {
    /// `Err`: nothing here can make `dir` read-only (says why).
    fn make(dir: &Path) -> Result<ReadOnly, String> {
        let probe = |dir: &Path| {
            let p = dir.join(".write-probe");
            match std::fs::write(&p, b"") {
                Ok(()) => {
                    let _ = std::fs::remove_file(&p);
                    false
                }
                Err(_) => true,
            }
        };
        let mut tried = Vec::new();
        if common::is_root() {
            let sh = |args: &[&str]| {
                std::process::Command::new("mount")
                    .args(args)
                    .status()
                    .map_err(|e| e.to_string())
                    .and_then(|st| st.success().then_some(()).ok_or(st.to_string()))
            };
            match sh(&["--bind", s(dir), s(dir)]) {
                Ok(()) => {
                    let guard = ReadOnly::Bind(dir.to_path_buf());
                    match sh(&["-o", "remount,bind,ro", s(dir)]) {
                        Ok(()) if probe(dir) => return Ok(guard),
                        Ok(()) => tried.push("a read-only bind mount stays writable".to_string()),
                        Err(e) => tried.push(format!("mount -o remount,bind,ro: {e}")),
                    }
                }
                Err(e) => tried.push(format!("mount --bind: {e}")),
            }
        }
        let st = std::process::Command::new("chmod")
            .args(["-R", "a-w", s(dir)])
            .status()
            .map_err(|e| e.to_string())?;
        let guard = ReadOnly::Chmod(dir.to_path_buf());
        if st.success() && probe(dir) {
            return Ok(guard);
        }
        tried.push("chmod -R a-w does not stop this user from writing (root)".into());
        Err(tried.join("; "))
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = match self {
            ReadOnly::Bind(dir) => std::process::Command::new("umount").arg(&*dir).status(),
            ReadOnly::Chmod(dir) => std::process::Command::new("chmod")
                .args(["-R", "u+w", s(dir)])
                .status(),
        };
    }
}

/// Every file under `dir` with its bytes, to show a run wrote nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

/// A read-only state disk (#12 fault suite): the deployment runs the installed, verified
/// version 2, updates are off and said so on stderr, in `takt status` and in `takt ota
/// status`, a stage is refused with the reason, and nothing in the directory changes.
/// With one anti-rollback copy gone (which a writable start would repair) the read-only
/// start is refused: the counter cannot be cross-checked there.
///
/// Failed before: `takt run` refused to start ("cannot lock the OTA state directory:
/// Read-only file system").
#[test]
fn a_read_only_state_directory_runs_the_installed_version_with_updates_disabled() {
    needs_realtime!("a_read_only_state_directory_runs_the_installed_version_with_updates_disabled");
    let fx = Fixture::new("read-only");
    fx.committed_v2();
    let v3 = fx.sign(3, "planning-3.takt");
    let before = snapshot(&fx.state());
    let ro = match ReadOnly::make(&fx.state()) {
        Ok(ro) => ro,
        Err(why) => {
            eprintln!("SKIPPED a_read_only_state_directory_runs_the_installed_version_with_updates_disabled: cannot make the state directory read-only: {why}");
            return;
        }
    };
    let state = fx.state();
    let ctl = fx.path("ctl.sock");
    let run = fx.start(&ctl, "4s");
    let st = wait_running(&ctl);
    let pid = planning(&st, "name")["pid"].as_u64().expect("pid");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("planning's executable");
    let want = state.join("planning/slot-b/acc-planning-v2");
    assert_eq!(
        exe.to_string_lossy().trim_end_matches(" (deleted)"),
        want.to_string_lossy(),
        "planning runs the installed version 2 from slot b"
    );
    let disabled = st["updates_disabled"].as_str().unwrap_or("");
    assert!(
        disabled.contains(s(&state)) && disabled.contains("Read-only file system"),
        "`takt status --json` says why updates are off: {st}"
    );
    let text_status = ok(&["status", "--control", s(&ctl)]);
    assert!(
        text_status.contains("updates disabled:") && text_status.contains(s(&state)),
        "{text_status}"
    );
    let v = ota_status(&ctl);
    assert!(
        v["updates_disabled"]
            .as_str()
            .is_some_and(|w| w.contains("Read-only file system")),
        "{v}"
    );
    let a = planning(&v, "app");
    assert_eq!(a["installed_version"], 2, "{v}");
    assert_eq!(a["running_version"], 2, "{v}");
    let out = cli(&["ota", "stage", s(&v3), "--control", s(&ctl)], CLI_TIMEOUT);
    let err = text(&out.stderr);
    assert!(!out.status.success(), "version 3 was staged: {err}");
    assert!(
        err.contains("updates are disabled")
            && err.contains(s(&state))
            && err.contains("Read-only file system"),
        "the refusal names the directory and the cause: {err}"
    );
    let out = run.wait(Duration::from_secs(30), "the run");
    let err = text(&out.stderr);
    assert!(out.status.success(), "{}: {err}", out.status);
    assert!(
        err.contains("UPDATES DISABLED")
            && err.contains(s(&state))
            && err.contains("Read-only file system"),
        "the run says so loudly on stderr: {err}"
    );
    assert!(
        text(&out.stdout).contains("digest:"),
        "{}",
        text(&out.stdout)
    );
    drop(ro);
    assert!(
        snapshot(&state) == before,
        "a read-only run changed nothing in the state directory"
    );

    // One copy of the anti-rollback counter gone: a writable start repairs it from the
    // journal; a read-only one cannot cross-check it and refuses, naming the cause.
    std::fs::remove_file(state.join(".anti-rollback/planning")).expect("delete the counter copy");
    let _ro = ReadOnly::make(&state).expect("read-only again");
    let out = fx
        .start(&fx.path("ctl2.sock"), "4s")
        .wait(Duration::from_secs(60), "the refused run");
    let err = text(&out.stderr);
    assert!(
        !out.status.success()
            && out.status.code().is_some()
            && err.contains("cannot be read and cross-checked")
            && err.contains(".anti-rollback/planning")
            && !err.contains("panicked"),
        "{}: {err}",
        out.status
    );
}
