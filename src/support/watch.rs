//! Watching files for changes: one debounced background reaction per burst of changes. Shared by
//! the policy bundle's hot reload and the component catalog's and pin file's reloads.
//!
//! Linux inotify, directly. We watch directories (a file's directory, so that editors and `mv`
//! replacing the file are seen; the policy bundle recursively), and those directories hold other
//! busy files: the audit log and its SQLite `-wal` usually sit next to the config. A general
//! watcher (notify) registers `IN_MODIFY`, so every `pwrite` of the WAL woke its thread and ran
//! our filter: 22.5% of the gateway's CPU under HTTP load (BENCHMARKS.md#http-cpu-per-call).
//! We register only the events that mark a *finished* change, so writes to any file, watched
//! or not, cost nothing until it is closed:
//! - `IN_CLOSE_WRITE`: a file written in place (open, write, close);
//! - `IN_CREATE`, `IN_DELETE`, `IN_MOVED_FROM`, `IN_MOVED_TO`: files appearing, disappearing or
//!   being replaced by a rename (editors, `mv`, `git checkout`);
//! - `IN_ATTRIB`: `touch` (which sets both times; the way to ask for a reload) and changes of
//!   mode or owner, which the trust checks of the files read;
//! - `IN_DELETE_SELF`, `IN_MOVE_SELF`: the watched directory itself going away.
//!
//! Not `IN_MODIFY` (one event per write while the file is still open), nor `IN_OPEN`, `IN_ACCESS`
//! or `IN_CLOSE_NOWRITE` (reads, including the reaction's own). Gatehouse builds for Linux only,
//! so there is no portable fallback.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::event::{PollFd, PollFlags, Timespec};

/// Quiet time after the last change before reacting: editors and `git checkout` write several
/// files in a burst, and one reaction should see all of them.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// The events that mark a finished change (see the module doc for why each is here and why
/// `IN_MODIFY` is not).
const CHANGES: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF);

/// Whether a watched directory's subdirectories are watched too, including those created later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecursiveMode {
    Recursive,
    NonRecursive,
}

