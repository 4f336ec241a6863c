//! House rules, checked by `cargo test` rather than by review: the crate boundaries of
//! ARCHITECTURE.md read from the crate graph (`cargo metadata`), the code map naming every crate,
//! no I/O or clock in the pure libraries, and module docs on every source file.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// The workspace as cargo resolves it: each package's name, directory and normal dependencies.
struct Graph {
    /// Workspace package name -> its directory relative to the root.
    members: BTreeMap<String, String>,
    /// Package name -> names of its normal (non-dev, non-build) dependencies.
    normal: BTreeMap<String, BTreeSet<String>>,
    /// Package name -> names of its direct dependencies of any kind.
    direct: BTreeMap<String, BTreeSet<String>>,
}

fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(|| {
        // The node is Linux: resolving for this host only needs no download of other platforms' crates.
        let host = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        let out = std::process::Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--locked", "--offline", "--filter-platform", &host])
            .current_dir(root())
            .output()
            .expect("cargo metadata");
        assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
        let meta: Value = serde_json::from_slice(&out.stdout).expect("metadata json");
        let name_of: BTreeMap<&str, &str> = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| (p["id"].as_str().expect("id"), p["name"].as_str().expect("name")))
            .collect();
        let root = root();
        let members = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter(|p| meta["workspace_members"].as_array().expect("members").contains(&p["id"]))
            .map(|p| {
                let manifest = PathBuf::from(p["manifest_path"].as_str().expect("manifest"));
                let dir = manifest.parent().expect("dir").strip_prefix(&root).expect("inside").display().to_string();
                (p["name"].as_str().expect("name").to_string(), dir)
            })
            .collect();
        let mut normal = BTreeMap::new();
        let mut direct = BTreeMap::new();
        for node in meta["resolve"]["nodes"].as_array().expect("resolve") {
            let name = name_of[node["id"].as_str().expect("id")].to_string();
            let mut kinds_normal = BTreeSet::new();
            let mut all = BTreeSet::new();
            for dep in node["deps"].as_array().expect("deps") {
                let dep_name = name_of[dep["pkg"].as_str().expect("pkg")].to_string();
                if dep["dep_kinds"].as_array().expect("kinds").iter().any(|k| k["kind"].is_null()) {
                    kinds_normal.insert(dep_name.clone());
                }
                all.insert(dep_name);
            }
            normal.entry(name.clone()).or_insert_with(BTreeSet::new).extend(kinds_normal);
            direct.entry(name).or_insert_with(BTreeSet::new).extend(all);
        }
        Graph { members, normal, direct }
    })
}

