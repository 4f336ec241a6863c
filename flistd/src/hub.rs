//! The hub: where `.fl` files come from, over HTTP(S) (`ureq`, rustls).
//!
//! [`Hub::download`] fetches an `.fl` into the cache's `flist/` directory, keyed by the md5 of its
//! content as ZOS keys it (`flist/<md5>`): connect and read timeouts, retries with exponential backoff,
//! an interrupted transfer resumed with an HTTP `Range` request (the partial file is kept under a unique
//! temporary name and continued from its length; a server that ignores `Range` is read again from the
//! start), and verification against `<url>.md5` when the hub publishes one (32 hex digits and a
//! newline, as the older hub serves it). The file enters the cache only fully downloaded, hashed,
//! checked to open as an rfs `.fl`, and renamed into place: a partial or corrupt download never does.
//! When the hub publishes the md5 and the cache already has that file, nothing is downloaded.
//! [`Hub::flist_hash`] is ZOS's `FlistHash`.

use crate::FlistError;
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How the hub is spoken to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for any one read (the response's head, or the next bytes of its body).
    pub read_timeout: Duration,
    /// How many times a failed transfer is tried again (ZOS: 5).
    pub retries: u32,
    /// The wait before the first retry; it doubles at each one (at most 30 s).
    pub backoff: Duration,
    /// The largest `.fl` accepted.
    pub max_bytes: u64,
}

impl Default for HubConfig {
    fn default() -> HubConfig {
        HubConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(20),
            retries: 5,
            backoff: Duration::from_millis(500),
            max_bytes: 1 << 30,
        }
    }
}

/// The longest wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// An HTTP client with these timeouts that hands every status back as a response (the caller decides
/// what a 404 means) and never asks for a compressed body (a `Range` counts bytes of the file itself).
pub(crate) fn agent(connect: Duration, read: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_connect(Some(connect))
        .timeout_recv_response(Some(read))
        .timeout_per_read(Some(read))
        .http_status_as_error(false)
        .build()
        .into()
}

/// A transport failure (no HTTP answer at all) as the hub being down, or an unusable URL.
pub(crate) fn transport(url: &str, err: ureq::Error) -> FlistError {
    match err {
        ureq::Error::BadUri(why) => FlistError::Store { url: url.to_string(), why: format!("invalid URL: {why}") },
        err => FlistError::HubDown { url: url.to_string(), why: err.to_string() },
    }
}

/// An `.fl` in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// The md5 of its content, in hex: its name in the cache.
    pub hash: String,
    /// `flist/<hash>`.
    pub path: PathBuf,
    /// Whether it was downloaded now (`false`: the cache had the file the hub's md5 names).
    pub fetched: bool,
}

/// What one try of a transfer ended with.
enum Attempt {
    /// Worth trying again after a pause.
    Retry(FlistError),
    /// Final.
    Fatal(FlistError),
}

/// What a download learnt so far, across its tries.
#[derive(Default)]
struct Progress {
    /// The full length, when the server said it.
    total: Option<u64>,
    /// The first answer's strong `ETag` (or `Last-Modified`), sent as `If-Range` so that a file that
    /// changed in between is sent whole instead of being stitched onto the old part.
    validator: Option<String>,
    /// Whether a try continued a partial file.
    resumed: bool,
}

/// A temporary file removed when dropped, unless it was renamed into place.
struct Partial {
    path: PathBuf,
}

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Tells temporary names of one process apart.
static SERIAL: AtomicU64 = AtomicU64::new(0);

/// The hub's HTTP client.
pub struct Hub {
    agent: ureq::Agent,
    config: HubConfig,
}

