//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! Loading an entry runs native code that wasmtime produced earlier, outside the sandbox. So an
//! entry is used only when it is provably what *this installation* compiled from *these*
//! component bytes for *this* engine; otherwise the signed component would be checked and
//! different code run:
//!
//! - **The directory** is trusted only if it is a real directory (not a symbolic link), owned by
//!   the gateway's effective user and not writable by group or others. That is checked once, when
//!   the cache is opened at start-up, with `fstat` on a handle opened with `O_NOFOLLOW`; every
//!   later access goes through that handle (`openat`), so renaming or replacing the path
//!   afterwards changes nothing. A directory that fails turns the cache off with a warning that
//!   names the path and the fix: components are compiled in memory, nothing is read from or
//!   written to it. A missing directory is created with mode 0700.
//! - **The key**: 32 random bytes in `DIR/.cache-key`, created with mode 0600 on first use. It
//!   lives in the checked directory and must itself be a regular file owned by the effective
//!   user with no group or other permissions; one that is not is replaced by a new key (every
//!   entry made with the old one is then recompiled).
//! - **An entry** (`DIR/<component sha256>-<engine hash>.cwasm`) is [`MAGIC`], then an
//!   HMAC-SHA256 under the key over the component's digest, the engine's compatibility hash and
//!   the artifact, then the artifact (`Component::serialize`). The entry file must be a regular
//!   file owned by the effective user and not writable by group or others. Its bytes are read
//!   into memory, the MAC is checked over them, and those same bytes are deserialized. An entry
//!   that fails any check (changed, truncated, written by an older Gatehouse or by another
//!   installation with another key) is never deserialized: the component is recompiled, the
//!   entry replaced and a warning logged.
//!
//! Entries are written to a temporary file (mode 0600) and renamed into place, so a crash never
//! leaves a half-written artifact under a valid name. A cache problem is never fatal: the cache
//! is an optimization, so the worst outcome is compiling again.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

use crate::support::fs_trust::{self, check_stat};
pub use crate::support::fs_trust::{Distrust, Expect, check};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every entry: the format of what follows (MAC, then artifact).
pub const MAGIC: &[u8; 8] = b"GHCWASM1";
/// The installation's MAC key, inside the cache directory.
pub const KEY_FILE: &str = ".cache-key";
const KEY_BYTES: usize = 32;
const TAG_BYTES: usize = 32;
/// Domain separation: this key signs nothing else, but a tag should say what it is over.
const MAC_DOMAIN: &[u8] = b"gatehouse compiled component v1\0";

/// Where compiled components are kept between runs (`[cache]`). The supply chain keeps its
/// downloads in the same directory.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Defaults to `$XDG_CACHE_HOME/gatehouse` (or `~/.cache/gatehouse`).
    pub dir: Option<PathBuf>,
}

impl CacheConfig {
    /// The cache directory to use; `None` only when no home directory can be found.
    pub fn resolved_dir(&self) -> Option<PathBuf> {
        if let Some(dir) = &self.dir {
            return Some(dir.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(base.join("gatehouse"))
    }
}

/// The compiled-artifact cache. Caching is off when no directory was configured or the
/// directory was refused.
#[derive(Debug, Clone)]
pub struct CompileCache {
    store: Option<Arc<TrustedDir>>,
    /// SHA-256 of wasmtime's compatibility hash (version, target, compiler settings).
    engine_hash: [u8; 32],
}

/// Whether a component came from the cache or was compiled now (reported in the banner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    Cached,
    Compiled,
}

/// A cache directory that passed the checks, held open, with the installation's key.
struct TrustedDir {
    /// For messages only: every access goes through `dir`.
    path: PathBuf,
    dir: OwnedFd,
    key: [u8; KEY_BYTES],
}

impl fmt::Debug for TrustedDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedDir")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl CompileCache {
    /// Opens the cache in `dir` (at every start), checking that only the gateway's user can
    /// have written there. A directory that fails is logged as a warning and not used.
    pub fn open(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_hash = hasher.0.finalize().into();
        let store = dir.and_then(|path| match TrustedDir::open(&path) {
            Ok(store) => Some(Arc::new(store)),
            Err(refusal) => {
                tracing::warn!(
                    path = %path.display(),
                    "compiled-component cache {} not used: {refusal}. Components are compiled in \
                     memory; nothing is read from or written to it",
                    path.display()
                );
                None
            }
        });
        CompileCache { store, engine_hash }
    }

