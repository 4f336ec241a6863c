//! Bad input: a bounded mutation fuzz of what the node reads from outside: deployment JSON (decoded,
//! validated, admitted), scenario files (decoded, checked), zbus frames (requests and responses),
//! flist metadata and blocks (opened, walked, unpacked, decrypted), and the cloud-init seed vmd builds
//! from a tenant's VM (hostname, SSH keys, entrypoint, environment, mounts, addresses: its FAT image). Each input starts from a seed of
//! the corpus in `tests/corpus/<target>/` and gets one to four mutations (bit flips, cut and repeated
//! ranges, inserted tokens such as huge numbers, deep nesting and NULs). A panic, or an input that
//! takes more than a second, is a finding.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

/// What one target saw.
pub struct Target {
    /// Its name.
    pub name: &'static str,
    /// Inputs tried.
    pub inputs: u64,
    /// Inputs refused with an error (the rest were accepted).
    pub refused: u64,
    /// The slowest input.
    pub slowest: Duration,
    /// Panics and hangs, with the input's size.
    pub findings: Vec<String>,
}

/// The largest input made: the node's own limits are far below it.
const MAX_INPUT: usize = 1 << 20;

const TOKENS: [&[u8]; 10] = [
    b"18446744073709551616",
    b"1e999",
    b"-1",
    b"null",
    b"\"\\u0000\"",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"{\"a\":",
    b"\xff\xfe",
    b"\"../../etc/passwd\"",
    b"9999999999999999999999999999",
];

fn mutate(seed: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    let mut input = seed.to_vec();
    for _ in 0..rng.usize(1..=4) {
        let at = rng.usize(..=input.len());
        match rng.u8(0..6) {
            0 if !input.is_empty() => {
                let i = rng.usize(..input.len());
                input[i] ^= 1 << rng.u8(0..8);
            }
            1 => input.splice(at..at, TOKENS[rng.usize(..TOKENS.len())].iter().copied()).for_each(drop),
            2 if at < input.len() => {
                let end = rng.usize(at..=input.len());
                input.drain(at..end);
            }
            3 if at < input.len() => {
                let end = rng.usize(at..=input.len().min(at + 4096));
                let piece = input[at..end].to_vec();
                for _ in 0..rng.usize(1..=64) {
                    if input.len() + piece.len() > MAX_INPUT {
                        break;
                    }
                    input.splice(at..at, piece.iter().copied()).for_each(drop);
                }
            }
            4 => input.splice(at..at, std::iter::repeat_n(b'[', rng.usize(1..=100_000))).for_each(drop),
            _ => input.truncate(at),
        }
    }
    input.truncate(MAX_INPUT);
    input
}

/// The seeds of a target: every file of its corpus directory.
fn corpus(dir: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|err| anyhow::anyhow!("corpus {}: {err}", dir.display()))? {
        seeds.push(std::fs::read(entry?.path())?);
    }
    anyhow::ensure!(!seeds.is_empty(), "corpus {} is empty", dir.display());
    Ok(seeds)
}

/// Feeds `inputs` mutated seeds to `feed`, which says whether an input was accepted.
pub fn run(
    name: &'static str,
    seeds: &[Vec<u8>],
    inputs: u64,
    rng: &mut fastrand::Rng,
    feed: impl Fn(&[u8]) -> bool,
) -> Target {
    let mut target = Target { name, inputs, refused: 0, slowest: Duration::ZERO, findings: Vec::new() };
    // A seed the target refuses would make every mutation stop at the first check.
    for (i, seed) in seeds.iter().enumerate() {
        if !matches!(catch_unwind(AssertUnwindSafe(|| feed(seed))), Ok(true)) {
            target.findings.push(format!("seed {i} is not accepted: the target does not get past its first check"));
        }
    }
    for _ in 0..inputs {
        let input = mutate(&seeds[rng.usize(..seeds.len())], rng);
        let started = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| feed(&input))) {
            Ok(true) => {}
            Ok(false) => target.refused += 1,
            Err(_) => target.findings.push(format!("panic on a {}-byte input", input.len())),
        }
        let took = started.elapsed();
        target.slowest = target.slowest.max(took);
        if took > Duration::from_secs(1) {
            target.findings.push(format!("{took:?} on a {}-byte input", input.len()));
        }
    }
    target
}

