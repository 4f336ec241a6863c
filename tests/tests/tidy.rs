//! House rules, checked by `cargo test` rather than by review: the crate boundaries of
//! ARCHITECTURE.md, the code map naming every crate, and module docs on every source file.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// Library sources of a crate: `src/` without the binaries under `src/bin/`.
fn library_sources(krate: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&root().join(krate).join("src"), &mut files);
    files.retain(|path| !path.components().any(|c| c.as_os_str() == "bin"));
    files
}

/// Every workspace member, from the root manifest.
fn members() -> Vec<String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let line = manifest.lines().find(|line| line.trim_start().starts_with("members")).expect("members line");
    line.split('"').skip(1).step_by(2).map(str::to_string).collect()
}

#[test]
fn crate_boundaries_hold() {
    // (crate, what its library code must never use, why)
    let rules: &[(&str, &[&str], &str)] = &[
        (
            "types",
            &[
                "zos_planner",
                "zos_cache",
                "zos_zbus",
                "std::fs",
                "std::net::Tcp",
                "SystemTime",
                "Instant::now",
                "tokio::",
                "redis::",
                "sled::",
            ],
            "types does no I/O and never reads the clock",
        ),
        (
            "planner",
            &["zos_cache", "zos_zbus", "std::fs", "SystemTime", "Instant::now", "tokio::", "redis::", "sled::"],
            "the planner library does no I/O and never reads the clock",
        ),
        ("cache", &["zos_planner", "zos_zbus", "tokio::", "redis::"], "cache never imports planner logic or the bus"),
        ("zbus", &["zos_planner", "zos_cache", "zos_types", "sled::"], "zbus is transport and contracts only"),
    ];
    let mut broken = Vec::new();
    for (krate, forbidden, why) in rules {
        for file in library_sources(krate) {
            let text = std::fs::read_to_string(&file).expect("source");
            for needle in *forbidden {
                if text.contains(needle) {
                    broken.push(format!("{}: uses `{needle}` ({why})", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "crate boundaries broken:\n{}", broken.join("\n"));
}

#[test]
fn provisiond_uses_only_the_modules_contracts() {
    let mut broken = Vec::new();
    for file in library_sources("provisiond").into_iter().chain({
        let mut bins = Vec::new();
        rust_files(&root().join("provisiond/src/bin"), &mut bins);
        bins
    }) {
        let text = std::fs::read_to_string(&file).expect("source");
        for daemon in ["zos_storaged", "zos_networkd"] {
            for (at, _) in text.match_indices(&format!("{daemon}::")) {
                if !text[at..].starts_with(&format!("{daemon}::interface")) {
                    broken.push(format!("{}: uses {daemon} beyond its interface", file.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

#[test]
fn sled_stays_inside_cache() {
    let mut files = Vec::new();
    for member in members().iter().filter(|m| *m != "cache") {
        rust_files(&root().join(member).join("src"), &mut files);
    }
    let offenders: Vec<String> = files
        .iter()
        .filter(|file| std::fs::read_to_string(file).is_ok_and(|text| text.contains("sled::")))
        .map(|file| file.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "only zos-cache may use sled: {offenders:?}");
}

#[test]
fn architecture_names_every_crate() {
    let architecture = std::fs::read_to_string(root().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    for member in members() {
        assert!(
            architecture.contains(&format!("### `{member}/`")),
            "ARCHITECTURE.md has no code-map section for `{member}/`"
        );
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for member in members() {
        rust_files(&root().join(&member), &mut files);
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|file| std::fs::read_to_string(file).is_ok_and(|text| !text.trim_start().starts_with("//!")))
        .map(|file| file.display().to_string())
        .collect();
    assert!(missing.is_empty(), "source files without a `//!` module doc: {missing:#?}");
}
