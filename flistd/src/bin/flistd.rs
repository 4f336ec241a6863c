//! `flistd`: the operator's commands over rfs `.fl` flists. `flistd pack SRC_DIR --store URL -o
//! IMAGE.fl` builds an `.fl` in rfs's format (blocks written to the store, the route recorded);
//! `flistd unpack IMAGE.fl DEST_DIR [--cache DIR]` extracts one, every block verified;
//! `flistd mount IMAGE.fl MOUNTPOINT [--cache DIR]` mounts one read-only in the foreground, like
//! `rfs mount`, and unmounts on SIGTERM or SIGINT. The daemon is not here yet.
//!
//! Exit codes: 0 done, 1 the image or the store failed, 2 bad arguments.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use zos_flistd::meta::Reader;
use zos_flistd::store::{DirPolicy, Router};

#[derive(Parser)]
#[command(name = "flistd", version, about = "ZOS images: rfs .fl flists")]
struct Cli {
    #[command(subcommand)]
    command: Command,
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

/// The image's stores, behind the cache when one is given. The operator's own commands follow any
/// `dir://` route.
fn router(reader: &Reader, cache: Option<&std::path::Path>) -> anyhow::Result<Router> {
    Ok(match cache {
        Some(cache) => Router::cached(reader.routes()?, &DirPolicy::Any, cache)?,
        None => Router::new(reader.routes()?, &DirPolicy::Any)?,
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Pack { src, store, output } => {
            let store = zos_flistd::store::open(&store, &DirPolicy::Any)?;
            zos_flistd::pack::pack(&src, store.as_ref(), &output)
                .with_context(|| format!("packing {} into {}", src.display(), output.display()))
        }
        Command::Mount { image, mountpoint, cache } => {
            let reader = Reader::open(&image).with_context(|| format!("opening {}", image.display()))?;
            let router = router(&reader, cache.as_deref())?;
            // SIGTERM and SIGINT are waited for, not delivered: block them before the FUSE thread starts.
            let mut signals = nix::sys::signal::SigSet::empty();
            signals.add(nix::sys::signal::Signal::SIGTERM);
            signals.add(nix::sys::signal::Signal::SIGINT);
            signals.thread_block()?;
            let session = zos_flistd::mount::mount(zos_flistd::mount::FlistFs::new(reader, router), &mountpoint)
                .with_context(|| format!("mounting {} at {}", image.display(), mountpoint.display()))?;
            let signal = signals.wait()?;
            eprintln!("flistd: {signal}: unmounting {}", mountpoint.display());
            drop(session);
            Ok(())
        }
        Command::Unpack { image, dest, devices, cache } => {
            let reader = Reader::open(&image).with_context(|| format!("opening {}", image.display()))?;
            let router = router(&reader, cache.as_deref())?;
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
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("flistd: {err:#}");
            ExitCode::from(1)
        }
    }
}
