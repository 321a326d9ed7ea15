//! The layering that `src/lib.rs` writes down is the layering of the code.
//!
//! `lib.rs` lists the crate's modules bottom first ("# Layers"). This test reads that list
//! and every source file, and fails when
//! * a module uses (`crate::name`) a module that is not listed below it,
//! * a top-level module is missing from the list, or the list names one that does not exist,
//! * the files of one module depend on each other in a cycle (`super::sibling`).
//!
//! Comments are not code: doc links may point anywhere. A file's `#[cfg(test)]` module at
//! its end and the `tests.rs` files are tests, which may use any layer.
#![deny(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layer list of lib.rs: lines `//! N. [`name`]: ...`, in order.
fn layers(lib_rs: &str) -> Vec<String> {
    lib_rs
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("//!")?.trim_start();
            let (number, rest) = rest.split_once(". [`")?;
            number.parse::<u32>().ok()?;
            Some(rest.split_once("`]")?.0.to_string())
        })
        .collect()
}

/// The top-level modules lib.rs declares (`pub mod name;`, any visibility, any cfg).
fn declared(lib_rs: &str) -> BTreeSet<String> {
    lib_rs
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let name = l.strip_prefix("mod ")?.strip_suffix(';')?;
            (!name.starts_with("__")).then(|| name.to_string())
        })
        .collect()
}

/// The code of a file: without comments and without the trailing `#[cfg(test)]` module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod ") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments after each `prefix` in `code`: `prefix::a::b` gives `a`, and
/// `prefix::{a::x, b}` gives `a` and `b`.
fn segments_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        // `prefix` must start a path, not end a longer word (`mycrate::`).
        let before = rest[..i].chars().last();
        rest = &rest[i + prefix.len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let w = word(part.trim());
                if !w.is_empty() {
                    found.insert(w);
                }
            }
        } else {
            let w = word(rest);
            if !w.is_empty() {
                found.insert(w);
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to.
fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix(src()).expect("under src");
    let first = rel.components().next().expect("a component");
    let first = first.as_os_str().to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

fn is_test_file(file: &Path) -> bool {
    file.file_name().is_some_and(|n| n == "tests.rs")
}

/// Upward or sideways uses: `(file, used module)` for every `crate::m` in a file of a
/// module that is not listed below `m`... that is, `m` listed at or above the file's own.
fn violations(order: &[String], files: &[(String, String, String)]) -> Vec<String> {
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    let mut out = Vec::new();
    for (file, module, text) in files {
        let Some(&mine) = rank.get(module.as_str()) else {
            continue;
        };
        for used in segments_after(&code(text), "crate::") {
            if used == *module {
                continue;
            }
            match rank.get(used.as_str()) {
                Some(&r) if r < mine => {}
                Some(_) => out.push(format!(
                    "{file}: `{module}` (layer {}) uses `crate::{used}` (layer {}), which is not below it",
                    mine + 1,
                    rank[used.as_str()] + 1
                )),
                // Macros and re-exports at the crate root (`crate::message`).
                None => {}
            }
        }
    }
    out
}

#[test]
fn every_module_uses_only_the_layers_below_it() {
    let lib_rs = std::fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let order = layers(&lib_rs);
    assert!(order.len() >= 10, "lib.rs lists its layers: {order:?}");
    let listed: BTreeSet<String> = order.iter().cloned().collect();
    assert_eq!(listed.len(), order.len(), "each layer once: {order:?}");
    assert_eq!(
        listed,
        declared(&lib_rs),
        "the layer list of lib.rs and its `mod` lines name the same modules"
    );
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    let files: Vec<(String, String, String)> = paths
        .iter()
        .filter(|p| !p.ends_with("lib.rs") && !is_test_file(p))
        .map(|p| {
            (
                p.strip_prefix(src()).unwrap().display().to_string(),
                module_of(p),
                std::fs::read_to_string(p).expect("read"),
            )
        })
        .collect();
    assert!(files.len() > 40, "the scan sees the sources");
    let bad = violations(&order, &files);
    assert!(bad.is_empty(), "layering broken:\n{}", bad.join("\n"));
}

/// The sibling files each file of `dir` uses through `super::name` (for files directly in
/// `dir`) or `crate::<module>::name`. A subdirectory counts with its same-named file.
fn sibling_graph(dir: &Path, module_path: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let mut direct = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        let stem = p.file_stem().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            names.insert(stem);
        } else if p.extension().is_some_and(|x| x == "rs") && stem != "mod" {
            names.insert(stem.clone());
            if !is_test_file(&p) {
                direct.push((stem.clone(), p));
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, path) in direct {
        let text = code(&std::fs::read_to_string(&path).expect("read"));
        let mut uses = segments_after(&text, "super::");
        uses.extend(segments_after(&text, &format!("crate::{module_path}::")));
        let uses: BTreeSet<String> = uses
            .into_iter()
            .filter(|u| *u != name && names.contains(u) && u != "tests")
            .collect();
        graph.insert(name, uses);
    }
    graph
}

/// A cycle in `graph`, if any, as the names along it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for m in graph.get(n).into_iter().flatten() {
            match state.get(m.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| s == m).unwrap_or(0);
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(m.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, graph, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in graph.keys() {
        if !state.contains_key(n.as_str()) {
            if let Some(c) = visit(n, graph, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_files_of_a_module_do_not_depend_on_each_other_in_a_cycle() {
    let mut checked = 0;
    for e in std::fs::read_dir(src()).expect("src").flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        let module = p.file_name().unwrap().to_string_lossy().to_string();
        let graph = sibling_graph(&p, &module);
        checked += graph.len();
        if let Some(cycle) = find_cycle(&graph) {
            panic!(
                "src/{module}: its files depend on each other in a cycle: {}",
                cycle.join(" -> ")
            );
        }
    }
    assert!(checked > 20, "the scan sees the module files");
}

#[test]
fn the_checks_see_what_they_must() {
    let order: Vec<String> = ["time", "port", "manifest"].map(String::from).to_vec();
    let file = |module: &str, text: &str| {
        (
            format!("{module}/x.rs"),
            module.to_string(),
            text.to_string(),
        )
    };
    // Down is fine, up is not, comments and trailing tests do not count.
    assert!(violations(&order, &[file("port", "use crate::time::Clock;")]).is_empty());
    assert_eq!(
        violations(&order, &[file("port", "use crate::manifest::Fingerprint;")]).len(),
        1
    );
    assert_eq!(
        violations(
            &order,
            &[file("time", "use crate::{port::Writer, manifest};")]
        )
        .len(),
        2
    );
    assert!(violations(
        &order,
        &[file("time", "/// [`x`](crate::manifest::X)\nfn f() {}")]
    )
    .is_empty());
    assert!(violations(
        &order,
        &[file(
            "time",
            "fn f() {}\n#[cfg(test)]\nmod tests { use crate::manifest; }"
        )]
    )
    .is_empty());
    assert!(violations(&order, &[file("time", "use mycrate::manifest;")]).is_empty());
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]
    .into_iter()
    .collect();
    assert_eq!(find_cycle(&g).map(|c| c.len()), Some(4));
    let mut acyclic = g.clone();
    acyclic.insert("c".to_string(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);
    assert_eq!(
        layers("//! 1. [`sync`]: atomics\n//! 2. [`time`]: clocks\n//! * [`x`]: not a layer"),
        vec!["sync", "time"]
    );
}