impl Hub {
    /// A client with these timeouts, retries and limits.
    pub fn new(config: HubConfig) -> Hub {
        Hub { agent: agent(config.connect_timeout, config.read_timeout), config }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent, pausing between tries
    /// (the backoff doubles each time).
    fn retrying<T>(&self, url: &str, mut attempt: impl FnMut() -> Result<T, Attempt>) -> Result<T, FlistError> {
        let mut pause = self.config.backoff;
        let mut tries = 0u32;
        loop {
            match attempt() {
                Ok(value) => return Ok(value),
                Err(Attempt::Fatal(err)) => return Err(err),
                Err(Attempt::Retry(err)) if tries >= self.config.retries => return Err(err),
                Err(Attempt::Retry(err)) => {
                    tries = tries.saturating_add(1);
                    tracing::warn!(url, attempt = tries, "{err}; trying again in {pause:?}");
                    std::thread::sleep(pause);
                    pause = pause.saturating_mul(2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// `GET url`, with `headers`; a transport failure is worth a retry.
    fn get(&self, url: &str, headers: &[(&str, String)]) -> Result<ureq::http::Response<ureq::Body>, Attempt> {
        let mut request = self.agent.get(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.call().map_err(|err| match transport(url, err) {
            err @ FlistError::HubDown { .. } => Attempt::Retry(err),
            err => Attempt::Fatal(err),
        })
    }

    /// The md5 the hub publishes for `url` (`GET <url>.md5`: 32 hex digits, surrounding whitespace
    /// ignored), ZOS's `FlistHash`: `HashNotSupported` on a 404, `HashInvalidLen` for anything else than
    /// 32 hex digits.
    pub fn flist_hash(&self, url: &str) -> Result<String, FlistError> {
        let md5_url = format!("{url}.md5");
        self.retrying(&md5_url, || {
            let mut response = self.get(&md5_url, &[])?;
            let status = response.status().as_u16();
            match status {
                200 => {}
                404 => return Err(Attempt::Fatal(FlistError::HashNotSupported)),
                status => return Err(answer(&md5_url, status)),
            }
            let mut body = Vec::new();
            response
                .body_mut()
                .as_reader()
                .take(1024)
                .read_to_end(&mut body)
                .map_err(|err| Attempt::Retry(FlistError::HubDown { url: md5_url.clone(), why: err.to_string() }))?;
            let text = String::from_utf8_lossy(&body);
            let hash = text.trim();
            if hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Attempt::Fatal(FlistError::HashInvalidLen));
            }
            Ok(hash.to_ascii_lowercase())
        })
    }

    /// Downloads the `.fl` at `url` into `dir` (the cache's `flist/`), verified, as `dir/<md5>`.
    pub fn download(&self, url: &str, dir: &Path) -> Result<Downloaded, FlistError> {
        std::fs::create_dir_all(dir)?;
        let expected = match self.flist_hash(url) {
            Ok(hash) => Some(hash),
            Err(err @ FlistError::HubDown { .. }) => return Err(err),
            Err(err) => {
                tracing::debug!(url, "no md5 from the hub ({err}): the download is keyed by its own md5");
                None
            }
        };
        if let Some(hash) = &expected {
            let path = dir.join(hash);
            if path.is_file() {
                tracing::debug!(url, hash, "flist already in the cache");
                return Ok(Downloaded { hash: hash.clone(), path, fetched: false });
            }
        }
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let partial = Partial { path: dir.join(format!(".{}.{serial}.part", std::process::id())) };
        let mut progress = Progress::default();
        let mut restarted = false;
        loop {
            self.retrying(url, || self.transfer(url, &partial.path, &mut progress))?;
            let actual = md5_file(&partial.path)?;
            match &expected {
                Some(expected) if *expected != actual => {
                    // A transfer stitched from two tries may mix two versions of the file: once, start over.
                    if progress.resumed && !restarted {
                        tracing::warn!(url, "md5 mismatch after a resumed transfer: downloading it whole again");
                        restarted = true;
                        std::fs::File::create(&partial.path)?;
                        progress = Progress::default();
                        continue;
                    }
                    return Err(FlistError::Md5Mismatch { url: url.to_string(), expected: expected.clone(), actual });
                }
                _ => {}
            }
            check_flist(url, &partial.path)?;
            let path = dir.join(&actual);
            std::fs::rename(&partial.path, &path)?;
            std::fs::File::open(dir)?.sync_all()?;
            tracing::info!(url, hash = actual, "flist downloaded");
            return Ok(Downloaded { hash: actual, path, fetched: true });
        }
    }

    /// One try of a transfer: continues `part` from its length (a `Range` request) or starts it over.
    fn transfer(&self, url: &str, part: &Path, progress: &mut Progress) -> Result<(), Attempt> {
        let io = |err: std::io::Error| Attempt::Fatal(err.into());
        let have = match std::fs::metadata(part) {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => 0,
            Err(err) => return Err(io(err)),
        };
        if have > 0 && progress.total == Some(have) {
            return Ok(());
        }
        let mut headers = Vec::new();
        if have > 0 {
            headers.push(("Range", format!("bytes={have}-")));
            if let Some(validator) = &progress.validator {
                headers.push(("If-Range", validator.clone()));
            }
        }
        let mut response = self.get(url, &headers)?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (mut file, offset) = match status {
            200 => {
                progress.total = header("content-length").and_then(|v| v.parse().ok());
                progress.validator = header("etag").filter(|tag| !tag.starts_with("W/")).or(header("last-modified"));
                (std::fs::File::create(part).map_err(io)?, 0)
            }
            206 => match header("content-range").as_deref().and_then(content_range) {
                Some((start, total)) if start == have => {
                    progress.total = total.or(progress.total);
                    progress.resumed = true;
                    (std::fs::OpenOptions::new().append(true).open(part).map_err(io)?, have)
                }
                _ => {
                    // Not the part we asked for: start over.
                    std::fs::File::create(part).map_err(io)?;
                    progress.total = None;
                    return Err(Attempt::Retry(FlistError::Http { url: url.to_string(), status }));
                }
            },
            416 => {
                std::fs::File::create(part).map_err(io)?;
                progress.total = None;
                return Err(Attempt::Retry(FlistError::Http { url: url.to_string(), status }));
            }
            status => return Err(answer(url, status)),
        };
        let limit = self.config.max_bytes;
        let too_large = || Attempt::Fatal(FlistError::TooLarge { url: url.to_string(), limit });
        if progress.total.is_some_and(|total| total > limit) {
            return Err(too_large());
        }
        let mut reader = response.body_mut().as_reader();
        let mut buffer = vec![0u8; 64 * 1024];
        let mut length = offset;
        loop {
            let read = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    file.flush().map_err(io)?;
                    return Err(Attempt::Retry(FlistError::HubDown {
                        url: url.to_string(),
                        why: format!("transfer interrupted after {length} bytes: {err}"),
                    }));
                }
            };
            length = length.saturating_add(u64::try_from(read).unwrap_or(u64::MAX));
            if length > limit {
                return Err(too_large());
            }
            file.write_all(buffer.get(..read).unwrap_or_default()).map_err(io)?;
        }
        file.sync_all().map_err(io)?;
        match progress.total {
            Some(total) if total != length => Err(Attempt::Retry(FlistError::HubDown {
                url: url.to_string(),
                why: format!("transfer ended after {length} of {total} bytes"),
            })),
            _ => {
                progress.total = Some(length);
                Ok(())
            }
        }
    }
}

/// An HTTP answer that is not the file: a server error (5xx) or too many requests (429) is worth a retry,
/// anything else (a 404) is final.
fn answer(url: &str, status: u16) -> Attempt {
    let err = FlistError::Http { url: url.to_string(), status };
    if status >= 500 || status == 429 { Attempt::Retry(err) } else { Attempt::Fatal(err) }
}

/// `bytes START-END/TOTAL` (TOTAL may be `*`): the start and the total.
fn content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

/// The md5 of a file, in hex.
fn md5_file(path: &Path) -> Result<String, FlistError> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(buffer.get(..read).unwrap_or_default());
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Whether `path` opens as an rfs `.fl`: SQLite, opened read-only, with its routes and a root directory.
fn check_flist(url: &str, path: &Path) -> Result<(), FlistError> {
    let not = |why: String| FlistError::NotAnFlist { url: url.to_string(), why };
    let reader = crate::meta::Reader::open(path).map_err(|err| not(err.to_string()))?;
    reader.routes().map_err(|err| not(err.to_string()))?;
    match reader.inode(crate::meta::ROOT) {
        Ok(Some(root)) if root.mode & 0o170_000 == 0o040_000 => Ok(()),
        Ok(_) => Err(not("no root directory".into())),
        Err(err) => Err(not(err.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_are_read() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(content_range("items 1-2/3"), None);
        assert_eq!(content_range("bytes x-9/10"), None);
    }
}
