//! Path resolution on the host, the way the kernel resolves it, one component at a time.
//!
//! The policy must decide on what an operation will really touch, not on the text a tool
//! wrote: `/data/out/l/config` is `/data/in/config` when `l` is a link to `../in`. So before a
//! path is decided, [`walk`] resolves it itself:
//!
//! - It starts at the directory the path is relative to and opens each directory on the way
//!   with `O_NOFOLLOW | O_DIRECTORY`, one name at a time, holding the handle it opened. A
//!   directory swapped for a link after it was looked at makes the open fail (`ELOOP`); it is
//!   never followed unseen.
//! - Each symbolic link on the way (and the final one, when the operation follows it) is
//!   read and its contents resolved in its place, from the link's real directory, as the
//!   kernel does. A link whose contents are absolute, or whose `..` climbs above the mount's
//!   root, is refused; so is a chain of more than [`MAX_SYMLINKS`] links.
//! - The result is the guest path with every link expanded ([`Walked::location`]), the handle
//!   of the directory that holds the final component, and that component's name. The caller
//!   decides on the location and then runs the operation on that handle and name alone,
//!   without following a link in the final component; so nothing that changes after the
//!   decision can redirect the operation through a link.
//!
//! Components below a directory that does not exist are resolved lexically (no link can lie
//! under a missing directory); the operation then fails with the walk's error, after it was
//! decided and recorded like any other.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use wasmtime_wasi::p2::bindings::filesystem::types::ErrorCode;

/// Most symbolic links one lookup follows (Linux's `MAXSYMLINKS`).
pub const MAX_SYMLINKS: usize = 40;

/// A location inside a mount: the mount's guest path and the path segments below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestDir {
    pub mount: Arc<str>,
    pub segments: Vec<String>,
}

impl GuestDir {
    /// The mount's root.
    pub fn root(mount: Arc<str>) -> GuestDir {
        GuestDir {
            mount,
            segments: Vec::new(),
        }
    }

    /// The absolute guest path, e.g. `/data/reports`.
    pub fn guest_path(&self) -> String {
        let mut path = self.mount.trim_end_matches('/').to_owned();
        for segment in &self.segments {
            path.push('/');
            path.push_str(segment);
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }

    /// The directory this location lies in (the root is its own parent).
    pub fn parent(&self) -> GuestDir {
        let mut parent = self.clone();
        parent.segments.pop();
        parent
    }
}

/// Why a path was refused before the policy was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRefusal {
    /// The tool's path is absolute.
    Absolute,
    /// The tool's path climbs with `..` above the directory it is relative to.
    ClimbsOut,
    /// The path is relative to a descriptor the gateway does not know.
    UnknownDescriptor,
    /// A symbolic link on the way has absolute contents.
    LinkAbsolute { link: String, contents: String },
    /// A symbolic link on the way climbs above its mount's root.
    LinkLeavesMount { link: String, contents: String },
    /// More than [`MAX_SYMLINKS`] links on the way.
    TooManyLinks,
}

impl PathRefusal {
    /// The reason recorded and given to the tool.
    pub fn reason(&self, path: &str) -> String {
        match self {
            PathRefusal::Absolute => {
                format!("absolute path {path:?}: paths must be relative to an open directory")
            }
            PathRefusal::ClimbsOut => format!(
                "path {path:?} climbs above the directory it is relative to (no way out of a mount)"
            ),
            PathRefusal::UnknownDescriptor => {
                format!("path {path:?} is relative to a descriptor the gateway did not open")
            }
            PathRefusal::LinkAbsolute { link, contents } => format!(
                "path {path:?} goes through symlink {link} -> {contents:?}, which points to an absolute path"
            ),
            PathRefusal::LinkLeavesMount { link, contents } => format!(
                "path {path:?} goes through symlink {link} -> {contents:?}, which points outside its mount"
            ),
            PathRefusal::TooManyLinks => {
                format!("path {path:?} goes through more than {MAX_SYMLINKS} symbolic links")
            }
        }
    }
}

