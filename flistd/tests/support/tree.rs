//! Source trees the tests pack, and the comparison of a tree with its copy (bytes and metadata).

#![allow(dead_code)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
