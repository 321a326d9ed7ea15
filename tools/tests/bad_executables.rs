//! An `[[app]] executable` that is not what takt can host, through the shipped `takt`:
//! missing, a directory, without execute permission, not a takt app, garbled, built against
//! another takt API version, or declaring a catalog that disagrees with the manifest. Each
//! is exit 2 from `takt check`, `takt plan` and `takt run`, naming the app, the executable
//! and what is wrong, and nothing starts: no app process, no trace file.
#![deny(unsafe_code)]

mod common;
use common::{absolute_executables, release_exe, run, s, source_manifest, takt, text};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use takt::catalog::{AppCatalog, API_VERSION};

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("takt-bad-exe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A shell script that prints the file `answer` whatever it is asked.
fn answering(dir: &Path, name: &str, answer: &[u8]) -> PathBuf {
    let data = dir.join(format!("{name}.answer"));
    std::fs::write(&data, answer).expect("write answer");
    let exe = dir.join(name);
    std::fs::write(&exe, format!("#!/bin/sh\ncat '{}'\n", data.display())).expect("script");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    exe
}

/// The demo manifest with the `sensing` app's executable replaced by `exe`, and a trace
/// path inside `dir` (so that a run that started would leave a file there).
fn manifest_with_sensing(dir: &Path, tag: &str, exe: &Path) -> PathBuf {
    let text = absolute_executables(&std::fs::read_to_string(source_manifest()).unwrap());
    let release = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/");
    let line = format!("executable = \"{}acc-sensing\"", release.display());
    assert!(text.contains(&line), "the demo manifest names acc-sensing");
    let text = text.replace(&line, &format!("executable = \"{}\"", exe.display()));
    let p = dir.join(format!("{tag}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

/// The demo sensing app's real catalog answer.
fn sensing_catalog() -> AppCatalog {
    let exe = release_exe("acc-sensing");
    let out = run(
        std::process::Command::new(&exe).arg(takt::catalog::CATALOG_FLAG),
        Duration::from_secs(30),
    );
    AppCatalog::decode(&out.stdout).expect("acc-sensing answers a catalog")
}

#[test]
fn every_kind_of_bad_executable_is_exit_2_naming_app_and_executable_and_nothing_starts() {
    let dir = scratch();
    let good = sensing_catalog();

    let not_executable = dir.join("not-executable");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();

    let mut newer = good.clone();
    newer.api_version = API_VERSION + 1;
    let mut garbled = good.encode();
    let mid = garbled.len() / 2;
    garbled[mid] ^= 0x55;
    // Declares the sensing tasks but writes `radar_track` as another message type.
    let mut disagreeing = good.clone();
    let radar = disagreeing
        .tasks
        .iter_mut()
        .find(|t| !t.writes.is_empty())
        .expect("a sensing task writes");
    radar.writes[0].type_name = "NotTheManifestsType".into();
    let disagreeing_topic = radar.writes[0].topic.clone();
    // Declares no task at all: the manifest's sensing tasks have no implementation.
    let mut empty = good.clone();
    empty.tasks.clear();

    let cases: Vec<(&str, PathBuf, Vec<String>)> = vec![
        (
            "missing",
            dir.join("no-such-program"),
            vec!["does not exist".into()],
        ),
        ("directory", dir.clone(), vec!["not a regular file".into()]),
        (
            "not-executable",
            not_executable.clone(),
            vec!["not executable".into()],
        ),
        (
            "not-a-takt-app",
            answering(&dir, "usage", b"Usage: some-tool [OPTIONS]\n"),
            vec!["not a takt app".into()],
        ),
        (
            "garbled",
            answering(&dir, "garbled", &garbled),
            vec!["catalog".into()],
        ),
        (
            "other-api",
            answering(&dir, "other-api", &newer.encode()),
            vec![
                format!("API version {}", API_VERSION + 1),
                format!("speaks API version {API_VERSION}"),
            ],
        ),
        (
            "disagreeing-type",
            answering(&dir, "disagreeing", &disagreeing.encode()),
            vec![format!("`{disagreeing_topic}`")],
        ),
        (
            "no-tasks",
            answering(&dir, "empty", &empty.encode()),
            vec!["no task implementation".into()],
        ),
    ];

    for (tag, exe, reasons) in &cases {
        let manifest = manifest_with_sensing(&dir, tag, exe);
        let traces = dir.join(format!("{tag}.takt"));
        for verb in ["check", "plan", "run"] {
            let mut cmd = takt();
            cmd.arg(verb).arg(&manifest);
            if verb == "run" {
                cmd.args(["--clock", "sim", "--duration", "1s", "--trace", s(&traces)]);
            }
            let out = run(&mut cmd, Duration::from_secs(60));
            let err = text(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{tag}: takt {verb} exits 2\nstderr: {err}\nstdout: {}",
                text(&out.stdout)
            );
            assert!(!err.contains("panicked"), "{tag}: {verb}: {err}");
            if matches!(*tag, "disagreeing-type" | "no-tasks") {
                // Reported at the manifest's line for the task or channel, against the
                // union of the catalogs.
                assert!(
                    err.contains(s(&manifest)),
                    "{tag}: {verb} names the file: {err}"
                );
            } else {
                assert!(
                    err.contains("app `sensing`"),
                    "{tag}: {verb} names the app: {err}"
                );
                let shown = exe.file_name().unwrap().to_str().unwrap();
                assert!(
                    err.contains(shown),
                    "{tag}: {verb} names the executable: {err}"
                );
            }
            for r in reasons {
                assert!(err.contains(r.as_str()), "{tag}: {verb} says {r:?}: {err}");
            }
            if verb == "run" {
                // Nothing started: no app process ever wrote a trace.
                let started: Vec<_> = std::fs::read_dir(&dir)
                    .unwrap()
                    .filter_map(|e| e.ok())
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .starts_with(&format!("{tag}.takt"))
                    })
                    .collect();
                assert!(started.is_empty(), "{tag}: a refused run left {started:?}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
