//! The daemon's named mounts (ZOS `pkg/flist`): `Mount` downloads the `.fl` (cached by md5), checks its
//! routes against the `dir://` allow-list and mounts it read-only with FUSE in a child process of its
//! own (`flistd mount IMAGE MOUNTPOINT --cache DIR --restrict-dirs [--allow-dir PATH]...`, the same
//! binary, as ZOS runs rfs), so that mounts outlive a restart of the daemon. A read-only mount is the
//! FUSE mount at `<mount_root>/<name>`; a read-write one is an overlay there, its lower layer the FUSE
//! mount at `ro/<name>`, its upper and work directories (`rw/`, `wd/`) in a volume of the requested size
//! ([`Volumes`]: storaged's, created and deleted through zbus) named after the mount, or in the
//! `PersistedVolume` given.
//!
//! Every live mount has a state file (`state/<name>.json`, 0600: the flist's md5, the child's pid, the
//! options), so that after a restart [`Mounts::recover`] finds the live mounts again; a FUSE mount
//! whose server died (`ENOTCONN`) is unmounted lazily, at start and whenever it is looked at. An
//! `Unmount` marks the state file `volume_pending` before it takes anything down, and removes it only
//! once the volume is deleted: a failed `VolumeDelete` is retried by the next `Unmount` or `Mount` of the
//! name and at the next start, never leaked.

use crate::FlistError;
use crate::config::{Layout, MountWith};
use crate::hub::Hub;
use crate::mountinfo;
use crate::store::DirPolicy;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zos_interfaces::flist::MountOptions;

/// How long a mount process may take to show its mount.
const MOUNT_WAIT: Duration = Duration::from_secs(20);
/// How long a mount process may take to unmount and exit on SIGTERM before it is killed.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The volumes that hold read-write layers (storaged's, over zbus, in the daemon).
pub trait Volumes: Send + Sync {
    /// The path of volume `name`, `None` when there is none.
    fn lookup(&self, name: &str) -> Result<Option<PathBuf>, FlistError>;
    /// Creates volume `name` of `size` bytes and returns its path.
    fn create(&self, name: &str, size: u64) -> Result<PathBuf, FlistError>;
    /// Changes its size.
    fn update(&self, name: &str, size: u64) -> Result<(), FlistError>;
    /// Deletes it (idempotent).
    fn delete(&self, name: &str) -> Result<(), FlistError>;
}

/// What is known of a live mount, kept in its state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountState {
    /// The mount's name.
    pub name: String,
    /// Where the flist came from.
    pub url: String,
    /// The md5 of the `.fl` it runs.
    pub hash: String,
    /// The mount process.
    pub pid: u32,
    /// The FUSE mount point (the mount itself when read-only, the overlay's lower layer otherwise).
    pub lower: PathBuf,
    /// The options it was mounted with.
    pub read_only: bool,
    /// The read-write layer's size.
    pub limit: u64,
    /// The directory holding `rw/` and `wd/` (read-write mounts).
    pub upper: Option<PathBuf>,
    /// The volume made for this mount, deleted on `Unmount` (none when read-only or persisted).
    pub volume: Option<String>,
    /// Unmounted, but its volume is still to be deleted (a `VolumeDelete` failed, or the daemon died
    /// before it was done): the next `Unmount` or `Mount` of the name, or the next start, retries it.
    #[serde(default)]
    pub volume_pending: bool,
}

/// A live mount.
struct Live {
    state: MountState,
    /// The process, when this daemon started it (after a restart it is another's child).
    child: Option<Child>,
}

/// The named mounts of this daemon.
pub struct Mounts {
    layout: Layout,
    hub: Hub,
    allow_dirs: Vec<PathBuf>,
    exe: PathBuf,
    volumes: Box<dyn Volumes>,
    live: Mutex<HashMap<String, Live>>,
    /// One operation at a time per name.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// FUSE mounts (a process each), or unpacked trees (no process: `pid` 0 in the state).
    fuse: bool,
}

