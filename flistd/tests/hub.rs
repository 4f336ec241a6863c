//! The hub over real HTTP on 127.0.0.1 (a small test server): `.fl` downloads cached and keyed by their
//! md5, verified against `<url>.md5`, resumed with `Range` after a cut, refused when corrupt or not an
//! flist (nothing enters the cache), a clear error when the hub is down; blocks served by an
//! `http://` store, extracted and mounted with every file's bytes equal to the source, a missing or
//! corrupted block an error (EIO through the mount), concurrent readers of a block one download.

mod support;

use md5::{Digest, Md5};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::hub::{Asked, Hub};
use support::mounted;
use support::tree::{assert_same_tree, files, source_tree};
use zos_flistd::FlistError;
use zos_flistd::hub::HubConfig;
use zos_flistd::meta::Reader;
use zos_flistd::store::{DirPolicy, Router};

/// The source tree packed with its blocks on `hub` (`/blocks`) and its `.fl` at `/user/image.fl`;
/// returns the source and the `.fl`'s bytes.
fn publish(hub: &Hub, dir: &Path) -> (PathBuf, Vec<u8>) {
    let src = dir.join("src");
    source_tree(&src);
    let image = dir.join("image.fl");
    let store = hub.store();
    zos_flistd::pack::pack(&src, &store, &image).expect("pack");
    let bytes = std::fs::read(&image).expect("image");
    hub.put("/user/image.fl", &bytes);
    (src, bytes)
}

fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

fn fast() -> zos_flistd::hub::Hub {
    zos_flistd::hub::Hub::new(HubConfig {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(2),
        retries: 3,
        backoff: Duration::from_millis(10),
        max_bytes: 64 << 20,
    })
}

/// What is in the cache's `flist/`, temporary files included.
fn cached(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn download_is_cached_by_the_md5_of_its_content() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(&dir.path().join("hub"));
    let (_, bytes) = publish(&hub, dir.path());
    let url = format!("{}/user/image.fl", hub.url());
    let flists = dir.path().join("cache/flist");
    let client = fast();
    // No `.md5` on this hub: downloaded every time, keyed by what arrived.
    let first = client.download(&url, &flists).expect("download");
    assert_eq!(first.hash, md5_hex(&bytes));
    assert_eq!(first.path, flists.join(&first.hash));
    assert!(first.fetched);
    assert_eq!(std::fs::read(&first.path).expect("cached"), bytes);
    assert_eq!(cached(&flists), std::slice::from_ref(&first.hash), "nothing but the flist, by its md5");
    assert!(matches!(client.flist_hash(&url), Err(FlistError::HashNotSupported)));
    // The older hub publishes `<url>.md5`: a file the cache has is not downloaded again.
    hub.put("/user/image.fl.md5", format!("{}\n", first.hash).as_bytes());
    assert_eq!(client.flist_hash(&url).expect("hash"), first.hash);
    hub.forget();
    let second = client.download(&url, &flists).expect("cached");
    assert_eq!((second.hash.as_str(), second.fetched), (first.hash.as_str(), false));
    assert_eq!(hub.asked(), [Asked { path: "/user/image.fl.md5".into(), range: None }], "only the md5 was asked");
    hub.put("/user/image.fl.md5", b"abc\n");
    assert!(matches!(client.flist_hash(&url), Err(FlistError::HashInvalidLen)));
}

#[test]
fn md5_mismatch_is_refused_and_nothing_is_cached() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(&dir.path().join("hub"));
    let (_, bytes) = publish(&hub, dir.path());
    hub.put("/user/image.fl.md5", format!("{}\n", md5_hex(&bytes)).as_bytes());
    hub.corrupt("/user/image.fl", 100);
    let flists = dir.path().join("flist");
    let err = fast().download(&format!("{}/user/image.fl", hub.url()), &flists).expect_err("corrupt");
    assert!(matches!(err, FlistError::Md5Mismatch { .. }), "{err}");
    assert!(err.to_string().contains("md5 mismatch"), "{err}");
    assert_eq!(cached(&flists), Vec::<String>::new(), "no flist and no partial left");
}

