//! flists packed from trees the tests build, in rfs's format, extracted again with every block
//! verified: bytes and metadata equal the source; corrupted and missing blocks are errors, never wrong
//! bytes; unsafe flists are refused; `dir://` routes outside the daemon's allow-list are refused.

mod support;

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use support::mounted;
use support::tree::{assert_same_tree, files, source_tree, unsafe_cases, write_unsafe};
use zos_flistd::FlistError;
use zos_flistd::meta::{Reader, Route};
use zos_flistd::store::{DirPolicy, Router};
use zos_flistd::unpack::{Options, unpack};

fn flistd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flistd")).args(args).output().expect("flistd")
}

/// `flistd pack SRC_DIR --store URL -o IMAGE.fl`, then extraction: the same bytes and metadata.
#[test]
fn pack_and_unpack_round_trip_every_file_and_its_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    source_tree(&src);
    let image = dir.path().join("image.fl");
    let store = dir.path().join("store");
    let out = flistd(&[
        "pack",
        src.to_str().expect("path"),
        "--store",
        &format!("dir://{}", store.display()),
        "-o",
        image.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let reader = Reader::open(&image).expect("open");
    assert_eq!(
        reader.routes().expect("routes"),
        [Route { start: 0, end: 255, url: format!("dir://{}", store.display()) }]
    );
    let root = reader.inode(1).expect("root").expect("root exists");
    assert_eq!((root.name.as_str(), root.parent), ("/", 0));
    let copy = dir.path().join("copy");
    let out = flistd(&["unpack", image.to_str().expect("path"), copy.to_str().expect("path")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(&src, &copy);
    // The multi-block file is 3 blocks: 512 KiB, 512 KiB and the rest.
    let multi = reader.children(1).expect("children").into_iter().find(|i| i.name == "multi-block").expect("multi");
    assert_eq!(reader.blocks(multi.ino).expect("blocks").len(), 3);
}

#[test]
fn corrupted_and_missing_blocks_are_errors_never_wrong_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("data"), vec![42u8; 100_000]).expect("data");
    let store = dir.path().join("store");
    let image = dir.path().join("image.fl");
    zos_flistd::pack::pack(&src, &zos_flistd::store::DirStore::new(&store), &image).expect("pack");
    let reader = Reader::open(&image).expect("open");
    let router = Router::new(reader.routes().expect("routes"), &DirPolicy::Any).expect("router");
    let blob = std::fs::read_dir(&store).expect("store").next().expect("one block").expect("entry").path();
    let mut bytes = std::fs::read(&blob).expect("block");
    bytes[5] ^= 0xff;
    std::fs::write(&blob, &bytes).expect("corrupt");
    let err = unpack(&reader, &router, &dir.path().join("a"), Options::default()).expect_err("corrupted");
    assert!(matches!(err, FlistError::Block { .. }), "{err}");
    std::fs::remove_file(&blob).expect("lose the block");
    let err = unpack(&reader, &router, &dir.path().join("b"), Options::default()).expect_err("missing");
    assert!(matches!(err, FlistError::BlockNotFound(_)), "{err}");
}

/// Malicious flists: a name with `/`, a `..`, a loop in `parent`, an absurd size, a device node; the
/// check the daemon makes before a mount refuses the same (device nodes aside: a mount is `nodev`).
#[test]
fn unsafe_flists_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let route = format!("dir://{}", dir.path().join("none").display());
    for case in unsafe_cases() {
        let image = dir.path().join(format!("{}.fl", case.name));
        write_unsafe(&case, &route, &image);
        let reader = Reader::open(&image).expect("open");
        let router = Router::new(reader.routes().expect("routes"), &DirPolicy::Any).expect("router");
        let out = dir.path().join(format!("{}-out", case.name));
        let text = unpack(&reader, &router, &out, Options::default()).expect_err(case.name).to_string();
        assert!(text.contains(case.expected) && text.contains("unsafe"), "{}: {text}", case.name);
        assert!(!out.exists(), "{}: nothing is written for an unsafe archive", case.name);
        let checked = zos_flistd::unpack::check(&reader, Options { devices: true });
        if case.name == "device" {
            assert_eq!(checked.expect("a device node in a mount"), 1);
        } else {
            assert!(checked.expect_err(case.name).to_string().contains(case.expected), "{}", case.name);
        }
    }
}

/// A user's flist must not make the daemon read the node's own files: `dir://` routes outside the
/// allow-list are refused; the operator's commands accept them.
#[test]
fn dir_routes_outside_the_allow_list_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let allowed = dir.path().join("hub");
    std::fs::create_dir(&allowed).expect("hub");
    let policy = DirPolicy::Under(vec![allowed.clone()]);
    let route = |url: String| vec![Route { start: 0, end: 255, url }];
    assert!(Router::new(route(format!("dir://{}", allowed.display())), &policy).is_ok());
    let err = Router::new(route("dir:///etc".into()), &policy).err().expect("refused");
    assert!(err.to_string().contains("outside the allowed directories"), "{err}");
    let err = Router::new(route(format!("dir://{}/../..", allowed.display())), &policy).err().expect("refused");
    assert!(err.to_string().contains("outside"), "{err}");
    assert!(Router::new(route("dir:///etc".into()), &DirPolicy::Any).is_ok());
    let err = Router::new(route("s3://hub.grid.tf/blocks".into()), &DirPolicy::Any).err().expect("not yet");
    assert!(err.to_string().contains("not supported yet"), "{err}");
}

