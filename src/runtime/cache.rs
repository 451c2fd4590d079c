//! On-disk cache of compiled components, so a restart does not recompile.
//!
//! An entry is keyed by the component file's SHA-256 *and* the engine's compatibility hash
//! (wasmtime version, target, compiler settings), so a changed file or a changed engine
//! configuration never loads a stale artifact. Entries are written to a temporary file and
//! renamed into place, so a crash never leaves a half-written artifact under a valid name.
//!
//! Loading an artifact runs native code that wasmtime produced earlier: the cache directory
//! must be as protected as the gateway binary itself (it is created with mode 0700).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The compiled-artifact cache; `None` directory means caching is off.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: Option<PathBuf>,
    engine_hash: String,
}

/// Whether a component came from the cache or was compiled now (reported in the banner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    Cached,
    Compiled,
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_hash: hex::encode(&hasher.0.finalize()[..12]),
        }
    }

    fn entry_path(&self, sha256_hex: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join(format!("{sha256_hex}-{}.cwasm", self.engine_hash)))
    }

    /// Returns the compiled component for `bytes`, from the cache when possible.
    ///
    /// A cache that cannot be read or written is not an error: the component is compiled and
    /// the problem logged, because a cache is an optimization, never a requirement.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        sha256_hex: &str,
    ) -> wasmtime::Result<(Component, CompileSource)> {
        if let Some(path) = self.entry_path(sha256_hex)
            && path.is_file()
        {
            // SAFETY: the file was written by `Component::serialize` of an engine with the same
            // compatibility hash (it is in the file name), into a directory only we can write.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok((component, CompileSource::Cached)),
                Err(error) => tracing::warn!(
                    path = %path.display(),
                    error = %error,
                    "compiled-component cache entry unusable; recompiling"
                ),
            }
        }
        let component = Component::new(engine, bytes)?;
        if let Some(path) = self.entry_path(sha256_hex)
            && let Err(error) = write_atomically(&path, &component.serialize()?)
        {
            tracing::warn!(path = %path.display(), %error, "could not write compiled-component cache");
        }
        Ok((component, CompileSource::Compiled))
    }
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

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache entries live in a directory");
    create_private_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