#[test]
fn interrupted_download_is_resumed_with_a_range_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(&dir.path().join("hub"));
    let (_, bytes) = publish(&hub, dir.path());
    hub.put("/user/image.fl.md5", format!("{}\n", md5_hex(&bytes)).as_bytes());
    let url = format!("{}/user/image.fl", hub.url());
    let flists = dir.path().join("flist");
    hub.cut_next("/user/image.fl", 5000);
    let got = fast().download(&url, &flists).expect("resumed");
    assert_eq!(std::fs::read(&got.path).expect("cached"), bytes);
    let transfers: Vec<Asked> = hub.asked().into_iter().filter(|a| a.path == "/user/image.fl").collect();
    assert_eq!(
        transfers,
        [
            Asked { path: "/user/image.fl".into(), range: None },
            Asked { path: "/user/image.fl".into(), range: Some("bytes=5000-".into()) }
        ]
    );
    // A server that ignores Range: the second try is read whole, and is right too.
    std::fs::remove_file(&got.path).expect("forget it");
    hub.ignore_range(true);
    hub.cut_next("/user/image.fl", 7000);
    let again = fast().download(&url, &flists).expect("read whole again");
    assert_eq!(std::fs::read(&again.path).expect("cached"), bytes);
    assert_eq!(cached(&flists), [again.hash]);
}

#[test]
fn hub_down_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub = Hub::start(&dir.path().join("hub"));
    publish(&hub, dir.path());
    let url = format!("{}/user/image.fl", hub.url());
    hub.down();
    let flists = dir.path().join("flist");
    let err = fast().download(&url, &flists).expect_err("down");
    assert!(matches!(err, FlistError::HubDown { .. }), "{err}");
    assert!(err.to_string().contains("hub unreachable"), "{err}");
    assert_eq!(cached(&flists), Vec::<String>::new());
    hub.up();
    let err = fast().download(&format!("{}/user/missing.fl", hub.url()), &flists).expect_err("404");
    assert!(matches!(err, FlistError::Http { status: 404, .. }), "{err}");
}

#[test]
fn a_download_that_is_not_an_flist_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(&dir.path().join("hub"));
    hub.put("/user/junk.fl", b"<html>not an flist</html>");
    let flists = dir.path().join("flist");
    let err = fast().download(&format!("{}/user/junk.fl", hub.url()), &flists).expect_err("junk");
    assert!(matches!(err, FlistError::NotAnFlist { .. }), "{err}");
    assert_eq!(cached(&flists), Vec::<String>::new());
}

/// Blocks over an `http://` store: the tree extracted byte for byte; a block the hub lost is a missing
/// block, a hub that is down is said so.
#[test]
fn blocks_are_served_by_an_http_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut hub = Hub::start(&dir.path().join("hub"));
    let (src, _) = publish(&hub, dir.path());
    let image = dir.path().join("image.fl");
    let reader = Reader::open(&image).expect("open");
    let policy = DirPolicy::Under(Vec::new());
    let router = Router::new(reader.routes().expect("routes"), &policy).expect("http routes need no allow-list");
    let copy = dir.path().join("copy");
    zos_flistd::unpack::unpack(&reader, &router, &copy, Default::default()).expect("unpack over http");
    assert_same_tree(&src, &copy);
    let hostname = reader.lookup(1, "etc").expect("etc").expect("etc");
    let hostname = reader.lookup(hostname.ino, "hostname").expect("lookup").expect("hostname");
    let block = reader.blocks(hostname.ino).expect("blocks")[0];
    let name = block.hex_id();
    std::fs::remove_file(hub.block_path(&name)).expect("lose it");
    let err = router.read(&block).expect_err("missing");
    assert!(matches!(err, FlistError::BlockNotFound(_)), "{err}");
    hub.down();
    let other = reader.blocks(reader.lookup(1, "one-block").expect("l").expect("f").ino).expect("blocks")[0];
    let err = router.read(&other).expect_err("down");
    assert!(matches!(err, FlistError::HubDown { .. }), "{err}");
}