/// The daemon's mount processes enforce the allow-list themselves: `flistd mount --restrict-dirs` refuses
/// an image whose `dir://` route is outside its `--allow-dir` directories before mounting anything.
#[test]
fn mount_processes_refuse_dir_routes_outside_their_allow_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    std::fs::create_dir(&src).expect("src");
    std::fs::write(src.join("f"), b"x").expect("f");
    let image = dir.path().join("image.fl");
    zos_flistd::pack::pack(&src, &zos_flistd::store::DirStore::new(dir.path().join("store")), &image).expect("pack");
    let allowed = dir.path().join("allowed");
    std::fs::create_dir(&allowed).expect("allowed");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let (image, mnt) = (image.to_str().expect("path"), mnt.to_str().expect("path"));
    let out = flistd(&["mount", image, mnt, "--restrict-dirs", "--allow-dir", allowed.to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("outside the allowed directories"), "{stderr}");
    let out = flistd(&["mount", image, mnt, "--restrict-dirs"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the allowed directories"));
    let out = flistd(&["mount", image, mnt, "--allow-dir", "/"]);
    assert_eq!(out.status.code(), Some(2), "--allow-dir needs --restrict-dirs");
}

/// A free TCP port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Blocks in a zdb store (a private redis-server stands in for 0-db), fetched once into the cache: a
/// second extraction works from the cache with the hub down.
#[test]
fn zdb_store_and_the_block_cache_survive_the_hub_going_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut redis =
        zos_zbus::local_redis::LocalRedis::start_with_port(dir.path(), port).unwrap_or_else(|e| panic!("{e}"));
    let src = dir.path().join("src");
    source_tree(&src);
    let image = dir.path().join("image.fl");
    let url = format!("zdb://127.0.0.1:{port}");
    let out = flistd(&["pack", src.to_str().expect("path"), "--store", &url, "-o", image.to_str().expect("path")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cache = dir.path().join("cache");
    let first = dir.path().join("first");
    let args = |dest: &Path| {
        vec![
            "unpack".to_string(),
            image.display().to_string(),
            dest.display().to_string(),
            "--cache".into(),
            cache.display().to_string(),
        ]
    };
    let run = |dest: &Path| Command::new(env!("CARGO_BIN_EXE_flistd")).args(args(dest)).output().expect("flistd");
    let out = run(&first);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(&src, &first);
    redis.kill();
    let second = dir.path().join("second");
    let out = run(&second);
    assert!(out.status.success(), "from the cache with the hub down: {}", String::from_utf8_lossy(&out.stderr));
    assert_same_tree(&src, &second);
    std::fs::remove_dir_all(&cache).expect("drop the cache");
    let out = run(&dir.path().join("third"));
    assert!(!out.status.success(), "hub down and no cache: an error");
}

/// Concurrent readers of one block not cached yet: one download, every reader gets the bytes.
#[test]
fn concurrent_readers_of_a_block_share_one_download() {
    struct Slow(zos_flistd::store::DirStore);
    impl zos_flistd::store::Store for Slow {
        fn get(&self, id: &[u8; 32]) -> Result<Option<Vec<u8>>, FlistError> {
            std::thread::sleep(std::time::Duration::from_millis(200));
            self.0.get(id)
        }
        fn set(&self, id: &[u8; 32], sealed: &[u8]) -> Result<(), FlistError> {
            self.0.set(id, sealed)
        }
        fn url(&self) -> String {
            self.0.url()
        }
    }
    use zos_flistd::store::Store;
    let dir = tempfile::tempdir().expect("tempdir");
    let backing = zos_flistd::store::DirStore::new(dir.path().join("hub"));
    let (block, sealed) = zos_flistd::block::seal(b"one block, many readers").expect("seal");
    backing.set(&block.id, &sealed).expect("set");
    let cached = zos_flistd::store::CachedStore::new(Box::new(Slow(backing)), dir.path().join("cache"));
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let got = cached.get(&block.id).expect("get").expect("found");
                assert_eq!(zos_flistd::block::open(&block, &got).expect("open"), b"one block, many readers");
            });
        }
    });
    assert_eq!(cached.fetches(), 1, "one download in flight per block");
}

