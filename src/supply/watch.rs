//! Watching component files, their bundles, the config file and the pin file, so that a
//! replaced component or an operator's `accept` takes effect while serving.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;

use notify::{EventKind, RecursiveMode, Watcher};

use crate::policy::{DEBOUNCE, WatchError};

/// Runs a callback after each debounced burst of changes to a set of files; stops when dropped.
pub struct FileWatcher {
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
    let (tx, rx) = mpsc::channel::<()>();
    let relevant = files.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event.paths.iter().any(|path| relevant.contains(path)) {
            let _ = tx.send(());
        }
    })
    .map_err(|source| WatchError {
        path: PathBuf::from(name),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(PathBuf::from))
        .collect();
    dirs.sort();
    dirs.dedup();
    for dir in &dirs {
        if !dir.is_dir() {
            continue;
        }
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError {
                path: dir.clone(),
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
