//! `flistd`: the operator's commands over rfs `.fl` flists. `flistd pack SRC_DIR --store URL -o
//! IMAGE.fl` builds an `.fl` in rfs's format (blocks written to the store, the route recorded);
//! `flistd unpack IMAGE.fl DEST_DIR [--cache DIR]` extracts one, every block verified;
//! `flistd mount IMAGE.fl MOUNTPOINT [--cache DIR]` mounts one read-only in the foreground, like
//! `rfs mount`, and unmounts on SIGTERM or SIGINT (the daemon runs each of its mounts so, with
//! `--restrict-dirs` and its `--allow-dir` list).
//!
//! `flistd [--config FILE]` (no command) is the daemon: it serves `flist@0.0.1` on zbus (module
//! `flist`) until SIGTERM or SIGINT, its mounts left running for the next start to find again, and
//! evicts cached blocks at start and periodically (never those of a mounted image).
//!
//! Exit codes of the commands: 0 done, 1 the image or the store failed, 2 bad arguments. Of the daemon
//! (`zos_interfaces::daemon::Exit`): 0 stopped by a signal, 2 bad configuration, 3 its directories or
//! mounts could not be prepared, 4 the bus failed.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use zos_flistd::config::Config;
use zos_flistd::meta::Reader;
use zos_flistd::mounts::Mounts;
use zos_flistd::service::{Flistd, StorageVolumes};
use zos_flistd::store::{DirPolicy, Router};
use zos_interfaces::daemon::{self, Exit};
use zos_interfaces::flist::FlistServer;
use zos_interfaces::storage::StorageClient;