impl Graph {
    /// Everything `package` links in a normal build (its transitive normal dependencies).
    fn closure(&self, package: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![package.to_string()];
        while let Some(next) = stack.pop() {
            for dep in self.normal.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        seen
    }
}

/// The daemon crates: they talk to each other only over zbus, through `zos-interfaces`.
const DAEMONS: &[&str] = &["zos-storaged", "zos-networkd", "zos-provisiond", "zos-vmd", "zos-flistd"];

#[test]
fn crate_boundaries_hold() {
    let g = graph();
    let io = ["tokio", "redis", "sled", "nix"];
    // (package, what its normal build must never link, why)
    let rules: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "zos-types",
            [&["zos-planner", "zos-cache", "zos-zbus", "zos-hardware"][..], &io].concat(),
            "the wire model does no I/O",
        ),
        (
            "zos-hardware",
            [&["zos-planner", "zos-cache", "zos-zbus", "zos-interfaces"][..], &io, DAEMONS].concat(),
            "discovery reads files under a root and nothing else",
        ),
        (
            "zos-planner",
            [&["zos-cache", "zos-zbus", "zos-hardware", "clap", "indicatif", "tempfile", "comfy-table"][..], &io]
                .concat(),
            "the planner library is pure",
        ),
        ("zos-cache", [&["zos-planner", "zos-zbus", "tokio", "redis"][..], DAEMONS].concat(), "the store knows no bus"),
        (
            "zos-zbus",
            [&["zos-types", "zos-planner", "zos-cache", "zos-interfaces", "sled"][..], DAEMONS].concat(),
            "zbus is transport only",
        ),
        (
            "zos-interfaces",
            [&["zos-cache", "sled"][..], DAEMONS].concat(),
            "contracts never depend on an implementation",
        ),
        ("zos-storaged", [&["zos-cache", "sled"][..], DAEMONS].concat(), "storaged owns disks, not the store"),
        ("zos-networkd", [&["zos-cache", "sled"][..], DAEMONS].concat(), "networkd talks to others over zbus"),
        ("zos-flistd", [&["zos-cache", "sled"][..], DAEMONS].concat(), "flistd talks to others over zbus"),
        ("zos-provisiond", DAEMONS.to_vec(), "provisiond uses the modules only through their interfaces"),
        ("zos-plan", ["zos-storaged", "zos-networkd"].to_vec(), "zos-plan runs the planner, not the daemons"),
    ];
    let mut broken = Vec::new();
    for (package, forbidden, why) in &rules {
        assert!(g.members.contains_key(*package), "rule for unknown package {package}");
        let closure = g.closure(package);
        for bad in forbidden.iter().filter(|bad| *bad != package) {
            if closure.contains(*bad) {
                broken.push(format!("{package} links {bad} ({why})"));
            }
        }
    }
    for member in g.members.keys().filter(|m| *m != "zos-tests") {
        if g.closure(member).contains("zos-tests") {
            broken.push(format!("{member} links zos-tests (tests are never a dependency)"));
        }
    }
    assert!(broken.is_empty(), "crate boundaries broken:\n{}", broken.join("\n"));
}

#[test]
fn sled_stays_inside_cache() {
    let g = graph();
    let offenders: Vec<&String> = g
        .members
        .keys()
        .filter(|member| *member != "zos-cache" && g.direct.get(*member).is_some_and(|deps| deps.contains("sled")))
        .collect();
    assert!(offenders.is_empty(), "only zos-cache may depend on sled: {offenders:?}");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "target" && name != "fixtures") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn pure_libraries_do_no_io_and_read_no_clock() {
    let mut broken = Vec::new();
    for krate in ["types", "planner"] {
        let mut files = Vec::new();
        rust_files(&root().join(krate).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("source");
            for needle in ["std::fs", "std::net::Tcp", "SystemTime", "Instant::now", "std::process"] {
                if text.contains(needle) {
                    broken.push(format!("{}: uses `{needle}`", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "the pure libraries do I/O or read the clock:\n{}", broken.join("\n"));
}

#[test]
fn nothing_reads_outside_the_repository() {
    let mut files = Vec::new();
    for dir in graph().members.values() {
        rust_files(&root().join(dir), &mut files);
    }
    for extra in ["scripts", ".ci"] {
        if let Ok(entries) = std::fs::read_dir(root().join(extra)) {
            files.extend(entries.filter_map(Result::ok).map(|e| e.path()));
        }
    }
    // The path of the project's shared folder, built from its parts so that this test names no such path.
    let outside = ["..", "shared", ""].join("/");
    let offenders: Vec<String> = files
        .iter()
        .filter(|file| std::fs::read_to_string(file).is_ok_and(|text| text.contains(&outside)))
        .map(|file| file.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "a clone has nothing beside it; these read outside the repository: {offenders:?}");
}

#[test]
fn architecture_names_every_crate() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for (name, dir) in &graph().members {
        assert!(
            architecture.contains(&format!("### `{dir}/` (package `{name}`")),
            "ARCHITECTURE.md has no code-map section \"### `{dir}/` (package `{name}`...\""
        );
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in graph().members.values() {
        rust_files(&root().join(dir), &mut files);
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|file| std::fs::read_to_string(file).is_ok_and(|text| !text.trim_start().starts_with("//!")))
        .map(|file| file.display().to_string())
        .collect();
    assert!(missing.is_empty(), "source files without a `//!` module doc: {missing:#?}");
}
