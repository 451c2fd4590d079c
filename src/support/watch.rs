//! Watching files for changes: one debounced background reaction per burst of writes. Shared by
//! the policy bundle's hot reload and the component catalog's reload.

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

/// Quiet time after the last change before reacting: editors and `git checkout` write several
/// files in a burst, and one reaction should see all of them.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A path could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct WatchError {
    pub path: PathBuf,
    #[source]
    pub source: notify::Error,
}

/// A running watch; it stops when dropped.
pub struct FileWatcher {
    // Dropping the watcher drops the event sender, which ends the reaction thread.
    watcher: Option<notify::RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher").finish_non_exhaustive()
    }
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        drop(self.watcher.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Watches `watched` (directories, recursively or not) and calls `on_change` on a thread named
/// `name` once per burst of changes to a path `relevant` accepts. Access events (reading the
/// files, e.g. by `on_change` itself) are ignored. Watching a file's directory rather than the
/// file survives editors that replace a file by renaming over it.
pub fn watch(
    name: &str,
    watched: &[(PathBuf, RecursiveMode)],
    relevant: impl Fn(&Path) -> bool + Send + 'static,
    on_change: impl Fn() + Send + 'static,
) -> Result<FileWatcher, WatchError> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event.paths.iter().any(|path| relevant(path)) {
            let _ = tx.send(());
        }
    })
    .map_err(|source| WatchError {
        path: PathBuf::from(name),
        source,
    })?;
    for (path, mode) in watched {
        watcher.watch(path, *mode).map_err(|source| WatchError {
            path: path.clone(),
            source,
        })?;
    }
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            while rx.recv().is_ok() {
                loop {
                    match rx.recv_timeout(DEBOUNCE) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                on_change();
            }
        })
        .map_err(|e| WatchError {
            path: PathBuf::from(name),
            source: notify::Error::io(e),
        })?;
    Ok(FileWatcher {
        watcher: Some(watcher),
        thread: Some(thread),
    })
}

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
    watch(
        name,
        &watched,
        move |path| files.iter().any(|f| f == path),
        on_change,
    )
}