    /// The directory in use, or `None` when caching is off.
    pub fn dir(&self) -> Option<&Path> {
        self.store.as_deref().map(|store| store.path.as_path())
    }

    fn entry_name(&self, sha256_hex: &str) -> String {
        format!(
            "{sha256_hex}-{}.cwasm",
            hex::encode(&self.engine_hash[..12])
        )
    }

    /// Returns the compiled component for `bytes`, from the cache when a verified entry exists.
    ///
    /// A cache that cannot be read or written is not an error: the component is compiled and
    /// the problem logged, because a cache is an optimization, never a requirement.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256_hex: &str,
    ) -> wasmtime::Result<(Component, CompileSource)> {
        let Some(store) = &self.store else {
            return Ok((compile(engine, bytes)?, CompileSource::Compiled));
        };
        let name = self.entry_name(sha256_hex);
        let path = store.path.join(&name);
        match store.read_entry(&name) {
            Ok(None) => {}
            Ok(Some(entry)) => {
                match entry_artifact(&store.key, sha256_hex, &self.engine_hash, &entry) {
                    Ok(artifact) => {
                        // SAFETY: `artifact` is the very buffer whose MAC was just verified with this
                        // installation's key, which only the gateway's user can read (checked at
                        // open). So these bytes were written by `Component::serialize` of this
                        // installation, for this component digest and this engine configuration
                        // (both are in the MAC), which is what `deserialize` requires.
                        match unsafe { Component::deserialize(engine, artifact) } {
                            Ok(component) => return Ok((component, CompileSource::Cached)),
                            Err(error) => tracing::warn!(
                                path = %path.display(),
                                "compiled-component cache entry {} verified but not loadable ({error:#}); \
                                 recompiling and replacing it",
                                path.display()
                            ),
                        }
                    }
                    Err(problem) => tracing::warn!(
                        path = %path.display(),
                        "compiled-component cache entry {} {problem}; it is not loaded. Recompiling \
                         and replacing it",
                        path.display()
                    ),
                }
            }
            Err(EntryError::Untrusted(distrust)) => tracing::warn!(
                path = %path.display(),
                "compiled-component cache entry {} is not trusted: {distrust}; it is not loaded. \
                 Recompiling and replacing it",
                path.display()
            ),
            Err(EntryError::Io(error)) => tracing::warn!(
                path = %path.display(),
                "cannot read compiled-component cache entry {}: {error}; recompiling",
                path.display()
            ),
        }
        let component = compile(engine, bytes)?;
        let artifact = component.serialize()?;
        let tag = mac(&store.key, sha256_hex, &self.engine_hash, &artifact);
        if let Err(error) = store.write_atomically(&name, &[MAGIC, &tag[..], &artifact]) {
            tracing::warn!(
                path = %path.display(),
                "could not write compiled-component cache entry {}: {error}",
                path.display()
            );
        }
        Ok((component, CompileSource::Compiled))
    }
}

/// Compiles a component, shown as a task in progress (compiling a large one takes seconds).
fn compile(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    let _task = crate::support::progress::task("compiling component", None);
    Component::new(engine, bytes)
}

/// Why an entry's bytes are not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    #[error(
        "is not in Gatehouse's signed format (written by an older Gatehouse, truncated or replaced)"
    )]
    NotSigned,
    #[error(
        "failed its integrity check (MAC mismatch: it was changed, or made by another installation \
         with another key)"
    )]
    BadMac,
}

/// The artifact inside `entry`, if its MAC under `key` binds it to this component digest and
/// engine. The returned slice borrows from `entry`: the checked bytes are the loaded bytes.
pub fn entry_artifact<'a>(
    key: &[u8; KEY_BYTES],
    sha256_hex: &str,
    engine_hash: &[u8; 32],
    entry: &'a [u8],
) -> Result<&'a [u8], EntryProblem> {
    let rest = entry.strip_prefix(MAGIC).ok_or(EntryProblem::NotSigned)?;
    if rest.len() < TAG_BYTES {
        return Err(EntryProblem::NotSigned);
    }
    let (tag, artifact) = rest.split_at(TAG_BYTES);
    mac_state(key, sha256_hex, engine_hash, artifact)
        .verify_slice(tag)
        .map_err(|_| EntryProblem::BadMac)?;
    Ok(artifact)
}