/// Resolves the tool's `path` against `base` lexically: the location as written, refusing
/// absolute paths and any `..` that climbs above `base`. This is what the tool named; [`walk`]
/// finds what it names on disk.
pub fn lexical(base: &GuestDir, path: &str) -> Result<GuestDir, PathRefusal> {
    if path.starts_with('/') {
        return Err(PathRefusal::Absolute);
    }
    let mut location = base.clone();
    let depth = base.segments.len();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if location.segments.len() == depth {
                    return Err(PathRefusal::ClimbsOut);
                }
                location.segments.pop();
            }
            name => location.segments.push(name.to_owned()),
        }
    }
    Ok(location)
}

/// What a path resolves to on disk.
#[derive(Debug)]
pub struct Walked {
    /// The guest path with every symbolic link expanded: what the operation will touch.
    pub location: GuestDir,
    /// The directory holding the final component, opened without following links; or the
    /// error of a directory on the way that does not exist (or is not a directory).
    pub parent: Result<OwnedFd, ErrorCode>,
    /// The final component (`.` when the path names the directory it ends in).
    pub name: String,
}

/// A failure of the walk itself: a refusal, or the host's filesystem failing.
#[derive(Debug)]
pub enum WalkError {
    Refused(PathRefusal),
    Io(io::Error),
}

impl From<rustix::io::Errno> for WalkError {
    fn from(errno: rustix::io::Errno) -> Self {
        WalkError::Io(errno.into())
    }
}

/// Where a walk starts: a directory handle and the location it has.
pub struct Start<'a> {
    /// The mount's root directory, where a link's `..` may lead back to.
    pub root: BorrowedFd<'a>,
    /// The directory the path is relative to.
    pub dir: BorrowedFd<'a>,
    /// Its location.
    pub location: &'a GuestDir,
}

/// Resolves `path` from `start` as the kernel would, expanding every symbolic link itself
/// (the final component's only when `follow_last`). See the module documentation.
pub fn walk(start: &Start<'_>, path: &str, follow_last: bool) -> Result<Walked, WalkError> {
    let mut location = start.location.clone();
    let mut dir = start.dir.try_clone_to_owned().map_err(WalkError::Io)?;
    if path.is_empty() {
        // The kernel finds nothing at an empty path; neither do we.
        return Ok(Walked {
            location,
            parent: Err(ErrorCode::NoEntry),
            name: ".".to_owned(),
        });
    }
    let mut pending = components(path);
    let mut links = 0;
    // The link whose contents are being resolved, for the refusal that names it.
    let mut via_link: Option<(String, String)> = None;
    while let Some(component) = pending.pop_front() {
        if component == ".." {
            if location.segments.pop().is_none() {
                return Err(WalkError::Refused(match via_link {
                    Some((link, contents)) => PathRefusal::LinkLeavesMount { link, contents },
                    None => PathRefusal::ClimbsOut,
                }));
            }
            dir = open_beneath(start.root, &location.segments)?;
            continue;
        }
        let last = pending.is_empty();
        if last && !follow_last {
            return Ok(Walked::found(location, dir, component));
        }
        let kind = match rustix::fs::statat(&dir, component.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => FileType::from_raw_mode(stat.st_mode),
            Err(rustix::io::Errno::NOENT) if last => {
                return Ok(Walked::found(location, dir, component));
            }
            Err(rustix::io::Errno::NOENT) => {
                return missing(location, component, pending, ErrorCode::NoEntry);
            }
            Err(errno) => return Err(errno.into()),
        };
        match kind {
            FileType::Symlink => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(WalkError::Refused(PathRefusal::TooManyLinks));
                }
                let contents = rustix::fs::readlinkat(&dir, component.as_str(), Vec::new())?;
                let contents = contents.to_string_lossy().into_owned();
                let mut link = location.clone();
                link.segments.push(component);
                let link = link.guest_path();
                if contents.starts_with('/') {
                    return Err(WalkError::Refused(PathRefusal::LinkAbsolute {
                        link,
                        contents,
                    }));
                }
                for part in components(&contents).into_iter().rev() {
                    pending.push_front(part);
                }
                via_link = Some((link, contents));
            }
            FileType::Directory if !last => {
                dir = open_dir_nofollow(&dir, &component)?;
                location.segments.push(component);
            }
            _ if last => return Ok(Walked::found(location, dir, component)),
            _ => return missing(location, component, pending, ErrorCode::NotDirectory),
        }
    }
    // No final component: the path names the directory the walk ended in.
    Ok(Walked::found(location, dir, ".".to_owned()))
}