#[derive(Parser)]
#[command(name = "flistd", version, about = "ZOS images: rfs .fl flists")]
struct Cli {
    /// The daemon's configuration (TOML), when no command is given.
    #[arg(long, default_value = "/etc/zos/flistd.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Build an .fl from a directory tree.
    Pack {
        /// The tree to pack.
        src: PathBuf,
        /// Where the blocks go: dir://PATH or zdb://HOST[:PORT][/NAMESPACE].
        #[arg(long)]
        store: String,
        /// The .fl to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Mount an .fl read-only at MOUNTPOINT until SIGTERM or SIGINT.
    Mount {
        /// The .fl.
        image: PathBuf,
        /// Where to mount it.
        mountpoint: PathBuf,
        /// Keep fetched blocks in this directory.
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Follow dir:// routes only under the --allow-dir directories (the daemon's mounts).
        #[arg(long)]
        restrict_dirs: bool,
        /// A directory dir:// routes may read under --restrict-dirs (repeatable).
        #[arg(long = "allow-dir", requires = "restrict_dirs")]
        allow_dirs: Vec<PathBuf>,
    },
    /// Extract an .fl into a new directory, every block fetched from its routes and verified.
    Unpack {
        /// The .fl.
        image: PathBuf,
        /// The directory to create.
        dest: PathBuf,
        /// Create device nodes too (a VM's root filesystem).
        #[arg(long)]
        devices: bool,
        /// Keep fetched blocks in this directory (and read them from it next time).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
}

/// The image's stores, behind the cache when one is given.
fn router(reader: &Reader, cache: Option<&std::path::Path>, policy: &DirPolicy) -> anyhow::Result<Router> {
    Ok(match cache {
        Some(cache) => Router::cached(reader.routes()?, policy, cache)?,
        None => Router::new(reader.routes()?, policy)?,
    })
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Pack { src, store, output } => {
            let store = zos_flistd::store::open(&store, &DirPolicy::Any)?;
            zos_flistd::pack::pack(&src, store.as_ref(), &output)
                .with_context(|| format!("packing {} into {}", src.display(), output.display()))
        }
        Command::Mount { image, mountpoint, cache, restrict_dirs, allow_dirs } => {
            // The operator's own commands follow any dir:// route; the daemon's mounts only its allow-list.
            let policy = if restrict_dirs { DirPolicy::Under(allow_dirs) } else { DirPolicy::Any };
            let reader = Reader::open(&image).with_context(|| format!("opening {}", image.display()))?;
            let router = router(&reader, cache.as_deref(), &policy)?;
            // SIGTERM and SIGINT are waited for, not delivered: block them before the FUSE thread starts.
            // SIGUSR1 says the session ended by itself: the mount went away (an operator's umount, a
            // lazy detach), and the process ends with it rather than wait for a signal forever.
            use nix::sys::signal::Signal;
            let mut signals = nix::sys::signal::SigSet::empty();
            for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGUSR1] {
                signals.add(signal);
            }
            signals.thread_block()?;
            let session = zos_flistd::mount::mount(zos_flistd::mount::FlistFs::new(reader, router), &mountpoint)
                .with_context(|| format!("mounting {} at {}", image.display(), mountpoint.display()))?;
            let serving = std::thread::spawn(move || {
                let ended = session.join();
                let _ = nix::sys::signal::kill(nix::unistd::Pid::this(), Signal::SIGUSR1);
                ended
            });
            let signal = signals.wait()?;
            if signal == Signal::SIGUSR1 {
                eprintln!("flistd: {} is no longer mounted: exiting", mountpoint.display());
            } else {
                eprintln!("flistd: {signal}: unmounting {}", mountpoint.display());
                zos_flistd::mountinfo::unmount(&mountpoint)
                    .with_context(|| format!("unmounting {}", mountpoint.display()))?;
            }
            match serving.join() {
                Ok(ended) => ended.with_context(|| format!("serving {}", mountpoint.display())),
                Err(_) => anyhow::bail!("the FUSE session serving {} panicked", mountpoint.display()),
            }
        }
        Command::Unpack { image, dest, devices, cache } => {
            let reader = Reader::open(&image).with_context(|| format!("opening {}", image.display()))?;
            let router = router(&reader, cache.as_deref(), &DirPolicy::Any)?;
            zos_flistd::unpack::unpack(&reader, &router, &dest, zos_flistd::unpack::Options { devices })
                .with_context(|| format!("extracting {} into {}", image.display(), dest.display()))
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() { 2 } else { 0 });
        }
    };
    let Some(command) = cli.command else { return ExitCode::from(daemon(&cli.config).code()) };
    match run(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("flistd: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// The daemon: configuration, directories, recovery of the mounts a previous run left, then
/// `flist@0.0.1` on zbus until SIGTERM or SIGINT.
fn daemon(config: &std::path::Path) -> Exit {
    daemon::init_logs();
    let config: Config = match daemon::load_config(config) {
        Ok(config) => config,
        Err(err) => return Exit::BadConfiguration.because(err),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return Exit::Resources.because(format!("cannot find the flistd binary: {err}")),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => return Exit::Resources.because(format!("cannot start the runtime: {err}")),
    };
    runtime.block_on(async move {
        let client = match zos_zbus::Client::connect(&config.redis).await {
            Ok(client) => client,
            Err(err) => return Exit::Bus.because(format!("cannot reach redis at {}: {err}", config.redis)),
        };
        let volumes = StorageVolumes::new(
            StorageClient::new(client, config.storage_module.clone()),
            tokio::runtime::Handle::current(),
        );
        let mounts = tokio::task::block_in_place(|| {
            let hub = zos_flistd::hub::Hub::new(config.download.hub());
            let mounts = Mounts::new(config.layout(), hub, config.allow_dirs.clone(), exe, Box::new(volumes))?
                .with(config.mount_with);
            let live = mounts.recover()?;
            tracing::info!(live = live.len(), "mounts found again: {}", live.join(", "));
            Ok::<_, zos_flistd::FlistError>(mounts)
        });
        let mounts = match mounts {
            Ok(mounts) => std::sync::Arc::new(mounts),
            Err(err) => return Exit::Resources.because(format!("cannot prepare the mounts: {err}")),
        };
        // The block cache's eviction: now, then every interval, off the bus's workers.
        let evictor = mounts.clone();
        let evict = config.evict.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(evict.interval());
            loop {
                ticks.tick().await;
                let (mounts, evict) = (evictor.clone(), evict.clone());
                match tokio::task::spawn_blocking(move || mounts.evict(evict.max_age(), evict.min_free_percent)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => tracing::warn!("block cache eviction: {err}"),
                    Err(err) => tracing::warn!("block cache eviction: {err}"),
                }
            }
        });
        let mut server = zos_zbus::Server::new("flist", config.redis.clone(), config.workers.max(1));
        server.register(FlistServer(std::sync::Arc::new(Flistd(mounts))));
        tracing::info!("serving flist@0.0.1");
        Exit::served(server.run(daemon::shutdown_signal()).await, "stopped (the mounts stay)")
    })
}
