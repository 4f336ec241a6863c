//! The flistd daemon with real parts: a private redis-server carries zbus, the test hub on 127.0.0.1
//! serves the `.fl` and its blocks, `flistd --config FILE` serves `flist@0.0.1`, each mount a FUSE
//! process of its own. Read-only mounts are read back byte for byte; a read-write mount is an overlay
//! whose writes land in a volume made through `storage@0.0.1` (a small storaged stand-in here whose
//! volumes are tmpfs mounts of the requested size, so the quota is real); a daemon killed with -9 finds
//! its live mounts again, and the mount of a process killed with -9 is detached at the next start; a
//! failed `VolumeDelete` is retried, never leaked.
//! They need root (FUSE, overlayfs, tmpfs) and redis-server; CI runs as root.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use support::hub::Hub;
use support::mounted;
use support::tree::{files, source_tree, unsafe_cases, write_unsafe};
use zos_interfaces::flist::{FlistClient, MountOptions};
use zos_interfaces::storage::{
    BrokenDevice, BrokenPool, Device, PoolMetrics, StorageModule, StorageServer, Usage, VDisk, Volume,
};
use zos_zbus::{RemoteError, code};

fn root_or_skip(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() || !Path::new("/dev/fuse").exists() {
        eprintln!("SKIPPED {test}: needs root and /dev/fuse for FUSE, overlayfs and tmpfs (CI runs as root)");
        return false;
    }
    true
}

/// storaged as far as flistd uses it: volumes are tmpfs mounts of their size under `dir`; the next
/// `fail_deletes` deletes fail.
struct TmpfsVolumes {
    dir: PathBuf,
    fail_deletes: AtomicU32,
}

fn unsupported<T>() -> Result<T, RemoteError> {
    Err(RemoteError::new(code::INTERNAL, "not served by the test storaged"))
}

impl TmpfsVolumes {
    fn volume(&self, name: &str) -> Result<Volume, RemoteError> {
        let path = self.dir.join(name);
        if !mounted(&path) {
            return Err(RemoteError::new(code::NOT_FOUND, format!("no volume {name}")));
        }
        Ok(Volume { name: name.into(), path: path.display().to_string(), usage: Usage::default() })
    }
    fn tmpfs(&self, name: &str, size: u64, remount: bool) -> Result<(), RemoteError> {
        let path = self.dir.join(name);
        std::fs::create_dir_all(&path).map_err(|e| RemoteError::new(code::INTERNAL, e.to_string()))?;
        let mut flags = nix::mount::MsFlags::empty();
        if remount {
            flags |= nix::mount::MsFlags::MS_REMOUNT;
        }
        nix::mount::mount(Some("tmpfs"), &path, Some("tmpfs"), flags, Some(&*format!("size={size}")))
            .map_err(|e| RemoteError::new(code::INTERNAL, e.to_string()))
    }
}

