//! fsync of the external checkpoint file, off the writer thread.
//!
//! The writer appends each checkpoint to the checkpoint file as soon as its transaction commits,
//! but waiting there for the disk (this VM's fsync: p99 8–21 ms) held up every entry queued
//! behind it, and with `synchronous = normal` that wait was the only regular fsync on the append
//! path (SQLite otherwise fsyncs only when it restarts the WAL, and at its own checkpoints).
//! The file is a copy of what the database already holds: a checkpoint missing from it after a
//! crash is appended again when the log is next opened (`Writer::sync_checkpoint_file`), so its
//! fsync can trail the commit. The writer waits for it only where a caller relies on the file
//! being on disk: when the log is closed or rotated ([`FileSync::settle`]).

use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};

/// A background thread that fsyncs the files it is handed, in order, coalescing requests that
/// queue up while it waits for the disk.
pub(super) struct FileSync {
    tx: Sender<Request>,
    /// The first failure, until the writer takes it.
    failure: Arc<Mutex<Option<Failure>>>,
}

/// A file that could not be synced.
pub(super) struct Failure {
    pub path: PathBuf,
    pub error: std::io::Error,
}

enum Request {
    Sync(PathBuf, Arc<File>),
    /// Answered once every earlier request is done and no file handle is held any more.
    Settle(SyncSender<()>),
}

impl FileSync {
    pub fn start(thread_name: &str) -> std::io::Result<FileSync> {
        let (tx, rx) = mpsc::channel();
        let failure = Arc::new(Mutex::new(None));
        let recorded = failure.clone();
        std::thread::Builder::new()
            .name(thread_name.into())
            .spawn(move || run(&rx, &recorded))?;
        Ok(FileSync { tx, failure })
    }

    /// Asks for `file` to be synced soon; returns at once.
    pub fn request(&self, path: &std::path::Path, file: &Arc<File>) {
        // The thread ends only after this handle is dropped, so the send cannot fail.
        let _ = self.tx.send(Request::Sync(path.to_owned(), file.clone()));
    }

    /// Waits until every requested sync is done and the thread holds no file (so a lock on one
    /// is released with the writer's own handle).
    pub fn settle(&self) {
        let (tx, rx) = mpsc::sync_channel(1);
        if self.tx.send(Request::Settle(tx)).is_ok() {
            let _ = rx.recv();
        }
    }

    /// The first sync that failed since the last call, if any.
    pub fn take_failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

fn run(rx: &Receiver<Request>, failure: &Mutex<Option<Failure>>) {
    while let Ok(first) = rx.recv() {
        // Everything queued while the previous fsync ran: one fsync per distinct file serves
        // all of its requests, since each covers every write made before it was sent.
        let mut pending: Vec<(PathBuf, Arc<File>)> = Vec::new();
        let mut settled: Vec<SyncSender<()>> = Vec::new();
        for request in std::iter::once(first).chain(rx.try_iter()) {
            match request {
                Request::Sync(path, file) => {
                    if !pending.iter().any(|(_, f)| Arc::ptr_eq(f, &file)) {
                        pending.push((path, file));
                    }
                }
                Request::Settle(reply) => settled.push(reply),
            }
        }
        for (path, file) in pending {
            if let Err(error) = file.sync_data() {
                let mut slot = failure.lock().unwrap_or_else(PoisonError::into_inner);
                slot.get_or_insert(Failure { path, error });
            }
        }
        for reply in settled {
            let _ = reply.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn settle_returns_after_the_requested_syncs_and_releases_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        let file = Arc::new(File::create(&path).unwrap());
        file.try_lock().unwrap();
        let sync = FileSync::start("test-sync").unwrap();
        for _ in 0..50 {
            (&*file).write_all(b"line\n").unwrap();
            sync.request(&path, &file);
        }
        sync.settle();
        assert!(sync.take_failure().is_none());
        // The writer's handle is the last one: dropping it releases the lock.
        assert_eq!(Arc::strong_count(&file), 1);
        drop(file);
        File::open(&path).unwrap().try_lock().unwrap();
    }

    #[test]
    fn a_failed_sync_is_reported_once() {
        // fsync of a pipe fails (EINVAL): a file whose sync cannot succeed.
        let (reader, _writer) = std::io::pipe().unwrap();
        let file = Arc::new(File::from(std::os::fd::OwnedFd::from(reader)));
        let sync = FileSync::start("test-sync").unwrap();
        sync.request(std::path::Path::new("a-pipe"), &file);
        sync.settle();
        let failure = sync.take_failure().expect("fsync of a pipe fails");
        assert_eq!(failure.path, PathBuf::from("a-pipe"));
        assert!(sync.take_failure().is_none());
    }
}