/// Every target, `inputs` inputs each (flist metadata and cloud-init seeds a tenth of that: each is a
/// file system image).
pub fn all(corpus_root: &Path, inputs: u64, seed: u64) -> anyhow::Result<Vec<Target>> {
    // Findings are counted, not printed: silence the default panic message while fuzzing.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = fastrand::Rng::with_seed(seed);
    let node = crate::tenant::node();
    let mut targets = vec![
        run("deployment JSON", &corpus(&corpus_root.join("deployment"))?, inputs, &mut rng, |input| {
            let Ok(deployment) = serde_json::from_slice::<zos_types::Deployment>(input) else { return false };
            let mut ledger = zos_planner::Ledger::new(&node, crate::tenant::policy());
            deployment.validate().is_ok()
                && matches!(ledger.admit_deployment(&deployment), zos_planner::DeploymentVerdict::Judged(_))
        }),
        run("scenario file", &corpus(&corpus_root.join("scenario"))?, inputs, &mut rng, |input| {
            serde_json::from_slice::<zos_types::scenario::Scenario>(input)
                .map(|scenario| zos_planner::check::check(&scenario))
                .is_ok()
        }),
        run("zbus frame", &corpus(&corpus_root.join("zbus"))?, inputs, &mut rng, |input| {
            let request = zos_zbus::wire::decode::<zos_zbus::wire::Request>(input).is_ok();
            let response = zos_zbus::wire::decode::<zos_zbus::wire::Response>(input).is_ok();
            request || response
        }),
    ];
    let scratch = tempfile::tempdir()?;
    let flists = corpus(&corpus_root.join("flist"))?;
    targets.push(run("flist metadata", &flists, (inputs / 10).max(1), &mut rng, |input| flist(scratch.path(), input)));
    targets.push(run(
        "cloud-init seed",
        &corpus(&corpus_root.join("seed"))?,
        (inputs / 10).max(1),
        &mut rng,
        cloud_init,
    ));
    let (block, sealed) = zos_flistd::block::seal(b"campaign block: a few bytes of plain text")?;
    targets
        .push(run("flist block", &[sealed], inputs, &mut rng, |input| zos_flistd::block::open(&block, input).is_ok()));
    std::panic::set_hook(hook);
    Ok(targets)
}

/// Opens a mutated `.fl`, walks it and unpacks it (its blocks from no store: reading one fails cleanly);
/// accepted when it opens and walks.
fn flist(scratch: &Path, input: &[u8]) -> bool {
    let path = scratch.join("input.fl");
    let dest = scratch.join("tree");
    let _ = std::fs::remove_dir_all(&dest);
    if std::fs::write(&path, input).is_err() {
        return false;
    }
    let Ok(reader) = zos_flistd::meta::Reader::open(&path) else { return false };
    // Walk the tree as a mount would, each inode once (a loop in `parent` must not loop here either).
    let mut seen = std::collections::BTreeSet::new();
    let mut todo = vec![1u64];
    while let Some(ino) = todo.pop() {
        if !seen.insert(ino) || seen.len() > 100_000 {
            continue;
        }
        let Ok(children) = reader.children(ino) else { return false };
        for child in children {
            if reader.blocks(child.ino).is_err() {
                return false;
            }
            todo.push(child.ino);
        }
    }
    let Ok(routes) = reader.routes() else { return false };
    // The daemon's policy with an empty allow-list refuses every dir:// route; with none refused (a route
    // the mutations made), every block read fails: what is exercised is the archive's checks.
    if let Ok(router) = zos_flistd::store::Router::new(routes, &zos_flistd::store::DirPolicy::Under(Vec::new())) {
        let _ = zos_flistd::unpack::unpack(&reader, &router, &dest, zos_flistd::unpack::Options { devices: false });
    }
    true
}

/// A tenant's VM as the seed takes it, one field per line of the input (hostname, the `SSH_KEY` value,
/// the entrypoint, `K=V` pairs split on `;`, mounts as `source:target` split on `;`, addresses split
/// on `;`), then the `cidata` FAT image built from it.
fn cloud_init(input: &[u8]) -> bool {
    let text = String::from_utf8_lossy(input);
    let mut lines = text.split('\n');
    let mut field = || lines.next().unwrap_or_default().to_string();
    let (hostname, keys, entrypoint, environment, mounts, addresses) =
        (field(), field(), field(), field(), field(), field());
    let pairs = |text: &str, on: char| -> Vec<(String, String)> {
        text.split(';')
            .filter(|it| !it.is_empty())
            .map(|it| it.split_once(on).map_or((it.to_string(), String::new()), |(a, b)| (a.into(), b.into())))
            .collect()
    };
    let seed = zos_vmd::seed::Seed {
        instance_id: hostname.clone(),
        hostname,
        interfaces: vec![zos_vmd::seed::SeedInterface {
            name: "eth0".into(),
            mac: "52:54:00:12:34:56".into(),
            addresses: addresses.split(';').filter(|a| !a.is_empty()).map(str::to_string).collect(),
            gateway4: "10.1.1.1".into(),
            ..Default::default()
        }],
        ssh_keys: zos_vmd::seed::ssh_keys(&keys),
        mounts: pairs(&mounts, ':'),
        entrypoint,
        environment: pairs(&environment, '='),
        ..Default::default()
    };
    seed.image().is_ok()
}