impl StorageModule for TmpfsVolumes {
    async fn volume_create(&self, name: String, size: u64) -> Result<Volume, RemoteError> {
        if self.volume(&name).is_err() {
            self.tmpfs(&name, size, false)?;
        }
        self.volume(&name)
    }
    async fn volume_update(&self, name: String, size: u64) -> Result<(), RemoteError> {
        self.volume(&name)?;
        self.tmpfs(&name, size, true)
    }
    async fn volume_lookup(&self, name: String) -> Result<Volume, RemoteError> {
        self.volume(&name)
    }
    async fn volume_exists(&self, name: String) -> Result<bool, RemoteError> {
        Ok(self.volume(&name).is_ok())
    }
    async fn volume_delete(&self, name: String) -> Result<(), RemoteError> {
        if self.fail_deletes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok() {
            return Err(RemoteError::new(code::INTERNAL, format!("btrfs subvolume delete {name}: device busy")));
        }
        let path = self.dir.join(&name);
        if mounted(&path) {
            nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| RemoteError::new(code::INTERNAL, e.to_string()))?;
        }
        let _ = std::fs::remove_dir(&path);
        Ok(())
    }
    async fn cache(&self) -> Result<Volume, RemoteError> {
        unsupported()
    }
    async fn total(&self, _kind: String) -> Result<u64, RemoteError> {
        unsupported()
    }
    async fn broken_pools(&self) -> Result<Vec<BrokenPool>, RemoteError> {
        unsupported()
    }
    async fn broken_devices(&self) -> Result<Vec<BrokenDevice>, RemoteError> {
        unsupported()
    }
    async fn volume_create_on(&self, _name: String, _size: u64, _pool: String) -> Result<Volume, RemoteError> {
        unsupported()
    }
    async fn volume_list(&self) -> Result<Vec<Volume>, RemoteError> {
        unsupported()
    }
    async fn disk_create(&self, _name: String, _size: u64) -> Result<VDisk, RemoteError> {
        unsupported()
    }
    async fn disk_create_on(&self, _name: String, _size: u64, _pool: String) -> Result<VDisk, RemoteError> {
        unsupported()
    }
    async fn disk_resize(&self, _name: String, _size: u64) -> Result<VDisk, RemoteError> {
        unsupported()
    }
    async fn disk_write(&self, _name: String, _image: String) -> Result<(), RemoteError> {
        unsupported()
    }
    async fn disk_format(&self, _name: String) -> Result<(), RemoteError> {
        unsupported()
    }
    async fn disk_lookup(&self, _name: String) -> Result<VDisk, RemoteError> {
        unsupported()
    }
    async fn disk_exists(&self, _name: String) -> Result<bool, RemoteError> {
        unsupported()
    }
    async fn disk_delete(&self, _name: String) -> Result<(), RemoteError> {
        unsupported()
    }
    async fn disk_list(&self) -> Result<Vec<VDisk>, RemoteError> {
        unsupported()
    }
    async fn devices(&self) -> Result<Vec<Device>, RemoteError> {
        unsupported()
    }
    async fn device_allocate(&self, _min: u64) -> Result<Device, RemoteError> {
        unsupported()
    }
    async fn device_allocate_on(&self, _pool: String, _min: u64) -> Result<Device, RemoteError> {
        unsupported()
    }
    async fn device_lookup(&self, _name: String) -> Result<Device, RemoteError> {
        unsupported()
    }
    async fn device_release(&self, _name: String) -> Result<(), RemoteError> {
        unsupported()
    }
    async fn metrics(&self) -> Result<Vec<PoolMetrics>, RemoteError> {
        unsupported()
    }
}

/// A node for flistd: redis, the hub with one published image, the storaged stand-in, the daemon.
struct Node {
    dir: tempfile::TempDir,
    runtime: tokio::runtime::Runtime,
    _redis: zos_zbus::local_redis::LocalRedis,
    hub: Hub,
    daemon: Option<Child>,
    flist: FlistClient,
    src: PathBuf,
    md5: String,
    stop_storage: Option<tokio::sync::oneshot::Sender<()>>,
    volumes: Arc<TmpfsVolumes>,
}

impl Node {
    fn start() -> Node {
        Node::start_with("")
    }

    /// A node whose daemon's configuration ends with `extra` (TOML tables).
    fn start_with(extra: &str) -> Node {
        Node::start_configured("", extra)
    }

    /// A node whose daemon's configuration has `top` (top-level keys) and ends with `extra` (tables).
    fn start_configured(top: &str, extra: &str) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let redis = zos_zbus::local_redis::LocalRedis::start(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let hub = Hub::start(&dir.path().join("hub"));
        let src = dir.path().join("src");
        source_tree(&src);
        let image = dir.path().join("image.fl");
        let store = hub.store();
        zos_flistd::pack::pack(&src, &store, &image).expect("pack");
        let bytes = std::fs::read(&image).expect("image");
        let md5 = hex::encode(<md5::Md5 as md5::Digest>::digest(&bytes));
        hub.put("/user/image.fl", &bytes);
        hub.put("/user/image.fl.md5", format!("{md5}\n").as_bytes());
        let config = dir.path().join("flistd.toml");
        std::fs::write(
            &config,
            format!(
                "redis = {:?}\nroot = {:?}\nallow_dirs = [{:?}]\n{top}[download]\nretries = 2\nbackoff_ms = 10\n{extra}",
                redis.url(),
                dir.path().join("flistd").display().to_string(),
                dir.path().join("allowed").display().to_string()
            ),
        )
        .expect("config");
        std::fs::create_dir_all(dir.path().join("allowed")).expect("allowed");
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let volumes = Arc::new(TmpfsVolumes { dir: dir.path().join("volumes"), fail_deletes: AtomicU32::new(0) });
        let mut server = zos_zbus::Server::new("storage", redis.url(), 2);
        server.register(StorageServer(volumes.clone()));
        runtime.spawn(server.run(async move {
            let _ = stopped.await;
        }));
        let flist = runtime.block_on(async {
            FlistClient::new(zos_zbus::Client::connect(&redis.url()).await.expect("zbus"), "flist")
        });
        let mut node =
            Node { dir, runtime, _redis: redis, hub, daemon: None, flist, src, md5, stop_storage: Some(stop), volumes };
        node.start_daemon();
        node
    }