fn mac(
    key: &[u8; KEY_BYTES],
    sha256_hex: &str,
    engine_hash: &[u8; 32],
    artifact: &[u8],
) -> [u8; TAG_BYTES] {
    mac_state(key, sha256_hex, engine_hash, artifact)
        .finalize()
        .into_bytes()
        .into()
}

/// HMAC-SHA256 over the domain, the length-prefixed digest, the fixed-size engine hash and the
/// artifact (last, so no length is needed to delimit it).
fn mac_state(
    key: &[u8; KEY_BYTES],
    sha256_hex: &str,
    engine_hash: &[u8; 32],
    artifact: &[u8],
) -> Hmac<Sha256> {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(MAC_DOMAIN);
    mac.update(&(sha256_hex.len() as u64).to_be_bytes());
    mac.update(sha256_hex.as_bytes());
    mac.update(engine_hash);
    mac.update(artifact);
    mac
}

/// Why the whole cache directory is refused; displayed in the start-up warning.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(
        "{distrust}, so someone else could put native code there that Gatehouse would run. Fix: {fix}"
    )]
    Untrusted { distrust: Distrust, fix: String },
    #[error("{0}")]
    Io(String),
}

#[derive(Debug)]
enum EntryError {
    Untrusted(Distrust),
    Io(std::io::Error),
}

impl TrustedDir {
    fn open(path: &Path) -> Result<TrustedDir, Refusal> {
        let dir = fs_trust::open_dir(path, Expect::Directory).map_err(|e| match e {
            fs_trust::OpenError::Untrusted(distrust) => refuse(path, distrust),
            fs_trust::OpenError::Io(detail) => Refusal::Io(detail),
        })?;
        let key = load_or_create_key(&dir, path)
            .map_err(|e| Refusal::Io(format!("cannot read or create its key {KEY_FILE} ({e})")))?;
        Ok(TrustedDir {
            path: path.to_owned(),
            dir,
            key,
        })
    }

    /// The whole entry `name`, if it exists and may be trusted.
    fn read_entry(&self, name: &str) -> Result<Option<Vec<u8>>, EntryError> {
        let file = match open_in(&self.dir, name) {
            Ok(file) => file,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(EntryError::Untrusted(Distrust::Symlink)),
            Err(errno) => return Err(EntryError::Io(errno.into())),
        };
        let stat = rustix::fs::fstat(&file).map_err(|e| EntryError::Io(e.into()))?;
        check_stat(&stat, Expect::Entry).map_err(EntryError::Untrusted)?;
        let mut bytes = Vec::with_capacity(usize::try_from(stat.st_size).unwrap_or(0));
        std::fs::File::from(file)
            .read_to_end(&mut bytes)
            .map_err(EntryError::Io)?;
        Ok(Some(bytes))
    }

    fn write_atomically(&self, name: &str, parts: &[&[u8]]) -> std::io::Result<()> {
        let tmp = write_temp(&self.dir, name, parts)?;
        rustix::fs::renameat(&self.dir, &tmp, &self.dir, name).map_err(|e| {
            let _ = rustix::fs::unlinkat(&self.dir, &tmp, AtFlags::empty());
            std::io::Error::from(e)
        })
    }
}

fn refuse(path: &Path, distrust: Distrust) -> Refusal {
    let shown = path.display();
    let fix = match &distrust {
        Distrust::Writable { .. } | Distrust::Exposed { .. } => format!("chmod 700 {shown}"),
        Distrust::ForeignOwner { euid, .. } => format!(
            "chown {euid} {shown} && chmod 700 {shown} (or give --cache-dir a directory of the gateway's user)"
        ),
        Distrust::Symlink => match std::fs::canonicalize(path) {
            Ok(target) => format!(
                "give the real directory instead: --cache-dir {}",
                target.display()
            ),
            Err(_) => format!("replace the symbolic link {shown} by a directory"),
        },
        Distrust::WrongType { .. } => "give --cache-dir (or [cache] dir) a directory".to_string(),
    };
    Refusal::Untrusted { distrust, fix }
}