/// Escapes a path for an overlay option (`\`, `,` and `:` are separators there).
fn overlay_path(path: &Path) -> String {
    let mut out = String::new();
    for c in path.to_string_lossy().chars() {
        if matches!(c, '\\' | ',' | ':') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How many mounts stacked at one path an unrecorded mount's cleanup detaches at most.
const MAX_STACKED: usize = 8;

/// The `pid` of a mount served by no process: an unpacked tree, bind-mounted.
const UNPACKED: u32 = 0;

/// Whether process `pid` is the mount process serving `lower` (and not a zombie or a reused pid).
/// An unpacked tree (`pid` 0) has no process: it serves as long as its bind mount is there.
fn serving(pid: u32, lower: &Path) -> bool {
    if pid == UNPACKED {
        return mountinfo::is_mounted(lower);
    }
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let lower = lower.as_os_str().as_encoded_bytes();
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.contains(&&b"mount"[..]) && args.contains(&lower)
}

impl Mounts {
    /// The mounts of a daemon with this layout; `exe` is the `flistd` binary that runs each mount.
    pub fn new(
        layout: Layout,
        hub: Hub,
        allow_dirs: Vec<PathBuf>,
        exe: PathBuf,
        volumes: Box<dyn Volumes>,
    ) -> Result<Mounts, FlistError> {
        for dir in [&layout.flists, &layout.blocks, &layout.mount_root, &layout.lower, &layout.logs, &layout.trees] {
            std::fs::create_dir_all(dir)?;
        }
        zos_interfaces::daemon::private_dir(&layout.state)?;
        // The kernel's mount table names mount points by their real paths.
        let layout = Layout {
            flists: std::fs::canonicalize(&layout.flists)?,
            blocks: std::fs::canonicalize(&layout.blocks)?,
            mount_root: std::fs::canonicalize(&layout.mount_root)?,
            lower: std::fs::canonicalize(&layout.lower)?,
            state: std::fs::canonicalize(&layout.state)?,
            logs: std::fs::canonicalize(&layout.logs)?,
            trees: std::fs::canonicalize(&layout.trees)?,
        };
        Ok(Mounts {
            layout,
            hub,
            allow_dirs,
            exe,
            volumes,
            live: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            fuse: MountWith::Auto.fuse(),
        })
    }

    /// Mounts with FUSE (lazy), or by unpacking each image once into a shared read-only tree (where
    /// FUSE is unavailable); by default FUSE when `/dev/fuse` opens.
    pub fn with(mut self, how: MountWith) -> Mounts {
        self.fuse = how.fuse();
        self
    }

    /// The hub client.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// `<mount_root>/<name>`; `name` must be one path component.
    pub fn mountpoint(&self, name: &str) -> Result<PathBuf, FlistError> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
            return Err(FlistError::InvalidName(name.to_string()));
        }
        Ok(self.layout.mount_root.join(name))
    }

    fn state_file(&self, name: &str) -> PathBuf {
        self.layout.state.join(format!("{name}.json"))
    }

    /// Writes a mount's state file (0600, atomically).
    fn save(&self, state: &MountState) -> Result<(), FlistError> {
        let json = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        Ok(zos_interfaces::daemon::write_private(&self.state_file(&state.name), &json)?)
    }

    /// Deletes the volume an earlier `Unmount` of `name` left to delete, if any, and then its state file;
    /// on failure both stay, for the next try.
    fn delete_pending(&self, name: &str) -> Result<(), FlistError> {
        let path = self.state_file(name);
        let state = match read_state(&path) {
            Ok(state) => state,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        if !state.volume_pending {
            return Ok(());
        }
        if let Some(volume) = &state.volume {
            self.volumes.delete(volume)?;
            tracing::info!(name, volume, "the volume left by an earlier unmount is deleted");
        }
        match std::fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err.into()),
            _ => Ok(()),
        }
    }

    fn lock(&self, name: &str) -> Arc<Mutex<()>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner()).entry(name.to_string()).or_default().clone()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Mounts the flist at `url` as `name` (ZOS `Mount`); an existing mount of that name is returned as is.
    pub fn mount(&self, name: &str, url: &str, opt: &MountOptions) -> Result<PathBuf, FlistError> {
        let target = self.mountpoint(name)?;
        let lock = self.lock(name);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if self.check(name, &target) {
            return Ok(target);
        }
        // A volume an earlier unmount of this name failed to delete is never reused by a new mount.
        self.delete_pending(name)?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FlistError::Store { url: url.to_string(), why: "flists are fetched over http(s) only".into() });
        }
        let path = url.split(['?', '#']).next().unwrap_or(url);
        let ext = Path::new(path).extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        if ext != ".fl" {
            return Err(FlistError::Extension(ext));
        }
        // A read-write mount needs a volume: refuse a missing size before anything is fetched (ZOS).
        let existing = match (opt.read_only, opt.persisted_volume.is_empty()) {
            (true, _) => None,
            (false, false) => Some(PathBuf::from(&opt.persisted_volume)),
            (false, true) => match self.volumes.lookup(name)? {
                Some(path) => Some(path),
                None if opt.limit == 0 => return Err(FlistError::MissingDiskType),
                None => None,
            },
        };
        let flist = self.hub.download(url, &self.layout.flists)?;
        // The daemon checks the routes itself before anything runs them (the mount process does too).
        let reader = crate::meta::Reader::open(&flist.path)?;
        crate::store::Router::new(reader.routes()?, &DirPolicy::Under(self.allow_dirs.clone()))?;
        // And the whole tree: a name with `/` or `..`, a loop in `parent`, an absurd size is refused
        // before anything is mounted (device nodes are allowed: a VM's root filesystem has them, and
        // the FUSE mount is `nodev`).
        crate::unpack::check(&reader, crate::unpack::Options { devices: true })?;
        drop(reader);
        let lower = if opt.read_only { target.clone() } else { self.layout.lower.join(name) };
        std::fs::create_dir_all(&lower)?;
        std::fs::create_dir_all(&target)?;
        let mut child = if self.fuse {
            Some(self.spawn(name, &flist.path, &lower)?)
        } else {
            self.unpacked(&flist.path, &flist.hash, &lower)?;
            None
        };
        let pid = child.as_ref().map_or(UNPACKED, Child::id);
        let mut state = MountState {
            name: name.to_string(),
            url: url.to_string(),
            hash: flist.hash,
            pid,
            lower: lower.clone(),
            read_only: opt.read_only,
            limit: opt.limit,
            upper: None,
            volume: None,
            volume_pending: false,
        };
        let finished = if opt.read_only {
            Ok(())
        } else {
            let created = existing.is_none();
            let upper = match existing {
                Some(path) => Ok(path),
                None => self.volumes.create(name, opt.limit),
            };
            let overlaid = upper.and_then(|upper| {
                state.upper = Some(upper.clone());
                if opt.persisted_volume.is_empty() {
                    state.volume = Some(name.to_string());
                }
                self.overlay(&lower, &upper, &target)
            });
            if overlaid.is_err() && created {
                let _ = self.volumes.delete(name);
            }
            overlaid
        };
        let finished = finished.and_then(|()| self.save(&state));
        if let Err(err) = finished {
            if !opt.read_only && mountinfo::is_mounted(&target) {
                let _ = mountinfo::unmount(&target);
            }
            stop(pid, child.as_mut(), &lower);
            return Err(err);
        }
        tracing::info!(name, url, hash = state.hash, pid, read_only = opt.read_only, "mounted");
        self.live().insert(name.to_string(), Live { state, child });
        Ok(target)
    }

    /// Where FUSE is not used: the image unpacked once into `trees/<md5>` (every block fetched through
    /// the block cache and verified; the tree checked as for a FUSE mount), then bind-mounted read-only
    /// and without devices at `lower`. The tree is shared by every mount of that flist.
    fn unpacked(&self, image: &Path, hash: &str, lower: &Path) -> Result<(), FlistError> {
        let tree = self.layout.trees.join(hash);
        if !tree.is_dir() {
            let reader = crate::meta::Reader::open(image)?;
            let router = crate::store::Router::cached(
                reader.routes()?,
                &DirPolicy::Under(self.allow_dirs.clone()),
                &self.layout.blocks,
            )?;
            // Unpacked aside and renamed into place: a tree is there whole or not at all.
            let partial = self.layout.trees.join(format!(".{hash}.{}.partial", std::process::id()));
            let _ = std::fs::remove_dir_all(&partial);
            let unpacked = crate::unpack::unpack(&reader, &router, &partial, crate::unpack::Options { devices: true })
                .and_then(|()| std::fs::rename(&partial, &tree).map_err(FlistError::from));
            if let Err(err) = unpacked {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(err);
            }
        }
        use nix::mount::{MsFlags, mount};
        let failed =
            |err: nix::Error| FlistError::Mount { name: lower.display().to_string(), why: format!("bind: {err}") };
        mount(Some(&tree), lower, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(failed)?;
        let read_only = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NODEV;
        if let Err(err) = mount(None::<&str>, lower, None::<&str>, read_only, None::<&str>) {
            let _ = mountinfo::detach(lower);
            return Err(failed(err));
        }
        Ok(())
    }

    /// Starts the mount process of `image` at `lower` and waits for its mount.
    fn spawn(&self, name: &str, image: &Path, lower: &Path) -> Result<Child, FlistError> {
        let log_path = self.layout.logs.join(format!("{name}.log"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let mut command = Command::new(&self.exe);
        command.arg("mount").arg(image).arg(lower).arg("--cache").arg(&self.layout.blocks).arg("--restrict-dirs");
        for dir in &self.allow_dirs {
            command.arg("--allow-dir").arg(dir);
        }
        // Its own process group: a signal to the daemon's group (a terminal's ^C) leaves the mounts alone.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).spawn()?;
        let started = Instant::now();
        loop {
            if mountinfo::is_mounted(lower) {
                return Ok(child);
            }
            let failed = |why: String| {
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                let last = tail.lines().last().unwrap_or_default().to_string();
                FlistError::Mount { name: name.to_string(), why: format!("{why}: {last}") }
            };
            if let Some(status) = child.try_wait()? {
                return Err(failed(format!("the mount process exited ({status})")));
            }
            if started.elapsed() > MOUNT_WAIT {
                stop(child.id(), Some(&mut child), lower);
                return Err(failed(format!("not mounted after {MOUNT_WAIT:?}")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Mounts the overlay of `lower` and `upper`'s `rw/` and `wd/` at `target`.
    fn overlay(&self, lower: &Path, upper: &Path, target: &Path) -> Result<(), FlistError> {
        let (rw, wd) = (upper.join("rw"), upper.join("wd"));
        std::fs::create_dir_all(&rw)?;
        std::fs::create_dir_all(&wd)?;
        let data =
            format!("lowerdir={},upperdir={},workdir={}", overlay_path(lower), overlay_path(&rw), overlay_path(&wd));
        nix::mount::mount(Some("overlay"), target, Some("overlay"), nix::mount::MsFlags::MS_NOATIME, Some(&*data))
            .map_err(|err| FlistError::Mount { name: target.display().to_string(), why: format!("overlay: {err}") })
    }

    /// Whether mount `name` is live; a mount found dead (its process gone, `ENOTCONN`) is cleaned up.
    /// The caller holds the name's lock.
    fn check(&self, name: &str, target: &Path) -> bool {
        let state = self.live().get(name).map(|live| live.state.clone());
        match state {
            Some(state) => {
                let alive = serving(state.pid, &state.lower)
                    && mountinfo::is_mounted(&state.lower)
                    && mountinfo::is_mounted(target)
                    && !mountinfo::is_dead(target);
                if !alive {
                    tracing::warn!(name, pid = state.pid, "mount found dead: cleaning it up");
                    let child = self.live().remove(name).and_then(|live| live.child);
                    self.clean(&state, child, target);
                }
                alive
            }
            None => {
                self.detach_unrecorded(name, target);
                false
            }
        }
    }

    /// Detaches what is mounted at `name`'s mountpoint and lower directory though no state records it (a
    /// daemon killed between a mount and its state file, or a dead FUSE mount), so that a new mount
    /// replaces it rather than stack on it and an unmount leaves nothing; a FUSE mount process exits
    /// once its mount is gone.
    fn detach_unrecorded(&self, name: &str, target: &Path) {
        for path in [target.to_path_buf(), self.layout.lower.join(name)] {
            for _ in 0..MAX_STACKED {
                if !mountinfo::is_mounted(&path) {
                    break;
                }
                tracing::warn!(name, path = %path.display(), "a mount no state records: detaching it");
                if mountinfo::detach(&path).is_err() {
                    break;
                }
            }
        }
    }

    /// Takes a mount down: the overlay, the mount process and its FUSE mount, and the state file unless
    /// it records a volume still to delete.
    fn clean(&self, state: &MountState, child: Option<Child>, target: &Path) {
        if !state.read_only
            && mountinfo::is_mounted(target)
            && let Err(err) = mountinfo::unmount(target)
        {
            tracing::warn!(name = state.name, "overlay unmount: {err}");
        }
        let mut child = child;
        stop(state.pid, child.as_mut(), &state.lower);
        for dir in [target, &state.lower] {
            let _ = std::fs::remove_dir(dir);
        }
        let pending = read_state(&self.state_file(&state.name)).is_ok_and(|saved| saved.volume_pending);
        if !pending
            && let Err(err) = std::fs::remove_file(self.state_file(&state.name))
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(name = state.name, "state file: {err}");
        }
    }

    /// Whether a mount of that name is live (ZOS `Exists`).
    pub fn exists(&self, name: &str) -> Result<bool, FlistError> {
        let target = self.mountpoint(name)?;
        let lock = self.lock(name);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        Ok(self.check(name, &target))
    }

    /// Unmounts `name`: the overlay, the FUSE mount and its process, and the volume made for it
    /// (ZOS `Unmount`; idempotent).
    pub fn unmount(&self, name: &str) -> Result<(), FlistError> {
        let target = self.mountpoint(name)?;
        let lock = self.lock(name);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        let state = self.live().get(name).map(|live| live.state.clone());
        if let Some(state) = state.filter(|state| state.volume.is_some()) {
            // Recorded before anything is taken down: should the delete fail, or the daemon die, the
            // volume is not forgotten.
            self.save(&MountState { volume_pending: true, ..state })?;
        }
        let live = self.live().remove(name);
        match live {
            Some(live) => {
                self.clean(&live.state, live.child, &target);
                tracing::info!(name, "unmounted");
            }
            None => {
                self.detach_unrecorded(name, &target);
                let _ = std::fs::remove_dir(&target);
            }
        }
        self.delete_pending(name)
    }

    /// The md5 of the flist mount `name` runs; `name` may be the mount's path (ZOS `HashFromRootPath`).
    pub fn hash_from_root_path(&self, name: &str) -> Result<String, FlistError> {
        let name = Path::new(name).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if !self.exists(&name)? {
            return Err(FlistError::NotMounted(name));
        }
        self.live().get(&name).map(|live| live.state.hash.clone()).ok_or(FlistError::NotMounted(name))
    }

    /// Changes the size of mount `name`'s volume; returns the mount's path (ZOS `UpdateMountSize`).
    pub fn update_mount_size(&self, name: &str, limit: u64) -> Result<PathBuf, FlistError> {
        let target = self.mountpoint(name)?;
        let lock = self.lock(name);
        let _held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if !self.check(name, &target) {
            return Err(FlistError::NotMounted(name.to_string()));
        }
        let state = self.live().get(name).map(|live| live.state.clone());
        let Some(mut state) = state else { return Err(FlistError::NotMounted(name.to_string())) };
        let Some(volume) = state.volume.clone() else {
            return Err(FlistError::Mount { name: name.to_string(), why: "no volume of its own to resize".into() });
        };
        self.volumes.update(&volume, limit)?;
        state.limit = limit;
        self.save(&state)?;
        if let Some(live) = self.live().get_mut(name) {
            live.state = state;
        }
        Ok(target)
    }

    /// Evicts blocks from the cache (`store::evict`): those unused for `max_age`, then the least recently
    /// used while the cache's filesystem has less than `min_free_percent` free. The blocks of every image
    /// mounted now are kept. (A block of an image being mounted at this very moment may go: it is then
    /// fetched again on its first read.)
    pub fn evict(&self, max_age: Duration, min_free_percent: u8) -> Result<crate::store::Evicted, FlistError> {
        let hashes: std::collections::BTreeSet<String> =
            self.live().values().map(|live| live.state.hash.clone()).collect();
        let mut keep = std::collections::HashSet::new();
        for hash in hashes {
            let reader = crate::meta::Reader::open(&self.layout.flists.join(&hash))?;
            keep.extend(reader.block_ids()?);
        }
        let dir = &self.layout.blocks;
        let max_bytes = if min_free_percent == 0 {
            None
        } else {
            let fs = nix::sys::statvfs::statvfs(dir.as_path()).map_err(std::io::Error::from)?;
            let size = fs.fragment_size();
            let total = u128::from(fs.blocks()).saturating_mul(u128::from(size));
            let free = u128::from(fs.blocks_available()).saturating_mul(u128::from(size));
            let wanted = total.saturating_mul(u128::from(min_free_percent.min(100))) / 100;
            let short = u64::try_from(wanted.saturating_sub(free)).unwrap_or(u64::MAX);
            (short > 0)
                .then(|| crate::store::cached_bytes(dir).map(|cached| cached.saturating_sub(short)))
                .transpose()?
        };
        let older_than = std::time::SystemTime::now().checked_sub(max_age).unwrap_or(std::time::UNIX_EPOCH);
        let evicted = crate::store::evict(dir, older_than, max_bytes, &keep)?;
        if evicted.blocks > 0 {
            tracing::info!(blocks = evicted.blocks, bytes = evicted.bytes, kept = keep.len(), "block cache evicted");
        }
        Ok(evicted)
    }

    /// At start: partial downloads are removed; FUSE mounts under the daemon's directories whose server is
    /// gone are detached; the volumes earlier unmounts left to delete are deleted (kept for the next try
    /// when that fails); the mounts the state files name are found again when live, cleaned up otherwise
    /// (their volumes are kept: a later `Mount` of the name finds them). Returns the names of the live
    /// ones.
    pub fn recover(&self) -> Result<Vec<String>, FlistError> {
        // Downloads a crash interrupted: never part of the cache.
        for entry in std::fs::read_dir(&self.layout.flists)? {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && path.extension().is_some_and(|ext| ext == "part")
            {
                let _ = std::fs::remove_file(&path);
            }
        }
        let mut points = mountinfo::mount_points()?;
        // Innermost first: an overlay goes before what lies under it.
        points.reverse();
        for point in points {
            let ours = point.parent().is_some_and(|p| p == self.layout.mount_root || p == self.layout.lower);
            if ours && mountinfo::is_dead(&point) {
                tracing::warn!(path = %point.display(), "stale FUSE mount (ENOTCONN): detaching it");
                if let Err(err) = mountinfo::detach(&point) {
                    tracing::warn!(path = %point.display(), "detach: {err}");
                }
            }
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.layout.state)? {
            let path = entry?.path();
            if path.extension().is_none_or(|ext| ext != "json") {
                continue;
            }
            let state = match read_state(&path) {
                Ok(state) => state,
                Err(err) => {
                    tracing::warn!(path = %path.display(), "unreadable state file, removed: {err}");
                    let _ = std::fs::remove_file(&path);
                    continue;
                }
            };
            let Ok(target) = self.mountpoint(&state.name) else {
                let _ = std::fs::remove_file(&path);
                continue;
            };
            if state.volume_pending {
                if let Err(err) = self.delete_pending(&state.name) {
                    tracing::warn!(name = state.name, "the volume left by an unmount is still not deleted: {err}");
                }
                continue;
            }
            let alive = serving(state.pid, &state.lower)
                && mountinfo::is_mounted(&state.lower)
                && mountinfo::is_mounted(&target)
                && !mountinfo::is_dead(&target);
            if alive {
                tracing::info!(name = state.name, pid = state.pid, hash = state.hash, "live mount found again");
                found.push(state.name.clone());
                self.live().insert(state.name.clone(), Live { state, child: None });
            } else {
                tracing::warn!(name = state.name, pid = state.pid, "mount did not survive: cleaning it up");
                self.clean(&state, None, &target);
            }
        }
        found.sort();
        Ok(found)
    }
}

/// A state file (an unreadable or undecodable one is `InvalidData`).
fn read_state(path: &Path) -> std::io::Result<MountState> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))
}

/// Stops the mount process `pid` serving `lower` (SIGTERM: it unmounts and exits; SIGKILL after
/// [`STOP_WAIT`]), then detaches whatever is still mounted at `lower`.
fn stop(pid: u32, child: Option<&mut Child>, lower: &Path) {
    use nix::sys::signal::{Signal, kill};
    // An unpacked tree has no process to stop (and pid 0 would signal our own process group).
    let raw = match i32::try_from(pid) {
        Ok(raw) if pid != UNPACKED => raw,
        _ => {
            if mountinfo::is_mounted(lower) {
                let _ = mountinfo::detach(lower);
            }
            return;
        }
    };
    let process = nix::unistd::Pid::from_raw(raw);
    let gone = |child: &mut Option<&mut Child>| match child {
        // Our own child: reap it.
        Some(child) => child.try_wait().map_or(true, |status| status.is_some()),
        None => !serving(pid, lower),
    };
    let mut child = child;
    if !gone(&mut child) {
        let _ = kill(process, Signal::SIGTERM);
        let started = Instant::now();
        while !gone(&mut child) && started.elapsed() < STOP_WAIT {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !gone(&mut child) {
            tracing::warn!(pid, "mount process did not stop on SIGTERM: killing it");
            let _ = kill(process, Signal::SIGKILL);
            if let Some(child) = child {
                let _ = child.wait();
            }
        }
    }
    if mountinfo::is_mounted(lower) {
        let _ = mountinfo::detach(lower);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_escape_their_separators() {
        assert_eq!(overlay_path(Path::new("/a:b,c\\d")), "/a\\:b\\,c\\\\d");
    }
}