    fn url(&self) -> String {
        format!("{}/user/image.fl", self.hub.url())
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("flistd")
    }

    fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("flistd.log"))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_flistd"))
            .arg("--config")
            .arg(self.dir.path().join("flistd.toml"))
            .stderr(log)
            .spawn()
            .expect("flistd");
        self.daemon = Some(child);
        let started = Instant::now();
        // Serving once a call is answered.
        while self.runtime.block_on(self.flist.exists("probe".into())).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "flistd never served: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("flistd.log")).unwrap_or_default()
    }

    fn call<T>(&self, call: impl std::future::Future<Output = Result<T, zos_zbus::ZbusError>>) -> Result<T, String> {
        self.runtime.block_on(call).map_err(|err| err.to_string())
    }

    fn mount(&self, name: &str, opt: MountOptions) -> Result<String, String> {
        self.call(self.flist.mount(name.into(), self.url(), opt))
    }

    /// What is mounted under the daemon's directory.
    fn mounts(&self) -> Vec<PathBuf> {
        let root = std::fs::canonicalize(self.root()).expect("root");
        zos_flistd::mountinfo::mount_points().expect("mounts").into_iter().filter(|p| p.starts_with(&root)).collect()
    }

    /// The names of the daemon's state files.
    fn states(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.root().join("state"))
            .expect("state")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// The pid of the mount process of `name`, from its state file.
    fn mount_pid(&self, name: &str) -> i32 {
        let state = std::fs::read(self.root().join("state").join(format!("{name}.json"))).expect("state");
        let state: serde_json::Value = serde_json::from_slice(&state).expect("json");
        i32::try_from(state["pid"].as_u64().expect("pid")).expect("pid")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Whatever a failed test left: the daemon, its mounts, the volumes.
        self.kill_daemon();
        let root = self.dir.path().to_path_buf();
        for point in zos_flistd::mountinfo::mount_points().unwrap_or_default().into_iter().rev() {
            if point.starts_with(&root) {
                let _ = zos_flistd::mountinfo::detach(&point);
            }
        }
        for entry in std::fs::read_dir(root.join("flistd/state")).into_iter().flatten().flatten() {
            if let Ok(state) = std::fs::read(entry.path())
                && let Ok(state) = serde_json::from_slice::<serde_json::Value>(&state)
                && let Some(pid) = state["pid"].as_u64().and_then(|p| i32::try_from(p).ok())
            {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
        if let Some(stop) = self.stop_storage.take() {
            let _ = stop.send(());
        }
    }
}

fn assert_same_bytes(src: &Path, mnt: &Path) {
    assert_eq!(files(src), files(mnt), "the same entries");
    for rel in files(src) {
        let (a, b) = (src.join(&rel), mnt.join(&rel));
        if a.is_file() && !a.is_symlink() {
            assert_eq!(std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"), "{}", rel.display());
        }
    }
}

fn process_gone(pid: i32) -> bool {
    // A zombie (killed, not yet reaped by init) has no command line.
    std::fs::read(format!("/proc/{pid}/cmdline")).map_or(true, |cmdline| cmdline.is_empty())
}

#[test]
fn daemon_mounts_read_only_over_zbus() {
    if !root_or_skip("daemon_mounts_read_only_over_zbus") {
        return;
    }
    let node = Node::start();
    let path = node.mount("web", MountOptions::read_only()).unwrap_or_else(|e| panic!("{e}\n{}", node.log()));
    let expected = std::fs::canonicalize(node.root()).expect("root").join("mountpoint/web");
    assert_eq!(PathBuf::from(&path), expected);
    assert!(mounted(&expected));
    assert_same_bytes(&node.src, &expected);
    assert!(std::fs::write(expected.join("new"), b"x").is_err(), "read-only");
    assert_eq!(node.call(node.flist.exists("web".into())), Ok(true));
    assert_eq!(node.call(node.flist.exists("other".into())), Ok(false));
    assert_eq!(node.call(node.flist.hash_from_root_path("web".into())).as_deref(), Ok(&*node.md5));
    assert_eq!(node.call(node.flist.hash_from_root_path(path.clone())).as_deref(), Ok(&*node.md5));
    assert_eq!(node.call(node.flist.flist_hash(node.url())).as_deref(), Ok(&*node.md5));
    assert!(
        std::fs::canonicalize(node.root()).expect("root").join("flist").join(&node.md5).is_file(),
        "the flist is cached by its md5"
    );
    assert_eq!(node.mount("web", MountOptions::read_only()), Ok(path.clone()), "an existing mount is returned");
    // A second mount of the image the cache has (the hub publishes its md5): the .fl is not fetched again.
    node.hub.forget();
    let other = PathBuf::from(node.mount("web2", MountOptions::read_only()).expect("second mount"));
    assert_same_bytes(&node.src, &other);
    assert!(
        node.hub.asked().iter().all(|asked| asked.path != "/user/image.fl"),
        "the cached flist was used: {:?}",
        node.hub.asked()
    );
    node.call(node.flist.unmount("web2".into())).expect("unmount web2");
    let pid = node.mount_pid("web");
    node.call(node.flist.unmount("web".into())).expect("unmount");
    assert!(!mounted(&expected), "unmounted");
    assert_eq!(node.call(node.flist.exists("web".into())), Ok(false));
    assert!(process_gone(pid), "the mount process stopped");
    node.call(node.flist.unmount("web".into())).expect("unmount is idempotent");
    let err = node.call(node.flist.hash_from_root_path("web".into())).expect_err("not mounted");
    assert!(err.contains("not mounted"), "{err}");
}

#[test]
fn daemon_refuses_what_zos_refuses() {
    if !root_or_skip("daemon_refuses_what_zos_refuses") {
        return;
    }
    let node = Node::start();
    let err = node.mount("../etc", MountOptions::read_only()).expect_err("bad name");
    assert!(err.contains("invalid mount name"), "{err}");
    let err = node.mount("rw", MountOptions::default()).expect_err("no limit");
    assert!(err.contains("invalid mount option, missing disk type"), "{err}");
    let err =
        node.call(node.flist.mount("x".into(), format!("{}/u/old.flist", node.hub.url()), MountOptions::read_only()));
    assert!(err.expect_err("g8ufs").contains("unknown extension"));
    // A user's flist whose dir:// route is outside the allow-list: refused, nothing mounted.
    let src = node.dir.path().join("evil-src");
    std::fs::create_dir_all(&src).expect("src");
    std::fs::write(src.join("f"), b"x").expect("f");
    let image = node.dir.path().join("evil.fl");
    let store = zos_flistd::store::DirStore::new(node.dir.path().join("outside"));
    zos_flistd::pack::pack(&src, &store, &image).expect("pack");
    node.hub.put("/user/evil.fl", &std::fs::read(&image).expect("image"));
    let err = node
        .call(node.flist.mount("evil".into(), format!("{}/user/evil.fl", node.hub.url()), MountOptions::read_only()))
        .expect_err("outside the allow-list");
    assert!(err.contains("outside the allowed directories"), "{err}");
    assert_eq!(node.call(node.flist.exists("evil".into())), Ok(false));
    // Malicious trees: a name with `/`, a `..`, a loop in `parent`, an absurd size; refused before
    // anything is mounted.
    for case in unsafe_cases().into_iter().filter(|case| case.name != "device") {
        let image = node.dir.path().join(format!("{}.fl", case.name));
        write_unsafe(&case, &format!("{}/blocks", node.hub.url()), &image);
        node.hub.put(&format!("/user/{}.fl", case.name), &std::fs::read(&image).expect("image"));
        let url = format!("{}/user/{}.fl", node.hub.url(), case.name);
        let err = node.call(node.flist.mount(case.name.into(), url, MountOptions::read_only())).expect_err(case.name);
        assert!(err.contains("unsafe flist") && err.contains(case.expected), "{}: {err}", case.name);
        assert_eq!(node.call(node.flist.exists(case.name.into())), Ok(false));
    }
    assert_eq!(node.mounts(), Vec::<PathBuf>::new(), "nothing of a refused flist is mounted");
    assert_eq!(node.states(), Vec::<String>::new(), "and no state is kept for one");
    let err = node.call(node.flist.mount(
        "gone".into(),
        format!("{}/user/none.fl", node.hub.url()),
        MountOptions::read_only(),
    ));
    assert!(err.expect_err("404").contains("404"));
    let down = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let url = format!("http://127.0.0.1:{down}/user/image.fl");
    let err = node.call(node.flist.mount("down".into(), url, MountOptions::read_only())).expect_err("hub down");
    assert!(err.contains("hub unreachable") && err.contains("Connection refused"), "{err}");
}

#[test]
fn read_write_mount_writes_land_in_a_volume_and_its_quota_stops_them() {
    if !root_or_skip("read_write_mount_writes_land_in_a_volume_and_its_quota_stops_them") {
        return;
    }
    let node = Node::start();
    let opt = MountOptions { read_only: false, limit: 4 << 20, ..MountOptions::default() };
    let path = PathBuf::from(node.mount("rootfs", opt).unwrap_or_else(|e| panic!("{e}\n{}", node.log())));
    assert_same_bytes(&node.src, &path);
    std::fs::write(path.join("etc/hostname"), b"changed\n").expect("write over the image");
    std::fs::write(path.join("new-file"), b"new").expect("a new file");
    let volume = node.dir.path().join("volumes/rootfs");
    assert_eq!(std::fs::read(volume.join("rw/etc/hostname")).expect("in the volume"), b"changed\n");
    assert_eq!(std::fs::read(volume.join("rw/new-file")).expect("in the volume"), b"new");
    assert_eq!(std::fs::read(node.src.join("etc/hostname")).expect("src"), b"zos\n");
    // The volume's size is the quota.
    let err = std::fs::write(path.join("big"), vec![1u8; 8 << 20]).expect_err("over the quota");
    assert_eq!(err.raw_os_error(), Some(nix::libc::ENOSPC), "{err}");
    let _ = std::fs::remove_file(path.join("big"));
    node.call(node.flist.update_mount_size("rootfs".into(), 16 << 20)).expect("grown");
    std::fs::write(path.join("big"), vec![1u8; 8 << 20]).expect("fits now");
    assert_eq!(node.call(node.flist.hash_from_root_path("rootfs".into())).as_deref(), Ok(&*node.md5));
    node.call(node.flist.unmount("rootfs".into())).expect("unmount");
    assert!(!mounted(&path), "overlay unmounted");
    assert!(!mounted(&volume), "the volume was deleted through storage@0.0.1");
    assert!(
        !mounted(&std::fs::canonicalize(node.root()).expect("root").join("ro/rootfs")),
        "the lower FUSE mount is gone"
    );
}

/// Where FUSE is unavailable (`mount_with = "unpack"`), an image is unpacked once, every block verified,
/// into a shared read-only tree bind-mounted at the mount point: the same bytes, read-only, no mount
/// process; a second mount shares the tree; a read-write mount overlays it; a restarted daemon finds
/// them all again; unmounting takes the binds away and leaves the tree for the next mount.
#[test]
fn without_fuse_images_are_unpacked_into_a_shared_read_only_tree() {
    if !root_or_skip("without_fuse_images_are_unpacked_into_a_shared_read_only_tree") {
        return;
    }
    let mut node = Node::start_configured("mount_with = \"unpack\"\n", "");
    let web =
        PathBuf::from(node.mount("web", MountOptions::read_only()).unwrap_or_else(|e| panic!("{e}\n{}", node.log())));
    assert_same_bytes(&node.src, &web);
    assert!(std::fs::write(web.join("new"), b"x").is_err(), "read-only");
    assert_eq!(node.mount_pid("web"), 0, "no mount process");
    let tree = std::fs::canonicalize(node.root()).expect("root").join("trees").join(&node.md5);
    assert!(tree.is_dir(), "unpacked into trees/<md5>");
    let fetched = node.hub.asked().len();
    let web2 = PathBuf::from(node.mount("web2", MountOptions::read_only()).expect("second mount"));
    assert_same_bytes(&node.src, &web2);
    assert!(
        node.hub.asked().len() <= fetched + 2,
        "the tree is shared, no block fetched again: {:?}",
        node.hub.asked()
    );
    let opt = MountOptions { read_only: false, limit: 4 << 20, ..MountOptions::default() };
    let rw = PathBuf::from(node.mount("rw", opt).expect("read-write over the tree"));
    std::fs::write(rw.join("etc/hostname"), b"changed\n").expect("write over the image");
    assert_eq!(std::fs::read(tree.join("etc/hostname")).expect("tree"), b"zos\n", "the shared tree is untouched");

    node.kill_daemon();
    node.start_daemon();
    for name in ["web", "web2", "rw"] {
        assert_eq!(node.call(node.flist.exists(name.into())), Ok(true), "{name} found again:\n{}", node.log());
    }
    for name in ["web", "web2", "rw"] {
        node.call(node.flist.unmount(name.into())).expect("unmount");
    }
    assert!(node.mounts().is_empty(), "nothing left mounted: {:?}", node.mounts());
    assert!(tree.is_dir(), "the tree stays for the next mount");
}

#[test]
fn a_restarted_daemon_finds_live_mounts_and_detaches_dead_ones() {
    if !root_or_skip("a_restarted_daemon_finds_live_mounts_and_detaches_dead_ones") {
        return;
    }
    let mut node = Node::start();
    let live = PathBuf::from(node.mount("live", MountOptions::read_only()).expect("live"));
    let dead = PathBuf::from(node.mount("dead", MountOptions::read_only()).expect("dead"));
    let rw = PathBuf::from(
        node.mount("rw", MountOptions { read_only: false, limit: 4 << 20, ..MountOptions::default() }).expect("rw"),
    );
    std::fs::write(rw.join("kept"), b"across a restart").expect("write");
    let (live_pid, dead_pid) = (node.mount_pid("live"), node.mount_pid("dead"));
    node.kill_daemon();
    let partial = std::fs::canonicalize(node.root()).expect("root").join("flist/.4242.0.part");
    std::fs::write(&partial, b"half a download").expect("a crash's leftover");
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(dead_pid), nix::sys::signal::Signal::SIGKILL);
    let started = Instant::now();
    while !zos_flistd::mountinfo::is_dead(&dead) {
        assert!(started.elapsed() < Duration::from_secs(10), "the killed mount never went ENOTCONN");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(mounted(&live) && !process_gone(live_pid), "a mount outlives its daemon");
    node.start_daemon();
    assert!(!mounted(&dead), "the dead mount was detached at start");
    assert!(!partial.exists(), "a partial download left by a crash is removed at start");
    assert_eq!(node.call(node.flist.exists("dead".into())), Ok(false));
    assert_eq!(node.call(node.flist.exists("live".into())), Ok(true));
    assert_eq!(node.call(node.flist.exists("rw".into())), Ok(true));
    assert_eq!(node.call(node.flist.hash_from_root_path("live".into())).as_deref(), Ok(&*node.md5));
    assert_same_bytes(&node.src, &live);
    assert_eq!(std::fs::read(rw.join("kept")).expect("rw"), b"across a restart");
    node.call(node.flist.unmount("live".into())).expect("unmount after a restart");
    assert!(!mounted(&live));
    assert!(process_gone(live_pid), "the old daemon's mount process was stopped");
    node.call(node.flist.unmount("rw".into())).expect("unmount rw");
    assert!(!mounted(&rw));
    // The dead one can be mounted again.
    node.mount("dead", MountOptions::read_only()).expect("mounted again");
    assert_same_bytes(&node.src, &dead);
}

/// Waits up to 10 s for process `pid` to be gone.
fn wait_gone(pid: i32, what: &str) {
    let started = Instant::now();
    while !process_gone(pid) {
        assert!(started.elapsed() < Duration::from_secs(10), "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A mount process whose mount goes away by any other means than its SIGTERM (an operator's `umount`,
/// a lazy detach at a node's teardown or by a restarted daemon) exits: it used to wait for a signal
/// forever, one leaked process per mount (the campaign's node run found them after its flistd kills).
#[test]
fn a_mount_process_exits_when_its_mount_is_detached() {
    if !root_or_skip("a_mount_process_exits_when_its_mount_is_detached") {
        return;
    }
    let node = Node::start();
    let path = PathBuf::from(node.mount("detached", MountOptions::read_only()).expect("mount"));
    let pid = node.mount_pid("detached");
    zos_flistd::mountinfo::detach(&path).expect("detach");
    wait_gone(pid, "the mount process outlived its mount");
}

/// A daemon killed after its mount process mounted but before it recorded the mount leaves a live mount
/// that no state file names. The next `Mount` of that name replaces it: one mount at the mountpoint,
/// not one stacked on the other, and the unrecorded mount's process gone; an unrecorded read-write
/// mount (its overlay and its lower FUSE mount) goes whole at `Unmount`.
#[test]
fn a_mount_left_unrecorded_by_a_killed_daemon_is_replaced_not_stacked() {
    if !root_or_skip("a_mount_left_unrecorded_by_a_killed_daemon_is_replaced_not_stacked") {
        return;
    }
    let mut node = Node::start();
    // Mounted, then the daemon killed and the state file gone, as if it died before writing it.
    let unrecorded = |node: &mut Node, name: &str, opt: MountOptions| {
        let path = PathBuf::from(node.mount(name, opt).expect("mount"));
        let pid = node.mount_pid(name);
        node.kill_daemon();
        std::fs::remove_file(node.root().join(format!("state/{name}.json"))).expect("as if never recorded");
        node.start_daemon();
        (path, pid)
    };
    let (path, old) = unrecorded(&mut node, "unrecorded", MountOptions::read_only());
    assert_eq!(PathBuf::from(node.mount("unrecorded", MountOptions::read_only()).expect("again")), path);
    let target = std::fs::canonicalize(&path).expect("target");
    let stacked = node.mounts().iter().filter(|point| **point == target).count();
    assert_eq!(stacked, 1, "one mount at {}: {:?}", target.display(), node.mounts());
    wait_gone(old, "the unrecorded mount's process is still there");
    assert_same_bytes(&node.src, &path);
    let rw = MountOptions { read_only: false, limit: 4 << 20, ..MountOptions::default() };
    let (path, old) = unrecorded(&mut node, "unrecorded-rw", rw);
    node.call(node.flist.unmount("unrecorded-rw".into())).expect("unmount");
    let lower = std::fs::canonicalize(node.root()).expect("root").join("ro/unrecorded-rw");
    assert!(!mounted(&path) && !mounted(&lower), "{:?}", node.mounts());
    wait_gone(old, "the unrecorded read-write mount's process is still there");
}

/// A `VolumeDelete` that fails at `Unmount` leaks nothing: the mount is gone, the state file stays
/// marked `volume_pending`, and the next `Unmount` deletes the volume; after a daemon restart, the
/// start deletes it.
#[test]
fn a_failed_volume_delete_is_retried_never_leaked() {
    if !root_or_skip("a_failed_volume_delete_is_retried_never_leaked") {
        return;
    }
    let mut node = Node::start();
    let opt = MountOptions { read_only: false, limit: 4 << 20, ..MountOptions::default() };
    for name in ["again", "restart"] {
        let path = PathBuf::from(node.mount(name, opt.clone()).unwrap_or_else(|e| panic!("{e}\n{}", node.log())));
        std::fs::write(path.join("data"), b"user data").expect("write");
        let volume = node.dir.path().join("volumes").join(name);
        assert!(mounted(&volume));
        node.volumes.fail_deletes.store(1, Ordering::SeqCst);
        let err = node.call(node.flist.unmount(name.into())).expect_err("the delete fails");
        assert!(err.contains("device busy") && err.contains(name), "{err}");
        assert!(!mounted(&path), "the mount itself is gone");
        assert_eq!(node.call(node.flist.exists(name.into())), Ok(false));
        assert!(mounted(&volume), "the volume is still there");
        let state = std::fs::read(node.root().join("state").join(format!("{name}.json"))).expect("state kept");
        let state: serde_json::Value = serde_json::from_slice(&state).expect("json");
        assert_eq!(state["volume_pending"], serde_json::Value::Bool(true), "{state}");
        if name == "again" {
            node.call(node.flist.unmount(name.into())).expect("the second unmount deletes it");
        } else {
            node.kill_daemon();
            node.start_daemon();
        }
        assert!(!mounted(&volume), "{name}: the volume is deleted");
        assert!(!node.states().contains(&format!("{name}.json")), "{name}: the state file is gone");
    }
    // A new mount of a name whose volume is pending never reuses the old data.
    let path = PathBuf::from(node.mount("fresh", opt.clone()).expect("fresh"));
    std::fs::write(path.join("data"), b"old").expect("write");
    node.volumes.fail_deletes.store(1, Ordering::SeqCst);
    node.call(node.flist.unmount("fresh".into())).expect_err("the delete fails");
    let path = PathBuf::from(node.mount("fresh", opt).expect("mounted again"));
    assert!(!path.join("data").exists(), "the pending volume was deleted before the new mount");
    node.call(node.flist.unmount("fresh".into())).expect("unmount");
    assert_eq!(node.states(), Vec::<String>::new());
}

/// The daemon's block cache eviction (every second here): once every cached block is 100 days old,
/// those of an image no longer mounted go and those of the mounted image stay.
#[test]
fn the_daemon_evicts_old_blocks_but_never_those_of_a_mounted_image() {
    if !root_or_skip("the_daemon_evicts_old_blocks_but_never_those_of_a_mounted_image") {
        return;
    }
    let node = Node::start_with("[evict]\ninterval_secs = 1\n");
    let other = node.dir.path().join("other-src");
    std::fs::create_dir_all(&other).expect("other");
    std::fs::write(other.join("only-here"), b"a block no other image has\n".repeat(1000)).expect("file");
    let image = node.dir.path().join("other.fl");
    zos_flistd::pack::pack(&other, &node.hub.store(), &image).expect("pack");
    node.hub.put("/user/other.fl", &std::fs::read(&image).expect("image"));
    let kept = PathBuf::from(node.mount("kept", MountOptions::read_only()).expect("kept"));
    assert_same_bytes(&node.src, &kept);
    let url = format!("{}/user/other.fl", node.hub.url());
    let gone = PathBuf::from(node.call(node.flist.mount("gone".into(), url, MountOptions::read_only())).expect("gone"));
    assert_same_bytes(&other, &gone);
    node.call(node.flist.unmount("gone".into())).expect("unmount");
    let ids = |image: &Path| zos_flistd::meta::Reader::open(image).expect("open").block_ids().expect("ids");
    let (mounted_ids, unmounted_ids) = (ids(&node.dir.path().join("image.fl")), ids(&image));
    assert!(mounted_ids.is_disjoint(&unmounted_ids));
    let blocks = std::fs::canonicalize(node.root()).expect("root").join("blocks");
    let cached = |id: &[u8; 32]| blocks.join(hex::encode(id)).exists();
    assert!(mounted_ids.iter().chain(&unmounted_ids).all(cached), "every block read is cached");
    let old = std::time::SystemTime::now() - Duration::from_secs(100 * 86_400);
    for entry in std::fs::read_dir(&blocks).expect("blocks") {
        let file = std::fs::File::options().write(true).open(entry.expect("entry").path()).expect("block");
        file.set_modified(old).expect("age");
    }
    let started = Instant::now();
    while unmounted_ids.iter().any(cached) {
        assert!(started.elapsed() < Duration::from_secs(10), "old blocks never evicted: {}", node.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(mounted_ids.iter().all(cached), "the blocks of a mounted image stay, however old");
    assert_same_bytes(&node.src, &kept);
}