/// Opens `name` inside `dir` for reading, never following a symbolic link.
fn open_in(dir: &OwnedFd, name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
}

/// Writes `parts` to a new file (mode 0600, `O_EXCL`) in `dir` and returns its name.
fn write_temp(dir: &OwnedFd, name: &str, parts: &[&[u8]]) -> std::io::Result<String> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce)
        .map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
    let tmp = format!(".{name}.{}.tmp", hex::encode(nonce));
    let fd = rustix::fs::openat(
        dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    let mut file = std::fs::File::from(fd);
    let written = parts
        .iter()
        .try_for_each(|part| file.write_all(part))
        .and_then(|()| file.sync_all());
    if let Err(error) = written {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
        return Err(error);
    }
    Ok(tmp)
}

/// The installation's key: read from [`KEY_FILE`], or created there on first use. A key file
/// that is not trustworthy (a symlink, someone else's, readable by others, the wrong size) is
/// replaced by a new one.
fn load_or_create_key(dir: &OwnedFd, path: &Path) -> std::io::Result<[u8; KEY_BYTES]> {
    // Two attempts: another gateway starting at the same moment may create the key first.
    for _ in 0..2 {
        let problem = match open_in(dir, KEY_FILE) {
            Ok(file) => match read_key(file)? {
                Ok(key) => return Ok(key),
                Err(problem) => problem,
            },
            Err(Errno::NOENT) => match create_key(dir, false) {
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                created => return created,
            },
            Err(Errno::LOOP) => Distrust::Symlink.to_string(),
            Err(errno) => return Err(errno.into()),
        };
        tracing::warn!(
            path = %path.join(KEY_FILE).display(),
            "compiled-component cache key {} not trusted: {problem}; replacing it with a new key \
             (entries made with the old key will be recompiled)",
            path.join(KEY_FILE).display()
        );
        return create_key(dir, true);
    }
    Err(std::io::Error::other("the key file keeps changing"))
}

