//! Progress of long operations (a registry pull, a compile), reported through a [`Reporter`]
//! the front end installs. The library never prints: with no reporter installed (a server, a
//! test, stderr not a terminal) a [`Task`] costs nothing and shows nothing.

use std::sync::OnceLock;

/// Shows tasks to a person (the CLI's progress bars).
pub trait Reporter: Send + Sync {
    /// A task has started: `label` says what it is, `total` its size in bytes if known.
    fn start(&self, label: &str, total: Option<u64>) -> Box<dyn Shown>;
}

/// One task as a reporter shows it.
pub trait Shown: Send {
    /// `bytes` more are done.
    fn advance(&mut self, bytes: u64);
    /// The task is over (done or failed).
    fn finish(&mut self);
}

static REPORTER: OnceLock<Box<dyn Reporter>> = OnceLock::new();

/// Installs the process's reporter; the first one installed stays.
pub fn install(reporter: Box<dyn Reporter>) {
    let _ = REPORTER.set(reporter);
}

/// A task in progress; it is finished when dropped.
pub struct Task(Option<Box<dyn Shown>>);

/// Starts a task (shown only if a reporter is installed).
pub fn task(label: &str, total: Option<u64>) -> Task {
    Task(REPORTER.get().map(|reporter| reporter.start(label, total)))
}

impl Task {
    pub fn advance(&mut self, bytes: u64) {
        if let Some(shown) = &mut self.0 {
            shown.advance(bytes);
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some(shown) = &mut self.0 {
            shown.finish();
        }
    }
}