/// A path could not be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch {}: {source}", path.display())]
pub struct WatchError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// A running watch; it stops when dropped.
pub struct FileWatcher {
    // Closing the write end wakes the thread (POLLHUP), which ends and closes the inotify fd.
    stop: Option<io::PipeWriter>,
    thread: Option<JoinHandle<()>>,
    /// Events the kernel delivered, relevant or not: the per-event work the mask saves.
    #[cfg(test)]
    events: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl std::fmt::Debug for FileWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWatcher").finish_non_exhaustive()
    }
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Watches `watched` (directories, recursively or not) and calls `on_change` on a thread named
/// `name` once per burst of changes to a path `relevant` accepts. Watching a file's directory
/// rather than the file survives editors that replace a file by renaming over it.
pub fn watch(
    name: &str,
    watched: &[(PathBuf, RecursiveMode)],
    relevant: impl Fn(&Path) -> bool + Send + 'static,
    on_change: impl Fn() + Send + 'static,
) -> Result<FileWatcher, WatchError> {
    let error = |source| WatchError {
        path: PathBuf::from(name),
        source,
    };
    let mut dirs = Dirs {
        inotify: Inotify::init().map_err(error)?,
        paths: HashMap::new(),
    };
    for (path, mode) in watched {
        dirs.add(path, *mode == RecursiveMode::Recursive)
            .map_err(|(path, source)| WatchError { path, source })?;
    }
    let (stop_rx, stop) = io::pipe().map_err(error)?;
    #[cfg(test)]
    let events = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut reactor = Reactor {
        dirs,
        relevant: Box::new(relevant),
        #[cfg(test)]
        events: events.clone(),
    };
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || reactor.run(&stop_rx, on_change))
        .map_err(error)?;
    Ok(FileWatcher {
        stop: Some(stop),
        thread: Some(thread),
        #[cfg(test)]
        events,
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

/// The inotify instance and the directory each of its watches stands for.
struct Dirs {
    inotify: Inotify,
    paths: HashMap<WatchDescriptor, Dir>,
}

struct Dir {
    path: PathBuf,
    recursive: bool,
}

impl Dirs {
    /// Watches `path` and, if `recursive`, every directory below it (following symbolic links,
    /// as the bundle loader does; a directory already watched is not entered again, which also
    /// ends symlink loops). Returns the path that failed.
    fn add(&mut self, path: &Path, recursive: bool) -> Result<(), (PathBuf, io::Error)> {
        let wd = self
            .inotify
            .watches()
            .add(path, CHANGES)
            .map_err(|e| (path.to_path_buf(), e))?;
        match self.paths.get_mut(&wd) {
            Some(dir) if dir.recursive || !recursive => return Ok(()),
            Some(dir) => dir.recursive = true,
            None => {
                self.paths.insert(
                    wd,
                    Dir {
                        path: path.to_path_buf(),
                        recursive,
                    },
                );
            }
        }
        if recursive {
            let entries = std::fs::read_dir(path).map_err(|e| (path.to_path_buf(), e))?;
            for entry in entries {
                let entry = entry.map_err(|e| (path.to_path_buf(), e))?;
                if entry.path().is_dir() {
                    self.add(&entry.path(), true)?;
                }
            }
        }
        Ok(())
    }

    /// Stops watching `path` and everything below it (a directory moved out of the tree).
    fn remove_below(&mut self, path: &Path) {
        let gone: Vec<WatchDescriptor> = self
            .paths
            .iter()
            .filter(|(_, dir)| dir.path.starts_with(path))
            .map(|(wd, _)| wd.clone())
            .collect();
        for wd in gone {
            self.paths.remove(&wd);
            let _ = self.inotify.watches().remove(wd);
        }
    }

    /// Keeps the watches in step with one event and returns the path it concerns, or `None` for
    /// bookkeeping events and events of watches already dropped.
    fn track(
        &mut self,
        wd: &WatchDescriptor,
        mask: EventMask,
        name: Option<&OsStr>,
    ) -> Option<PathBuf> {
        if mask.contains(EventMask::IGNORED) {
            // The kernel dropped the watch (directory deleted or unmounted).
            self.paths.remove(wd);
            return None;
        }
        let dir = self.paths.get(wd)?;
        let path = match name {
            Some(name) => dir.path.join(name),
            None => dir.path.clone(),
        };
        if mask.contains(EventMask::ISDIR) && name.is_some() {
            if mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) && dir.recursive {
                // A new subdirectory; changes made in it before this watch exists are covered
                // by the reaction this very event triggers.
                if let Err((path, e)) = self.add(&path, true)
                    && e.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %e,
                        "cannot watch a new directory: changes in it will not be seen");
                }
            } else if mask.contains(EventMask::MOVED_FROM) {
                self.remove_below(&path);
            }
        }
        Some(path)
    }
}

/// The watch thread's state: it reads events, filters them and debounces the reaction.
struct Reactor {
    dirs: Dirs,
    relevant: Box<dyn Fn(&Path) -> bool + Send>,
    #[cfg(test)]
    events: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Reactor {
    /// Runs until `stop` hangs up: waits for events, and calls `on_change` once [`DEBOUNCE`]
    /// has passed without a relevant one since the last.
    fn run(&mut self, stop: &io::PipeReader, on_change: impl Fn()) {
        let mut quiet_at: Option<Instant> = None;
        loop {
            let timeout = quiet_at.map(|at| {
                let left = at.saturating_duration_since(Instant::now());
                Timespec::try_from(left).unwrap_or(Timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                })
            });
            let mut fds = [
                PollFd::new(&self.dirs.inotify, PollFlags::IN),
                PollFd::new(stop, PollFlags::IN),
            ];
            match rustix::event::poll(&mut fds, timeout.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    tracing::error!(error = %e, "file watch failed: changes will not be seen");
                    return;
                }
            }
            let (changed, stopped) = (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
            if stopped {
                return;
            }
            if changed && self.read() {
                quiet_at = Some(Instant::now() + DEBOUNCE);
            }
            if quiet_at.is_some_and(|at| Instant::now() >= at) {
                quiet_at = None;
                on_change();
            }
        }
    }

    /// Reads every pending event; true if one concerns a relevant path.
    fn read(&mut self) -> bool {
        // Room for several events with names up to NAME_MAX.
        let mut buffer = [0u8; 4096];
        let mut relevant = false;
        loop {
            let events = match self.dirs.inotify.read_events(&mut buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: all read.
                Err(_) => return relevant,
            };
            for event in events {
                #[cfg(test)]
                self.events
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    // Events were lost: one of them may have been relevant.
                    relevant = true;
                    continue;
                }
                if let Some(path) = self.dirs.track(&event.wd, event.mask, event.name) {
                    relevant |= (self.relevant)(&path);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