/// The key in `file`, or why it is not trusted.
fn read_key(file: OwnedFd) -> std::io::Result<Result<[u8; KEY_BYTES], String>> {
    let stat = rustix::fs::fstat(&file)?;
    if let Err(distrust) = check_stat(&stat, Expect::Key) {
        return Ok(Err(distrust.to_string()));
    }
    let mut bytes = Vec::with_capacity(KEY_BYTES);
    std::fs::File::from(file)
        .take(KEY_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(<[u8; KEY_BYTES]>::try_from(bytes.as_slice())
        .map_err(|_| format!("it holds {} bytes, not {KEY_BYTES}", bytes.len())))
}

/// Creates a new key file; with `replace`, over whatever is there. Without it, an existing key
/// file wins (`AlreadyExists`), so two processes never use different keys for long.
fn create_key(dir: &OwnedFd, replace: bool) -> std::io::Result<[u8; KEY_BYTES]> {
    let mut key = [0u8; KEY_BYTES];
    getrandom::fill(&mut key).map_err(|e| std::io::Error::other(format!("no randomness: {e}")))?;
    let tmp = write_temp(dir, KEY_FILE, &[&key])?;
    let placed = if replace {
        rustix::fs::renameat(dir, tmp.as_str(), dir, KEY_FILE)
    } else {
        rustix::fs::linkat(dir, tmp.as_str(), dir, KEY_FILE, AtFlags::empty())
    };
    let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    placed?;
    Ok(key)
}

/// Feeds `Hash` output into SHA-256: unlike `DefaultHasher`, its result is specified and stable
/// across Rust releases, which a key persisted on disk needs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().expect("SHA-256 has 32 bytes"))
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use rustix::fs::FileType;

    use super::*;

    const ME: u32 = 1000;

    #[test]
    fn only_our_own_unshared_files_are_trusted() {
        use Expect::*;
        let dir = FileType::Directory;
        let file = FileType::RegularFile;
        assert_eq!(check(dir, ME, 0o40700, ME, Directory), Ok(()));
        assert_eq!(
            check(dir, ME, 0o755, ME, Directory),
            Ok(()),
            "readable is fine"
        );
        assert_eq!(
            check(dir, ME, 0o770, ME, Directory),
            Err(Distrust::Writable { mode: 0o770 })
        );
        assert_eq!(
            check(dir, ME, 0o1777, ME, Directory),
            Err(Distrust::Writable { mode: 0o1777 }),
            "a sticky bit does not stop others from adding entries"
        );
        assert_eq!(
            check(dir, 0, 0o700, ME, Directory),
            Err(Distrust::ForeignOwner { owner: 0, euid: ME })
        );
        assert_eq!(
            check(FileType::Symlink, ME, 0o777, ME, Directory),
            Err(Distrust::Symlink)
        );
        assert_eq!(
            check(file, ME, 0o700, ME, Directory),
            Err(Distrust::WrongType {
                expected: "directory"
            })
        );
        assert_eq!(check(file, ME, 0o644, ME, Entry), Ok(()));
        assert_eq!(
            check(file, ME, 0o664, ME, Entry),
            Err(Distrust::Writable { mode: 0o664 })
        );
        assert_eq!(
            check(file, 0, 0o600, ME, Entry),
            Err(Distrust::ForeignOwner { owner: 0, euid: ME })
        );
        assert_eq!(
            check(FileType::Fifo, ME, 0o600, ME, Entry),
            Err(Distrust::WrongType {
                expected: "regular file"
            })
        );
        assert_eq!(check(file, ME, 0o600, ME, Key), Ok(()));
        assert_eq!(
            check(file, ME, 0o640, ME, Key),
            Err(Distrust::Exposed { mode: 0o640 }),
            "a key others can read lets them forge entries"
        );
    }

    fn entry(key: &[u8; 32], digest: &str, engine: &[u8; 32], artifact: &[u8]) -> Vec<u8> {
        [MAGIC, &mac(key, digest, engine, artifact)[..], artifact].concat()
    }

    #[test]
    fn the_mac_binds_key_digest_engine_and_artifact() {
        let (key, other_key) = ([1u8; 32], [2u8; 32]);
        let engine = [3u8; 32];
        let good = entry(&key, "ab12", &engine, b"native code");
        assert_eq!(
            entry_artifact(&key, "ab12", &engine, &good),
            Ok(&b"native code"[..])
        );
        assert_eq!(
            entry_artifact(&other_key, "ab12", &engine, &good),
            Err(EntryProblem::BadMac),
            "another installation's key"
        );
        assert_eq!(
            entry_artifact(&key, "ab13", &engine, &good),
            Err(EntryProblem::BadMac),
            "another component's entry"
        );
        assert_eq!(
            entry_artifact(&key, "ab12", &[4u8; 32], &good),
            Err(EntryProblem::BadMac),
            "another engine configuration"
        );
        for index in MAGIC.len()..good.len() {
            let mut flipped = good.clone();
            flipped[index] ^= 0x01;
            assert_eq!(
                entry_artifact(&key, "ab12", &engine, &flipped),
                Err(EntryProblem::BadMac),
                "byte {index} flipped"
            );
        }
        // Length prefixes keep the digest and the artifact apart.
        let shifted = entry(&key, "ab1", &engine, b"2native code");
        assert_eq!(
            entry_artifact(&key, "ab12", &engine, &shifted),
            Err(EntryProblem::BadMac)
        );
    }

    #[test]
    fn unsigned_or_short_entries_are_refused() {
        let key = [1u8; 32];
        let engine = [3u8; 32];
        let good = entry(&key, "ab12", &engine, b"");
        assert_eq!(entry_artifact(&key, "ab12", &engine, &good), Ok(&b""[..]));
        for cut in 0..good.len() {
            assert_eq!(
                entry_artifact(&key, "ab12", &engine, &good[..cut]),
                Err(if cut < MAGIC.len() + TAG_BYTES {
                    EntryProblem::NotSigned
                } else {
                    EntryProblem::BadMac
                }),
                "cut at {cut}"
            );
        }
        let old_format = b"\x7fELF\x02\x01\x01\0 an artifact written by an older Gatehouse";
        assert_eq!(
            entry_artifact(&key, "ab12", &engine, old_format),
            Err(EntryProblem::NotSigned)
        );
    }

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    /// The smallest component there is: enough to compile, serialize and deserialize.
    fn component_bytes() -> Vec<u8> {
        wat::parse_str("(component)").unwrap()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_new_cache_is_private_and_round_trips() {
        let engine = engine();
        let bytes = component_bytes();
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().join("cache");
        let cache = CompileCache::open(&engine, Some(dir.clone()));
        assert_eq!(cache.dir(), Some(dir.as_path()));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        assert_eq!(std::fs::read(dir.join(KEY_FILE)).unwrap().len(), KEY_BYTES);

        let (_, source) = cache.load_or_compile(&engine, &bytes, "ab12").unwrap();
        assert_eq!(source, CompileSource::Compiled);
        let entry = dir.join(cache.entry_name("ab12"));
        assert_eq!(mode(&entry), 0o600);
        assert!(std::fs::read(&entry).unwrap().starts_with(MAGIC));
        assert_eq!(names(&dir).len(), 2, "key and entry, no temporary files");

        let reopened = CompileCache::open(&engine, Some(dir.clone()));
        let (_, source) = reopened.load_or_compile(&engine, &bytes, "ab12").unwrap();
        assert_eq!(source, CompileSource::Cached, "the same key is used again");
    }

    #[test]
    fn a_changed_entry_is_recompiled_and_replaced() {
        let engine = engine();
        let bytes = component_bytes();
        let temp = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(&engine, Some(temp.path().to_owned()));
        cache.load_or_compile(&engine, &bytes, "ab12").unwrap();
        let entry = temp.path().join(cache.entry_name("ab12"));
        let good = std::fs::read(&entry).unwrap();
        let mut changed = good.clone();
        let last = changed.len() - 1;
        changed[last] ^= 0x80;
        std::fs::write(&entry, &changed).unwrap();

        let (_, source) = cache.load_or_compile(&engine, &bytes, "ab12").unwrap();
        assert_eq!(source, CompileSource::Compiled);
        let replaced = std::fs::read(&entry).unwrap();
        assert_ne!(replaced, changed);
        let (_, source) = cache.load_or_compile(&engine, &bytes, "ab12").unwrap();
        assert_eq!(source, CompileSource::Cached);
    }

    #[test]
    fn a_shared_or_linked_entry_is_not_read_but_replaced() {
        let engine = engine();
        let bytes = component_bytes();
        let temp = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(&engine, Some(temp.path().to_owned()));
        cache.load_or_compile(&engine, &bytes, "ab12").unwrap();
        let entry = temp.path().join(cache.entry_name("ab12"));

        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        let (_, source) = cache.load_or_compile(&engine, &bytes, "ab12").unwrap();
        assert_eq!(source, CompileSource::Compiled);
        assert_eq!(mode(&entry), 0o600, "replaced by a private file");

        // A symbolic link to a good entry elsewhere is not followed.
        let elsewhere = temp.path().join("elsewhere");
        std::fs::rename(&entry, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &entry).unwrap();
        let (_, source) = cache.load_or_compile(&engine, &bytes, "ab12").unwrap();
        assert_eq!(source, CompileSource::Compiled);
        assert!(!std::fs::symlink_metadata(&entry).unwrap().is_symlink());
    }

    #[test]
    fn an_untrustworthy_key_is_replaced() {
        let engine = engine();
        let temp = tempfile::tempdir().unwrap();
        let key = temp.path().join(KEY_FILE);
        CompileCache::open(&engine, Some(temp.path().to_owned()));
        let first = std::fs::read(&key).unwrap();

        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        CompileCache::open(&engine, Some(temp.path().to_owned()));
        assert_eq!(mode(&key), 0o600);
        let second = std::fs::read(&key).unwrap();
        assert_ne!(first, second, "a key others could read is not used again");

        std::fs::write(&key, b"short").unwrap();
        CompileCache::open(&engine, Some(temp.path().to_owned()));
        assert_eq!(std::fs::read(&key).unwrap().len(), KEY_BYTES);
    }

    #[test]
    fn a_group_writable_directory_is_neither_read_nor_written() {
        let engine = engine();
        let temp = tempfile::tempdir().unwrap();
        std::fs::set_permissions(temp.path(), std::fs::Permissions::from_mode(0o770)).unwrap();
        let cache = CompileCache::open(&engine, Some(temp.path().to_owned()));
        assert_eq!(cache.dir(), None);
        let (_, source) = cache
            .load_or_compile(&engine, &component_bytes(), "ab12")
            .unwrap();
        assert_eq!(source, CompileSource::Compiled);
        assert!(names(temp.path()).is_empty(), "no key, no entry");
    }
}
