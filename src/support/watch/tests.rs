//! The watch reacts to every finished change of a watched file and does no work at all for
//! writes to other files in the same directory (the audit log's WAL next to the config).

use std::fs::{self, File, FileTimes, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::*;

/// A watch and the number of reactions it made so far.
struct Watched {
    watcher: FileWatcher,
    reactions: Arc<AtomicUsize>,
}

impl Watched {
    fn files(files: &[&Path]) -> Self {
        let reactions = Arc::new(AtomicUsize::new(0));
        let count = reactions.clone();
        let watcher = watch_files(
            "watch-test",
            files.iter().map(|f| f.to_path_buf()).collect(),
            move || {
                count.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
        Watched { watcher, reactions }
    }

    fn tree(dir: &Path) -> Self {
        let reactions = Arc::new(AtomicUsize::new(0));
        let count = reactions.clone();
        let root = dir.to_path_buf();
        let watcher = watch(
            "watch-test",
            &[(root.clone(), RecursiveMode::Recursive)],
            move |path| path.starts_with(&root),
            move || {
                count.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
        Watched { watcher, reactions }
    }

    fn reactions(&self) -> usize {
        self.reactions.load(Ordering::SeqCst)
    }

    fn events(&self) -> usize {
        self.watcher.events.load(Ordering::SeqCst)
    }

    /// Waits for reaction number `n`, then checks that no other one follows.
    fn expect_reactions(&self, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.reactions() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(DEBOUNCE * 3);
        assert_eq!(self.reactions(), n, "{what}");
    }
}

#[test]
fn writes_to_an_open_unwatched_file_reach_no_filter() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    fs::write(&config, "a").unwrap();
    // Like SQLite's WAL: opened once, then written many times without closing.
    let wal = File::create(dir.path().join("gatehouse-audit.db-wal")).unwrap();
    let watched = Watched::files(&[&config]);

    for i in 0..1000u64 {
        wal.write_at(b"a frame of the write-ahead log", i * 32)
            .unwrap();
    }
    std::thread::sleep(DEBOUNCE * 3);
    assert_eq!(
        watched.events(),
        0,
        "writes to an unwatched file woke the watch"
    );
    assert_eq!(watched.reactions(), 0);

    // Closing it is one finished change of an unwatched file: one event, no reaction.
    drop(wal);
    std::thread::sleep(DEBOUNCE * 3);
    assert_eq!(watched.events(), 1);
    assert_eq!(watched.reactions(), 0);

    fs::write(&config, "b").unwrap();
    watched.expect_reactions(1, "rewriting the watched file");
}

#[test]
fn a_burst_of_writes_to_a_watched_file_is_one_reaction() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    fs::write(&config, "a").unwrap();
    let watched = Watched::files(&[&config]);
    for i in 0..20 {
        fs::write(&config, format!("{i}")).unwrap();
    }
    watched.expect_reactions(1, "a burst of writes");
}

#[test]
fn every_finished_change_of_a_watched_file_reacts() {
    let dir = tempfile::tempdir().unwrap();
    let pins = dir.path().join("pins.toml");
    let watched = Watched::files(&[&pins]);

    fs::write(&pins, "created").unwrap();
    watched.expect_reactions(1, "creating the file");

    // In place: open without truncating, write, close.
    let file = OpenOptions::new().write(true).open(&pins).unwrap();
    file.write_at(b"in place", 0).unwrap();
    drop(file);
    watched.expect_reactions(2, "rewriting the file in place");

    // As editors and `mv` do: write a new file, rename it over the old one.
    let new = dir.path().join(".pins.toml.swp");
    fs::write(&new, "renamed").unwrap();
    fs::rename(&new, &pins).unwrap();
    watched.expect_reactions(3, "replacing the file by a rename");

    // `touch` sets both times (IN_ATTRIB; the modification time alone is IN_MODIFY).
    let now = SystemTime::now();
    File::open(&pins)
        .unwrap()
        .set_times(FileTimes::new().set_accessed(now).set_modified(now))
        .unwrap();
    watched.expect_reactions(4, "touching the file");

    fs::remove_file(&pins).unwrap();
    watched.expect_reactions(5, "deleting the file");
}

#[test]
fn a_recursive_watch_sees_subdirectories_created_later() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("old")).unwrap();
    let watched = Watched::tree(dir.path());

    fs::write(dir.path().join("old/a.rego"), "a").unwrap();
    watched.expect_reactions(1, "a file in an existing subdirectory");

    fs::create_dir(dir.path().join("new")).unwrap();
    watched.expect_reactions(2, "creating a subdirectory");
    fs::write(dir.path().join("new/b.rego"), "b").unwrap();
    watched.expect_reactions(3, "a file in a subdirectory created later");

    // A directory moved out of the tree is no longer watched.
    let outside = tempfile::tempdir().unwrap();
    fs::rename(dir.path().join("new"), outside.path().join("new")).unwrap();
    watched.expect_reactions(4, "moving a subdirectory out");
    fs::write(outside.path().join("new/b.rego"), "c").unwrap();
    watched.expect_reactions(4, "a file in a subdirectory moved out");
}

#[test]
fn dropping_the_watch_ends_its_thread() {
    fn watch_threads() -> usize {
        fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.trim() == "watch-drop-test")
            .count()
    }
    let dir = tempfile::tempdir().unwrap();
    let watcher = watch_files("watch-drop-test", vec![dir.path().join("f")], || {}).unwrap();
    // The thread names itself once it runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    while watch_threads() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(watch_threads(), 1);
    drop(watcher);
    assert_eq!(watch_threads(), 0);
}

#[test]
fn an_unwatchable_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let error = watch(
        "watch-test",
        &[(missing.clone(), RecursiveMode::Recursive)],
        |_| true,
        || {},
    )
    .unwrap_err();
    assert_eq!(error.path, missing);
    assert!(error.to_string().contains("missing"), "{error}");
}
