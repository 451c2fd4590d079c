//! Hot reload: on changes in the bundle directory (debounced) and on SIGHUP.

use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};

use super::store::PolicyStore;

/// Quiet time after the last change before reloading: editors and `git checkout` write several
/// files in a burst, and one reload should see all of them.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// Watches a store's files and reloads it; reloading stops when this is dropped.
pub struct PolicyWatcher {
    // Dropping the watcher drops the event sender, which ends the reload thread.
    watcher: Option<notify::RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PolicyWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyWatcher").finish_non_exhaustive()
    }
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        drop(self.watcher.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The directory could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct WatchError {
    pub path: PathBuf,
    #[source]
    pub source: notify::Error,
}

impl PolicyStore {
    /// Starts watching the bundle directory (recursively) and the extra data files; each burst
    /// of changes triggers one [`PolicyStore::reload`] after [`DEBOUNCE`] of quiet. A rejected
    /// bundle is logged by `reload` and the previous one keeps serving.
    pub fn watch(&self) -> Result<PolicyWatcher, WatchError> {
        let (tx, rx) = mpsc::channel::<()>();
        let extra: Vec<PathBuf> = self
            .extra_data()
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let dir = std::path::absolute(self.dir()).unwrap_or_else(|_| self.dir().to_path_buf());
        let relevant_extra = extra.clone();
        let relevant_dir = dir.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                // Reading the bundle (by reload itself) produces access events: ignore them.
                if matches!(event.kind, EventKind::Access(_)) {
                    return;
                }
                let relevant = event.paths.iter().any(|path| {
                    path.starts_with(&relevant_dir) || relevant_extra.iter().any(|p| p == path)
                });
                if relevant {
                    let _ = tx.send(());
                }
            })
            .map_err(|source| WatchError {
                path: dir.clone(),
                source,
            })?;
        let mut watch = |path: &std::path::Path, mode| {
            watcher.watch(path, mode).map_err(|source| WatchError {
                path: path.to_path_buf(),
                source,
            })
        };
        watch(&dir, RecursiveMode::Recursive)?;
        // Editors replace a file by renaming over it, which ends a watch on the file itself;
        // watching its directory survives that.
        for file in &extra {
            if let Some(parent) = file.parent() {
                watch(parent, RecursiveMode::NonRecursive)?;
            }
        }

        let store = self.clone();
        let thread = std::thread::Builder::new()
            .name("policy-watch".into())
            .spawn(move || {
                while rx.recv().is_ok() {
                    loop {
                        match rx.recv_timeout(DEBOUNCE) {
                            Ok(()) => continue,
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    // Errors are logged by reload; the old bundle keeps serving.
                    let _ = store.reload();
                }
            })
            .map_err(|e| WatchError {
                path: dir.clone(),
                source: notify::Error::io(e),
            })?;
        Ok(PolicyWatcher {
            watcher: Some(watcher),
            thread: Some(thread),
        })
    }
}

/// Registers a SIGHUP handler now and returns a future that reloads `store` on every SIGHUP.
/// The serve command spawns it: `tokio::spawn(policy::reload_on_sighup(store.clone())?)`.
#[cfg(unix)]
pub fn reload_on_sighup(
    store: PolicyStore,
) -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    Ok(async move {
        while hangup.recv().await.is_some() {
            tracing::info!(dir = %store.dir().display(), "SIGHUP: reloading the policy bundle");
            let store = store.clone();
            // Reload reads files and runs the bundle's tests: keep it off the async workers.
            let _ = tokio::task::spawn_blocking(move || store.reload()).await;
        }
    })
}