/// `flistd mount IMAGE.fl MOUNTPOINT --cache DIR`: every file's bytes and metadata through FUSE equal
/// the source, blocks fetched lazily into the cache; a corrupted block reads as EIO, never as wrong
/// bytes; SIGTERM unmounts. Needs root (FUSE mounts without fusermount).
#[test]
fn mount_serves_the_image_read_only_and_unmounts_on_sigterm() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "SKIPPED mount_serves_the_image_read_only_and_unmounts_on_sigterm: needs root for FUSE (CI runs as root)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path().join("src");
    source_tree(&src);
    std::fs::write(src.join("victim"), vec![9u8; 4096]).expect("victim");
    let store = dir.path().join("store");
    let image = dir.path().join("image.fl");
    zos_flistd::pack::pack(&src, &zos_flistd::store::DirStore::new(&store), &image).expect("pack");
    // Corrupt the one block of `victim` in the store.
    let reader = Reader::open(&image).expect("open");
    let victim = reader.lookup(1, "victim").expect("lookup").expect("victim");
    let block = reader.blocks(victim.ino).expect("blocks")[0];
    let blob = store.join(block.hex_id());
    let mut bytes = std::fs::read(&blob).expect("blob");
    bytes[3] ^= 0x55;
    std::fs::write(&blob, bytes).expect("corrupt");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mnt");
    let cache = dir.path().join("cache");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flistd"))
        .args([
            "mount",
            image.to_str().expect("path"),
            mnt.to_str().expect("path"),
            "--cache",
            cache.to_str().expect("path"),
        ])
        .spawn()
        .expect("flistd mount");
    let started = std::time::Instant::now();
    while !mounted(&mnt) {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "never mounted");
        assert!(child.try_wait().expect("wait").is_none(), "flistd mount exited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let result = std::panic::catch_unwind(|| {
        std::fs::remove_file(src.join("victim")).expect("drop from the comparison");
        let err = std::fs::read(mnt.join("victim")).expect_err("a corrupted block");
        assert_eq!(err.raw_os_error(), Some(nix::libc::EIO), "{err}");
        let listed: Vec<_> = files(&mnt).into_iter().filter(|p| p != Path::new("victim")).collect();
        assert_eq!(listed, files(&src));
        for rel in files(&src) {
            let (a, b) = (src.join(&rel), mnt.join(&rel));
            let (ma, mb) = (std::fs::symlink_metadata(&a).expect("a"), std::fs::symlink_metadata(&b).expect("b"));
            assert_eq!(
                (ma.mode(), ma.uid(), ma.gid(), ma.len()),
                (mb.mode(), mb.uid(), mb.gid(), mb.len()),
                "{}",
                rel.display()
            );
            if ma.is_file() {
                assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"), "{}", rel.display());
            } else if ma.file_type().is_symlink() {
                assert_eq!(std::fs::read_link(&a).expect("a"), std::fs::read_link(&b).expect("b"));
            }
        }
        assert!(std::fs::write(mnt.join("new"), b"x").is_err(), "read-only");
        assert!(std::fs::read_dir(&cache).expect("cache").count() > 0, "blocks were cached");
    });
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().expect("wait");
    if result.is_err() {
        let _ = Command::new("umount").args(["-l", mnt.to_str().expect("path")]).status();
    }
    assert!(result.is_ok(), "the mount was wrong");
    assert!(status.success(), "flistd mount exits 0 on SIGTERM: {status}");
    assert!(!mounted(&mnt), "unmounted");
}

/// Cache eviction: blocks unused for longer than the age go, then the least recently used until the
/// cache fits; a block of a mounted image is never evicted.
#[test]
fn cache_eviction_by_age_and_space_keeps_mounted_blocks() {
    use std::collections::HashSet;
    use std::time::{Duration, SystemTime};
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).expect("cache");
    let now = SystemTime::now();
    let mut ids = Vec::new();
    for (i, age_days) in [200u64, 100, 10, 5, 1].into_iter().enumerate() {
        let id = [i as u8; 32];
        let path = cache.join(hex::encode(id));
        std::fs::write(&path, vec![0u8; 1000]).expect("block");
        let file = std::fs::File::options().write(true).open(&path).expect("open");
        file.set_modified(now - Duration::from_secs(age_days * 86_400)).expect("age");
        ids.push(id);
    }
    let mounted: HashSet<[u8; 32]> = HashSet::from([ids[0]]);
    let ninety_days = now - Duration::from_secs(90 * 86_400);
    let evicted = zos_flistd::store::evict(&cache, ninety_days, None, &mounted).expect("evict");
    assert_eq!(evicted.blocks, 1, "the 100-day-old block goes; the 200-day-old one belongs to a mounted image");
    assert!(cache.join(hex::encode(ids[0])).exists() && !cache.join(hex::encode(ids[1])).exists());
    let evicted = zos_flistd::store::evict(&cache, ninety_days, Some(2500), &mounted).expect("evict");
    assert_eq!(evicted.blocks, 2, "the two least recently used unmounted blocks go until 2 500 bytes fit");
    let left: HashSet<String> = std::fs::read_dir(&cache)
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, HashSet::from([hex::encode(ids[0]), hex::encode(ids[4])]));
}
