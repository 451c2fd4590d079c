//! Watching component files, their bundles, the config file and the pin file, so that a
//! replaced component or an operator's `accept` takes effect while serving.

use std::path::PathBuf;

use notify::RecursiveMode;

pub use crate::watch::FileWatcher;
use crate::watch::WatchError;

/// Watches `files` (through their directories, which survives editors and `mv` replacing a
/// file) and calls `on_change` once per burst of writes, creations, renames or removals.
pub fn watch_files(
    name: &str,
    files: Vec<PathBuf>,
    on_change: impl Fn() + Send + 'static,
) -> Result<FileWatcher, WatchError> {
    let files: Vec<PathBuf> = files
        .into_iter()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .collect();
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(PathBuf::from))
        .filter(|dir| dir.is_dir())
        .collect();
    dirs.sort();
    dirs.dedup();
    let watched: Vec<(PathBuf, RecursiveMode)> = dirs
        .into_iter()
        .map(|dir| (dir, RecursiveMode::NonRecursive))
        .collect();
    crate::watch::watch(
        name,
        &watched,
        move |path| files.iter().any(|f| f == path),
        on_change,
    )
}
