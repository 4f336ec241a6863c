//! Source trees the tests pack, the comparison of a tree with its copy (bytes and metadata), and the
//! malicious flists both the library and the daemon must refuse.

#![allow(dead_code)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zos_flistd::meta::{Inode, Route, Writer};

/// A tree with empty, small, exactly-one-block and multi-block files, a symlink, a setuid file and a
/// deep directory chain.
pub fn source_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    std::fs::write(root.join("etc/empty"), b"").expect("empty");
    std::fs::write(root.join("etc/hostname"), b"zos\n").expect("small");
    let block: Vec<u8> = (0..512 * 1024).map(|i| (i % 251) as u8).collect();
    std::fs::write(root.join("one-block"), &block).expect("one block");
    let big: Vec<u8> = (0..1_300_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(root.join("multi-block"), &big).expect("multi block");
    std::os::unix::fs::symlink("etc/hostname", root.join("link")).expect("symlink");
    std::fs::write(root.join("suid"), b"#!/bin/sh\n").expect("suid");
    std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755)).expect("chmod");
    let mut deep = root.join("deep");
    for level in 0..40 {
        deep = deep.join(format!("d{level}"));
    }
    std::fs::create_dir_all(&deep).expect("deep");
    std::fs::write(deep.join("leaf"), b"bottom").expect("leaf");
}

pub fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("dir").map(|e| e.expect("entry")) {
            let path = entry.path();
            if entry.file_type().expect("type").is_dir() {
                dirs.push(path.clone());
            }
            out.push(path.strip_prefix(root).expect("inside").to_path_buf());
        }
    }
    out.sort();
    out
}

pub fn assert_same_tree(src: &Path, copy: &Path) {
    assert_eq!(files(src), files(copy), "the same entries");
    for rel in files(src) {
        let (a, b) = (src.join(&rel), copy.join(&rel));
        let (ma, mb) = (std::fs::symlink_metadata(&a).expect("a"), std::fs::symlink_metadata(&b).expect("b"));
        assert_eq!(ma.mode(), mb.mode(), "{} mode", rel.display());
        assert_eq!((ma.uid(), ma.gid()), (mb.uid(), mb.gid()), "{} owner", rel.display());
        if ma.file_type().is_symlink() {
            assert_eq!(std::fs::read_link(&a).expect("link"), std::fs::read_link(&b).expect("link"));
        } else {
            assert_eq!(ma.mtime(), mb.mtime(), "{} mtime", rel.display());
        }
        if ma.is_file() {
            assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"), "{} bytes", rel.display());
        }
    }
}

/// A malicious flist: its name, the parent its root names, its root's entries, and a word the refusal
/// says.
pub struct UnsafeCase {
    pub name: &'static str,
    pub root_parent: u64,
    pub children: Vec<Inode>,
    pub expected: &'static str,
}

/// A name with `/`, a `..`, a loop in `parent`, an absurd size, a device node.
pub fn unsafe_cases() -> Vec<UnsafeCase> {
    let file =
        |name: &str, mode: u32, size: u64| Inode { parent: 1, name: name.into(), mode, size, ..Inode::default() };
    let case = |name, children, root_parent, expected| UnsafeCase { name, root_parent, children, expected };
    vec![
        case("slash", vec![file("a/b", 0o100_644, 0)], 0, "name"),
        case("dotdot", vec![file("..", 0o040_755, 0)], 0, "name"),
        // The root names itself as its parent: it is its own child.
        case("loop", vec![file("x", 0o040_755, 0)], 1, "loop"),
        case("huge", vec![file("big", 0o100_644, 1 << 50)], 0, "declares"),
        case("device", vec![file("sda", 0o060_660, 0)], 0, "device node"),
    ]
}

/// Writes the flist of `case` at `path`, its one route `route`.
pub fn write_unsafe(case: &UnsafeCase, route: &str, path: &Path) {
    let writer = Writer::create(path).expect("create");
    writer.route(&Route { start: 0, end: 255, url: route.to_string() }).expect("route");
    writer
        .inode(&Inode { name: "/".into(), mode: 0o040_755, parent: case.root_parent, ..Inode::default() })
        .expect("root");
    for child in &case.children {
        writer.inode(child).expect("child");
    }
    writer.finish().expect("finish");
}