impl Walked {
    fn found(mut location: GuestDir, parent: OwnedFd, name: String) -> Walked {
        if name != "." {
            location.segments.push(name.clone());
        }
        Walked {
            location,
            parent: Ok(parent),
            name,
        }
    }
}

/// The rest of a path below a component that does not exist (or is not a directory): no
/// link can lie there, so it is resolved lexically; the operation will fail with `error`.
fn missing(
    mut location: GuestDir,
    component: String,
    rest: VecDeque<String>,
    error: ErrorCode,
) -> Result<Walked, WalkError> {
    location.segments.push(component);
    for part in rest {
        if part == ".." {
            location.segments.pop();
        } else {
            location.segments.push(part);
        }
    }
    let name = location
        .segments
        .last()
        .cloned()
        .unwrap_or_else(|| ".".to_owned());
    Ok(Walked {
        location,
        parent: Err(error),
        name,
    })
}

/// The names of a path, without empty and `.` components.
fn components(path: &str) -> VecDeque<String> {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .map(str::to_owned)
        .collect()
}

/// Opens the directory `name` (one component) of `dir`, refusing to follow a link.
fn open_dir_nofollow(dir: &impl AsFd, name: &str) -> Result<OwnedFd, WalkError> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// Opens the directory at `segments` below `root`, one component at a time without following
/// links (where a link's `..` leads back up).
fn open_beneath(root: BorrowedFd<'_>, segments: &[String]) -> Result<OwnedFd, WalkError> {
    let mut dir = root.try_clone_to_owned().map_err(WalkError::Io)?;
    for segment in segments {
        dir = open_dir_nofollow(&dir, segment)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::os::unix::fs::symlink;

    fn dir(mount: &str, segments: &[&str]) -> GuestDir {
        GuestDir {
            mount: Arc::from(mount),
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    #[test]
    fn lexical_resolution_stays_below_its_base() {
        let base = dir("/data", &["reports"]);
        assert_eq!(
            lexical(&base, "./2026/../q3.csv").unwrap().guest_path(),
            "/data/reports/q3.csv"
        );
        assert_eq!(lexical(&base, ".").unwrap(), base);
        assert_eq!(lexical(&base, "/etc/passwd"), Err(PathRefusal::Absolute));
        assert_eq!(lexical(&base, ".."), Err(PathRefusal::ClimbsOut));
        assert_eq!(lexical(&base, "a/../../x"), Err(PathRefusal::ClimbsOut));
    }

    #[test]
    fn guest_paths_join_mount_and_segments() {
        assert_eq!(dir("/data", &[]).guest_path(), "/data");
        assert_eq!(dir("/data/", &["a", "b"]).guest_path(), "/data/a/b");
        assert_eq!(dir("/", &["a"]).guest_path(), "/a");
        assert_eq!(dir("/", &[]).guest_path(), "/");
    }

    /// A mount `/data` over a temp directory with `in/config`, `out/`, `secret/key` and links
    /// `out/l -> ../in`, `in/x -> ../secret/key`, `out/up -> ../..`, `out/abs -> /etc`.
    fn fixture() -> (tempfile::TempDir, File) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for sub in ["in", "out", "secret"] {
            std::fs::create_dir(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("in/config"), "config").unwrap();
        std::fs::write(root.join("secret/key"), "key").unwrap();
        symlink("../in", root.join("out/l")).unwrap();
        symlink("../secret/key", root.join("in/x")).unwrap();
        symlink("../..", root.join("out/up")).unwrap();
        symlink("/etc", root.join("out/abs")).unwrap();
        symlink("loop", root.join("out/loop")).unwrap();
        let handle = File::open(root).unwrap();
        (tmp, handle)
    }

    fn walk_from_root(root: &File, path: &str, follow_last: bool) -> Result<Walked, WalkError> {
        let location = dir("/data", &[]);
        walk(
            &Start {
                root: root.as_fd(),
                dir: root.as_fd(),
                location: &location,
            },
            path,
            follow_last,
        )
    }

    fn refusal(result: Result<Walked, WalkError>) -> PathRefusal {
        match result {
            Err(WalkError::Refused(refusal)) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn links_are_expanded_before_anything_is_decided() {
        let (_tmp, root) = fixture();
        let walked = walk_from_root(&root, "out/l/config", false).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/in/config");
        assert_eq!(walked.name, "config");
        // Chained links: out/l/x is in/x, which is secret/key.
        let walked = walk_from_root(&root, "out/l/x", true).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/secret/key");
        // Without following the final link, the link itself is named (in its real place).
        let walked = walk_from_root(&root, "out/l/x", false).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/in/x");
        // `..` after a link climbs from the link's target, as in the kernel.
        let walked = walk_from_root(&root, "out/l/../secret", true).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/secret");
        // A directory itself.
        let walked = walk_from_root(&root, "out/l", true).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/in");
        let walked = walk_from_root(&root, ".", true).unwrap();
        assert_eq!(
            (walked.location.guest_path(), walked.name.as_str()),
            ("/data".into(), ".")
        );
    }

    #[test]
    fn links_out_of_the_mount_are_refused() {
        let (_tmp, root) = fixture();
        assert_eq!(
            refusal(walk_from_root(&root, "out/up/etc", true)),
            PathRefusal::LinkLeavesMount {
                link: "/data/out/up".into(),
                contents: "../..".into()
            }
        );
        assert!(matches!(
            refusal(walk_from_root(&root, "out/abs/passwd", true)),
            PathRefusal::LinkAbsolute { .. }
        ));
        assert_eq!(
            refusal(walk_from_root(&root, "out/loop", true)),
            PathRefusal::TooManyLinks
        );
        // Not following the final component: the link itself, wherever it points.
        let walked = walk_from_root(&root, "out/abs", false).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/out/abs");
    }

    #[test]
    fn missing_directories_resolve_lexically_and_fail_later() {
        let (_tmp, root) = fixture();
        let walked = walk_from_root(&root, "nope/a/../b", true).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/nope/b");
        assert!(matches!(walked.parent, Err(ErrorCode::NoEntry)));
        let walked = walk_from_root(&root, "in/config/below", true).unwrap();
        assert!(matches!(walked.parent, Err(ErrorCode::NotDirectory)));
        // A missing final component is something to create, in an existing directory.
        let walked = walk_from_root(&root, "out/l/new", true).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/in/new");
        assert!(walked.parent.is_ok());
    }

    #[test]
    fn a_directory_swapped_for_a_link_is_not_followed() {
        let (tmp, root) = fixture();
        // The walk opened `out` and holds it; replace it with a link to `in` afterwards.
        let walked = walk_from_root(&root, "out/f", false).unwrap();
        std::fs::rename(tmp.path().join("out"), tmp.path().join("moved")).unwrap();
        symlink("in", tmp.path().join("out")).unwrap();
        let parent = File::from(walked.parent.unwrap());
        rustix::fs::openat(
            &parent,
            walked.name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .unwrap();
        assert!(tmp.path().join("moved/f").exists());
        assert!(!tmp.path().join("in/f").exists());
        // And a fresh walk that meets the link mid-way refuses to open through it unseen:
        // it reads the link and resolves it instead.
        let walked = walk_from_root(&root, "out/config", false).unwrap();
        assert_eq!(walked.location.guest_path(), "/data/in/config");
    }
}
