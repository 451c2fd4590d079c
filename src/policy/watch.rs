//! Hot reload: on changes in the bundle directory (debounced) and on SIGHUP.

use std::path::PathBuf;

use super::store::PolicyStore;
use crate::support::watch::RecursiveMode;
pub use crate::support::watch::{DEBOUNCE, WatchError};

/// The bundle's watch; reloading stops when it is dropped.
pub type PolicyWatcher = crate::support::watch::FileWatcher;

impl PolicyStore {
    /// Starts watching the bundle directory (recursively) and the extra data files; each burst
    /// of changes triggers one [`PolicyStore::reload`] after [`DEBOUNCE`] of quiet. A rejected
    /// bundle is logged by `reload` and the previous one keeps serving.
    pub fn watch(&self) -> Result<PolicyWatcher, WatchError> {
        let extra: Vec<PathBuf> = self
            .extra_data()
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()))
            .collect();
        let dir = std::path::absolute(self.dir()).unwrap_or_else(|_| self.dir().to_path_buf());
        let mut watched = vec![(dir.clone(), RecursiveMode::Recursive)];
        watched.extend(
            extra
                .iter()
                .filter_map(|file| file.parent())
                .map(|parent| (parent.to_path_buf(), RecursiveMode::NonRecursive)),
        );
        let store = self.clone();
        crate::support::watch::watch(
            "policy-watch",
            &watched,
            move |path| path.starts_with(&dir) || extra.iter().any(|p| p == path),
            // Errors are logged by reload; the old bundle keeps serving.
            move || {
                let _ = store.reload();
            },
        )
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