/// `flistd mount` of an flist whose blocks are on an `http://` store: every file equal to the source, a
/// block the hub lost reads as EIO, and so does a block the hub serves corrupted (never wrong bytes):
/// it does not enter the cache, so once the hub serves it right the file reads right. Needs root (FUSE).
#[test]
fn mount_reads_blocks_over_http() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED mount_reads_blocks_over_http: needs root for FUSE (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(&dir.path().join("hub"));
    let (src, _) = publish(&hub, dir.path());
    let image = dir.path().join("image.fl");
    let reader = Reader::open(&image).expect("open");
    let lost = reader.blocks(reader.lookup(1, "one-block").expect("l").expect("f").ino).expect("blocks")[0];
    let name = lost.hex_id();
    std::fs::remove_file(hub.block_path(&name)).expect("lose it");
    let etc = reader.lookup(1, "etc").expect("etc").expect("etc");
    let hostname = reader.blocks(reader.lookup(etc.ino, "hostname").expect("l").expect("f").ino).expect("blocks")[0];
    let corrupted = hostname.hex_id();
    hub.corrupt(&format!("/blocks/{}/{corrupted}", &corrupted[..2]), 3);
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let cache = dir.path().join("cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flistd"))
        .args(["mount", image.to_str().expect("path"), mnt.to_str().expect("path")])
        .args(["--cache", cache.to_str().expect("path")])
        .spawn()
        .expect("flistd mount");
    let started = std::time::Instant::now();
    while !mounted(&mnt) {
        assert!(started.elapsed() < Duration::from_secs(20), "never mounted");
        assert!(child.try_wait().expect("wait").is_none(), "flistd mount exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let err = std::fs::read(mnt.join("one-block")).expect_err("a lost block");
        assert_eq!(err.raw_os_error(), Some(nix::libc::EIO), "{err}");
        let err = std::fs::read(mnt.join("etc/hostname")).expect_err("a corrupted block");
        assert_eq!(err.raw_os_error(), Some(nix::libc::EIO), "a corrupted block is EIO, never wrong bytes: {err}");
        assert!(!cache.join(&corrupted).exists(), "a corrupted block never enters the cache");
        let skip = [Path::new("one-block"), Path::new("etc/hostname")];
        for rel in files(&src).into_iter().filter(|rel| !skip.contains(&rel.as_path())) {
            let (a, b) = (src.join(&rel), mnt.join(&rel));
            if a.is_file() && !a.is_symlink() {
                assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"), "{}", rel.display());
            }
        }
        hub.heal();
        assert_eq!(std::fs::read(mnt.join("etc/hostname")).expect("served right now"), b"zos\n");
        assert!(cache.join(&corrupted).exists(), "the right block is cached");
    }));
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().expect("wait");
    if result.is_err() {
        let _ = Command::new("umount").args(["-l", mnt.to_str().expect("path")]).status();
    }
    assert!(result.is_ok(), "the mount was wrong");
    assert!(status.success(), "{status}");
}

/// Concurrent readers of one block through an `http://` store with a cache (a slow hub, so that the
/// requests would overlap): the hub is asked for the block exactly once, every reader gets its bytes.
#[test]
fn concurrent_readers_of_a_block_over_http_cause_one_download() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = Hub::start(&dir.path().join("hub"));
    publish(&hub, dir.path());
    let reader = Reader::open(&dir.path().join("image.fl")).expect("open");
    let block = reader.blocks(reader.lookup(1, "one-block").expect("l").expect("f").ino).expect("blocks")[0];
    let http = zos_flistd::store::open(&format!("{}/blocks", hub.url()), &DirPolicy::Under(Vec::new())).expect("http");
    let cached = zos_flistd::store::CachedStore::new(http, dir.path().join("cache"));
    hub.slow(Duration::from_millis(300));
    hub.forget();
    let expected = std::fs::read(dir.path().join("src/one-block")).expect("src");
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let sealed = zos_flistd::store::Store::get(&cached, &block.id).expect("get").expect("found");
                assert_eq!(zos_flistd::block::open(&block, &sealed).expect("open"), expected);
            });
        }
    });
    let name = block.hex_id();
    let asked: Vec<Asked> = hub.asked().into_iter().filter(|a| a.path.ends_with(&name)).collect();
    assert_eq!(asked, [Asked { path: format!("/blocks/{}/{name}", &name[..2]), range: None }], "one download");
    assert_eq!(cached.fetches(), 1);
}
